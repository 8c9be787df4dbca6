"""Regression comparison: what must be found, what must not cry wolf, and what cannot be computed.

Samples are generated (seeded lognormal latencies, see ``reports_fixtures``) so each test knows the
truth; the statistics themselves are the real ones (numpy bootstrap, scipy Mann-Whitney U).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from reports_fixtures import environment, make_run, make_signoff, make_target

from chatbench.benchmarks.results import MachineLoad, PlanRecord, write
from chatbench.cli import main
from chatbench.convert import to_plain
from chatbench.reports import render_json, render_markdown
from chatbench.reports.compare import Thresholds, compare_runs, compare_scenario, judge_latency


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_same_distribution_is_never_a_regression(seed: int) -> None:
    comparison = compare_runs(make_run(seed=seed * 10), make_run(seed=seed * 10 + 1))
    assert comparison.passed, [s.line() for s in comparison.failing]
    assert comparison.verdict == "NO REGRESSION"
    assert {s.status for s in comparison.scenarios} <= {"unchanged", "improved"}
    assert not comparison.environment


def test_a_20_percent_slowdown_is_caught_with_its_statistics() -> None:
    comparison = compare_runs(make_run(seed=2, slow={"latest_page": 1.2}), make_run(seed=1))
    assert comparison.verdict == "REGRESSION"
    [regressed] = comparison.regressions
    assert regressed.scenario == "latest_page"
    p50 = regressed.change("p50")
    assert p50 is not None and 1.1 < p50.ratio < 1.35 and p50.ci_low > 1.0 and p50.ci_high > p50.ratio
    assert regressed.test is not None and regressed.test.p_value < 0.01 and regressed.test.n_current == 400
    assert "Mann-Whitney p=" in regressed.reason and "CI" in regressed.reason
    assert {c.statistic for c in regressed.changes} == {"p10", "p50", "p95", "p99"}


def test_a_speedup_is_improved_not_failing() -> None:
    comparison = compare_runs(make_run(seed=2, slow={"message_count": 0.6}), make_run(seed=1))
    assert comparison.passed
    assert next(s for s in comparison.scenarios if s.scenario == "message_count").status == "improved"


def test_a_significant_but_small_shift_stays_unchanged() -> None:
    rng = np.random.default_rng(7)
    base = 0.1 * np.exp(rng.normal(0, 0.2, 20000))
    current = 1.04 * 0.1 * np.exp(rng.normal(0, 0.2, 20000))
    verdict = judge_latency(current, base)
    assert verdict.status == "unchanged"
    assert "under the 10% effect" in verdict.reason
    assert verdict.test is not None and verdict.test.p_value < 0.01


def test_too_few_samples_is_a_failure_not_a_pass() -> None:
    verdict = judge_latency([0.1] * 5, [0.1] * 100)
    assert verdict.status == "error" and "could not compute" in verdict.reason
    run = make_run(seed=1, n=5)
    comparison = compare_runs(run, make_run(seed=2))
    assert not comparison.passed and comparison.verdict == "COULD NOT COMPARE"
    assert all(s.status == "error" for s in comparison.scenarios)


def test_non_finite_or_zero_samples_cannot_be_compared() -> None:
    assert judge_latency([float("nan")] * 20, [0.1] * 20).status == "error"
    assert judge_latency([0.1] * 20, [0.0] * 20).status == "error"


def test_identical_constant_samples_are_unchanged() -> None:
    verdict = judge_latency([0.25] * 50, [0.25] * 50)
    assert verdict.status == "unchanged" and verdict.test is not None and verdict.test.p_value == 1.0


def test_the_bootstrap_is_deterministic() -> None:
    one = compare_runs(make_run(seed=3, slow={"latest_page": 1.3}), make_run(seed=4))
    two = compare_runs(make_run(seed=3, slow={"latest_page": 1.3}), make_run(seed=4))
    assert to_plain(one) == to_plain(two)


def test_a_changed_benchmark_is_not_compared() -> None:
    current = make_run(seed=2, versions={"latest_page": "v-new"}, slow={"latest_page": 3.0})
    comparison = compare_runs(current, make_run(seed=1))
    item = next(s for s in comparison.scenarios if s.scenario == "latest_page")
    assert item.status == "changed" and "benchmark changed" in item.reason and not item.changes
    assert comparison.passed


def test_new_and_missing_scenarios() -> None:
    comparison = compare_runs(make_run(seed=2, drop=("message_count",)), make_run(seed=1, drop=("latest_page",)))
    status = {s.scenario: s.status for s in comparison.scenarios}
    assert status["latest_page"] == "new" and status["message_count"] == "missing"


def test_buffers_are_compared_exactly_even_when_timing_does_not_move() -> None:
    comparison = compare_runs(make_run(seed=2, buffers={"keyset_page_20": 900}), make_run(seed=1))
    item = next(s for s in comparison.scenarios if s.scenario == "keyset_page_20")
    assert item.status == "regressed" and "buffers 59 → 900" in item.reason
    assert [(d.metric, d.baseline, d.current) for d in item.exact] == [("buffers", 59, 900)]


def test_a_plan_shape_change_is_reported_with_both_plans() -> None:
    before = {"keyset_page_5": {"plan_shape": "Limit > Index Scan", "plan": "Limit\n  -> Index Scan using ix"}}
    after = {"keyset_page_5": {"plan_shape": "Limit > Sort > Seq Scan", "plan": "Limit\n  -> Sort\n    -> Seq Scan"}}
    comparison = compare_runs(make_run(seed=2, extra=after), make_run(seed=1, extra=before))
    item = next(s for s in comparison.scenarios if s.scenario == "keyset_page_5")
    assert item.plan_change is not None
    assert "Index Scan using ix" in item.plan_change.baseline_plan and "Seq Scan" in item.plan_change.current_plan
    assert "plan shape changed" in item.reason


def test_rows_returned_differ_is_a_regression() -> None:
    comparison = compare_runs(make_run(seed=2, extra={"latest_page": {"rows_per_round": 0}}), make_run(seed=1))
    item = next(s for s in comparison.scenarios if s.scenario == "latest_page")
    assert item.status == "regressed" and "correctness" in item.reason


def test_environment_is_compared_first_and_qualifies_the_verdict() -> None:
    current = make_run(seed=2, env=environment(server_version="15.8", server_version_num=150008))
    comparison = compare_runs(current, make_run(seed=1))
    fields = {d.field: d for d in comparison.environment}
    assert "server_version_num" in fields and fields["server_version_num"].decisive
    assert "may come from the environment" in comparison.conclusion()


def test_different_data_skips_exact_metrics() -> None:
    current = make_run(seed=2, buffers={"latest_page": 5000}, env=environment(seed=43))
    comparison = compare_runs(current, make_run(seed=1))
    assert comparison.data_differs
    item = next(s for s in comparison.scenarios if s.scenario == "latest_page")
    assert item.status == "unchanged" and not item.exact
    assert "deterministic metrics were not compared" in comparison.conclusion()


def test_compare_scenario_needs_a_side() -> None:
    with pytest.raises(ValueError):
        compare_scenario(None, None)


def test_thresholds_are_honoured() -> None:
    current, base = make_run(seed=2, slow={"latest_page": 1.2}), make_run(seed=1)
    assert compare_runs(current, base, Thresholds(min_effect=0.5)).passed


# --- the command ------------------------------------------------------------------------------


def test_compare_command_exit_codes_and_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write(make_run(seed=1), tmp_path / "base.json")
    same = write(make_run(seed=2), tmp_path / "same.json")
    slow = write(make_run(seed=3, slow={"keyset_page_5": 1.4}), tmp_path / "slow.json")
    assert main(["compare", str(same), str(base)]) == 0
    assert "NO REGRESSION" in capsys.readouterr().out
    out = tmp_path / "report"
    assert main(["compare", str(slow), str(base), "--out", str(out)]) == 1
    text = capsys.readouterr().out
    assert "REGRESSION" in text and "keyset_page_5" in text and "Mann-Whitney" in text
    data = json.loads((out / "compare.json").read_text())
    assert data["verdict"] == "REGRESSION" and data["counts"]["regressed"] == 1
    assert (out / "compare.md").read_text().startswith("## ❌")
    assert "http://" not in (out / "compare.html").read_text()


def test_compare_reads_a_signoff_json(tmp_path: Path) -> None:
    signoff = make_signoff(make_target(make_run(seed=1)))
    path = tmp_path / "signoff.json"
    path.write_text(render_json.render_signoff(signoff))
    current = write(make_run(seed=2), tmp_path / "current.json")
    assert main(["compare", str(current), str(path)]) == 0


def test_compare_command_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["compare", str(bad), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not JSON" in err
    assert main(["compare", str(tmp_path / "missing.json"), str(bad)]) == 2


def test_settings_that_only_locate_a_throwaway_server_are_no_difference() -> None:
    base = make_run(seed=1, env=environment(server_settings={"fsync": "off", "port": "5432"}))
    current = make_run(seed=2, env=environment(server_settings={"fsync": "off", "port": "6543"}))
    assert compare_runs(current, base).environment == ()
    moved = make_run(seed=2, env=environment(server_settings={"fsync": "on", "port": "6543"}))
    [difference] = compare_runs(moved, base).environment
    assert difference.field == "server_settings" and difference.current == {"fsync": "on"}


def test_a_tail_only_shift_is_reported_not_failed_unless_asked() -> None:
    rng = np.random.default_rng(11)
    base = 0.1 * np.exp(rng.normal(0, 0.1, 4000))
    current = 0.1 * np.exp(rng.normal(0, 0.1, 4000))
    current[rng.choice(4000, 400, replace=False)] *= 3.0  # a burst of interference: 10% of rounds 3x slower
    verdict = judge_latency(current, base)
    assert verdict.status == "unchanged" and "slowest rounds alone is shown, not judged" in verdict.reason
    assert judge_latency(current, base, Thresholds(judge_tails=True)).status == "regressed"


def test_a_busy_machine_is_a_warning_on_the_comparison() -> None:
    from dataclasses import replace

    quiet = make_run(seed=1)
    busy = replace(make_run(seed=2), machine=MachineLoad(2, before=3.1, after=2.9))
    comparison = compare_runs(busy, replace(quiet, machine=MachineLoad(2, before=0.2, after=0.3)))
    [warning] = comparison.environment
    assert warning.field.startswith("machine load") and warning.current == 1.55 and warning.decisive
    assert "may come from the environment" in comparison.conclusion()


def test_a_different_data_checksum_means_different_data() -> None:
    from dataclasses import replace

    base = replace(make_run(seed=1), data_checksum="aaa")
    current = replace(make_run(seed=2, buffers={"latest_page": 5000}), data_checksum="bbb")
    comparison = compare_runs(current, base)
    assert comparison.data_differs and any(d.field == "data checksum" for d in comparison.environment)
    assert next(s for s in comparison.scenarios if s.scenario == "latest_page").status == "unchanged"
    same = replace(current, data_checksum="aaa")
    assert not compare_runs(same, base).data_differs


def test_on_a_busy_machine_without_noise_probes_latency_needs_a_doubling_but_buffers_stay_exact() -> None:
    """Runs without calibration probes (older files): a busy machine counts as +100% of noise."""
    from dataclasses import replace

    busy = MachineLoad(2, before=3.0, after=3.2)
    base = replace(make_run(seed=1), machine=busy)
    noisy = replace(make_run(seed=2, slow={"latest_page": 1.5}, buffers={"keyset_page_1": 900}), machine=busy)
    comparison = compare_runs(noisy, base)
    status = {s.scenario: s.status for s in comparison.scenarios}
    assert status["latest_page"] == "inconclusive" and status["keyset_page_1"] == "regressed"
    assert comparison.verdict == "REGRESSION"  # the buffers, exactly
    assert any("±100% assumed" in note for note in comparison.notes)
    broken = replace(make_run(seed=2, slow={"latest_page": 50.0}), machine=busy)  # an index lost: 50x
    assert next(s for s in compare_runs(broken, base).scenarios if s.scenario == "latest_page").status == "regressed"


def test_verification_plans_travel_with_the_run_and_are_compared_exactly() -> None:
    from dataclasses import replace

    plan = PlanRecord("whale-latest", "latest_messages", "generic", 50, "Limit [Index Scan Backward]", "", 0.1)
    base = replace(make_run(seed=1), plans=(plan,))
    same = replace(make_run(seed=2), plans=(plan,))
    assert compare_runs(same, base).plans == ()
    lost = replace(plan, buffers=43753, shape="Limit [Sort [Seq Scan]]")
    comparison = compare_runs(replace(make_run(seed=2), plans=(lost,)), base)
    [item] = comparison.plans
    assert item.status == "regressed" and item.scenario == "plan:whale-latest/generic"
    assert item.plan_change is not None and item.plan_change.current_shape == "Limit [Sort [Seq Scan]]"
    assert "Plan of <code>plan:whale-latest/generic</code> changed" in render_markdown.render_comparison(comparison)


def test_load_runs_are_compared_through_their_hdr_histograms() -> None:
    from dataclasses import replace

    from hdrh.histogram import HdrHistogram

    from chatbench.benchmarks.results import LoadResult, OperationLoadResult
    from chatbench.reports.compare import histogram_samples

    def operation(scale: float, errors: int = 0) -> OperationLoadResult:
        histogram = HdrHistogram(1, 60_000_000, 3)
        for value in np.random.default_rng(5).lognormal(np.log(200 * scale), 0.2, 3000):  # microseconds
            histogram.record_value(int(value))
        return OperationLoadResult(
            "latest_page", "latest_messages", 3000, errors, {}, 0.2 * scale, histogram.encode().decode()
        )

    def load(scale: float, errors: int = 0) -> LoadResult:
        op = operation(scale, errors)
        return LoadResult(2, 5.0, "closed", None, {"latest_page": 1.0}, 600.0, 3000, errors, True, (op,), op)

    assert 2900 < histogram_samples(operation(1.0).histogram).size < 3100
    base = replace(make_run(seed=1), load=load(1.0))
    same = compare_runs(replace(make_run(seed=2), load=load(1.0)), base)
    assert [i.status for i in same.load] == ["unchanged"]
    slow = compare_runs(replace(make_run(seed=2), load=load(1.5)), base)
    assert [i.status for i in slow.load] == ["regressed"] and slow.load[0].scenario == "load:latest_page"
    failing = compare_runs(replace(make_run(seed=2), load=load(1.0, errors=3)), base)
    assert failing.load[0].status == "regressed" and "errors 0 → 3" in failing.load[0].reason


def test_a_contrast_scenario_shows_its_latency_change_but_is_not_judged_on_it() -> None:
    comparison = compare_runs(make_run(seed=3, slow={"offset_page_5": 1.6}), make_run(seed=1))
    item = next(s for s in comparison.scenarios if s.scenario == "offset_page_5")
    assert item.status == "unchanged" and "contrast scenario" in item.reason and comparison.passed
    lost = compare_runs(make_run(seed=3, buffers={"offset_page_5": 9000}), make_run(seed=1))
    assert next(s for s in lost.scenarios if s.scenario == "offset_page_5").status == "regressed"  # buffers: exact


def _with_noise(run, *, cpu_factor: float = 1.0, spread: float = 0.02, seed: int = 0):  # type: ignore[no-untyped-def]
    """``run`` with CPU time per round (``cpu_factor`` x its wall samples) and calibration probes whose
    fixed CPU loop varies by about ``spread`` from probe to probe."""
    from dataclasses import replace

    from chatbench.benchmarks.noise import CalibrationProbe

    rng = np.random.default_rng(seed)
    loops = [0.27 * (1 + rng.uniform(-spread, spread)) for _ in range(16)]
    probes = tuple(CalibrationProbe(f"p{i}", (0.03,) * 30, (0.3,) * 30, (loop,) * 30) for i, loop in enumerate(loops))
    scenarios = tuple(replace(s, cpu_ms=tuple(v * cpu_factor for v in s.samples_ms)) for s in run.scenarios)
    return replace(run, scenarios=scenarios, calibration=probes)


def test_a_regression_must_clear_the_noise_measured_in_both_runs() -> None:
    quiet_base = _with_noise(make_run(seed=1), spread=0.02, seed=1)
    slower = _with_noise(make_run(seed=2, slow={"latest_page": 1.4}), spread=0.02, seed=2)
    on_quiet = compare_runs(slower, quiet_base)
    item = next(s for s in on_quiet.scenarios if s.scenario == "latest_page")
    assert item.status == "regressed" and item.basis == "CPU time" and "larger than the noise" in item.reason
    noisy = _with_noise(make_run(seed=2, slow={"latest_page": 1.4}), spread=0.5, seed=2)  # ±50% calibration
    on_noisy = compare_runs(noisy, quiet_base)
    item = next(s for s in on_noisy.scenarios if s.scenario == "latest_page")
    assert item.status == "inconclusive" and "not clear of the noise" in item.reason
    assert on_noisy.verdict == "INCONCLUSIVE" and on_noisy.exit_code == 3 and on_noisy.passed
    doubled = _with_noise(make_run(seed=2, slow={"latest_page": 2.2}), spread=0.5, seed=2)
    assert next(s for s in compare_runs(doubled, quiet_base).scenarios if s.scenario == "latest_page").status == (
        "regressed"
    )


def test_compare_reads_bench_json_and_refuses_other_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write(make_run(seed=1), tmp_path / "base.json")
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"machine_info": {}, "benchmarks": [], "chatbench": to_plain(make_run(seed=2))}))
    assert main(["compare", str(bench), str(base)]) == 0
    old = tmp_path / "old-bench.json"
    old.write_text(json.dumps({"machine_info": {}, "benchmarks": []}))
    comparison = tmp_path / "compare.json"
    comparison.write_text(json.dumps({"kind": "chatbench-comparison", "format_version": 2}))
    capsys.readouterr()
    assert main(["compare", str(old), str(base)]) == 2
    assert main(["compare", str(comparison), str(base)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "bench-run.json" in errors[0] and "a comparison report" in errors[1]


def test_compare_refuses_runs_of_different_sizes_unless_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ci = write(make_run(seed=1), tmp_path / "ci.json")
    release = write(
        make_run(seed=2, env=environment(profile="release", data_sizes={"messages": 1_000_000})), tmp_path / "r.json"
    )
    capsys.readouterr()
    assert main(["compare", str(release), str(ci)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "different data sizes" in line and "--allow-different-sizes" in line and "1,000,000 messages" in line
    assert main(["compare", str(release), str(ci), "--allow-different-sizes"]) == 0
    assert "deterministic metrics were not compared" in capsys.readouterr().out


def test_compare_output_piped_is_one_line_per_scenario_with_whole_names(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    base = write(make_run(seed=1), tmp_path / "base.json")
    slow = write(make_run(seed=3, slow={"keyset_page_20": 1.5}), tmp_path / "slow.json")
    assert main(["compare", str(slow), str(base)]) == 1
    out = capfd.readouterr().out
    assert "##" not in out and "|---" not in out  # not Markdown
    lines = out.splitlines()
    assert lines[0].endswith(": REGRESSION")
    [regressed] = [line for line in lines if line.startswith("keyset_page_20: regressed: ")]
    assert "p10" in regressed and "judge_tails" not in out
    for name in ("latest_page", "keyset_page_1", "offset_page_20", "message_count"):
        assert sum(line.startswith(f"{name}: ") for line in lines) == 1


def test_a_wall_time_change_within_what_the_load_moved_is_undecided_not_a_failure() -> None:
    """Wall time only (no CPU time: a DSN or container server): a current run on a machine three times as
    loaded per CPU is undecided about a 2.3x slowdown, which the load alone explains; a 50x one (an index
    lost) is still a regression, and buffers stay exact."""
    from dataclasses import replace

    quiet, busy = MachineLoad(2, before=2.0, after=2.0), MachineLoad(2, before=6.0, after=6.0)
    base = replace(make_run(seed=1), machine=quiet)
    slower = replace(make_run(seed=2, slow={"latest_page": 2.3}, buffers={"keyset_page_1": 900}), machine=busy)
    status = {s.scenario: s for s in compare_runs(slower, base).scenarios}
    assert status["latest_page"].status == "inconclusive" and "3.00x as loaded" in status["latest_page"].reason
    assert status["keyset_page_1"].status == "regressed"
    broken = replace(make_run(seed=2, slow={"latest_page": 50.0}), machine=busy)
    assert next(s for s in compare_runs(broken, base).scenarios if s.scenario == "latest_page").status == "regressed"


def test_a_wall_time_shift_within_one_round_trips_spread_is_undecided() -> None:
    """Wall time only: a page 0.06 ms slower is no evidence when a trivial round trip itself moved between
    11 and 90 µs (same core or not) in these runs; the same runs with steady round trips decide it."""
    from dataclasses import replace

    from chatbench.benchmarks.noise import CalibrationProbe

    def probes(trips: tuple[float, ...]) -> tuple[CalibrationProbe, ...]:
        return tuple(CalibrationProbe(f"s{k}", trips, (1.0,) * 30) for k in range(4))

    bimodal = tuple(0.011 if k % 2 else 0.090 for k in range(30))  # the page's p10 moves 0.06 ms: inside
    steady = tuple(0.011 + 0.0001 * k for k in range(30))
    base, slower = make_run(seed=1), make_run(seed=2, slow={"latest_page": 2.0})
    assert base.scenarios[0].cpu_ms == ()  # wall time is what is compared
    undecided = compare_runs(replace(slower, calibration=probes(bimodal)), replace(base, calibration=probes(bimodal)))
    item = next(s for s in undecided.scenarios if s.scenario == "latest_page")
    assert item.status == "inconclusive" and "trivial round trip" in item.reason, item.reason
    decided = compare_runs(replace(slower, calibration=probes(steady)), replace(base, calibration=probes(steady)))
    assert next(s for s in decided.scenarios if s.scenario == "latest_page").status == "regressed"
