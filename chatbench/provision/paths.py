"""Where throwaway clusters live and where reusable artefacts are cached.

Run directories hold live data dirs; tmpfs (``/dev/shm``) makes initdb copies and snapshots fast and
the throwaway servers do not need durability. The cache directory survives runs (pristine data dirs,
relocated binaries, seeded snapshots). Both must be traversable by the unprivileged OS user that runs
PostgreSQL when chatbench runs as root, so they are created world-executable.

tmpfs is memory: a cluster larger than what tmpfs (and the RAM behind it) can hold lives on disk
instead, in ``<cache>/run`` (``place_run``). The ``*_path()`` functions only compute a location; the
others create it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chatbench.settings import current

TMPFS_HEADROOM = 2 << 30  # RAM left free when a cluster lives on tmpfs (shared buffers, sorts, the harness)

FreeSpace = Callable[[Path], int]


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


def run_root_path() -> Path:
    """Setting ``run_dir`` (e.g. ``CHATBENCH_RUN_DIR``), else ``/dev/shm/chatbench`` (tmpfs), else
    ``<tmp>/chatbench``; not created."""
    override = current("run_dir")
    if override:
        return Path(override)
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm / "chatbench"
    return Path(tempfile.gettempdir()) / "chatbench"


def run_root() -> Path:
    """Parent of every live cluster directory (setting ``run_dir``, e.g. ``CHATBENCH_RUN_DIR``)."""
    return _ensure(run_root_path())


def cache_root_path() -> Path:
    """Setting ``cache_dir`` (e.g. ``CHATBENCH_CACHE_DIR``), else ``/var/tmp/chatbench`` as root or
    ``~/.cache/chatbench``; not created."""
    override = current("cache_dir")
    if override:
        return Path(override)
    return Path("/var/tmp") / "chatbench" if os.geteuid() == 0 else Path.home() / ".cache" / "chatbench"


def cache_root() -> Path:
    """Persistent cache of pristine data dirs, relocated binaries and snapshots (setting ``cache_dir``)."""
    return _ensure(cache_root_path())


def disk_run_root_path() -> Path:
    """Where clusters too large for tmpfs live: on disk, beside the cache; not created."""
    return cache_root_path() / "run"


def ensure(path: Path) -> Path:
    """Create a run directory chosen by ``place_run`` (world-executable, like every chatbench root)."""
    return _ensure(path)


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def is_tmpfs(path: Path) -> bool:
    """Whether ``path`` (or its nearest existing parent) is on a memory-backed file system."""
    probe = str(_existing(path).resolve())
    best, kind = "", ""
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                covers = len(fields) >= 3 and (probe == fields[1] or probe.startswith(fields[1].rstrip("/") + "/"))
                if covers and len(fields[1]) >= len(best):
                    best, kind = fields[1], fields[2]
    except OSError:
        return False
    return kind in ("tmpfs", "ramfs")


def memory_available() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def free_bytes(path: Path) -> int:
    """Bytes a new file under ``path`` may take; on tmpfs also bounded by the memory that backs it."""
    stat = os.statvfs(_existing(path))
    free = stat.f_bavail * stat.f_frsize
    if is_tmpfs(path):
        free = min(free, max(0, memory_available() - TMPFS_HEADROOM))
    return free


def same_file_system(a: Path, b: Path) -> bool:
    return _existing(a).stat().st_dev == _existing(b).stat().st_dev


@dataclass(frozen=True)
class RunPlacement:
    """Where a cluster of ``needed`` bytes goes; ``tried`` lists (root, free bytes) of every root considered."""

    root: Path
    needed: int
    fits: bool
    tried: tuple[tuple[Path, int], ...]

    @property
    def moved_to_disk(self) -> bool:
        """The default (tmpfs) root was too small and the disk root was chosen."""
        return self.fits and len(self.tried) > 1


def place_run(needed: int, free: FreeSpace = free_bytes) -> RunPlacement:
    """The run root for a cluster of ``needed`` bytes (``fits`` is False when no root can hold it).

    The ``run_dir`` setting is the user's choice: it is the only candidate. Otherwise the default
    (tmpfs) root, then the disk root beside the cache.
    """
    tried: list[tuple[Path, int]] = []
    candidates = [run_root_path()]
    if not current("run_dir"):
        candidates.append(disk_run_root_path())
    for root in candidates:
        tried.append((root, free(root)))
        if tried[-1][1] >= needed:
            return RunPlacement(root, needed, True, tuple(tried))
    return RunPlacement(candidates[-1], needed, False, tuple(tried))


def seed_snapshot_root() -> Path:
    """Seeded snapshots (``<cache_root>/seeds``): ``<key>`` entries and a run's ``<key>.partial-<run_id>-*``."""
    return cache_root() / "seeds"
