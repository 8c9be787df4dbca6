"""Benchmarks, load and fidelity on real (local, embedded) servers with the smoke profile.

Nothing here asserts on a timing: verdicts are forced with targets that no run can miss (or none
can meet), and the rest checks structure: raw samples kept, statistics computed from them,
the one-line failure message, pinning recorded, histograms decodable.
"""

from __future__ import annotations

import gc
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from commandline import chatbench
from hdrh.histogram import HdrHistogram
from loadgen_fixtures import seeded_database

from chatbench.benchmarks.loadtest.mix import parameter_pools
from chatbench.benchmarks.loadtest.runner import LoadConfig, run_load
from chatbench.benchmarks.pinning import pin, restore_client
from chatbench.benchmarks.results import read
from chatbench.convert import to_plain
from chatbench.provision import Server

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = ["--chatbench-rounds", "20", "--chatbench-warmup", "2"]


def _suite(*argv: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``pytest benchmarks ARGV`` from the checkout, on the local backend."""
    return subprocess.run([sys.executable, "-m", "pytest", "benchmarks", *argv], cwd=ROOT,
                          env={**os.environ, "CHATBENCH_BACKEND": "local"}, capture_output=True, text=True,
                          timeout=timeout)


def _targets(tmp_path: Path, p95_ms: float, scenarios: tuple[str, ...]) -> Path:
    path = tmp_path / "targets.toml"
    path.write_text("".join(f'[{name}]\nwhy = "test"\nsmoke = {{ p95_ms = {p95_ms}, p99_ms = {p95_ms * 2} }}\n'
                            for name in scenarios))
    return path


def test_pinning_records_client_and_backend_on_one_core(pg: Server) -> None:
    saved = os.sched_getaffinity(0)
    try:
        with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
            result = pin(conn, backend="local")
            backend_pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
            assert result.server_pid == backend_pid
            assert result.client_pinned and result.server_pinned and result.same_core, result.reason
            assert result.client_cpus == result.server_cpus == (result.cpu,)
            assert os.sched_getaffinity(backend_pid) == {result.cpu}
            elsewhere = pin(conn, backend="container")
            assert elsewhere.client_pinned and not elsewhere.server_pinned
            assert "not this host's pid namespace" in elsewhere.reason
            off = pin(conn, backend="local", mode="off")
            assert to_plain(off)["same_core"] is False and off.reason == "pinning disabled"
    finally:
        restore_client(saved)


@pytest.mark.slow
def test_suite_runs_on_smoke_and_keeps_raw_samples(tmp_path: Path) -> None:
    from chatbench.benchmarks.scenarios import SCENARIOS

    targets = _targets(tmp_path, 10_000.0, tuple(s.name for s in SCENARIOS))
    bench_json, results_json = tmp_path / "bench.json", tmp_path / "run.json"
    done = _suite("-p", "no:cacheprovider", "-q", "--chatbench-profile", "smoke", *ROUNDS, "--chatbench-targets",
                  str(targets), "--chatbench-results", str(results_json), "--benchmark-json", str(bench_json))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "verdict: PASS" in done.stdout
    # not a terminal: one whole line per scenario, every scenario named in full (no table to truncate it)
    assert all(f"\n{s.name}: PASS; p50 " in done.stdout for s in SCENARIOS), done.stdout[-3000:]
    document = json.loads(bench_json.read_text())
    benchmarks = document["benchmarks"]
    assert document["chatbench"]["run_id"]  # the chatbench run rides along: `chatbench compare` reads bench.json
    assert {b["extra_info"]["scenario"] for b in benchmarks} == {s.name for s in SCENARIOS}
    for bench in benchmarks:
        info = bench["extra_info"]
        assert len(info["samples_ms"]) == 20 == info["stats_ms"]["rounds"]
        assert info["stats_ms"]["p99"] >= info["stats_ms"]["p95"] >= info["stats_ms"]["p50"] > 0
        assert info["verdict"] == "PASS"
        assert min(info["samples_ms"]) == pytest.approx(bench["stats"]["min"] * 1000)
    run = read(results_json)
    assert run.kind == "bench" and run.verdict == "PASS" and len(run.scenarios) == len(SCENARIOS)
    assert run.environment.profile == "smoke" and run.environment.data_sizes["messages"] > 0
    assert run.environment.pinning["mode"] == "same-core"
    keyset = run.depth_scaling["keyset_page"]
    assert keyset.depths[:3] == (1, 5, 20)
    # keyset pages touch about the same pages at any depth; OFFSET pages touch more the deeper they go
    assert max(keyset.buffers) <= 2 * min(keyset.buffers)
    offset = run.depth_scaling["offset_page"]
    assert offset.buffers == tuple(sorted(offset.buffers))
    assert offset.buffer_growth is not None and offset.buffer_growth.growth_class == "linear"
    append = run.scenario("append_message")
    assert append.extra["transaction"] == "autocommit (committed)"
    assert append.buffers is not None and append.buffers.total > 0  # a write's, measured after its timing


@pytest.mark.slow
def test_an_impossible_target_fails_with_one_line(tmp_path: Path) -> None:
    targets = _targets(tmp_path, 0.001, ("latest_page",))
    done = chatbench("bench", "--backend", "local", "--profile", "smoke", "--rounds", "20", "--warmup", "2",
                     "--targets", str(targets), "-k", "latest_page", "--json", str(tmp_path / "b.json"),
                     "--results", str(tmp_path / "r.json"))
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("latest_page: p95 ")]
    assert lines, done.stdout[-3000:]
    assert re.fullmatch(r"latest_page: p95 \d+\.\d{3} ms > target 0\.001 ms \(at least \d+\.\d{3} ms its CPU time "
                        r"alone\); latest_page: p99 \d+\.\d{3} ms > target 0\.002 ms \(at least \d+\.\d{3} ms its "
                        r"CPU time alone\)", lines[0]), lines
    run = read(tmp_path / "r.json")
    assert run.verdict == "FAIL"
    assert [r.scenario for r in run.scenarios] == ["latest_page"]  # -k: the one scenario selected, no other
    # bench.json is the same run in pytest-benchmark's format: its statistics over the samples judged
    document = json.loads((tmp_path / "b.json").read_text())
    assert document["chatbench"] == json.loads((tmp_path / "r.json").read_text())
    (bench,) = document["benchmarks"]
    samples = bench["extra_info"]["samples_ms"]
    assert list(samples) == list(run.scenarios[0].samples_ms) and bench["extra_info"]["verdict"] == "FAIL"
    assert bench["stats"]["rounds"] == len(samples) == 20
    assert bench["stats"]["min"] * 1000 == pytest.approx(min(samples))
    assert bench["stats"]["max"] * 1000 == pytest.approx(max(samples))
    assert bench["name"] == "test_history[latest_page]" and bench["group"] == "latest_messages"
    assert {"machine_info", "commit_info", "datetime", "version"} <= set(document)


def test_measure_scenarios_is_one_session_with_rounds_per_scenario(pg: Server) -> None:
    """The path ``chatbench bench`` and the sign-off share: every scenario measured in one session with its
    own rounds, a scenario the data has no instance of recorded as skipped with the reason, progress counted,
    and the run's settings the rounds asked for."""
    from chatbench.benchmarks.scenarios import SCENARIOS_BY_NAME, Scenario
    from chatbench.benchmarks.session import measure_scenarios
    from chatbench.benchmarks.targets import load_targets
    from chatbench.output import Output, console_for

    too_deep = Scenario("keyset_page_deeper_than_any_whale", "messages_before", "a page no smoke whale reaches",
                        depth=10**6)
    scenarios = (SCENARIOS_BY_NAME["latest_page"], too_deep, SCENARIOS_BY_NAME["offset_page_20"])
    log = io.StringIO()
    out = Output(console_for(file=log, terminal=False), progress_seconds=3600)
    with seeded_database(pg) as (db, seeded), out.stage("benchmarks", total=3, unit="scenarios") as progress:
        measured = measure_scenarios(db, seeded, profile="smoke", targets=load_targets(), scenarios=scenarios,
                                     rounds=11, warmup=1, retries=0, progress=progress,
                                     rounds_of=lambda s: (7, 1) if s.name.startswith("offset_") else (11, 1))
        assert progress.state.done == 3
    run = measured.run
    assert [(r.scenario, len(r.samples_ms)) for r in run.scenarios] == [("latest_page", 11), ("offset_page_20", 7)]
    assert run.skipped == {too_deep.name: f"the smoke data has no instance of {too_deep.name} ({too_deep.doc})"}
    assert run.settings is not None and (run.settings.rounds, run.settings.warmup) == (11, 1)
    assert run.calibration[-1].before == "end"  # the run is built after the session closed: the last probe is in
    assert measured.pinning.describe() and "benchmarks: started (0/3 scenarios)" in log.getvalue()


def test_what_was_alive_before_a_session_is_frozen_while_it_measures(pg: Server) -> None:
    """Each measurement starts from a collection: it walks only what the session made, never the modules and the
    caller's objects alive before it (frozen, ``gc.freeze``), and those are back in the collector's reach after.
    Something that froze objects of its own keeps them frozen, no more and no fewer."""
    from chatbench.benchmarks.scenarios import SCENARIOS_BY_NAME
    from chatbench.benchmarks.session import long_lived_objects_frozen, measure_scenarios, time_rounds
    from chatbench.benchmarks.targets import load_targets

    frozen_while_timed: list[int] = []

    def timed(target: Callable[[], object], rounds: int, warmup: int) -> list[float]:
        frozen_while_timed.append(gc.get_freeze_count())
        return time_rounds(target, rounds, warmup)

    assert gc.get_freeze_count() == 0
    with seeded_database(pg) as (db, seeded):
        measure_scenarios(db, seeded, profile="smoke", targets=load_targets(), scenarios=(
            SCENARIOS_BY_NAME["latest_page"],), rounds=5, warmup=1, retries=0, timed=timed)
    assert len(frozen_while_timed) == 1 and frozen_while_timed[0] > 1000, frozen_while_timed
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        theirs = gc.get_freeze_count()
        with long_lived_objects_frozen():
            assert gc.get_freeze_count() == theirs
        assert gc.get_freeze_count() == theirs
    finally:
        gc.unfreeze()


@pytest.mark.slow
def test_load_one_client_for_two_seconds(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    done = chatbench("load", "--backend", "local", "--profile", "smoke", "--clients", "1", "--duration", "2",
                     "--warmup-seconds", "0.3", "--results", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "throughput" in done.stdout and "append_message" in done.stdout
    run = read(out)
    assert run.kind == "load" and run.load is not None
    load = run.load
    assert load.clients == 1 and load.mode == "closed" and load.errors == 0 and load.total > 0
    assert {op.operation for op in load.operations} == set(load.weights)
    assert sum(op.count for op in load.operations) == load.total
    assert HdrHistogram.decode(load.overall.histogram).get_total_count() >= load.total


@pytest.mark.slow
def test_a_stall_in_a_closed_loop_is_corrected_for_coordinated_omission(pg: Server) -> None:
    """The one client is blocked for STALL_S (a lock held on ``messages``) during the measured phase:
    a closed loop sends nothing meanwhile, so a naive histogram holds one slow sample where a steady
    arrival of requests would have had STALL_S / interval of them. The corrected histogram adds them
    back; the uncorrected p99 of the same run shows what is lost without the correction."""
    config = LoadConfig(clients=1, duration_s=3.0, warmup_s=0.3, weights={"latest_page": 1})
    with seeded_database(pg) as (db, seeded), psycopg.connect(db.conninfo(), autocommit=True) as conn:
        pools = parameter_pools(conn, seeded.params, config.weights)
        stall = threading.Thread(target=_stall_the_measured_phase, args=(db, config.warmup_s))
        stall.start()
        try:
            load = run_load(db.conninfo(), config, pools)
        finally:
            stall.join()
    corrected = HdrHistogram.decode(load.overall.histogram)
    [interval_us] = map(int, re.findall(r"\((\d+) µs\)", load.correction))
    assert load.mode == "closed" and load.errors == 0
    added = corrected.get_total_count() - load.total
    assert added >= STALL_S * 1e6 / interval_us / 2, (added, interval_us)  # the stall's missing requests
    p99, naive = load.overall.percentiles_ms["p99"], load.overall.percentiles_ms["p99_uncorrected"]
    assert p99 > STALL_S * 1000 / 4 and p99 > 2 * naive, (p99, naive)


@pytest.mark.slow
def test_a_client_that_cannot_connect_fails_the_load_with_its_own_error(pg: Server) -> None:
    """Three clients, a role allowed two connections: one client's connection is refused. It breaks the start
    barrier, so the two connected clients stop waiting for it, and the load raises the refused client's error
    (not the barrier's), whichever client that was. No client session is left behind."""
    config = LoadConfig(clients=3, duration_s=1.0, warmup_s=0.1, weights={"latest_page": 1})
    with seeded_database(pg) as (db, seeded), psycopg.connect(db.conninfo(), autocommit=True) as conn:
        pools = parameter_pools(conn, seeded.params, config.weights)
        conn.execute("CREATE ROLE cb_two_connections LOGIN CONNECTION LIMIT 2")
        try:
            conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO cb_two_connections")
            limited = db.url.set(username="cb_two_connections", password=None, drivername="postgresql")
            with pytest.raises(psycopg.OperationalError, match="too many connections for role"):
                run_load(limited.render_as_string(hide_password=False), config, pools)
            left = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'cb_two_connections'")
            assert left.fetchone() == (0,)
        finally:
            conn.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM cb_two_connections")
            conn.execute("DROP ROLE cb_two_connections")


STALL_S = 0.6


def _stall_the_measured_phase(db: Server, warmup_s: float) -> None:
    """Hold an exclusive lock on messages for STALL_S once the client measures: every query of the mix
    waits. The client starts once it has connected (the only client: nobody else to wait for), then warms
    up for ``warmup_s``."""
    with psycopg.connect(db.conninfo(), autocommit=True) as watcher:
        client = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                  "AND application_name = 'chatbench-load-0'")
        while watcher.execute(client).fetchone() != (1,):
            time.sleep(0.01)
        connected = time.time()
    time.sleep(max(0.0, connected + warmup_s + 0.5 - time.time()))
    with psycopg.connect(db.conninfo()) as conn, conn.transaction():
        conn.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        time.sleep(STALL_S)


@pytest.mark.slow
def test_fidelity_runs_pgbench_with_the_same_parameters(pg: Server) -> None:
    from servers import drop_database, make_database

    from chatbench import loadgen
    from chatbench.benchmarks import fidelity
    from chatbench.benchmarks.session import open_session
    from chatbench.benchmarks.targets import load_targets

    db = make_database(pg, "fid")
    try:
        seed = loadgen.seed(db, loadgen.load_spec("smoke"), seed=1, use_cache=True, progress=False)
        with open_session(db, seed, profile="smoke", targets=load_targets()) as session:
            report = fidelity.check(db, session, scenarios=("latest_page", "message_count"), rounds=30, warmup=3)
    finally:
        drop_database(db)
    assert [row.scenario for row in report.rows] == ["latest_page", "message_count"]
    assert [row.rows for row in report.rows] == [50, 1]
    assert all(row.pgbench.rounds == 30 and row.harness.rounds == 30 for row in report.rows)
    assert "harness" in fidelity.render(report) and all(row.libpq.rounds == 30 for row in report.rows)


def test_both_drivers_return_the_same_rows_for_every_read_scenario(pg: Server) -> None:
    from servers import drop_database, make_database

    from chatbench import loadgen
    from chatbench.benchmarks import scenarios as sc

    db = make_database(pg, "drv")
    try:
        seed = loadgen.seed(db, loadgen.load_spec("smoke"), seed=1, use_cache=True, progress=False)
        with psycopg.connect(db.conninfo(), autocommit=True) as conn:
            for scenario in (s for s in sc.SCENARIOS if s.kind == "read"):
                params = sc.build_params(scenario, conn, seed.params)
                assert params, scenario.name
                via_psycopg = sc.runner(conn, scenario.canonical)
                via_libpq = sc.runner(conn, scenario.canonical, "libpq")
                counts = [(via_psycopg(p), via_libpq(p)) for p in params]
                assert all(a == b > 0 for a, b in counts), (scenario.name, counts)
                if scenario.name.startswith(("keyset_page_", "offset_page_")) and scenario.depth != "last":
                    assert {a for a, _ in counts} == {sc.PAGE}, scenario.name
    finally:
        drop_database(db)
