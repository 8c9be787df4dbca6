"""The results store on a real SQLite file and a real PostgreSQL database: adding, reading, concurrent
writers, a killed writer, and stores it must refuse in one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from history_fixtures import result_file
from sqlalchemy import create_engine, text

from chatbench.cli import main
from chatbench.history import record_file
from chatbench.history.records import METRICS, Provenance
from chatbench.history.store import open_store, opened

PROVENANCE = Provenance("a" * 40, "main")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite")
    return str(request.getfixturevalue("fresh_db").url)


def test_add_reads_back_every_metric_and_is_idempotent(store_location: str, tmp_path: Path) -> None:
    files = [result_file(tmp_path, i) for i in range(3)]
    for path in files:
        (added,) = record_file(store_location, path, PROVENANCE)
        assert added.new and added.values > 0
    assert not record_file(store_location, files[0], PROVENANCE)[0].new  # the same run again: nothing added
    with opened(store_location) as store:
        assert store.run_count() == 3
        rows = store.values(scenarios=["latest_page"])
    assert {r.measurement.metric for r in rows} == set(METRICS) - {"cpu_p10"}  # the fixture records no CPU time
    assert [r.run.run_id for r in rows if r.measurement.metric == "buffers"] == ["run000", "run001", "run002"]
    p95 = [r.measurement for r in rows if r.measurement.metric == "wall_p95"]
    assert all(m.low <= m.value <= m.high for m in p95)
    assert {r.run.commit for r in rows} == {"a" * 40}


def test_cli_add_then_show_detect_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "h.sqlite")
    files = [str(result_file(tmp_path, i)) for i in range(12)]
    files += [str(result_file(tmp_path, i, slow=1.6, buffers=300)) for i in range(12, 24)]
    assert main(["history", "add", *files, "--history", store, "--commit", "c0ffee", "--branch", "main"]) == 0
    assert main(["history", "show", "latest_page", "--history", store, "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "latest_page buffers: 24 runs" in err
    html = (tmp_path / "out" / "history.html").read_text()
    assert "<svg" in html and "http://" not in html and "latest_page" in html
    assert main(["history", "detect", "latest_page", "--history", store]) == 0  # the change is not on the latest run
    err = capsys.readouterr().err
    assert "latest_page buffers: +" in err and "at run 13" in err and "buffers" in err


def _child(store: str, code: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), store], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_writers_at_once_on_a_new_store(store_location: str, tmp_path: Path) -> None:
    files = [result_file(tmp_path, i) for i in range(16)]
    code = """
        import sys
        from chatbench.history import record_file
        from chatbench.history.records import Provenance
        for path in sys.argv[2:]:
            record_file(sys.argv[1], path, Provenance("b" * 40, "main"))
    """
    writers = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), store_location,
                                 *map(str, files[half::2])], stderr=subprocess.PIPE, text=True)
               for half in (0, 1)]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
    with opened(store_location) as store:
        assert store.run_count() == 16


def test_a_killed_writer_leaves_nothing_behind(store_location: str, tmp_path: Path) -> None:
    open_store(store_location).close()
    code = """
        import sys, time
        from sqlalchemy import insert
        from chatbench.history.store import open_store, runs_table
        store = open_store(sys.argv[1])
        with store.engine.begin() as conn:
            conn.execute(insert(runs_table).values(run_key="half", run_id="half", label="x", kind="bench",
                         commit="", branch="", recorded_at="", machine="", pg_version="", profile="",
                         data_checksum="", schema_fingerprint=""))
            print("inserted", flush=True)
            time.sleep(600)
    """
    child = _child(store_location, code)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "inserted"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    (added,) = record_file(store_location, result_file(tmp_path, 1), PROVENANCE)
    assert added.new
    with opened(store_location) as store:
        assert [r.run.run_id for r in store.values(metrics=["buffers"])][:1] == ["run001"]
        assert store.run_count() == 1


def _refused(tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["history", "add", str(result_file(tmp_path, 1)), "--history", store]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_a_corrupt_or_foreign_file_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"\x00garbage" * 100)
    assert "not a SQLite file" in _refused(tmp_path, str(corrupt), capsys)
    assert corrupt.read_bytes() == b"\x00garbage" * 100  # nothing written to it
    foreign = tmp_path / "app.sqlite"
    with create_engine(f"sqlite:///{foreign}").begin() as conn:
        conn.execute(text("CREATE TABLE users (id INTEGER)"))
    assert "another application" in _refused(tmp_path, str(foreign), capsys)


@pytest.mark.parametrize(("version", "words"), [("0", "older than this chatbench reads"),
                                                ("99", "newer than this chatbench reads")])
def test_an_older_or_newer_format_is_refused_in_one_line(store_location: str, tmp_path: Path, version: str,
                                                         words: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(store_location)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE chatbench_history_meta SET value = :v WHERE key = 'format_version'"),
                     {"v": version})
    store.close()
    err = _refused(tmp_path, store_location, capsys)
    assert words in err and "password" not in err.lower()
