"""Drop-behind: a load bigger than memory keeps its page cache bounded instead of filling RAM.

Why, measured on the 2-core VM this project runs on (``python -m chatbench.loadgen.bench --profiles
scale100 --on-disk``): at 10^8 messages the COPY backend, the load's one serial process, spent 45-50 s
of its 120-133 s at half speed, its kernel time 0.65 s per second instead of 0.3, exactly while the
page cache grew from 8 to 22 GB. Memory the hypervisor has not backed yet costs about 2.4 s per GB at
first touch (filling 14 fresh GB with numpy: 1.8-2.6 s per GB; 0.06 s per GB once backed); no page
was reclaimed meanwhile (``pgsteal_*`` unchanged), so nothing else explains it. The heap (35 GB)
cannot stay cached for the index builds anyway; keeping its head cached from the start only made
the page cache touch every free page once, on the COPY's own time. With the segments the load has
left behind written back and dropped (``posix_fadvise(DONTNEED)``, which starts write-back of dirty
pages and drops clean ones), the page cache recycles the same pages: the COPY took 93-106 s (four
runs) instead of 118-133 s (five).

The index builds then read the whole heap back, head first, and at 10^8 that read is what grows
faster than linear: the page cache fills again (first touch once more; this VM hands memory that
stayed free for a few seconds back to the host: 4 GB touched again took 0.3 s at once, 6.3 s after
10 s idle) and the three scans read the head from disk. So once the COPY is past half the heap it
expects, the same thread reads the head segments back (``warm``), on the core the COPY leaves idle,
as many as fit in half the available memory and at most a third of the heap; they are not dropped
again. With the first 12 segments cached, the builds alone took 80.5 s instead of 87.6 s (isolated:
caches dropped, index builds only); in six seeds the index phase took 82-94 s against 95-101 s in two
without it, the COPY 103-118 s against 104-108 s.

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
SEGMENT_BYTES = 1 << 30  # PostgreSQL's RELSEG_SIZE in the default build
WARM_FROM = 0.5  # warm the head once this share of the expected segments exists
READ_CHUNK = 1 << 20


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


def warm_segment(path: Path, stop: threading.Event) -> bool:
    """Read one segment file through the page cache (its pages stay cached); False if it cannot."""
    buffer = bytearray(READ_CHUNK)
    try:
        with open(path, "rb", buffering=0) as handle:
            while not stop.is_set() and handle.readinto(buffer):
                pass
    except OSError:
        return False
    return True


def warm_budget(heap_bytes: int, available: int | None = None) -> tuple[int, int]:
    """(segments the heap is expected to have, head segments to warm): half the available memory,
    at most a third of the heap (the builds' later reads recycle those pages, the rest is theirs)."""
    expected = -(-heap_bytes // SEGMENT_BYTES)
    room = (memory_available() if available is None else available) // 2 // SEGMENT_BYTES
    return expected, max(0, min(expected // 3, room))


class DropBehind:
    """A thread that drops the cached pages of the segments a COPY has finished.

    A COPY extends the relation one segment at a time, so every segment but the last (the one being
    written) is finished; ``KEEP_SEGMENTS`` of them stay cached. Every ``TICK_SECONDS`` each finished
    segment is dropped again (dirty pages are only written back on the first call and dropped on a later
    one; a call on a segment with nothing cached costs microseconds). Once ``expected_segments *
    WARM_FROM`` segments exist, one head segment per tick is read back, up to ``warm_segments``; the
    warmed head is left cached. Reading them back at once measured no worse for the COPY than pacing
    them one per segment the COPY starts (COPY 103-118 s in six seeds against 116-119 s in two).
    """

    def __init__(self, data_dir: Path, relation_path: str, expected_segments: int = 0, warm_segments: int = 0) -> None:
        self._data_dir = data_dir
        self._relation_path = relation_path
        self._warm_after = max(1, int(expected_segments * WARM_FROM))
        self._warm_segments = warm_segments
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drop-behind", daemon=True)
        self.dropped = 0  # fadvise calls made, for the seed's record
        self.warmed = 0  # head segments read back

    def __enter__(self) -> DropBehind:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            if not self.tick():
                return

    def tick(self) -> bool:
        """One pass of the thread: drop the finished segments not warmed, read back the next head segment when
        due. False when the thread should stop: a segment it cannot open is not its server's to manage."""
        segments = segment_paths(self._data_dir, self._relation_path)
        finished = segments[: max(0, len(segments) - 1 - KEEP_SEGMENTS)]
        for path in finished[self.warmed :]:
            if not drop_segment(path):
                return False  # not ours to open (another OS user's server): nothing to do
            self.dropped += 1
        if self.warmed < min(self._warm_segments, len(finished)) and len(segments) >= self._warm_after:
            if not warm_segment(finished[self.warmed], self._stop):
                return False
            if not self._stop.is_set():
                self.warmed += 1
        return True


def relation_path(conn: psycopg.Connection, table: str) -> str:
    """The table's file under the data directory, as this transaction sees it (a TRUNCATE gives a new one)."""
    row = conn.execute("SELECT pg_relation_filepath(%s::regclass)", (table,)).fetchone()
    assert row is not None
    return str(row[0])
