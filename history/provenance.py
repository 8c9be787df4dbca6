"""Which commit and branch a run measured: given, else from the CI's variables, else from git.

Result files do not record it (a run does not know how its code was checked out), so ``history add``
and the ``--history`` hook ask here. Unknown stays "" and is shown as unknown, never guessed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from chatbench.history.records import Provenance

COMMIT_VARIABLES = ("GITHUB_SHA", "CI_COMMIT_SHA", "BUILD_VCS_NUMBER")
BRANCH_VARIABLES = ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BRANCH_NAME")


def _git(*args: str, cwd: Path | None) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def provenance(commit: str | None = None, branch: str | None = None, *, cwd: Path | None = None) -> Provenance:
    found_commit = commit or next((os.environ[n] for n in COMMIT_VARIABLES if os.environ.get(n)), "") \
        or _git("rev-parse", "HEAD", cwd=cwd)
    found_branch = branch or next((os.environ[n] for n in BRANCH_VARIABLES if os.environ.get(n)), "") \
        or _git("rev-parse", "--abbrev-ref", "HEAD", cwd=cwd)
    return Provenance(found_commit, "" if found_branch == "HEAD" else found_branch)
