"""Drop-behind: a load bigger than memory keeps its page cache bounded instead of filling RAM.

Why, measured on the 2-core VM this project runs on (``python -m chatbench.loadgen.bench --profiles
scale100 --on-disk``): at 10^8 messages the COPY backend, the load's one serial process, spent 45-50 s
of its 120-133 s at half speed, its kernel time 0.65 s per second instead of 0.3, exactly while the
page cache grew from 8 to 22 GB. Memory the hypervisor has not backed yet costs about 2.4 s per GB at
first touch (filling 14 fresh GB with numpy: 1.8-2.6 s per GB; 0.06 s per GB once backed); no page
was reclaimed meanwhile (``pgsteal_*`` unchanged), so nothing else explains it. The heap (35 GB)
cannot stay cached for the index builds anyway; caching its head only made the page cache touch
every free page once. With the segments the load has left behind written back and dropped
(``posix_fadvise(DONTNEED)``, which starts write-back of dirty pages and drops clean ones), the page
cache recycles the same pages: the COPY took 93-106 s (four runs) instead of 118-133 s (five).

Only for a local cluster on disk (tmpfs pages are the data itself) and a heap larger than half the
available memory (a smaller one stays cached for the index builds, and 10^7 messages are not
touched). Dropping a page never changes data: a clean page is re-read from disk when needed. Files
the harness may not open (a server run by another OS user) leave it a no-op.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psycopg

from chatbench.provision.paths import is_tmpfs, memory_available

KEEP_SEGMENTS = 2  # finished segments left cached behind the one being written (its write-back window)
TICK_SECONDS = 0.5


def wanted(data_dir: Path | None, heap_bytes: int, available: int | None = None) -> bool:
    """Whether a load into ``data_dir`` (a local cluster's data directory) should drop behind."""
    if data_dir is None or is_tmpfs(data_dir):
        return False
    return heap_bytes > (memory_available() if available is None else available) // 2


def segment_paths(data_dir: Path, relation_path: str) -> list[Path]:
    """The relation's segment files (``16384``, ``16384.1``, ...), in block order, that exist now."""
    first = data_dir / relation_path
    paths = [first] if first.exists() else []
    number = 1
    while (path := data_dir / f"{relation_path}.{number}").exists():
        paths.append(path)
        number += 1
    return paths


def drop_segment(path: Path) -> bool:
    """Ask the kernel to write back and drop one file's cached pages; False if it cannot."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        return False
    finally:
        os.close(descriptor)
    return True


class DropBehind:
    """A thread that drops the cached pages of the segments a COPY has finished.

    A COPY extends the relation one segment at a time, so every segment but the last (the one being
    written) is finished; ``KEEP_SEGMENTS`` of them stay cached. Every ``TICK_SECONDS`` each finished
    segment is dropped again (dirty pages are only written back on the first call and dropped on a later
    one; a call on a segment with nothing cached costs microseconds).
    """

    def __init__(self, data_dir: Path, relation_path: str) -> None:
        self._data_dir = data_dir
        self._relation_path = relation_path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drop-behind", daemon=True)
        self.dropped = 0  # fadvise calls made, for the seed's record

    def __enter__(self) -> DropBehind:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            segments = segment_paths(self._data_dir, self._relation_path)
            for path in segments[: max(0, len(segments) - 1 - KEEP_SEGMENTS)]:
                if not drop_segment(path):
                    return  # not ours to open (another OS user's server): nothing to do
                self.dropped += 1


def relation_path(conn: psycopg.Connection, table: str) -> str:
    """The table's file under the data directory, as this transaction sees it (a TRUNCATE gives a new one)."""
    row = conn.execute("SELECT pg_relation_filepath(%s::regclass)", (table,)).fetchone()
    assert row is not None
    return str(row[0])
