"""``chatbench rehearse --history`` adds its rehearsal to the results store as ``rehearse:*`` series (per app access
and for the migration), through ``record_file`` as ``history add`` does; ``history show/detect/export`` list them,
and a rehearsal is never a ``history:BRANCH`` baseline. A real rehearsal (smoke and smoke_fifth sizes, the cheapest a
rehearsal measures), a real SQLite store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from commandline import chatbench
from history_fixtures import result_file

from chatbench.cli import main
from chatbench.history import baseline_from_history, record_file
from chatbench.history.records import Provenance

pytestmark = pytest.mark.slow  # every test reads one real rehearsal (smoke and smoke_fifth sizes): out of the edit loop
RECORDED = re.compile(r"^history: recorded 1 run\(s\) of commit (\w+) on (\S+) \((.+)\) in (.+)$", re.M)
SERIES = ("rehearse:reads blocked_s", "rehearse:appends blocked_prod_s", "rehearse:appends blocked_queries",
          "rehearse:migration duration_s")


@pytest.fixture(scope="module")
def rehearsed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """One rehearsal of a lock-safe migration, recorded into a new store: (store, rehearsal.json, its log)."""
    import contextlib
    import io
    import os

    place = tmp_path_factory.mktemp("rehearse-history")
    (place / "m.sql").write_text("ALTER TABLE messages ADD COLUMN note text;\n")
    store = place / "h.sqlite"
    log = io.StringIO()
    cwd = os.getcwd()
    os.chdir(place)
    try:
        with contextlib.redirect_stderr(log):
            code = main(["rehearse", "--backend", "local", "--profile", "smoke", "--migration", "m.sql",
                         "--rate", "40", "--clients", "2", "--baseline-seconds", "0.3", "--long-transaction", "0",
                         "--out", str(place / "out"), "--history", str(store), "--commit", "r" * 40,
                         "--branch", "main"])
    finally:
        os.chdir(cwd)
    assert code in (0, 1), log.getvalue()[-3000:]  # the verdict is the rehearsal's; it must have run
    return store, place / "out" / "rehearsal.json", log.getvalue()


def test_rehearse_with_history_records_its_series_and_history_show_lists_them(
        rehearsed: tuple[Path, Path, str]) -> None:
    store, document, log = rehearsed
    (line,) = RECORDED.findall(log)
    assert line[0] == "r" * 10 and line[1] == "main" and line[3] == str(store), line
    assert line[2].startswith("PostgreSQL ") and "(local): run rehearsal-" in line[2] and " values" in line[2]
    shown = chatbench("history", "show", "--history", str(store), "--branch", "main")
    assert shown.returncode == 0, shown.stderr
    for series in SERIES:
        assert re.search(rf"^{re.escape(series)}: 1 runs, latest ", shown.stderr, re.M), (series, shown.stderr)
    measured = json.loads(document.read_text())["sizes"][-1]
    duration = re.search(r"^rehearse:migration duration_s: 1 runs, latest (\S+) s", shown.stderr, re.M)
    assert duration and float(duration.group(1)) == pytest.approx(measured["migration_s"], rel=1e-3)
    detected = chatbench("history", "detect", "--history", str(store))
    assert detected.returncode == 0 and "change point(s) in" in detected.stderr, detected.stderr
    exported = json.loads(chatbench("history", "export", "bmf", "--history", str(store)).stdout)
    assert {"rehearse:reads", "rehearse:appends", "rehearse:migration"} <= set(exported)
    assert "duration-s" in exported["rehearse:migration"]


def test_a_rehearsal_added_again_changes_nothing_and_is_never_a_baseline(rehearsed: tuple[Path, Path, str],
                                                                         tmp_path: Path) -> None:
    _, document, _ = rehearsed
    store = str(tmp_path / "h.sqlite")
    (added,) = record_file(store, document, Provenance("a" * 40, "main"))
    assert added.new and added.run_id.startswith("rehearsal-") and added.values >= 8
    (again,) = record_file(store, document, Provenance("a" * 40, "main"))
    assert not again.new
    with pytest.raises(Exception, match="no run on branch 'main'"):  # rehearsals only: nothing to compare with
        baseline_from_history(store, "history:main")
    record_file(store, result_file(tmp_path, 1), Provenance("b" * 40, "main"))
    record_file(store, document, Provenance("c" * 40, "main"))  # recorded after the bench run: still not picked
    (chosen,) = baseline_from_history(store, "history:main").chosen
    assert chosen.run.run_id == "run001" and chosen.candidates == 1


def test_a_rehearsal_whose_migration_failed_is_not_recorded(rehearsed: tuple[Path, Path, str], tmp_path: Path) -> None:
    _, document, _ = rehearsed
    data = json.loads(document.read_text())
    data["sizes"][-1] |= {"outcome": "failed", "failure": "statement 1 failed"}
    failed = tmp_path / "rehearsal.json"
    failed.write_text(json.dumps(data))
    done = chatbench("history", "add", str(failed), "--history", str(tmp_path / "h.sqlite"))
    assert done.returncode == 2 and "did not complete" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
