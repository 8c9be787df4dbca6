"""Drop-behind: which segments it drops, when it runs, and that a seed using it loads the same rows."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import psycopg
import pytest
from servers import unavailable

from chatbench import loadgen
from chatbench.loadgen import dropbehind
from chatbench.loadgen.dropbehind import DropBehind, relation_path, segment_paths, wanted, warm_budget, warm_segment
from chatbench.provision import Server
from chatbench.provision.paths import is_tmpfs

GB = 1 << 30


def test_wanted_only_for_a_cluster_on_disk_whose_heap_exceeds_half_the_memory(tmp_path: Path) -> None:
    assert not wanted(None, 1 << 40)
    on_disk = next((d for d in (tmp_path, Path(__file__).parent, Path.home()) if not is_tmpfs(d)), None)
    if on_disk is None:
        unavailable("no directory on disk to judge (the temp dir, the checkout and home are tmpfs)",
                    "CI's checkout is on disk")
    assert wanted(on_disk, 6 * GB, available=10 * GB)
    assert not wanted(on_disk, 4 * GB, available=10 * GB)  # stays cached for the index builds
    shm = Path("/dev/shm")
    if shm.is_dir() and is_tmpfs(shm):
        assert not wanted(shm, 1 << 40, available=GB)  # tmpfs pages are the data itself


def _segments(root: Path, count: int) -> str:
    relation = "base/5/16384"
    (root / "base/5").mkdir(parents=True)
    for number in range(count):
        (root / (relation if number == 0 else f"{relation}.{number}")).write_bytes(b"x" * 8192)
    (root / f"{relation}.{count + 1}").write_bytes(b"")  # after a gap: not a segment of this relation
    return relation


def test_segment_paths_in_block_order_up_to_the_first_gap(tmp_path: Path) -> None:
    relation = _segments(tmp_path, 4)
    assert [p.name for p in segment_paths(tmp_path, relation)] == ["16384", "16384.1", "16384.2", "16384.3"]
    assert segment_paths(tmp_path, "base/5/99999") == []


def test_each_tick_drops_the_finished_segments_but_the_slack(tmp_path: Path) -> None:
    relation = _segments(tmp_path, 4)  # segment 3 being written, 1 and 2 the slack: segment 0 is dropped
    one_behind = DropBehind(tmp_path, relation)
    assert all(one_behind.tick() for _ in range(3))
    assert one_behind.dropped == 3  # again on every tick: dirty pages are only dropped on a later call
    small = tmp_path / "small"
    none_behind = DropBehind(small, _segments(small, 3))  # segments 0 and 1 are the slack
    assert all(none_behind.tick() for _ in range(3))
    assert none_behind.dropped == 0
    assert (tmp_path / relation).read_bytes() == b"x" * 8192  # dropping pages never changes data


def test_the_thread_ticks_until_it_is_stopped(tmp_path: Path) -> None:
    relation = _segments(tmp_path, 4)
    with DropBehind(tmp_path, relation) as dropping:
        deadline = time.monotonic() + 30
        while dropping.dropped < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert dropping.dropped >= 2  # two ticks of the thread, each dropping segment 0
    stopped_at = dropping.dropped
    time.sleep(dropbehind.TICK_SECONDS * 1.5)
    assert dropping.dropped == stopped_at  # stopped with the block: no tick after it


def test_warm_budget_is_half_the_memory_and_at_most_a_third_of_the_heap() -> None:
    assert warm_budget(36 * GB, available=21 * GB) == (36, 10)  # memory bounds it
    assert warm_budget(36 * GB, available=200 * GB) == (36, 12)  # the heap bounds it
    assert warm_budget(36 * GB + 1, available=200 * GB) == (37, 12)  # a partial segment is a segment
    assert warm_budget(2 * GB, available=GB) == (2, 0)


def test_the_head_is_read_back_past_the_threshold_and_then_left_cached(tmp_path: Path) -> None:
    relation = _segments(tmp_path, 6)  # 0-2 finished, 3-4 the slack, 5 being written
    warming = DropBehind(tmp_path, relation, expected_segments=12, warm_segments=2)
    assert all(warming.tick() for _ in range(5))
    assert warming.warmed == 2  # 6 segments reach half of the 12 expected: one head segment a tick
    # Each tick drops the finished segments not yet warmed: 0-2, then 1-2, then 2 on each later tick.
    assert warming.dropped == 3 + 2 + 1 * 3
    early = tmp_path / "early"
    waiting = DropBehind(early, _segments(early, 6), expected_segments=14, warm_segments=2)
    assert all(waiting.tick() for _ in range(3))
    assert waiting.warmed == 0  # 6 of 14 expected: not yet half way
    few = tmp_path / "few"
    capped = DropBehind(few, _segments(few, 4), expected_segments=4, warm_segments=3)
    assert all(capped.tick() for _ in range(3))
    assert capped.warmed == 1  # only finished segments are read back: segment 0 of 4


def test_warm_segment_reads_a_file_whole_and_refuses_what_it_cannot_open(tmp_path: Path) -> None:

    segment = tmp_path / "16384"
    segment.write_bytes(b"y" * (dropbehind.READ_CHUNK * 2 + 5))
    assert warm_segment(segment, threading.Event())
    assert not warm_segment(tmp_path / "missing", threading.Event())


def test_a_segment_that_cannot_be_opened_stops_the_thread_not_the_load(tmp_path: Path) -> None:
    relation = _segments(tmp_path, 4)
    (tmp_path / relation).unlink()
    with socket.socket(socket.AF_UNIX) as server:  # a file open() refuses, even to root
        server.bind(str(tmp_path / relation))
        dropping = DropBehind(tmp_path, relation)
        assert not dropping.tick()  # the thread's loop ends on it
    assert dropping.dropped == 0


def test_relation_path_names_the_file_this_transaction_writes(schema_db: Server) -> None:
    assert schema_db.cluster is not None
    with psycopg.connect(schema_db.conninfo()) as conn:
        before = relation_path(conn, "messages")
        conn.execute("TRUNCATE messages")  # what the seed does before COPY FREEZE: a new file
        after = relation_path(conn, "messages")
        assert (schema_db.cluster.data / after).exists()
    assert before != after


def test_a_seed_dropping_behind_its_copy_loads_the_same_rows(
    fresh_db: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = loadgen.load_spec("smoke")
    plain = loadgen.seed(fresh_db, spec, seed=0, workers=2, use_cache=False, progress=False)
    assert plain.extra["page_cache"] == "left to the OS"  # smoke-sized: stays cached
    monkeypatch.setattr(dropbehind, "wanted", lambda data_dir, heap_bytes, available=None: True)
    dropping = loadgen.seed(fresh_db, spec, seed=0, workers=2, use_cache=False, progress=False)
    assert dropping.extra["page_cache"].startswith("dropped behind the COPY")
    assert dropping.checksum == plain.checksum
    assert loadgen.check_integrity(fresh_db, spec, expected_checksum=plain.checksum).ok
