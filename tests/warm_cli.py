"""A warm interpreter: ``python -m chatbench ARGV`` without paying its imports again for every command.

The suite runs about seven hundred chatbench commands as child processes, and a child spends most of a second
importing (SQLAlchemy, psycopg, numpy, Faker and chatbench's own modules) before it does anything: in a profile
of the whole suite that was the largest single share of its CPU time (docs/design.md, "The test suite").

Run as ``python warm_cli.py SOCKET``, this process imports every command once, prints ``ready`` and serves
requests on the UNIX socket: the command's arguments, environment and working directory, with its stdin,
stdout and stderr passed as file descriptors. For each request it forks a watcher, and the watcher forks the
command: a process of its own (its own pid, streams, environment, working directory, signals and exit code)
that runs ``chatbench/__main__.py`` as ``python -m`` would. The watcher waits for it and sends back its pid,
then its exit code, as ``subprocess`` reports one (negative for a signal). The watcher keeps the server free for
the next request, so commands run at once from several threads are served at once.

What a fork cannot give is a fresh interpreter's start: anything read from the environment while importing.
``tests/commandline.py`` therefore runs a command whose environment changes what an import reads (Python's own
variables, the locale, Docker's and testcontainers' settings) as a fresh process instead.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import pkgutil
import runpy
import shutil
import signal
import socket
import sys
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass

MAX_FDS = 3
CHUNK = 1 << 16


LAZY_IMPORTS = ("scipy.stats",)
"""What chatbench imports inside a function, for its start-up's sake (``benchmarks/stats.py``,
``reports/compare_stats.py``): about 0.4 s more each sign-off, benchmark or comparison would pay itself."""


def preload() -> None:
    """Import the CLI, every command's implementation and what they import lazily: what each command's
    process would import itself."""
    import chatbench.cli
    import chatbench.commands.impl as impl

    assert chatbench.cli.main
    for module in pkgutil.iter_modules(impl.__path__):
        importlib.import_module(f"{impl.__name__}.{module.name}")
    for name in LAZY_IMPORTS:
        importlib.import_module(name)


@dataclass(frozen=True)
class Request:
    """One command to run: what ``tests/commandline.py`` sends, its streams riding beside it as descriptors."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str

    def encode(self) -> bytes:
        """The wire form: the JSON body's length on a line of its own, then the body."""
        body = json.dumps({**asdict(self), "env": dict(self.env)}).encode()
        return f"{len(body)}\n".encode() + body

    @classmethod
    def decode(cls, body: bytes) -> Request:
        fields = json.loads(body)
        return cls(tuple(fields["argv"]), dict(fields["env"]), str(fields["cwd"]))


def receive(conn: socket.socket) -> tuple[Request, list[int]]:
    """One request from ``conn``, and the descriptors that rode on its first message."""
    data, fds, _flags, _addr = socket.recv_fds(conn, CHUNK, MAX_FDS)
    size, _, body = data.partition(b"\n")
    while len(body) < int(size):
        more = conn.recv(CHUNK)
        if not more:
            raise ConnectionError("the request ended early")
        body += more
    return Request.decode(body), fds


def exit_code_of(exit: SystemExit) -> int:
    """What the interpreter makes of ``sys.exit(value)``: None is 0, an int itself, anything else printed and 1."""
    if exit.code is None:
        return 0
    if isinstance(exit.code, int):
        return exit.code
    print(exit.code, file=sys.stderr)
    return 1


def new_testcontainers_session() -> None:
    """A session id of the command's own, as a fresh interpreter draws one: testcontainers draws it once, when
    imported (``testcontainers.core.labels.SESSION_ID``), names its Ryuk reaper after it and reaps by it, so
    commands forked with the server's id would fight over one reaper's name and reap each other's containers."""
    labels = sys.modules.get("testcontainers.core.labels")
    if labels is None:
        return
    shared, own = vars(labels).get("SESSION_ID"), str(uuid.uuid4())
    for name, module in list(sys.modules.items()):
        if name.startswith("testcontainers") and vars(module).get("SESSION_ID") == shared:
            vars(module)["SESSION_ID"] = own  # the modules that imported it by name hold it too


def become_the_command(request: Request, fds: list[int]) -> None:
    """In the forked child: take the request's streams, directory and environment, run the command, exit."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in set(fds):
        if fd > 2:
            os.close(fd)
    os.chdir(request.cwd)
    os.environ.clear()
    os.environ.update(request.env)
    # ``python -m`` puts the working directory first on the path, then PYTHONPATH's entries.
    sys.path[0] = os.getcwd()
    sys.path[1:1] = [entry for entry in request.env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    importlib.invalidate_caches()  # files written since this interpreter started (an application's models)
    new_testcontainers_session()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.argv = ["-m", *request.argv]
    code = 1
    try:
        runpy.run_module("chatbench", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit:
        code = exit_code_of(exit)
    except KeyboardInterrupt:  # as the interpreter does: the traceback, then death by the same signal
        traceback.print_exc()
        _finish()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        traceback.print_exc()
    _finish()
    os._exit(code)


def _finish() -> None:
    """What an interpreter does on its way out that a bare ``os._exit`` would skip."""
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()


def watch(conn: socket.socket, listener: socket.socket, request: Request, fds: list[int]) -> None:
    """In the watcher: fork the command, report its pid and then its exit code, exit."""
    listener.close()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the server ignores it; this process waits for its child
    pid = os.fork()
    if pid == 0:
        try:
            conn.close()
            # A process group of its own: what the command forks without an exec (multiprocessing's workers)
            # shows this server's environment in /proc, and is still known as the command's by its group.
            os.setpgid(0, 0)
            become_the_command(request, fds)
        finally:
            os._exit(1)  # never back into the watcher's code
    # A Ctrl-C of the test run reaches this process (the server's group), not the command (a group of its own):
    # the watcher stays to report how the command ended, once its test has passed the Ctrl-C on to it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in set(fds):
        os.close(fd)
    try:
        conn.sendall(f"{pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
    finally:
        os._exit(0)


def serve(path: str) -> None:
    """Accept requests until the process that started this one is gone, then remove the socket's folder."""
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    listener.settimeout(1.0)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # watchers are reaped by the kernel
    print("ready", flush=True)
    try:
        while os.getppid() == parent:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            try:
                request, fds = receive(conn)
            except (OSError, ValueError) as error:
                print(f"warm_cli: a bad request: {error}", file=sys.stderr, flush=True)
                conn.close()
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            if os.fork() == 0:
                try:
                    watch(conn, listener, request, fds)
                finally:
                    os._exit(1)  # never back into the server's loop
            for fd in set(fds):
                os.close(fd)
            conn.close()
    finally:
        listener.close()
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)  # the folder its starter made for the socket


if __name__ == "__main__":
    preload()
    # Everything imported is frozen (out of the collector's reach) before the first fork, as the gc module's
    # documentation advises for a server that forks: a command's collections then walk only what it made,
    # never writing to (so never copying) the pages it shares with this process.
    gc.collect()
    gc.freeze()
    serve(sys.argv[1])
