"""The change-point detector (E-divisive means with a t-test as Otava, and the rank-test setting ``history detect``
uses) and the exports, checked on series whose answer is known, and the exported files against the formats their
tools publish."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from dataclasses import replace
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from history_fixtures import result_file

from chatbench.history import baseline_from_history, record_file
from chatbench.history.edivisive import DEFAULT, OTAVA, _candidate, change_points, rank_test
from chatbench.history.export import render
from chatbench.history.records import Measurement, Provenance, RunRecord
from chatbench.history.series import Point, Series, SeriesKey, appeared, detect
from chatbench.history.store import opened

# Bencher Metric Format, as published in Bencher's reference ("Bencher Metric Format (BMF) JSON Schema").
BMF_SCHEMA = {
    "type": "object",
    "patternProperties": {".+": {"type": "object", "patternProperties": {".+": {
        "type": "object",
        "properties": {"value": {"type": "number"}, "lower_value": {"type": "number"},
                       "upper_value": {"type": "number"}},
        "required": ["value"]}}}},
}
# github-action-benchmark's customSmallerIsBetter input (its README): a list of {name, unit, value, range?, extra?}.
GITHUB_ACTION_BENCHMARK_SCHEMA = {
    "type": "array",
    "items": {"type": "object", "required": ["name", "unit", "value"], "additionalProperties": False,
              "properties": {"name": {"type": "string"}, "unit": {"type": "string"}, "value": {"type": "number"},
                             "range": {"type": "string"}, "extra": {"type": "string"}}},
}


def _brute_q(x: np.ndarray) -> tuple[int, float]:
    """Q-hat by its definition (Matteson and James), every (tau, kappa) summed directly."""
    best = (0, -np.inf)
    for tau, kappa in itertools.combinations(range(1, len(x) + 1), 2):
        left, right = x[:tau], x[tau:kappa]
        n, m = len(left), len(right)
        between = np.abs(left[:, None] - right[None, :]).sum()
        within_l = np.abs(left[:, None] - left[None, :]).sum() / 2
        within_r = np.abs(right[:, None] - right[None, :]).sum() / 2
        q = 2 / (m + n) * between
        q -= 2 * m / ((m + n) * (n - 1)) * within_l if n > 1 else 0
        q -= 2 * n / ((m + n) * (m - 1)) * within_r if m > 1 else 0
        if q > best[1]:
            best = (tau, q)
    return best


def test_q_hat_matches_its_definition() -> None:
    rng = np.random.default_rng(3)
    for size in (3, 7, 20):
        x = rng.normal(10, 1, size)
        tau, q = _candidate(x)
        assert (tau, q) == pytest.approx(_brute_q(x))


def test_a_step_is_found_where_it_is_and_noise_alone_is_not() -> None:
    rng = np.random.default_rng(7)
    flat = rng.normal(100, 1, 120)
    assert change_points(flat) == []
    stepped = flat.copy()
    stepped[80:] *= 1.10
    (found,) = change_points(stepped)
    assert found.index == 80 and found.change == pytest.approx(0.10, abs=0.01) and found.pvalue < 0.001
    exact = np.array([57.0] * 20 + [300.0] * 5)  # buffers: deterministic, any change is certain
    assert [s.index for s in change_points(exact)] == [20]


def _series(values: np.ndarray | list[float], loads: list[float] | None = None, metric: str = "wall_p95") -> Series:
    """A stored series of ``values`` (one run each, in order), its runs' load per CPU ``loads`` (default 1.0)."""
    points = []
    for i, value in enumerate(values):
        run = RunRecord(f"key{i}", f"run{i}", "PostgreSQL 18 (local)", "bench", f"{i:040d}", "main",
                        f"2026-12-01T00:{i // 60:02d}:{i % 60:02d}+00:00", "machine", "18", "ci", "data", "schema",
                        loads[i] if loads is not None else 1.0)
        value = float(value)
        points.append(Point(run, Measurement("q", "latest_page", metric, value, value * 0.98, value * 1.02, "p")))
    return Series(SeriesKey("latest_page", metric, "PostgreSQL 18 (local)", "ci", "machine"), "q", tuple(points))


def _heavy_tailed(rng: np.random.Generator, runs: int) -> np.ndarray:
    """A/A wall p95/p99 as this machine measures them: a steady bulk (2% spread), and in a third of the runs a
    busy second that makes the run 1.1-20x slower."""
    values = 0.2 * (1 + rng.normal(0, 0.02, runs))
    busy = rng.random(runs) < 0.3
    values[busy] *= np.exp(np.abs(rng.normal(0, 1.2, busy.sum())))
    return values


def test_the_default_finds_a_ten_percent_step_at_its_first_run_within_five_runs() -> None:
    rng = np.random.default_rng(11)
    values = 100 * (1 + rng.normal(0, 0.02, 40))
    values[30:] *= 1.10
    assert change_points(values[:31], DEFAULT) == []  # one run at the new level is never a change point
    (found,) = change_points(values[:35], DEFAULT)
    assert found.index == 30 and found.change == pytest.approx(0.10, abs=0.03) and found.pvalue <= 0.001
    assert [s.index for s in change_points(values, DEFAULT)] == [30]


def test_heavy_tailed_a_a_runs_have_no_change_point_where_the_t_test_reports_some() -> None:
    values = _heavy_tailed(np.random.default_rng(3), 150)
    assert change_points(values, DEFAULT) == []
    assert change_points(values, OTAVA) != []  # the t-test reads the busy runs' mean as levels,
    assert change_points(values, replace(DEFAULT, test="t")) != []  # even with the default's other additions


def test_runs_under_machine_load_are_left_out() -> None:
    rng = np.random.default_rng(4)
    values = list(100 * (1 + rng.normal(0, 0.02, 36)))
    values[30:] = [v * 1.4 for v in values[30:]]  # the last 6 runs shared the machine: 3x the load, 40% slower
    series = _series(values, loads=[1.0] * 30 + [3.0] * 6)
    assert detect(series, DEFAULT) == []
    (found,) = detect(series, replace(DEFAULT, suspect_load=0.0))
    assert found.index == 30 and "machine load 1.0 -> 3.0" in found.cause
    quiet = _series(values)  # the same values, no load recorded higher: a change in the code
    assert [c.index for c in detect(quiet, DEFAULT)] == [30]


def test_a_burst_of_busy_runs_is_a_blip_not_two_change_points() -> None:
    rng = np.random.default_rng(8)
    values = 100 * (1 + rng.normal(0, 0.01, 80))
    values[45:49] *= 1.5  # four runs, then back
    assert change_points(values, DEFAULT) == []
    assert [s.index for s in change_points(values, replace(DEFAULT, min_segment=0))] == [45, 49]


def test_the_rank_test_is_exact_even_with_ties() -> None:
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(1)
    for n, m in ((3, 4), (5, 30), (12, 17), (25, 25)):
        before, after = rng.normal(0, 1, n), rng.normal(0.8, 1, m)
        assert rank_test(before, after)[0] == pytest.approx(mannwhitneyu(before, after, method="exact").pvalue)
    before = np.repeat(np.arange(10.0), 3)  # 30 runs, every value three times
    after = np.array([20.0, 21.0, 21.0, 22.0, 23.0])
    assert rank_test(before, after)[0] == pytest.approx(2 / math.comb(35, 5))  # scipy's default: 4e-4
    assert rank_test(np.full(20, 57.0), np.full(5, 300.0))[0] == 0.0  # exact metrics: any difference is certain


def test_a_step_appears_once_on_the_run_that_makes_it_certain() -> None:
    rng = np.random.default_rng(11)
    values = 100 * (1 + rng.normal(0, 0.02, 40))
    values[30:] *= 1.10
    series = _series(values)
    seen = {runs: [c.index for c in appeared(replace(series, points=series.points[:runs]))] for runs in range(20, 41)}
    assert {runs: found for runs, found in seen.items() if found} == {35: [30]}  # the 5th run at the new level


def test_exports_validate_against_the_published_formats(tmp_path: Path) -> None:
    store = str(tmp_path / "h.sqlite")
    for i in range(3):
        record_file(store, result_file(tmp_path, i), Provenance(f"{i:040d}", "main"))
    with opened(store) as opened_store:
        rows = opened_store.values()
    bmf = json.loads(render(rows, "bmf"))
    jsonschema.validate(bmf, BMF_SCHEMA)
    assert bmf["latest_page"]["buffers"]["value"] == 57 and all(len(m) <= 64 for b in bmf.values() for m in b)
    gab = json.loads(render(rows, "github-action-benchmark"))
    jsonschema.validate(gab, GITHUB_ACTION_BENCHMARK_SCHEMA)
    assert any(e["name"] == "latest_page wall_p95" and e["unit"] == "ms" for e in gab)
    table = list(csv.DictReader(io.StringIO(render(rows, "otava-csv"))))
    assert [r["commit"] for r in table] == [f"{i:040d}" for i in range(3)]
    assert float(table[0]["latest_page.buffers"]) == 57


def test_baseline_from_history_takes_the_last_runs_of_a_branch(tmp_path: Path) -> None:
    store = str(tmp_path / "h.sqlite")
    for i in range(5):
        record_file(store, result_file(tmp_path, i), Provenance(f"{i}", "main" if i < 4 else "feature"))
    baseline = baseline_from_history(store, "history:main", runs=3)
    assert baseline.runs == 3 and len(baseline.series("latest_page", "buffers")) == 3
    assert {r.run.commit for r in baseline.rows} == {"1", "2", "3"}


def test_the_trend_page_renders_in_chromium_with_its_plots(tmp_path: Path) -> None:
    import os
    import re
    import shutil
    import subprocess
    import tempfile

    from chatbench.cli import main

    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but chromium is not installed: .ci/run must install it")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    store = str(tmp_path / "h.sqlite")
    files = [str(result_file(tmp_path, i)) for i in range(8)]
    files += [str(result_file(tmp_path, i, slow=1.5, buffers=300)) for i in range(8, 14)]
    assert main(["history", "add", *files, "--history", store]) == 0
    assert main(["history", "show", "latest_page", "--history", store, "--out", str(tmp_path / "out")]) == 0
    page = tmp_path / "out" / "history.html"
    with tempfile.TemporaryDirectory(prefix="chatbench-chromium-") as profile:
        dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=120, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") == 2  # wall p50 and p95 (the fixture records no CPU time)
    assert len(re.findall(r"<(path|use|rect)\b", dom.stdout)) > 30 and "Change points" in dom.stdout
    assert not re.search(r"https?://", dom.stdout)
