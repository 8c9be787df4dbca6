"""docs/github-actions.md: the workflow it shows is the one actionlint checks (``nox -s lint``), and it
asks for what each step needs (an application repository's workflow, not chatbench's own)."""

from __future__ import annotations

import functools
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NODE20_ACTIONS = ("mikepenz/action-junit-report@v4", "marocchino/sticky-pull-request-comment@v2")


@functools.cache  # (loading it registers its sessions with nox: once)
def _noxfile() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chatbench_noxfile", ROOT / "noxfile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _actionlint(workflow: Path) -> subprocess.CompletedProcess[str]:
    tools = str(Path(sys.executable).parent)
    binary = shutil.which("actionlint", path=tools)
    assert binary, "actionlint is a dev dependency: pip install -e '.[dev]'"
    return subprocess.run([binary, str(workflow)], cwd=workflow.parents[2], capture_output=True, text=True,
                          timeout=120, env={"PATH": f"{tools}:/usr/bin:/bin"})


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    nox = _noxfile()
    (written,) = nox.write_documented_workflows(tmp_path, nox.WORKFLOW_DOCS.read_text())
    return written


def test_the_documented_workflow_passes_actionlint(workflow: Path) -> None:
    done = _actionlint(workflow)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_is_a_real_check_of_inputs_and_scripts(workflow: Path) -> None:
    text = workflow.read_text()
    workflow.write_text(text.replace("if_no_artifact_found:", "if_no_artifact_fund:"))
    assert "if_no_artifact_fund" in _actionlint(workflow).stdout
    workflow.write_text(text.replace('>> "$GITHUB_STEP_SUMMARY"', ">> $GITHUB_STEP_SUMMARY"))
    assert "SC2086" in _actionlint(workflow).stdout  # shellcheck runs on the run: scripts


def test_it_is_an_application_workflow_with_the_permissions_its_steps_need(workflow: Path) -> None:
    text = workflow.read_text()
    for needed in ("actions: read", "checks: write", "pull-requests: write", "contents: read"):
        assert needed in text
    assert "path: ~/.cache/chatbench" in text and "/var/tmp/chatbench" not in text
    assert "--schema-from-cmd" in text and 'pip install -e . "$CHATBENCH"' in text
    assert "continue-on-error" not in text  # a failed baseline download is seen, not hidden
    assert "nox" not in text  # nothing of chatbench's own repository


def test_inconclusive_is_a_warning_and_fail_or_error_stay_red(workflow: Path, tmp_path: Path) -> None:
    """The sign-off step's script, run with a stand-in ``chatbench`` exiting 0..3: exit 3 passes with a
    warning, 1 and 2 fail the step; the verdict is the step's output."""
    steps = yaml.safe_load(workflow.read_text())["jobs"]["signoff"]["steps"]
    script = next(step["run"] for step in steps if step.get("id") == "signoff")
    (tmp_path / "bin").mkdir()
    stand_in = tmp_path / "bin" / "chatbench"
    for code, verdict, step_code in ((0, "PASS", 0), (1, "FAIL", 1), (2, "ERROR", 2), (3, "INCONCLUSIVE", 0)):
        stand_in.write_text(f"#!/bin/sh\nexit {code}\n")
        stand_in.chmod(0o755)
        output = tmp_path / f"output-{code}"
        done = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                              env={"PATH": f"{stand_in.parent}:/usr/bin:/bin", "GITHUB_OUTPUT": str(output)})
        assert done.returncode == step_code, (code, done.stdout, done.stderr)
        assert output.read_text() == f"verdict={verdict}\n"
        assert ("::warning" in done.stdout) == (code == 3)


def test_forks_caches_concurrency_and_time_limits(workflow: Path) -> None:
    document = yaml.safe_load(workflow.read_text())
    jobs = document["jobs"]
    assert document["concurrency"]["group"] and "cancel-in-progress" in document["concurrency"]
    assert jobs["tests"]["env"] == {"CHATBENCH_BACKEND": "local", "CHATBENCH_SCHEMA_FROM_CMD": "alembic upgrade head"}
    for name, job in jobs.items():
        assert 0 < job["timeout-minutes"] <= 60, name
        for step in job["steps"]:
            uses = step.get("uses", "")
            assert uses not in NODE20_ACTIONS, uses
            if uses.startswith(("mikepenz/", "marocchino/")):  # they write: a fork's read-only token cannot
                assert "env.FROM_HERE == 'true'" in step["if"], (name, step)
            if uses.startswith("actions/cache@"):
                key, restore = step["with"]["key"], step["with"]["restore-keys"]
                assert "steps.chatbench.outputs.version" in key and "migrations/**" in key, key
                assert key.startswith(restore) and restore.endswith("-"), (key, restore)
