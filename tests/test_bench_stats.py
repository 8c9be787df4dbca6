"""Benchmark statistics, results format and targets: pure computations, no server needed."""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from chatbench.benchmarks.results import (
    FORMAT_VERSION,
    BenchmarkRun,
    BufferUsage,
    EnvironmentFingerprint,
    LoadResult,
    OperationLoadResult,
    RunSettings,
    ScenarioResult,
    Target,
    from_json,
    params_version,
    to_json,
)
from chatbench.benchmarks.stats import describe, fit_growth, percentile_interval, rounds_needed
from chatbench.benchmarks.targets import parse_targets
from chatbench.benchmarks.verdict import LatencyJudgement, judge_target
from chatbench.convert import from_plain, to_plain
from chatbench.errors import ChatbenchError, ConfigError


def test_describe_matches_numpy_on_known_samples() -> None:
    samples = [float(v) for v in range(1, 101)]  # 1..100 ms
    stats = describe(samples)
    assert stats.rounds == 100
    assert stats.p50 == pytest.approx(50.5)
    assert stats.p95 == pytest.approx(np.percentile(samples, 95))
    assert stats.p99 == pytest.approx(99.01)
    assert stats.iqr == pytest.approx(np.percentile(samples, 75) - np.percentile(samples, 25))
    assert stats.mean == pytest.approx(50.5)
    assert stats.stddev == pytest.approx(np.std(samples, ddof=1))
    assert stats.cv == pytest.approx(stats.stddev / stats.mean)
    assert stats.unstable  # CV ~57%
    assert not stats.thin_tail


def test_describe_single_and_constant_samples() -> None:
    stats = describe([2.0])
    assert (stats.rounds, stats.stddev, stats.p99, stats.cv) == (1, 0.0, 2.0, 0.0)
    assert stats.thin_tail and not stats.unstable


@pytest.mark.parametrize("bad", [[], [1.0, math.nan], [1.0, math.inf]])
def test_describe_refuses_what_it_cannot_compute(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="cannot compute"):
        describe(bad)


def test_growth_classes() -> None:
    depths = [1, 5, 20, 40]
    assert fit_growth(depths, [0.150, 0.152, 0.149, 0.151]).growth_class == "flat"
    assert fit_growth(depths, [0.1 * d for d in depths]).growth_class == "linear"
    sizes = [1e3, 1e4, 1e5, 1e6]
    assert fit_growth(sizes, [1 + math.log(s) for s in sizes]).growth_class == "logarithmic"
    assert fit_growth([1, 5], [1.0, 5.0]).growth_class == "unknown"


def _environment(**overrides: object) -> EnvironmentFingerprint:
    values: dict[str, object] = dict(
        server_version="18.1", server_version_num=180001, server_settings={"fsync": "off"}, backend="local",
        cpu_model="AMD EPYC", cpu_count=2, pinning={"mode": "same-core", "same_core": True},
        python_version="3.11.7", libraries={"psycopg": "3.3"}, schema_fingerprint="abc", profile="smoke",
        spec={"messages": {"count": 20000}}, seed=1, data_sizes={"messages": 20000}, platform="Linux",
        hostname="h")
    values.update(overrides)
    return EnvironmentFingerprint(**values)  # type: ignore[arg-type]


def test_run_json_round_trip_keeps_raw_samples_and_verdicts() -> None:
    target = Target(p95_ms=1.0, p99_ms=2.0, buffers=100, why="index scan")
    good = ScenarioResult.judge(scenario="latest_page", query="latest_messages", params_version="v1",
                                samples_ms=[0.1, 0.2, 0.15], buffers=BufferUsage(19, 1), target=target,
                                extra={"depth": None})
    bad = ScenarioResult.judge(scenario="offset_page_20", query="messages_offset", params_version="v2",
                               samples_ms=[3.0, 4.0, 5.0], buffers=BufferUsage(200, 0), target=target)
    untargeted = ScenarioResult.judge(scenario="x", query="count_messages", params_version="v3", samples_ms=[1.0])
    histogram = OperationLoadResult("latest_page", "latest_messages", 10, 0, {"p50": 0.1, "p99": 0.3}, 0.12, "HISTv1")
    load = LoadResult(clients=2, duration_s=2.0, mode="open", rate_per_s=100.0, weights={"latest_page": 1.0},
                      throughput_per_s=5.0, total=10, errors=0, corrected_for_coordinated_omission=True,
                      operations=(histogram,), overall=histogram, correction="open loop")
    run = BenchmarkRun(kind="bench", run_id="r1", created_at="2026-11-24T00:00:00+00:00",
                       environment=_environment(), scenarios=(good, bad, untargeted), load=load,
                       settings=RunSettings(3, 0, "psycopg", "targets.toml"))
    assert (good.verdict, bad.verdict, untargeted.verdict) == ("PASS", "FAIL", "NO TARGET")
    assert bad.failures == (
        "offset_page_20: p95 4.900 ms > target 1.000 ms (at least 3.000 ms without the noise a fixed round trip "
        "showed)",
        "offset_page_20: p99 4.980 ms > target 2.000 ms (at least 4.000 ms without the noise a fixed round trip "
        "showed)",
        "offset_page_20: buffers 200 > target 100")
    assert run.verdict == "FAIL"
    text = to_json(run)
    again = from_json(text)
    assert again == run
    assert again.scenario("latest_page").samples_ms == (0.1, 0.2, 0.15)
    assert f'"format_version": {FORMAT_VERSION}' in text


def test_from_json_refuses_unknown_versions_in_one_line() -> None:
    with pytest.raises(ChatbenchError, match="newer than this chatbench reads"):
        from_json('{"format_version": 999}')
    with pytest.raises(ChatbenchError, match="no format_version"):
        from_json('{"benchmarks": []}')
    with pytest.raises(ChatbenchError, match="not JSON"):
        from_json("{")


def test_environment_differences_name_the_fields() -> None:
    a, b = _environment(), _environment(server_version_num=150004, hostname="other")
    assert a.differences(b) == ("hostname", "server_version_num")
    assert a.differences(b, decisive_only=True) == ("server_version_num",)


def test_params_version_changes_with_sql_params_and_schema() -> None:
    base = params_version("SELECT 1", {"depth": 1}, "schema-a")
    assert base == params_version("SELECT 1", {"depth": 1}, "schema-a")
    assert len({base, params_version("SELECT 2", {"depth": 1}, "schema-a"),
                params_version("SELECT 1", {"depth": 5}, "schema-a"),
                params_version("SELECT 1", {"depth": 1}, "schema-b")}) == 4


def test_targets_parse_per_scenario_and_profile() -> None:
    targets = parse_targets('[latest_page]\nwhy = "index"\nci = { p95_ms = 1.0, p99_ms = 3, buffers = 120 }\n'
                            'smoke = { p95_ms = 0.5 }\n')
    assert targets.get("latest_page", "ci") == Target(p95_ms=1.0, p99_ms=3.0, buffers=120, why="index")
    assert targets.get("latest_page", "smoke") == Target(p95_ms=0.5, why="index")
    assert targets.get("latest_page", "release") is None


@pytest.mark.parametrize(("text", "message"), [
    ("[latest_page]\nci = { p95 = 1.0 }", "latest_page.ci: unknown key(s) p95"),
    ("[latest_page]\nci = { p95_ms = -1 }", "latest_page.ci.p95_ms = -1: must be greater than 0"),
    ("[latest_page]\nci = { buffers = 1.5 }", "latest_page.ci.buffers = 1.5: expected a whole number"),
    ("[latest_page]\nci = { p95_ms = 'x' }", "latest_page.ci.p95_ms = 'x'"),
    ("[latest_page]\nci = 3", "latest_page.ci: expected a table"),
    ("latest_page = 1", "latest_page must be a table"),
    ("[a", "not valid TOML"),
    ("[latest_pages]\nci = { p95_ms = 1.0 }", "[latest_pages] is not a scenario"),  # a typo disables nothing
    ("[latest_page]\nrelease_ = { p95_ms = 1.0 }", "latest_page.release_ is not a profile"),
])
def test_targets_errors_are_one_line_and_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        parse_targets(text, "t.toml")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_packaged_targets_cover_every_scenario_for_every_profile() -> None:
    from chatbench.benchmarks.scenarios import SCENARIOS
    from chatbench.benchmarks.targets import load_targets

    targets = load_targets()
    for scenario in SCENARIOS:
        for profile in ("smoke", "ci", "release"):
            target = targets.get(scenario.name, profile)
            assert target is not None and target.why, (scenario.name, profile)
            assert target.p95_ms and target.p99_ms and target.buffers


def test_size_scaling_fits_each_scenario_and_refuses_mixed_environments() -> None:
    from chatbench.benchmarks.scaling import size_scaling

    def run(messages: int, offset_ms: float, **env: object) -> BenchmarkRun:
        flat = ScenarioResult.judge(scenario="keyset_page_20", query="messages_before", params_version="v",
                                    samples_ms=[0.1, 0.1, 0.1], buffers=BufferUsage(50, 0))
        growing = ScenarioResult.judge(scenario="message_count", query="count_messages", params_version="v",
                                       samples_ms=[offset_ms] * 3, buffers=BufferUsage(messages // 100, 0))
        return BenchmarkRun(kind="bench", run_id=str(messages), created_at="t",
                            environment=_environment(data_sizes={"messages": messages}, **env),
                            scenarios=(flat, growing))

    fits = size_scaling([run(20_000, 0.2), run(200_000, 2.0), run(1_000_000, 10.0)])
    assert fits["keyset_page_20"]["latency"]["growth_class"] == "flat"
    assert fits["message_count"]["latency"]["growth_class"] == "linear"
    assert fits["message_count"]["buffers"] == [200, 2000, 10000]
    with pytest.raises(ChatbenchError, match="differ in cpu_model"):
        size_scaling([run(20_000, 0.2), run(200_000, 2.0, cpu_model="other")])


def test_percentile_interval_brackets_the_percentile() -> None:
    from chatbench.benchmarks.stats import percentile_interval

    samples = np.random.default_rng(3).lognormal(0.0, 0.3, 2000)
    low, high = percentile_interval(samples, 95.0)
    assert low < np.percentile(samples, 95) < high
    assert percentile_interval([1.0, 2.0, 3.0], 99.0).high == 3.0  # few rounds: the slowest one
    with pytest.raises(ValueError, match="cannot compute"):
        percentile_interval([], 95.0)


def test_the_interval_ranks_are_the_binomials_quantiles() -> None:
    """The ranks and confidence computed from scipy.special's binomial CDF (light to import) are scipy.stats.binom's."""
    from scipy.stats import binom

    for rounds in (1, 2, 3, 10, 40, 104, 300, 528, 2000):
        for percent in (50.0, 95.0, 99.0, 99.9):
            for confidence in (0.95, 0.99):
                interval = percentile_interval(np.arange(1.0, rounds + 1), percent, confidence)
                n, q, tail = rounds, percent / 100, (1 - confidence) / 2
                low = min(max(int(binom.ppf(tail, n, q)), 1), n)
                high = min(max(int(binom.ppf(1 - tail, n, q)) + 1, 1), n)
                assert (interval.low, interval.high) == (low, high), (rounds, percent, confidence)
                reached = binom.cdf(high - 1, n, q) - binom.cdf(low - 1, n, q)
                assert interval.confidence == pytest.approx(reached, abs=1e-9)


@pytest.mark.parametrize(("rounds", "percent"), [(300, 99.0), (40, 99.0), (60, 95.0)])
def test_too_few_rounds_report_the_confidence_they_reach(rounds: int, percent: float) -> None:
    """The slowest round is above the true percentile with probability 1 - q**n (smoke's 300 rounds: ~95%
    for p99); the interval's confidence is that less the lower end's miss, at most (1 - 99%) / 2."""
    interval = percentile_interval(np.arange(1.0, rounds + 1), percent)
    assert interval.high == rounds  # the slowest round is the bound
    cap = 1 - (percent / 100) ** rounds
    assert cap - 0.005 <= interval.confidence <= cap < 0.99 and interval.short
    assert interval.asked == 0.99 and interval.rounds_needed > rounds


def test_enough_rounds_reach_the_confidence_asked_and_it_holds() -> None:
    """The stated confidence is true: over many sample sets of a skewed distribution, the interval
    brackets the true percentile at least that often (and the shortfall case no more often than stated)."""
    rng = np.random.default_rng(7)
    truth = float(np.exp(0.3 * 2.3263478740408408))  # lognormal(0, 0.3): its 99th percentile
    for rounds in (300, rounds_needed(99.0)):
        intervals = [percentile_interval(rng.lognormal(0.0, 0.3, rounds), 99.0) for _ in range(2000)]
        covered = np.mean([i.low <= truth <= i.high for i in intervals])
        stated = intervals[0].confidence
        assert all(i.confidence == stated for i in intervals)
        assert covered == pytest.approx(stated, abs=0.015), (rounds, covered, stated)
    assert stated >= 0.99 and not intervals[0].short


def test_a_judgement_on_too_few_rounds_says_the_confidence_it_reached() -> None:
    wall = np.linspace(1.0, 2.0, 300)
    judged = judge_target("p99", 5.0, wall, cpu_ms=wall * 0.9)
    assert judged.decision == "PASS" and judged.high_ms == 2.0 and judged.confidence < 0.95
    assert "94% confidence only: the slowest round is the bound; 99% needs 528 rounds" in judged.line("s")
    enough = judge_target("p99", 5.0, np.linspace(1.0, 2.0, 600), cpu_ms=np.linspace(0.9, 1.8, 600))
    assert enough.confidence >= 0.99 and enough.line("s").endswith("at 99% confidence)")
    assert from_plain(LatencyJudgement, to_plain(judged)) == judged


def test_a_busy_machine_makes_a_latency_target_inconclusive_not_failed() -> None:
    """The deciding interval: wall-clock high end, CPU-time low end (what the query itself costs)."""
    rng = np.random.default_rng(5)
    cpu = 0.1 + rng.exponential(0.01, 2000)
    waits = np.where(rng.random(2000) < 0.08, rng.uniform(2.0, 4.0, 2000), 0.0)  # 8% of rounds wait for a CPU
    target = Target(p95_ms=1.0, p99_ms=3.0)
    busy = ScenarioResult.judge(scenario="s", query="q", params_version="v", samples_ms=cpu + waits + 0.005,
                                cpu_ms=cpu, target=target)
    assert busy.verdict == "INCONCLUSIVE" and busy.failures == ()
    p95 = busy.judgement("p95")
    assert p95 is not None and p95.decision == "INCONCLUSIVE" and p95.low_ms < 1.0 < p95.high_ms
    assert p95.value_ms == pytest.approx(busy.stats.p95)  # the number shown is the number judged
    assert "waiting for a CPU other processes held" in busy.undecided[0]
    quiet = ScenarioResult.judge(scenario="s", query="q", params_version="v", samples_ms=cpu + 0.005,
                                 cpu_ms=cpu, target=target)
    assert quiet.verdict == "PASS"
    slow = ScenarioResult.judge(scenario="s", query="q", params_version="v", samples_ms=cpu * 20 + waits,
                                cpu_ms=cpu * 20, target=target)  # the query itself 20x slower: FAIL, busy or not
    assert slow.verdict == "FAIL" and "its CPU time alone" in slow.failures[0]
    # Without CPU time (container, dsn), the calibration round trip's spread is the noise taken off.
    wall_only = ScenarioResult.judge(scenario="s", query="q", params_version="v", samples_ms=cpu + waits,
                                     target=target, added_ms={"p95": 3.0, "p99": 3.9})
    assert wall_only.verdict == "INCONCLUSIVE" and "fixed round trip" in wall_only.undecided[0]


def test_growth_within_noise_is_flat() -> None:
    sizes = [2e4, 2e5, 1e6]
    noisy = [0.123, 0.089, 0.163]  # a p50 wobbling on a busy machine
    assert fit_growth(sizes, noisy).growth_class != "flat"
    assert fit_growth(sizes, noisy, noise=[0.05, 0.04, 0.06]).growth_class == "flat"
    assert fit_growth(sizes, [0.5, 1.8, 10.4], noise=[0.1, 0.3, 2.0]).growth_class == "linear"


def test_a_format_2_file_reads_its_notes_as_typed_fields() -> None:
    """Older results files keep reading: ``notes`` keys become the typed fields that replaced them."""
    import json

    sample = ScenarioResult.judge(scenario="latest_page", query="latest_messages", params_version="v",
                                  samples_ms=[0.1, 0.2, 0.3], buffers=BufferUsage(50, 0))
    run = BenchmarkRun(kind="bench", run_id="old", created_at="t", environment=_environment(), scenarios=(sample,))
    data = to_plain(run)
    for key in ("settings", "skipped", "depth_scaling", "seed_from_cache", "data_checksum", "machine", "plans",
                "fidelity"):
        del data[key]
    data["format_version"] = 2
    data["notes"] = {
        "rounds": 300, "warmup": 30, "driver": "psycopg", "targets_file": "targets.toml", "scenario_budget_s": 3.0,
        "skipped": {"offset_page_last": "no whale"}, "seed_from_cache": True, "data_checksum": "abc",
        "load_average_1min": [0.5, 3.5], "busy_machine": True,
        "load_average": {"before": 0.4, "after": 3.1, "cpus": 2},
        "depth_scaling": {"keyset_page": {"depths": [1, 5, 20], "p50_ms": [0.1, 0.1, 0.1],
                                          "latency": {"growth_class": "flat", "points": 3, "growth": 0.01},
                                          "buffers": [50, 51, 52], "buffer_growth": {"growth_class": "flat"}}},
        "plans": [{"scenario": "whale-latest", "query": "latest_messages", "mode": "generic", "buffers": 50,
                   "shape": "Limit [Index Scan Backward]", "description": "", "execution_ms": 0.1}],
        "something_unknown": 1,
    }
    again = from_json(json.dumps(data))
    assert again.settings is not None and (again.settings.rounds, again.settings.scenario_budget_s) == (300, 3.0)
    assert again.skipped == {"offset_page_last": "no whale"} and again.seed_from_cache is True
    assert again.data_checksum == "abc" and again.plans[0].shape == "Limit [Index Scan Backward]"
    assert again.machine is not None and again.machine.busy and again.machine.peak_per_cpu == pytest.approx(1.55)
    curve = again.depth_scaling["keyset_page"]
    assert curve.depths == (1, 5, 20) and curve.latency.growth_class == "flat" and curve.buffers == (50, 51, 52)
    assert math.isnan(curve.latency.r2_linear)  # not recorded in the old file: NaN, never invented
    assert again.format_version == FORMAT_VERSION and to_json(from_json(to_json(again))) == to_json(again)


SLOW_FORK = threading.Event()
"""Set: a process forked from this one sleeps in its at-fork hooks first (``os.register_at_fork`` cannot be undone,
so the hook is registered once and does nothing unless this is set)."""
os.register_at_fork(after_in_child=lambda: SLOW_FORK.is_set() and time.sleep(0.5))


def test_the_stability_benchmarks_hog_always_stops_and_its_schemas_differ_only_where_meant() -> None:
    """The CPU hog of ``python -m chatbench.benchmarks.stability`` (not its measurements: those are printed).

    Stopped (Ctrl-C) as soon as it started, under the benchmark's own SIGTERM handler (``terminate_as_exit``),
    and with each fork slow to start: the SIGTERM reaches each hog while its at-fork hooks still run, and each
    still ends by that SIGTERM, not by the SIGKILL 5 s later."""
    from chatbench import schema
    from chatbench.benchmarks.stability import HISTORY_INDEX, broken_ddl, cpu_hog, slow_append_ddl
    from chatbench.provision import terminate_as_exit

    SLOW_FORK.set()
    try:
        with pytest.raises(KeyboardInterrupt), terminate_as_exit(), cpu_hog(limit_s=30) as hogs:
            assert len(hogs) == len(os.sched_getaffinity(0)) and all(h.pid for h in hogs)
            raise KeyboardInterrupt  # Ctrl-C as a phase begins
    finally:
        SLOW_FORK.clear()
    assert [h.exitcode for h in hogs] == [-signal.SIGTERM] * len(hogs)  # joined: none left, none killed
    canonical = schema.ddl()
    slow = slow_append_ddl(1234)
    assert "FOR step IN 1..1234 LOOP" in slow and slow.replace(
        "DECLARE burned bigint := 0;\nBEGIN\n    FOR step IN 1..1234 LOOP burned := burned + step; END LOOP;\n",
        "BEGIN\n") == canonical
    assert HISTORY_INDEX in canonical and HISTORY_INDEX not in broken_ddl()


@pytest.mark.parametrize("phases", ["hog", "quiet,slow", "broken,baseline"])
def test_a_compared_phase_without_a_baseline_is_refused_before_anything_is_made(
        phases: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m chatbench.benchmarks.stability``: a phase judged against the quiet baseline, with no baseline file
    and no baseline phase before it, is a usage error (exit 2) naming ``--phases`` and the fix; no work folder is
    made and no sign-off starts."""
    from chatbench.benchmarks.stability import main as stability

    work = tmp_path / "work"
    with pytest.raises(SystemExit) as exited:
        stability(["--runs", "1", "--phases", phases, "--work", str(work)])
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--phases" in error and "--baseline FILE" in error and "put baseline before it" in error, error
    assert not work.exists()
