"""``signoff``/``bench --history`` record their run into the results store, and ``signoff --baseline
history:BRANCH`` compares with the median of the branch's last runs: real servers, a real SQLite file
(and a real password-protected PostgreSQL store for the line that names it)."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import replace
from pathlib import Path

import pytest
from commandline import chatbench, in_process
from dsn_server import DsnServer, password_forms
from history_fixtures import result_file
from reports_fixtures import SCENARIOS, make_run
from sqlalchemy import text

from chatbench.benchmarks.results import write
from chatbench.errors import ChatbenchError
from chatbench.history import baseline_from_history, record_file
from chatbench.history.records import Provenance
from chatbench.history.store import FORMAT_VERSION, open_store

# No latency is judged here: no retries of undecided scenarios.
SMOKE = ("--backend", "local", "--profile", "smoke", "--rounds", "20", "--warmup", "2", "--retries", "0")
RECORDED = re.compile(r"^history: recorded 1 run\(s\) of commit (\w+) on (\S+) \((.+)\) in (.+)$", re.M)


def _show(store: Path, *extra: str) -> str:
    done = chatbench("history", "show", "latest_page", "--history", str(store), *extra)
    assert done.returncode == 0, done.stderr
    return done.stderr


def _runs_listed(shown: str) -> int:
    found = re.search(r"^latest_page buffers: (\d+) runs", shown, re.M)
    assert found, shown
    return int(found.group(1))


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("history-commands")


@pytest.fixture(scope="module")
def first_signoff(place: Path) -> tuple[Path, str]:
    store = place / "history.sqlite"
    done = chatbench("signoff", *SMOKE, "--scaling", "none", "--out", str(place / "first"), "--history", str(store),
                     "--commit", "c1" * 20, "--branch", "main", merged=True, timeout=600)
    assert done.returncode in (0, 3), done.stdout[-4000:]  # 3: INCONCLUSIVE on a busy machine
    return store, done.stdout


@pytest.mark.slow
@pytest.mark.xdist_group("history-commands")
def test_signoff_with_history_records_its_run_and_history_show_lists_it(first_signoff: tuple[Path, str]) -> None:
    store, log = first_signoff
    (line,) = [m for m in RECORDED.finditer(log)]
    assert line.group(1) == "c1" * 5 and line.group(2) == "main" and line.group(4) == str(store)
    assert "PostgreSQL" in line.group(3) and " values" in line.group(3)
    assert _runs_listed(_show(store, "--branch", "main")) >= 1
    assert "no run" in chatbench("history", "show", "--history", str(store), "--branch", "other").stderr


@pytest.mark.slow
@pytest.mark.xdist_group("history-commands")
def test_signoff_baseline_from_history_compares_with_a_stored_run(place: Path,
                                                                   first_signoff: tuple[Path, str]) -> None:
    store, _ = first_signoff
    before = _runs_listed(_show(store, "--branch", "main"))
    out = place / "second"
    done = chatbench("signoff", *SMOKE, "--scaling", "none", "--out", str(out), "--history", str(store),
                     "--baseline", "history:main", "--commit", "c2" * 20, "--branch", "main", merged=True, timeout=600)
    assert done.returncode in (0, 1, 3), done.stdout[-4000:]  # the verdict is the comparison's; it must have run
    document = json.loads((out / "signoff.json").read_text())
    assert document["baseline"].startswith(f"history:main in {store}: ")
    assert "the median of the last" in document["baseline"]
    (target,) = document["targets"]
    assert target["comparison"] is not None and target["comparison"]["scenarios"]
    assert RECORDED.search(done.stdout)
    assert _runs_listed(_show(store, "--branch", "main")) == before + 1


@pytest.mark.slow
@pytest.mark.xdist_group("history-commands")
def test_bench_with_history_records_its_run(place: Path) -> None:
    store = place / "bench-history.sqlite"
    done = chatbench("bench", *SMOKE, "--results", str(place / "bench-run.json"), "--json", str(place / "bench.json"),
                     "--history", str(store), "--commit", "b" * 40, "--branch", "main", merged=True, timeout=600)
    assert done.returncode in (0, 3), done.stdout[-4000:]
    line = RECORDED.search(done.stdout)
    assert line and line.group(1) == "b" * 10, done.stdout[-3000:]
    # stored and shown under the server's label (its series), not the run id
    assert line.group(3).startswith("PostgreSQL ") and "(local): run " in line.group(3)
    assert _runs_listed(_show(store)) == 1


@pytest.mark.parametrize("case", ["unknown branch", "empty store"])
def test_a_history_baseline_with_nothing_to_offer_is_refused_in_one_line(tmp_path: Path, case: str) -> None:
    store = tmp_path / "h.sqlite"
    if case == "unknown branch":
        record_file(str(store), result_file(tmp_path, 1), Provenance("a" * 40, "main"))
    done = chatbench("signoff", *SMOKE, "--scaling", "none", "--out", str(tmp_path / "out"), "--history", str(store),
                     "--baseline", "history:nope", timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    expected = "no run on branch 'nope'" if case == "unknown branch" else f"--history {store}: no store there yet"
    assert len(errors) == 1 and expected in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert "provision" not in done.stderr and not (tmp_path / "out" / "signoff.json").exists()  # no server started
    assert store.exists() == (case == "unknown branch"), "a refused run left an empty store behind"


@pytest.mark.parametrize("action", ["show", "detect", "export bmf"])
def test_reading_a_store_that_is_not_there_is_one_line_and_creates_none(tmp_path: Path, action: str,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "never.sqlite"
    done = in_process(capsys, "history", *action.split(), "--history", str(store))
    assert done.returncode == 2 and done.stderr.count("error:") == 1, done.stderr
    assert f"--history {store}: no store there yet" in done.stderr and "history add" in done.stderr
    assert not store.exists()


def _run_at(folder: Path, index: int, factor: float) -> Path:
    """A run whose every scenario is ``factor`` times as slow (so "the median run" has one right answer)."""
    run = make_run(seed=index, n=200, run_id=f"run{index:03d}", slow={name: factor for name, *_ in SCENARIOS})
    run = replace(run, created_at=f"2026-12-01T00:{index:02d}:00+00:00")
    return write(run, folder / f"bench-run-{index:03d}.json")


def test_the_baseline_is_the_median_run_of_the_last_runs_of_the_branch(tmp_path: Path) -> None:
    store = str(tmp_path / "h.sqlite")
    factors = [5.0, 1.0, 1.3, 3.0, 0.7, 1.15]  # the first is older than the last 5; 3.0 is an outlier
    for index, factor in enumerate(factors):
        record_file(store, _run_at(tmp_path, index, factor), Provenance(f"{index:040d}", "main"))
    record_file(store, _run_at(tmp_path, 9, 1.15), Provenance("f" * 40, "feature"))
    found = baseline_from_history(store, "history:main", runs=5, profile="smoke")
    (chosen,) = found.chosen
    assert chosen.run.run_id == "run005" and chosen.candidates == 5 and chosen.commit == f"{5:040d}"
    assert chosen.run.scenarios[0].samples_ms  # the stored run, raw samples and all, for the comparison
    assert found.pairs() == ((chosen.label, chosen.run),)
    with pytest.raises(ChatbenchError, match="none of release"):
        baseline_from_history(store, "history:main", profile="release")


def test_a_format_1_store_is_migrated_and_its_runs_are_never_a_baseline(tmp_path: Path) -> None:
    store = str(tmp_path / "h.sqlite")
    record_file(store, result_file(tmp_path, 0), Provenance("0" * 40, "main"))
    opened = open_store(store)
    with opened.engine.begin() as conn:  # what format 1 wrote: no documents table
        conn.execute(text("DROP TABLE chatbench_history_documents"))
        conn.execute(text("UPDATE chatbench_history_meta SET value = '1' WHERE key = 'format_version'"))
    opened.close()
    with pytest.raises(ChatbenchError, match="older chatbench"):
        baseline_from_history(store, "history:main")
    record_file(store, result_file(tmp_path, 1), Provenance("1" * 40, "main"))
    opened = open_store(store)
    with opened.engine.connect() as conn:
        version = conn.execute(text("SELECT value FROM chatbench_history_meta WHERE key = 'format_version'")).scalar()
    opened.close()
    assert version == str(FORMAT_VERSION) == "2"
    (chosen,) = baseline_from_history(store, "history:main").chosen
    assert chosen.run.run_id == "run001" and chosen.candidates == 1


def test_the_recorded_line_never_shows_a_store_password(tmp_path: Path, dsn: DsnServer,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import psycopg

    from chatbench.commands.impl.history import record_result
    from chatbench.settings import resolve

    name = f"history_{secrets.token_hex(4)}"
    with psycopg.connect(dsn.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = dsn.dsn.rsplit("/", 1)[0] + f"/{name}"
        settings = resolve("signoff", {"history": url, "commit": "d" * 40, "branch": "main"},
                           names=("history", "commit", "branch"), env={}, cwd=tmp_path)
        record_result(settings, result_file(tmp_path, 1))
        err = capsys.readouterr().err
        assert RECORDED.search(err) and "127.0.0.1" in err, err
        for form in password_forms().values():
            assert form not in err
    finally:
        with psycopg.connect(dsn.dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
