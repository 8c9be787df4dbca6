"""Drop-behind: which segments it drops, when it runs, and that a seed using it loads the same rows."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
from chatbench.loadgen import dropbehind
from chatbench.loadgen.dropbehind import DropBehind, behind, relation_layout, segment_paths, wanted, write_front

from chatbench import loadgen
from chatbench.provision import Server
from chatbench.provision.paths import is_tmpfs

GB = 1 << 30


def test_behind_leaves_slack_behind_the_front_and_everything_once_past_the_end() -> None:
    assert behind(5, 0.0, 10) == 0
    assert behind(5, 39.0, 10) == 1  # the front is in segment 3; 2 segments of slack: only segment 0
    assert behind(5, 39.0, 10, keep=0) == 3
    assert behind(5, 10_000.0, 10) == 5  # never more than exist
    assert behind(5, None, 10) == 5


def test_wanted_only_for_a_cluster_on_disk_whose_heap_exceeds_half_the_memory(tmp_path: Path) -> None:
    assert not wanted(None, 1 << 40)
    if is_tmpfs(tmp_path):
        assert not wanted(tmp_path, 1 << 40, available=GB)
        return
    assert wanted(tmp_path, 6 * GB, available=10 * GB)
    assert not wanted(tmp_path, 4 * GB, available=10 * GB)  # stays cached for the index builds
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
    assert write_front(tmp_path, relation, 8)() == 24  # the start of the last segment, the one being written


def test_the_thread_drops_what_lies_behind_the_front_on_every_tick(tmp_path: Path) -> None:
    relation = _segments(tmp_path, 4)
    with DropBehind(tmp_path, relation, 8, lambda: 24.0) as one_behind:  # segment 3 written: drops segment 0
        time.sleep(dropbehind.TICK_SECONDS * 3.5)
    assert 2 <= one_behind.dropped <= 4
    with DropBehind(tmp_path, relation, 8, lambda: None) as all_behind:  # the load is past the end
        time.sleep(dropbehind.TICK_SECONDS * 1.5)
    assert all_behind.dropped == 4
    assert (tmp_path / relation).read_bytes() == b"x" * 8192  # dropping pages never changes data


def test_a_front_that_cannot_be_read_stops_the_thread_not_the_load(tmp_path: Path) -> None:
    relation = _segments(tmp_path, 2)

    def broken() -> float:
        raise OSError("gone")

    with DropBehind(tmp_path, relation, 8, broken) as dropping:
        time.sleep(dropbehind.TICK_SECONDS * 2.5)
    assert dropping.dropped == 0


def test_relation_layout_names_the_file_this_transaction_writes(schema_db: Server) -> None:
    assert schema_db.cluster is not None
    with psycopg.connect(schema_db.conninfo()) as conn:
        before, per_segment = relation_layout(conn, "messages")
        conn.execute("TRUNCATE messages")  # what the seed does before COPY FREEZE: a new file
        after, _ = relation_layout(conn, "messages")
        assert (schema_db.cluster.data / after).exists()
    assert per_segment == 131072  # 1 GB of 8 kB blocks: the server's default build
    assert before != after


def test_a_seed_dropping_behind_its_copy_loads_the_same_rows(
    fresh_db: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = loadgen.load_spec("smoke")
    plain = loadgen.seed(fresh_db, spec, seed=0, workers=2, use_cache=False, progress=False)
    assert plain.extra["page_cache"] == "left to the OS"  # smoke-sized: stays cached
    monkeypatch.setattr(dropbehind, "wanted", lambda data_dir, heap_bytes: True)
    dropping = loadgen.seed(fresh_db, spec, seed=0, workers=2, use_cache=False, progress=False)
    assert dropping.extra["page_cache"].startswith("dropped behind the COPY")
    assert dropping.checksum == plain.checksum
    assert loadgen.check_integrity(fresh_db, spec, expected_checksum=plain.checksum).ok
