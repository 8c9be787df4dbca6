"""What the pytest-xdist workers of one run share, and how they agree on it without talking.

xdist gives each worker its own base temp dir inside the controller's (``.../pytest-N/popen-gw0``),
so the controller's folder is one that every worker of the run sees and no other run does. In its
``chatbench`` sub-folder:

- ``server.json`` (+ ``server.lock``): the run's one server, written by the worker that started it
  while holding the lock; the others read it under the same lock and connect to that server.
- ``server.users``: every worker holds a shared flock(2) on it while it uses the server. The worker
  that started the server takes it exclusively before stopping it, so it waits until the others are
  done; a crashed worker's lock goes with its process.
- ``<run id>/<key>.json`` (+ ``.lock``): one template database per schema source or seed, made by
  the first worker that needs it while holding the lock and read by the others: seeding happens once
  per run, not once per worker. A failure is recorded too, so the other workers report the same one
  line instead of trying again.

Without xdist the same files live in the session's own base temp dir, with one user.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from chatbench.errors import ChatbenchError
from chatbench.files import write_atomically

FOLDER = "chatbench"


def run_folder(basetemp: Path, *, xdist_worker: bool) -> Path:
    """The folder every process of this pytest run shares (the xdist controller's base temp dir)."""
    folder = (basetemp.parent if xdist_worker else basetemp) / FOLDER
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive flock(2) on ``path`` for the length of the block."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically, readable by this user only (a server entry may hold a throwaway server's password)."""
    write_atomically(path, json.dumps(data), mode=0o600)


def made_once(folder: Path, key: str, make: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """``make()``'s entry for ``key``, made by the first process to ask; (entry, made here)."""
    folder.mkdir(mode=0o700, exist_ok=True)
    entry = folder / f"{key}.json"
    with locked(folder / f"{key}.lock"):
        known = read_json(entry)
        if known is not None:
            if "error" in known:
                raise ChatbenchError(str(known["error"]))
            return known, False
        try:
            made = make()
        except ChatbenchError as exc:
            write_json(entry, {"error": str(exc)})
            raise
        write_json(entry, made)
        return made, True


def entries(folder: Path) -> list[dict[str, Any]]:
    """Every entry made in ``folder`` (failures left out)."""
    found = [read_json(path) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return [entry for entry in found if entry is not None and "error" not in entry]


class Lease:
    """This process's use of the shared server: a shared flock on ``server.users`` while it lasts."""

    def __init__(self, folder: Path) -> None:
        self._handle: IO[str] | None = open(folder / "server.users", "a+")  # noqa: SIM115 (held for the session)
        fcntl.flock(self._handle, fcntl.LOCK_SH)

    def wait_for_the_others(self) -> None:
        """Turn this lease exclusive: returns once every other process has given its lease back."""
        assert self._handle is not None
        fcntl.flock(self._handle, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing drops the lock
            self._handle = None
