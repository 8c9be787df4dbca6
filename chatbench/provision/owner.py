"""Owner records: who is making a scratch file or directory, and whether that run is still alive.

A run that makes something another run or ``chatbench clean`` may find half-made (a snapshot being
saved, a spilled message skeleton) first writes an owner record beside it, ``<target>.owner``,
atomically (a temp name, then rename) while holding an exclusive ``flock`` on it, and keeps the lock
for as long as it works on the target; only then does it create the target. The lock is the
liveness test: the kernel drops it when the owner exits, however it exits (SIGKILL included), and a
recycled pid cannot fake it. ``remove_dead`` removes targets whose record nobody holds; a target with
no record at all (left by an older version) only once it is older than a grace period.

The owner keeps the lock's descriptor open; a process forked meanwhile inherits it and keeps the run
"alive" until it exits too, which is what a worker still writing into the target should do.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

OWNER_SUFFIX = ".owner"
_TEMP_MARK = ".owner-tmp-"
ORPHAN_GRACE_SECONDS = 3600.0  # a target without any record is removed only when older than this


def record_of(target: Path) -> Path:
    return target.with_name(target.name + OWNER_SUFFIX)


@dataclass
class Claim:
    """A held owner record; ``release()`` drops it (after the owner removed or published its target)."""

    target: Path
    record: Path
    fd: int

    def release(self) -> None:
        if self.fd < 0:
            return
        with contextlib.suppress(FileNotFoundError):
            self.record.unlink()  # unlinked while still locked: nobody can take a released record for dead
        os.close(self.fd)
        self.fd = -1


def claim(target: Path) -> Claim:
    """Write ``target``'s owner record atomically and lock it; create ``target`` only after this."""
    record = record_of(target)
    temp = target.with_name(f".{target.name}{_TEMP_MARK}{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        body = {"pid": os.getpid(), "host": socket.gethostname(), "created": time.time(), "target": target.name}
        os.write(fd, json.dumps(body).encode())
        os.rename(temp, record)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    return Claim(target, record, fd)


@contextlib.contextmanager
def owned(target: Path) -> Iterator[Claim]:
    """``claim(target)`` for the block; the caller removes or publishes ``target`` inside it."""
    held = claim(target)
    try:
        yield held
    finally:
        held.release()


@contextlib.contextmanager
def _if_dead(path: Path) -> Iterator[bool]:
    """Yields True while holding ``path``'s lock when its owner is gone; False if alive or missing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                yield False
                return
            raise
        yield path.exists()  # a record unlinked meanwhile was released by its (live) owner
    finally:
        os.close(fd)


def owner_alive(target: Path) -> bool:
    """Whether a live run holds ``target``'s owner record (False when there is no record)."""
    with _if_dead(record_of(target)) as dead:
        return record_of(target).exists() and not dead


def remove_dead(directory: Path, pattern: str = "*", *, grace_seconds: float = ORPHAN_GRACE_SECONDS) -> list[Path]:
    """Remove targets in ``directory`` (matching ``pattern``) whose owner died; the removed paths.

    A target with a record is removed only when the record's lock is free; one without a record
    only when ``partial`` is in its name and it is older than ``grace_seconds``. Live runs' targets
    and every published (record-less, complete) entry are left alone.
    """
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for record in sorted(directory.glob(pattern + OWNER_SUFFIX)):
        target = record.with_name(record.name[: -len(OWNER_SUFFIX)])
        with _if_dead(record) as dead:
            if dead:
                _remove(target)
                with contextlib.suppress(FileNotFoundError):
                    record.unlink()
                removed.append(target)
    for temp in sorted(directory.glob(f".*{_TEMP_MARK}*")):
        with _if_dead(temp) as dead:
            if dead:
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()
    now = time.time()
    for target in sorted(directory.glob(pattern)):
        if target.name.endswith(OWNER_SUFFIX) or _TEMP_MARK in target.name or "partial" not in target.name:
            continue
        if record_of(target).exists():
            continue
        try:
            old = now - target.stat().st_mtime > grace_seconds
        except FileNotFoundError:
            continue
        if old:
            _remove(target)
            removed.append(target)
    return removed


def _remove(target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
