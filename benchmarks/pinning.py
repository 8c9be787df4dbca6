"""CPU placement of a benchmark's client process and its server backend, and a record of it.

Why: on this 2-core machine a single-client round trip costs ~11 µs when client and backend share
a core and ~70 µs across cores, a bimodal noise larger than most of the queries being measured.
So the client and its backend are pinned to the same core where the OS allows it, and whether it
worked is recorded in every result's environment fingerprint, since an unpinned run is not
comparable with a pinned one.

Pinning the backend needs its OS pid (``pg_backend_pid()``) to be a pid in *our* pid namespace and
the right to set its affinity (root, or the same user). That holds for the local backend. A
container's backend pid is a pid in the container's namespace and a DSN server is elsewhere: the
client is still pinned and the record says why the server was not.
"""

from __future__ import annotations

import os
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from chatbench import convert
from chatbench.settings import PinMode


@dataclass(frozen=True)
class PinningResult:
    """What was asked and what the OS actually granted (read back, not assumed)."""

    mode: PinMode
    cpu: int | None  # the core both were asked onto
    client_pid: int
    client_pinned: bool
    client_cpus: tuple[int, ...]  # affinity read back after the attempt
    server_pid: int | None
    server_pinned: bool
    server_cpus: tuple[int, ...]  # () when it could not be read
    reason: str  # "" when both were pinned, else why not

    @property
    def same_core(self) -> bool:
        return self.client_pinned and self.server_pinned and self.client_cpus == self.server_cpus

    def describe(self) -> str:
        if self.mode == "off":
            return "pinning off"
        if self.same_core:
            return f"client pid {self.client_pid} and backend pid {self.server_pid} pinned to cpu {self.cpu}"
        return f"client pinned={self.client_pinned}, backend pinned={self.server_pinned}: {self.reason}"


convert.register(PinningResult, derived=("same_core",))  # a report reads it without recomputing


def default_cpu() -> int:
    """The highest core this process may use: away from cpu 0, where most interrupts land."""
    return max(os.sched_getaffinity(0))


def _affinity(pid: int) -> tuple[int, ...]:
    try:
        return tuple(sorted(os.sched_getaffinity(pid)))
    except OSError:
        return ()


def _set_affinity(pid: int, cpus: AbstractSet[int]) -> str:
    """Set and read back; returns "" on success, else the reason."""
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError as exc:
        return f"sched_setaffinity({pid}) failed: {exc.strerror}"
    granted = _affinity(pid)
    return "" if set(granted) == set(cpus) else f"affinity of {pid} reads back {list(granted)}"


def _is_local_postgres(pid: int) -> bool:
    """True when ``pid`` in our namespace is a postgres process (not a container-namespace number)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    return b"postgres" in cmdline or os.path.basename(exe).startswith("postgres")


def pin(conn: psycopg.Connection[Any], *, backend: str, mode: PinMode = "same-core",
        cpu: int | None = None) -> PinningResult:
    """Pin this process and ``conn``'s server backend to one core (``mode="same-core"``) and record it.

    ``backend`` is ``Server.backend``: only a ``local`` server's backend pid is ours to pin.
    Never raises for an OS refusal: the refusal is the recorded ``reason``.
    """
    client_pid = os.getpid()
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    server_pid = int(row[0]) if row else None
    if mode == "off":
        return PinningResult("off", None, client_pid, False, _affinity(0), server_pid, False, (),
                             "pinning disabled")
    target = default_cpu() if cpu is None else cpu
    reasons: list[str] = []
    client_error = _set_affinity(0, {target})
    if client_error:
        reasons.append(f"client: {client_error}")
    server_pinned = False
    server_cpus: tuple[int, ...] = ()
    if backend != "local":
        reasons.append(f"server: backend pid {server_pid} belongs to a {backend} server, not this host's "
                       "pid namespace")
    elif server_pid is None or not _is_local_postgres(server_pid):
        reasons.append(f"server: pid {server_pid} is not a postgres process visible here")
    else:
        server_error = _set_affinity(server_pid, {target})
        server_pinned = not server_error
        server_cpus = _affinity(server_pid)
        if server_error:
            reasons.append(f"server: {server_error}")
    return PinningResult("same-core", target, client_pid, not client_error, _affinity(0), server_pid,
                         server_pinned, server_cpus, "; ".join(reasons))


def restore_client(cpus: AbstractSet[int]) -> None:
    """Give this process its earlier affinity back (``os.sched_getaffinity(0)`` saved before ``pin``)."""
    os.sched_setaffinity(0, cpus)
