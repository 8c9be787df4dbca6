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

ROOT = Path(__file__).resolve().parents[1]


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
