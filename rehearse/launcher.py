"""The parent's side of the app clients: one launcher per process, and a handle per client it forks.

``ClientLauncher.shared()`` starts ``python -m chatbench.rehearse.appclient`` (the launcher, see there) the
first time a process needs a client, and keeps it for the process's life: a rehearsal starts its live load
at two sizes, a sign-off or a test session many times, and each client then costs a fork instead of a fresh
interpreter importing psycopg (0.15 s of CPU each). It is stopped at exit; a process forked from this one
(the tests' warm interpreter) starts its own, so no two processes share one control socket.

A ``ClientProcess`` is what ``AppLoad`` holds: the client's channel (task, ready, stop, requests) and a
pidfd, with which the parent waits for it and kills it, though it is the launcher's child and not its own
(``os.pidfd_open``: Linux 5.3 or later, as chatbench's ``/proc`` readings already need Linux).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import ClassVar

from chatbench.errors import ChatbenchError
from chatbench.rehearse.appclient import LAUNCH, READY, STOP, ClientTask, Events, read_message, send_message

LAUNCHER_STOP_S = 5.0  # how long the launcher has to leave at exit before it is killed
KILL_WAIT_S = 5.0  # how long a killed client has to be gone
STDERR = 2  # the descriptor, as a subprocess inherits it (pytest's sys.stderr may have none)


@dataclass(frozen=True)
class ClientProcess:
    """One app client, forked by the launcher: its channel and a pidfd of it."""

    channel: socket.socket
    pidfd: int

    def send(self, task: ClientTask) -> None:
        """Hand the client its task; a client already gone is reported by ``ready``, not here."""
        with contextlib.suppress(OSError):
            send_message(self.channel, task)

    def ready(self, deadline: float) -> bool | None:
        """True once the client is ready, False if it ended before, None while it is still starting (waits
        until ``deadline`` at most)."""
        if not select.select([self.channel], [], [], max(0.0, deadline - time.monotonic()))[0]:
            return None
        try:
            return self.channel.recv(1) == READY
        except ConnectionError:  # it ended with part of its task unread
            return False

    def stop(self) -> None:
        """Ask the client to stop (it stops after the request it is in) and hand back its requests."""
        with contextlib.suppress(OSError):
            self.channel.sendall(STOP)

    def requests(self, deadline: float) -> tuple[list[str], Events, list[str]]:
        """(operation names, events, error samples) the client hands back after ``stop``; TimeoutError,
        EOFError or a pickle error when it does not."""
        result: tuple[list[str], Events, list[str]] = read_message(self.channel, deadline)
        return result

    def exited(self, timeout: float = 0.0) -> bool:
        """Whether the client has exited (waits up to ``timeout`` seconds)."""
        return bool(select.select([self.pidfd], [], [], timeout)[0])

    def close(self) -> None:
        """Kill the client unless it has exited, wait until it has, and let go of the channel and pidfd."""
        try:
            if not self.exited():
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
                self.exited(KILL_WAIT_S)
        finally:
            self.channel.close()
            os.close(self.pidfd)


class ClientLauncher:
    """The launcher process of this process, and the control socket it forks clients on."""

    _shared: ClassVar[ClientLauncher | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self.owner = os.getpid()
        self._control, theirs = socket.socketpair()
        try:
            # -P: not the working directory first on sys.path, where a folder named chatbench (chatbench's own
            # checkout beside an installed chatbench) would be imported instead of the chatbench running here
            self._process = subprocess.Popen([sys.executable, "-P", "-m", "chatbench.rehearse.appclient"],
                                             stdin=theirs.fileno(), stdout=subprocess.DEVNULL)
        except BaseException:
            self._control.close()
            raise
        finally:
            theirs.close()

    @property
    def pid(self) -> int:
        """The launcher process's pid: the clients are its children."""
        return self._process.pid

    @classmethod
    def shared(cls) -> ClientLauncher:
        """This process's launcher, started when first asked for (again if it has died)."""
        with cls._lock:
            current = cls._shared
            if current is None or current.owner != os.getpid() or current._process.poll() is not None:
                if current is not None and current.owner == os.getpid():
                    current.close()
                current = cls._shared = ClientLauncher()
                atexit.register(current.close)
            return current

    def launch(self) -> ClientProcess:
        """Fork one client; its handle (the task is the caller's to send)."""
        ours, theirs = socket.socketpair()
        try:
            with self._lock:
                socket.send_fds(self._control, [LAUNCH], [theirs.fileno(), STDERR])
                message, fds, _flags, _address = socket.recv_fds(self._control, 1, 1)
        except OSError as exc:
            ours.close()
            raise ChatbenchError(f"app load: the client launcher is gone ({exc})") from None
        finally:
            theirs.close()
        if message != LAUNCH or len(fds) != 1:
            ours.close()
            raise ChatbenchError(f"app load: the client launcher exited (exit code {self._process.poll()}); "
                                 "see its error above")
        return ClientProcess(ours, fds[0])

    def close(self) -> None:
        """Let the launcher go (it leaves when its control socket closes) and wait for it; a no-op in a process
        forked from the owner, whose launcher it is not."""
        if os.getpid() != self.owner:
            return
        self._control.close()
        try:
            self._process.wait(timeout=LAUNCHER_STOP_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _forget_in_child() -> None:
    """After a fork, the child's launcher is not the parent's: drop the inherited control socket so that the
    parent's launcher sees it close when the parent closes it, and let the child start its own."""
    launcher = ClientLauncher._shared
    if launcher is not None and launcher.owner != os.getpid():
        launcher._control.close()
        ClientLauncher._shared = None
        ClientLauncher._lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
