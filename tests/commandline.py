"""The chatbench command as the tests run it: a child process, as a user or CI runs it.

``chatbench(*argv)`` runs one command to its end; ``start_server(*argv)`` starts ``chatbench server``
and returns once it printed its URL (the first line on stdout). ``in_process(capsys, *argv)`` runs a
command through ``chatbench.cli.main`` in the test's own process, for a test that needs no process of
its own (no signal, no exit of a process, no environment the test cannot set with monkeypatch): the
same exit code and streams without the second or so of imports each child pays.

``chatbench(*argv)`` forks its process from a warm interpreter (``warm_cli.py``, one per test process)
that has imported every command already: the command still runs in a process of its own, with its own
streams, environment, working directory, signals and exit code, but without the second of imports, which
was the largest single share of the suite's CPU time. Two things a fork does not repeat are an
interpreter's start-up (what an import reads from the environment) and its hash seed, so:

- a command whose environment changes what an import reads (``FRESH_PREFIXES``) starts a fresh
  interpreter, as does every command when ``CHATBENCH_TESTS_FRESH_CLI=1`` is set;
- ``python -m chatbench`` itself, from a fresh interpreter, is run by ``start_server``, the start-up,
  packaging and application-project tests.

``start(*argv, output=FILE)`` starts a command and hands it back as a ``subprocess.Popen`` is used (pid,
``poll``, ``wait``, ``send_signal``, ``kill``), for the crash battery that signals its runs midway. A
forked command leads a process group of its own: what it forks without an exec (multiprocessing's
workers) shows the warm interpreter's environment in ``/proc``, and is known as the command's by its group.
So a terminal's Ctrl-C, sent to the foreground group, no longer reaches it: ``chatbench()`` interrupted
passes it on (SIGINT to the command's group, ``INTERRUPT_GRACE`` seconds to clean up, then SIGKILL).
"""

from __future__ import annotations

import atexit
import contextlib
import locale
import os
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import pytest
from warm_cli import Request

FRESH_PREFIXES = ("PYTHON", "LC_", "LANG", "DOCKER_", "TESTCONTAINERS_", "TC_", "RYUK_")
"""Environment read while importing: by the interpreter (``PYTHON*``, the locale) and by testcontainers,
whose configuration is read from the environment when it is imported. A command given a different value of
one of these runs in a fresh interpreter. PYTHONPATH is the exception the warm child applies itself."""

FRESH_SWITCH = "CHATBENCH_TESTS_FRESH_CLI"
"""Set to 1 to run every command in a fresh interpreter, as before the warm one (to rule it out)."""

WARM_START_TIMEOUT = 120.0
FORK_TIMEOUT = 60.0
INTERRUPT_GRACE = 30.0
"""Seconds a forked command interrupted with its test (Ctrl-C) gets to clean up before it is killed."""


def command_line(*argv: str) -> list[str]:
    """``python -m chatbench ARGV`` as a process's argument list (what a fork reports as its ``args`` too)."""
    return [sys.executable, "-m", "chatbench", *argv]


def environment(env: Mapping[str, str] | None = None, *, inherit: bool = True) -> dict[str, str]:
    """This process's environment with ``env`` on top (a log's width fixed at 80 columns); without ``inherit``,
    ``env`` alone (a command given a bare environment: a variable unset, or a user's minimal ``PATH``)."""
    return {**(os.environ if inherit else {}), "COLUMNS": "80", **(env or {})}


def chatbench(*argv: str, env: Mapping[str, str] | None = None, inherit: bool = True, cwd: Path | None = None,
              timeout: float = 300, merged: bool = False) -> subprocess.CompletedProcess[str]:
    """``python -m chatbench ARGV`` to its end, stdout and stderr captured apart, or with ``merged`` as
    one stream in ``stdout`` (what a CI log shows); forked from the warm interpreter where it may be. ``env``
    and ``inherit``: ``environment``'s."""
    full = environment(env, inherit=inherit)
    warm = _warm_interpreter(full)
    if warm is not None:
        return warm.run(list(argv), full, Path.cwd() if cwd is None else cwd, timeout, merged)
    return subprocess.run(command_line(*argv), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT if merged else subprocess.PIPE, text=True,
                          env=full, cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL)


@dataclass(frozen=True)
class WarmInterpreter:
    """The running ``warm_cli.py`` of this test process, the environment it started with and its socket."""

    process: subprocess.Popen[bytes]
    socket_path: str
    started_env: Mapping[str, str]

    def serves(self, env: Mapping[str, str]) -> bool:
        """Whether a command with ``env`` may be forked here: alive, and nothing an import reads changed."""
        if self.process.poll() is not None:
            return False
        keys = {key for key in (*env, *self.started_env) if key.startswith(FRESH_PREFIXES) and key != "PYTHONPATH"}
        return all(env.get(key) == self.started_env.get(key) for key in keys)

    def start(self, argv: list[str], env: Mapping[str, str], cwd: Path, stdout: int, stderr: int) -> WarmProcess:
        """The command forked, writing to the descriptors ``stdout`` and ``stderr`` (the caller's to close)."""
        if not cwd.is_dir():  # where subprocess fails too, before any process starts
            raise FileNotFoundError(f"no such directory: {cwd}")
        stdin = os.open(os.devnull, os.O_RDONLY)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.socket_path)
            socket.send_fds(conn, [Request(tuple(argv), dict(env), str(cwd)).encode()], [stdin, stdout, stderr])
            return WarmProcess(command_line(*argv), conn)
        except BaseException:
            conn.close()
            raise
        finally:
            os.close(stdin)

    def run(self, argv: list[str], env: Mapping[str, str], cwd: Path, timeout: float,
            merged: bool) -> subprocess.CompletedProcess[str]:
        """The command forked, its streams read to their end, its exit code as ``subprocess`` reports it."""
        deadline = time.monotonic() + timeout
        out_read, out_write = os.pipe()
        err_read, err_write = (out_read, out_write) if merged else os.pipe()
        try:
            try:
                process = self.start(argv, env, cwd, out_write, err_write)
            finally:
                for fd in {out_write, err_write}:
                    os.close(fd)
            try:
                streams = _read_to_end([out_read] if merged else [out_read, err_read], deadline)
                code = process.wait(max(deadline - time.monotonic(), 0.001))
            except (TimeoutError, subprocess.TimeoutExpired) as expired:
                process.kill()
                raise subprocess.TimeoutExpired(process.args, timeout) from expired
            except BaseException:  # Ctrl-C: what the terminal's would have done to a fresh child in its group
                process.interrupt()
                raise
        finally:
            for fd in {out_read, err_read}:
                os.close(fd)
        out = _text(streams[out_read])
        err = None if merged else _text(streams[err_read])
        return subprocess.CompletedProcess(process.args, code, out, err)


class WarmProcess:
    """A command forked by the warm interpreter, used as a ``subprocess.Popen`` is: its pid to signal, and its exit
    code (``subprocess``'s form, sent by its watcher over the socket once it ended) to poll or wait for."""

    def __init__(self, args: list[str], conn: socket.socket) -> None:
        self.args = args
        self.returncode: int | None = None
        self._conn = conn
        self._buffer = bytearray()
        pid = self._line(FORK_TIMEOUT)  # the fork itself, not the command's time
        if pid is None:
            raise TimeoutError(f"the warm interpreter did not fork the command in {FORK_TIMEOUT:g} s")
        self.pid = int(pid)

    def _line(self, timeout: float | None) -> bytes | None:
        """The watcher's next line, waiting at most ``timeout`` seconds (None: as long as it takes); None when
        none came in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if not select.select([self._conn], [], [], left)[0]:
                return None
            data = self._conn.recv(64)
            if not data:
                raise ConnectionError("the warm interpreter's watcher ended without sending an exit code")
            self._buffer += data
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line

    def _ended(self, line: bytes) -> int:
        self.returncode = int(line)
        self._conn.close()
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None and (line := self._line(0.0)) is not None:
            self._ended(line)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is not None:
            return self.returncode
        line = self._line(timeout)
        if line is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return self._ended(line)

    def send_signal(self, sig: int) -> None:
        with contextlib.suppress(ConnectionError):  # its watcher is gone: the pid is all there is to signal
            if self.poll() is not None:
                return
        with contextlib.suppress(ProcessLookupError):  # it ended after the poll
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def interrupt(self, grace: float = INTERRUPT_GRACE) -> None:
        """What a terminal's Ctrl-C does to a fresh command in its foreground process group, which a forked one
        (a group of its own) does not get: SIGINT to the command's group, time to clean up, then SIGKILL."""
        if self.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGINT)
        try:
            self.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()
        except ConnectionError:  # its watcher is gone (the warm interpreter killed): watch the pid itself
            deadline = time.monotonic() + grace
            while Path(f"/proc/{self.pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            self.kill()
        except BaseException:  # a second Ctrl-C: no more waiting
            self.kill()
            raise


class CommandProcess(Protocol):
    """A command started and not waited for, warm or fresh: what the crash battery uses of a ``Popen``."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


def start(*argv: str, output: BinaryIO, env: Mapping[str, str] | None = None, inherit: bool = True,
          cwd: Path | None = None) -> CommandProcess:
    """``python -m chatbench ARGV`` started and not waited for, its stdout and stderr both into the open file
    ``output`` (a log); forked from the warm interpreter where it may be. ``env`` and ``inherit``:
    ``environment``'s."""
    full = environment(env, inherit=inherit)
    warm = _warm_interpreter(full)
    if warm is not None:
        return warm.start(list(argv), full, Path.cwd() if cwd is None else cwd, output.fileno(), output.fileno())
    return subprocess.Popen(command_line(*argv), stdout=output, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=full, cwd=cwd)


_warm: WarmInterpreter | None = None
_warm_lock = threading.Lock()


def _warm_interpreter(env: Mapping[str, str]) -> WarmInterpreter | None:
    """This test process's warm interpreter, started on first use; None where a fresh one must run."""
    global _warm
    if os.environ.get(FRESH_SWITCH) == "1":
        return None
    with _warm_lock:
        if _warm is None or _warm.process.poll() is not None:
            _warm = _start_warm_interpreter()
        return _warm if _warm.serves(env) else None


def _start_warm_interpreter() -> WarmInterpreter:
    """``warm_cli.py`` started and ready (its imports done), stopped when this test process ends."""
    folder = tempfile.mkdtemp(prefix="chatbench-warm-")
    path = os.path.join(folder, "cli.sock")
    log = os.path.join(folder, "warm_cli.log")  # its own errors: a file, which never fills up as a pipe would
    started_env = dict(os.environ)
    with open(log, "wb") as errors:
        process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("warm_cli.py")), path],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
                                   env=started_env, cwd=folder)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], WARM_START_TIMEOUT)
    if not ready or process.stdout.readline() != b"ready\n":
        process.kill()
        raise RuntimeError(f"the warm interpreter did not start: {Path(log).read_text(errors='replace')}")

    def stop() -> None:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)

    atexit.register(stop)
    return WarmInterpreter(process, path, started_env)


def _read_to_end(fds: list[int], deadline: float) -> dict[int, bytes]:
    """Everything written to ``fds`` until each is closed, reading them at once so a full pipe never blocks
    the writer; ``TimeoutError`` at ``deadline``."""
    chunks: dict[int, bytearray] = {fd: bytearray() for fd in fds}
    with selectors.DefaultSelector() as selector:
        for fd in fds:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            for key, _ in selector.select(left):
                data = os.read(key.fd, 1 << 16)
                if data:
                    chunks[key.fd] += data
                else:
                    selector.unregister(key.fd)
    return {fd: bytes(data) for fd, data in chunks.items()}


def _text(data: bytes) -> str:
    """Bytes as ``subprocess.run(text=True)`` decodes them: the locale's encoding, universal newlines."""
    return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


def start_server(*argv: str, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> tuple[subprocess.Popen[str], str]:
    """``chatbench server ARGV`` running, and the URL it printed first (stop it with SIGINT)."""
    proc = subprocess.Popen(command_line("server", *argv), stdout=subprocess.PIPE,
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
