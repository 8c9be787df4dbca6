"""The tests' way of running a command (``commandline.chatbench``): forked from the warm interpreter, it must
answer as a fresh ``python -m chatbench`` would: the same streams, exit code, environment and directory."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import commandline
import pytest
from commandline import chatbench, start

BAD_PROFILE = "--profile nope: not a profile"


def test_a_forked_command_keeps_its_streams_and_exit_code_apart() -> None:
    version = chatbench("--version")
    assert (version.returncode, version.stdout, version.stderr) == (0, "chatbench 0.1.0\n", "")
    bad = chatbench("seed", "--profile", "nope")
    assert bad.returncode == 2 and bad.stdout == "" and BAD_PROFILE in bad.stderr
    merged = chatbench("seed", "--profile", "nope", merged=True)
    assert merged.returncode == 2 and BAD_PROFILE in merged.stdout and merged.stderr is None


def test_a_forked_command_reads_its_own_environment_and_directory(tmp_path: Path) -> None:
    from_env = chatbench("seed", env={"CHATBENCH_PROFILE": "nope"})
    assert from_env.returncode == 2 and "CHATBENCH_PROFILE" in from_env.stderr
    (tmp_path / "pyproject.toml").write_text('[tool.chatbench]\nprofile = "nope"\n')
    from_file = chatbench("seed", cwd=tmp_path)
    assert from_file.returncode == 2 and "pyproject.toml" in from_file.stderr
    elsewhere = chatbench("seed", "--profile", "smoke", "--help", cwd=tmp_path.parent)
    assert elsewhere.returncode == 0
    with pytest.raises(FileNotFoundError):  # as subprocess.run: no process starts in a missing directory
        chatbench("--version", cwd=tmp_path / "missing")


def test_what_an_import_reads_starts_a_fresh_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(commandline.FRESH_SWITCH, raising=False)
    assert commandline._warm_interpreter(commandline.environment()) is not None
    for changed in ({"PYTHONWARNINGS": "error"}, {"TESTCONTAINERS_RYUK_DISABLED": "maybe"}, {"LC_ALL": "C"}):
        assert commandline._warm_interpreter(commandline.environment(changed)) is None, changed
    fresh = chatbench("--version", env={"PYTHONWARNINGS": "ignore"})
    assert fresh.returncode == 0 and fresh.stdout == "chatbench 0.1.0\n"
    monkeypatch.setenv(commandline.FRESH_SWITCH, "1")
    assert commandline._warm_interpreter(commandline.environment()) is None


def test_a_forked_command_past_its_timeout_is_killed(run_dir: Path) -> None:
    """A server that accepts and never answers keeps the command connecting; the helper kills it at its
    timeout, as ``subprocess.run`` does, and says so with ``TimeoutExpired``. (Its run directory is the test's
    own: the killed run's owner record stays there, where no other test's ``chatbench clean`` must tidy it.)"""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):
            chatbench("seed", "--backend", "dsn", "--dsn", f"postgresql://nobody@127.0.0.1:{port}/none", timeout=1.5,
                      env={"CHATBENCH_RUN_DIR": str(run_dir)})
        assert time.monotonic() - started < 30


@pytest.mark.parametrize("fresh", [False, True], ids=["warm", "fresh"])
def test_a_started_command_is_signalled_and_waited_for_as_a_popen_is(fresh: bool, tmp_path: Path, run_dir: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``start`` (the crash battery's): the command runs on while the test polls it, Ctrl-C ends it as it ends a
    fresh one (exit 130, no traceback), and a forked one leads a process group of its own."""
    if fresh:
        monkeypatch.setenv(commandline.FRESH_SWITCH, "1")
    else:
        monkeypatch.delenv(commandline.FRESH_SWITCH, raising=False)
    log = tmp_path / "log.txt"
    with contextlib.ExitStack() as stack, socket.create_server(("127.0.0.1", 0)) as silent, open(log, "wb") as handle:
        port = silent.getsockname()[1]
        proc = start("seed", "--backend", "dsn", "--dsn", f"postgresql://nobody@127.0.0.1:{port}/none",
                     output=handle, cwd=tmp_path, env={"CHATBENCH_RUN_DIR": str(run_dir)})
        try:
            assert isinstance(proc, subprocess.Popen) == fresh
            silent.settimeout(60)
            connected, _ = silent.accept()  # it is connecting: past its imports, waiting for an answer that never
            stack.callback(connected.close)  # comes
            assert proc.poll() is None and proc.returncode is None
            assert (os.getpgid(proc.pid) == proc.pid) != fresh  # fresh: the test process's group, as Popen makes
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 130, log.read_text()
            assert proc.poll() == 130 and "Traceback" not in log.read_text()
        finally:
            proc.kill()
            proc.wait(timeout=60)


def test_a_forked_command_is_interrupted_with_the_test_that_runs_it(run_dir: Path) -> None:
    """Ctrl-C reaches a fresh command through the terminal's process group, never a forked one (a group of its
    own): the helper passes it on, waits for the command to end, then raises KeyboardInterrupt itself."""
    held: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        silent.settimeout(60)

        def ctrl_c() -> None:
            connected, _ = silent.accept()  # the command is connecting: past its imports
            held.append(connected)
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=ctrl_c, daemon=True).start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            chatbench("seed", "--backend", "dsn", "--dsn", f"postgresql://nobody@127.0.0.1:{port}/none", timeout=120,
                      env={"CHATBENCH_RUN_DIR": str(run_dir)})
        (connected,) = held
        with connected:
            connected.settimeout(5)
            while connected.recv(1024):  # its startup packet, then the end: the command is gone (else a timeout)
                pass
        assert time.monotonic() - started < commandline.INTERRUPT_GRACE  # by its Ctrl-C, not killed at the grace
