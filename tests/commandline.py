"""The chatbench command as the tests run it: a child process, as a user or CI runs it.

``chatbench(*argv)`` runs one command to its end; ``start_server(*argv)`` starts ``chatbench server``
and returns once it printed its URL (the first line on stdout). ``in_process(capsys, *argv)`` runs a
command through ``chatbench.cli.main`` in the test's own process, for a test that needs no process of
its own (no signal, no exit of a process, no environment the test cannot set with monkeypatch): the
same exit code and streams without the second or so of imports each child pays.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with ``env`` on top (a log's width fixed at 80 columns)."""
    return {**os.environ, "COLUMNS": "80", **(env or {})}


def chatbench(*argv: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 300,
              merged: bool = False) -> subprocess.CompletedProcess[str]:
    """``python -m chatbench ARGV`` to its end, stdout and stderr captured apart, or with ``merged`` as
    one stream in ``stdout`` (what a CI log shows)."""
    return subprocess.run([sys.executable, "-m", "chatbench", *argv], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT if merged else subprocess.PIPE, text=True,
                          env=environment(env), cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL)


def start_server(*argv: str, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> tuple[subprocess.Popen[str], str]:
    """``chatbench server ARGV`` running, and the URL it printed first (stop it with SIGINT)."""
    proc = subprocess.Popen([sys.executable, "-m", "chatbench", "server", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environment(env), cwd=cwd,
                            stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def in_process(capsys: pytest.CaptureFixture[str], *argv: str) -> subprocess.CompletedProcess[str]:
    """``chatbench ARGV`` run by ``chatbench.cli.main`` here, as a finished process: its exit code and
    what it printed (set its environment and working directory with ``monkeypatch`` first)."""
    from chatbench.cli import main

    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(["chatbench", *argv], code, captured.out, captured.err)
