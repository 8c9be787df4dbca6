"""Where throwaway clusters live and where reusable artefacts are cached.

Run directories hold live data dirs; tmpfs (``/dev/shm``) makes initdb copies and snapshots fast and
the throwaway servers do not need durability. The cache directory survives runs (pristine data dirs,
relocated binaries, seeded snapshots). Both must be traversable by the unprivileged OS user that runs
PostgreSQL when chatbench runs as root, so they are created world-executable.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from chatbench.settings import current


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


def run_root() -> Path:
    """Parent of every live cluster directory (setting ``run_dir``, e.g. ``CHATBENCH_RUN_DIR``)."""
    override = current("run_dir")
    if override:
        return _ensure(Path(override))
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return _ensure(shm / "chatbench")
    return _ensure(Path(tempfile.gettempdir()) / "chatbench")


def cache_root() -> Path:
    """Persistent cache of pristine data dirs, relocated binaries and snapshots (setting ``cache_dir``)."""
    override = current("cache_dir")
    if override:
        return _ensure(Path(override))
    return _ensure(Path("/var/tmp") / "chatbench" if os.geteuid() == 0 else Path.home() / ".cache" / "chatbench")


def seed_snapshot_root() -> Path:
    """Seeded snapshots (``<cache_root>/seeds``): ``<key>`` entries and a run's ``<key>.partial-<run_id>-*``."""
    return cache_root() / "seeds"
