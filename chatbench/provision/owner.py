"""Owner records: who made a resource, and whether that run is still alive.

Every run (one ``provision()``) holds a *lease*: a small JSON file ``run-<run_id>.owner`` in the run
directory, created atomically (written under a temporary name, locked, renamed into place) before
any resource it describes exists, and kept locked with ``fcntl.flock`` for the run's life. The lock
is the liveness test: the kernel drops it when the process dies, whatever killed it (SIGKILL
included), so ``chatbench clean`` never mistakes a live run for a dead one and never waits for a
pid to be reused. Every resource carries the run's ``OwnerTag`` (a cluster by its name, a container
in its labels, a database in its comment), which names the lease by its absolute path.

Forked children (the COPY workers) close their copy of the lease, so a worker that outlives a killed
parent does not keep the run looking alive.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from chatbench.provision.paths import run_root
from chatbench.provision.process import pid_alive

LEASE_PREFIX = "run-"
LEASE_SUFFIX = ".owner"
TAG_MARKER = "chatbench-run"
STAGING_PREFIX = ".chatbench-staging-"
"""Hidden folders a lease owns (its record names them): a report set being staged beside an --out's
files (``reports.output``), a seed's spilled message skeleton (``loadgen.plan``)."""
GRACE_SECONDS = 600.0
"""A run-directory entry with no owner record is left alone this long (an older chatbench, a copy)."""

_held: dict[str, int] = {}  # lease path -> locked file descriptor, for the life of the run
_tags: dict[str, OwnerTag] = {}  # run id -> the tag of this process's lease


def _close_in_child() -> None:
    for fd in _held.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()
    _tags.clear()


os.register_at_fork(after_in_child=_close_in_child)


@dataclass(frozen=True)
class OwnerTag:
    """What every resource of a run records about its owner."""

    run_id: str
    host: str
    pid: int
    lease: str  # absolute path of the run's lease file
    created: float

    def to_json(self) -> dict[str, Any]:
        return {TAG_MARKER: self.run_id, **{k: v for k, v in asdict(self).items() if k != "run_id"}}

    @classmethod
    def from_json(cls, data: object) -> OwnerTag | None:
        """The tag in a record or comment, or None when it is not one of chatbench's."""
        if not isinstance(data, dict) or not isinstance(data.get(TAG_MARKER), str):
            return None
        try:
            return cls(str(data[TAG_MARKER]), str(data.get("host", "")), int(data.get("pid", 0)),
                       str(data.get("lease", "")), float(data.get("created", 0.0)))
        except (TypeError, ValueError):
            return None

    @classmethod
    def parse(cls, text: str | None) -> OwnerTag | None:
        try:
            return cls.from_json(json.loads(text or ""))
        except json.JSONDecodeError:
            return None


def staging_of(record: Path) -> Path | None:
    """The staging folder an owner record names (a report set being written), if any."""
    try:
        staging = json.loads(record.read_text()).get("staging")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(staging) if isinstance(staging, str) and staging else None


def lease_path(run_id: str, root: Path | None = None) -> Path:
    return (run_root() if root is None else root) / f"{LEASE_PREFIX}{run_id}{LEASE_SUFFIX}"


class Lease:
    """A run's owner record, locked until ``release`` (or the process's death)."""

    def __init__(self, run_id: str, root: Path | None = None, *, staging: Path | None = None) -> None:
        self.path = lease_path(run_id, root).absolute()
        self.tag = OwnerTag(run_id, socket.gethostname(), os.getpid(), str(self.path), time.time())
        self.staging = None if staging is None else staging.absolute()  # a folder outside the run dir it owns

    def acquire(self) -> Lease:
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            record = {**self.tag.to_json(), **({"staging": str(self.staging)} if self.staging else {})}
            os.write(fd, json.dumps(record).encode())
            os.rename(temporary, self.path)  # the lock travels with the file: never visible unlocked
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        _held[str(self.path)] = fd
        _tags[self.tag.run_id] = self.tag
        return self

    def release(self) -> None:
        """Remove the record, then drop the lock (the resources it describes are gone by now)."""
        fd = _held.pop(str(self.path), None)
        _tags.pop(self.tag.run_id, None)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if fd is not None:
            os.close(fd)


LeaseState = Literal["alive", "dead", "missing"]


def lease_state(path: str | Path) -> LeaseState:
    """alive: its run holds the lock; dead: the record is there and nobody holds it; missing: no record."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "alive"  # cannot look: assume alive (leaving something is safe, removing is not)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return "alive"
        raise
    finally:
        os.close(fd)  # closing drops the probe's own lock, if it got one
    return "dead"


def owner_alive(tag: OwnerTag) -> bool:
    """True unless the owner is known to be dead: another host's run is always left alone."""
    if tag.host != socket.gethostname():
        return True
    state = lease_state(tag.lease) if tag.lease else "missing"
    if state == "missing":
        return pid_alive(tag.pid)  # a record from before leases, or one whose lease is already cleaned
    return state == "alive"


def current_tag(run_id: str) -> OwnerTag:
    """The tag a resource of run ``run_id`` records: its lease's, or (no lease here) this process's pid."""
    return _tags.get(run_id) or OwnerTag(run_id, socket.gethostname(), os.getpid(), "", time.time())
