"""Benchmark of the change-point detector: false change points on A/A series, detection delay of injected
steps, and agreement with Apache Otava run on the same series.

    python -m chatbench.history.bench --history A_A_STORE [--otava-python /tmp/otava-venv/bin/python]

- A/A: every series of a store filled with repeated runs of one commit (``chatbench signoff --profile
  ci`` on one machine, added with ``history add``): every change point found there is false. Then longer
  synthetic series drawn (with replacement) from each series' measured values: false change points
  per series of ``--length`` runs.
- Delay: the same synthetic series with a step of +10% (and +3%) injected at run ``--length // 2``;
  the detector is run after each new run, and the delay is the number of runs after the step until a
  change point within two runs of it is reported (missed: not within ``--horizon`` runs).
- Agreement: the real A/A series and the synthetic stepped ones given to ``otava.analysis.
  compute_change_points`` (its defaults: window 50, p 0.001) in another venv (Otava pins numpy and
  pulls cloud SDKs, so it never enters chatbench's); the share of series where both report the same
  change points.

Prints numbers; asserts nothing (speed and quality targets are read, not tested).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from chatbench.history import edivisive
from chatbench.history.records import EXACT_METRICS
from chatbench.history.series import Series, build_series
from chatbench.history.store import opened

LOW_NOISE = ("cpu_p10", *EXACT_METRICS)
OTAVA_SCRIPT = """
import json, sys
from otava.analysis import compute_change_points
out = []
for values in json.load(sys.stdin):
    out.append([int(c.index) for c in compute_change_points([float(v) for v in values])[0]])
json.dump(out, sys.stdout)
"""


def _group(series: Series) -> str:
    return "low-noise (cpu_p10, buffers, rows)" if series.key.metric in LOW_NOISE else "wall (p50, p95, p99)"


@dataclass(frozen=True)
class Detector:
    """One configuration of the detector being measured."""

    max_pvalue: float = edivisive.MAX_PVALUE
    min_magnitude: float = edivisive.MIN_MAGNITUDE

    def indices(self, values: Sequence[float] | np.ndarray) -> list[int]:
        return [s.index for s in edivisive.change_points(np.asarray(values, dtype=float), max_pvalue=self.max_pvalue,
                                                         min_magnitude=self.min_magnitude)]


CONFIGS: tuple[Detector, ...] = (Detector(0.001, 0.0), Detector(0.001, 0.05), Detector(0.0001, 0.05))
"""Otava's defaults first, then with a minimum relative change and a lower p."""
OTAVA_DEFAULTS = Detector()


Tally = dict[str, tuple[int, int, int]]
"""group -> (series, series with a false change point, false change points)."""


def _tally(found: Iterable[tuple[Series, list[int]]]) -> Tally:
    result: dict[str, list[int]] = {}
    for series, points in found:
        counts = result.setdefault(_group(series), [0, 0, 0])
        counts[0] += 1
        counts[1] += bool(points)
        counts[2] += len(points)
    return {k: (v[0], v[1], v[2]) for k, v in result.items()}


def aa_real(all_series: Sequence[Series], detector: Detector) -> Tally:
    return _tally((series, detector.indices(series.values())) for series in all_series)


def synthetic(series: Series, length: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(np.asarray(series.values(), dtype=float), size=length, replace=True)


def aa_synthetic(all_series: Sequence[Series], length: int, trials: int, rng: np.random.Generator,
                 detector: Detector) -> Tally:
    return _tally((series, detector.indices(synthetic(series, length, rng)))
                  for series in all_series for _ in range(trials))


def delay(values: np.ndarray, at: int, horizon: int, detector: Detector) -> int | None:
    """Runs after the step (1 = found on the first run at the new level) until it is reported near ``at``."""
    for seen in range(at + 1, min(at + horizon, len(values)) + 1):
        if any(abs(i - at) <= 2 for i in detector.indices(values[:seen])):
            return seen - at
    return None


def delays(all_series: Sequence[Series], step: float, length: int, horizon: int, trials: int,
           rng: np.random.Generator, detector: Detector) -> dict[str, list[int | None]]:
    result: dict[str, list[int | None]] = {}
    at = length // 2
    for series in all_series:
        if series.key.metric in EXACT_METRICS and np.ptp(series.values()) == 0:
            continue  # a constant exact series: any step is certain at once (p = 0); counted apart below
        for _ in range(trials):
            values = synthetic(series, length, rng)
            values[at:] *= 1.0 + step
            result.setdefault(_group(series), []).append(delay(values, at, horizon, detector))
    return result


def otava_indices(python: str, batch: Sequence[Sequence[float]]) -> list[list[int]]:
    done = subprocess.run([python, "-c", OTAVA_SCRIPT], input=json.dumps([list(map(float, v)) for v in batch]),
                          capture_output=True, text=True, check=True, timeout=3600)
    return [list(map(int, found)) for found in json.loads(done.stdout)]


def _summary(found: list[int | None]) -> str:
    hits = sorted(d for d in found if d is not None)
    if not found:
        return "no series"
    within5 = sum(1 for d in hits if d <= 5)
    median = f"median {hits[len(hits) // 2]} runs" if hits else "none detected"
    missed = len(found) - len(hits)
    return f"{within5}/{len(found)} ({within5 / len(found):.0%}) within 5 runs, {median}, {missed} missed"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", required=True, help="a store of A/A runs (one commit, one machine)")
    parser.add_argument("--length", type=int, default=200, help="runs per synthetic series")
    parser.add_argument("--trials", type=int, default=5, help="synthetic series per measured series")
    parser.add_argument("--horizon", type=int, default=10, help="runs after a step before it counts as missed")
    parser.add_argument("--otava-python", default=None, help="python of a venv with apache-otava installed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=None, help="only the first N runs of the store")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    with opened(args.history) as store:
        rows = store.values()
    if args.runs is not None:
        kept = set(list(dict.fromkeys(r.run.run_key for r in rows))[: args.runs])
        rows = [r for r in rows if r.run.run_key in kept]
    all_series = [s for s in build_series(rows) if len(s.points) >= 2]
    runs = max(len(s.points) for s in all_series)
    print(f"A/A store {args.history}: {len(all_series)} series, {runs} runs")
    for detector in CONFIGS:
        print(f"-- detector: max p-value {detector.max_pvalue:g}, min change {detector.min_magnitude:.0%}")
        _quality(all_series, runs, args, rng, detector)
    if args.otava_python:
        _agreement(all_series, args.otava_python, rng)
    return 0


def _quality(all_series: Sequence[Series], runs: int, args: argparse.Namespace, rng: np.random.Generator,
             detector: Detector) -> None:
    started = time.perf_counter()
    for group, (count, flagged, total) in sorted(aa_real(all_series, detector).items()):
        print(f"A/A real ({runs} runs) {group}: {flagged}/{count} series with a false change point "
              f"({flagged / count:.1%}), {total} false change points")
    for group, (count, flagged, total) in sorted(aa_synthetic(all_series, args.length, args.trials, rng,
                                                                            detector).items()):
        print(f"A/A synthetic ({args.length} runs, {args.trials} per series) {group}: {flagged}/{count} series "
              f"with a false change point ({flagged / count:.1%}), {total} false change points")
    for step in (0.10, 0.03):
        for group, found in sorted(delays(all_series, step, 60, args.horizon, args.trials, rng,
                                                    detector).items()):
            print(f"step +{step:.0%} at run 30 of 60, {group}: {_summary(found)}")
    print(f"detector time: {time.perf_counter() - started:.1f} s")


def _agreement(all_series: Sequence[Series], python: str, rng: np.random.Generator) -> None:
    stepped: list[np.ndarray] = []
    real = [s.values() for s in all_series]
    for series in all_series:
        values = synthetic(series, 60, rng)
        values[30:] *= 1.10
        stepped.append(values)
    for name, batch in (("A/A real", real), ("synthetic +10% step", [list(v) for v in stepped])):
        theirs = otava_indices(python, batch)
        ours = [OTAVA_DEFAULTS.indices(v) for v in batch]
        same = sum(1 for a, b in zip(ours, theirs, strict=True) if a == b)
        extra = sum(1 for a, b in zip(ours, theirs, strict=True) if set(a) < set(b))
        print(f"agreement with apache-otava, {name}: {same}/{len(batch)} series identical change points "
              f"({same / len(batch):.0%}); otava reports extra points in {extra} (its merge step keeps a "
              "stale p-value for the left neighbour of a removed point)")


if __name__ == "__main__":
    sys.exit(main())
