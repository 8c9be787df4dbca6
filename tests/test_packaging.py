"""One import root and one-way layers, checked the way a user meets them: as an installed wheel.

* every folder with an ``__init__.py`` is a listed package (a new subpackage cannot silently drop
  out of the wheel);
* the wheel holds exactly one top-level name, ``chatbench``;
* in a fresh venv beside the PyPI package ``schema`` (both install orders, and after uninstalling
  chatbench) ``from schema import Schema`` and ``chatbench schema ddl`` both work, and
  ``chatbench bench`` runs from an application directory that has its own ``benchmarks`` package;
* the layering contract passes on the package as it is and fails on a back-import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.packaging, pytest.mark.xdist_group("wheel")]  # one worker builds the wheel once
ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIR: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
PACKAGES: list[str] = PYPROJECT["tool"]["setuptools"]["packages"]


def _run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _source_packages() -> set[str]:
    found: set[str] = set()
    for package, folder in PACKAGE_DIR.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            relative = init.parent.relative_to(base)
            if "__pycache__" in relative.parts:
                continue
            found.add(".".join((package, *relative.parts)) if relative.parts else package)
    return found


def test_every_package_folder_is_listed() -> None:
    assert _source_packages() == set(PACKAGES)


def test_the_wheel_installs_one_top_level_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"chatbench", wheel.name.split("-py3")[0] + ".dist-info"}
    for stage in ("schema", "loadgen", "verify", "benchmarks", "reports"):
        assert f"chatbench/{stage}/__init__.py" in names
    assert {"chatbench/benchmarks/targets.toml", "chatbench/benchmarks/pytest.ini",
            "chatbench/loadgen/profiles/ci.toml", "chatbench/py.typed"} <= set(names)


def _generous_targets(base: Path) -> Path:
    """Targets no machine misses: these tests prove the suite runs, not how fast (the load here varies)."""
    path = base / "targets.toml"
    path.write_text('[latest_page]\nwhy = "packaging test"\nsmoke = { p95_ms = 10000.0, p99_ms = 20000.0 }\n')
    return path


def _app_project(base: Path) -> Path:
    """An application directory with its own ``benchmarks`` package."""
    app = base / "app"
    for package in ("benchmarks",):
        (app / package).mkdir(parents=True)
        (app / package / "__init__.py").write_text("APP = True\n")
    return app


def test_beside_pypi_schema_in_both_orders(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python, chatbench = venv / "bin" / "python", venv / "bin" / "chatbench"
    # --no-compile: pip byte-compiles every installed module (scipy's, Faker's locales) for 10 s of a 19 s
    # install; the few modules the checks import compile as they load.
    pip = (python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile")
    app = _app_project(tmp_path)
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=app).strip())

    def both_work() -> None:
        assert _run(python, "-c", "from schema import Schema; print(Schema(int).validate(3))", cwd=app).strip() == "3"
        ddl = _run(chatbench, "schema", "ddl", cwd=app)
        assert "CREATE TABLE messages" in ddl
        (record,) = site.glob("chatbench-*.dist-info/RECORD")
        tops = {line.split("/")[0] for line in record.read_text().splitlines() if not line.startswith("..")}
        assert tops == {"chatbench", record.parent.name}, tops  # (".." is the console script in bin/)
        assert "class Schema" in (site / "schema" / "__init__.py").read_text()  # PyPI's, untouched

    # PyPI's schema first, chatbench second.
    _run(*pip, "schema", cwd=app)
    _run(*pip, wheel, cwd=app)
    both_work()
    # Uninstalling chatbench leaves schema whole.
    _run(python, "-m", "pip", "uninstall", "-q", "-y", "chatbench", cwd=app)
    assert _run(python, "-c", "from schema import Schema; print('ok')", cwd=app).strip() == "ok"
    # chatbench first, PyPI's schema second.
    _run(python, "-m", "pip", "uninstall", "-q", "-y", "schema", cwd=app)
    _run(*pip, wheel, cwd=app)
    _run(*pip, "schema", cwd=app)
    both_work()
    # The application's own benchmarks package does not shadow chatbench's suite.
    env = {**os.environ, "CHATBENCH_BACKEND": "local"}
    out = _run(chatbench, "bench", "--profile", "smoke", "--rounds", "20", "--warmup", "2", "-k", "latest_page",
               "--targets", _generous_targets(tmp_path), "--json", tmp_path / "b.json",
               "--results", tmp_path / "r.json", cwd=app, env=env)
    assert "latest_page" in out


def test_bench_from_an_app_with_its_own_benchmarks_package_editable(tmp_path: Path) -> None:
    """The development install (editable) too: the suite runs, the app's package is left alone."""
    app = _app_project(tmp_path)
    env = {**os.environ, "CHATBENCH_BACKEND": "local", "PYTHONPATH": str(app)}
    out = _run(sys.executable, "-m", "chatbench", "bench", "--profile", "smoke", "--rounds", "20", "--warmup", "2",
               "-k", "latest_page", "--targets", _generous_targets(tmp_path), "--json", tmp_path / "b.json",
               "--results", tmp_path / "r.json", cwd=app, env=env)
    assert "latest_page" in out
    assert _run(sys.executable, "-c", "import benchmarks; print(benchmarks.APP)", cwd=app, env=env).strip() == "True"


def _installed_tree(base: Path) -> Path:
    """The package as installed (package-dir mapping applied), for tools that read source."""
    tree = base / "tree"
    for package, folder in sorted(PACKAGE_DIR.items()):
        shutil.copytree(ROOT / folder, tree / package.replace(".", "/"), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    linter = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert linter, "import-linter is a dev dependency: pip install -e '.[dev]'"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([linter, "--no-cache", str(ROOT / "pyproject.toml")], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_layering_contract_holds_and_catches_a_back_import(tmp_path: Path) -> None:
    tree = _installed_tree(tmp_path)
    kept = _lint_imports(tree)
    assert kept.returncode == 0, kept.stdout[-3000:] + kept.stderr[-2000:]
    assert "1 kept, 0 broken" in kept.stdout

    # A stage reaching up to a higher stage (schema -> reports) breaks it.
    models = tree / "chatbench" / "schema" / "models.py"
    models.write_text(models.read_text() + "\nimport chatbench.reports.compare  # noqa\n")
    broken = _lint_imports(tree)
    assert broken.returncode == 1, broken.stdout[-3000:]
    assert "BROKEN" in broken.stdout and "chatbench.schema.models -> chatbench.reports.compare" in broken.stdout

    # The base reaching up to a stage breaks it too.
    models.write_text(models.read_text().replace("\nimport chatbench.reports.compare  # noqa\n", "\n"))
    server = tree / "chatbench" / "provision" / "server.py"
    server.write_text(server.read_text() + "\nimport chatbench.loadgen  # noqa\n")
    broken = _lint_imports(tree)
    assert broken.returncode == 1 and "chatbench.provision.server -> chatbench.loadgen" in broken.stdout
