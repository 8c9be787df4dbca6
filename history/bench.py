"""Benchmark of the change-point detector: false change points on A/A series, detection delay of injected
steps, and agreement with Apache Otava run on the same series.

    python -m chatbench.history.bench --history A_A_STORE [--quiet-runs N] [--otava-python PYTHON]

- A/A: every series of a store filled with repeated runs of one commit (``chatbench signoff --profile
  ci`` on one machine, added with ``history add``): every change point found there is false. The first
  ``--quiet-runs`` runs are the A/A reference; the whole store (runs after those measured under load)
  is reported apart, with how many of its change points name the machine load as their likely cause.
  Then longer synthetic series drawn (with replacement) from each series' quiet runs (value, interval
  and load together): false change points per series of ``--length`` runs.
- Delay: synthetic series of 60 runs with a step of +10% (and +3%) injected at run 30; the detector is
  run after each new run, and the delay is the number of runs after the step until a change point
  within two runs of it is reported (missed: not within ``--horizon`` runs).
- Agreement: the real A/A series and stepped synthetic ones given to ``otava.analysis.
  compute_change_points`` (its defaults: window 50, p 0.001) in another venv (Otava pins numpy and
  pulls cloud SDKs, so it never enters chatbench's), against ``edivisive.OTAVA``: the share of series
  where both report the same change points.

Every setting in ``SETTINGS`` is measured on the same synthetic series (one seed). Prints a block per
setting and a summary table that fit 80 columns; asserts nothing (quality targets are read, not tested).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from chatbench.history import edivisive
from chatbench.history.edivisive import Options
from chatbench.history.records import EXACT_METRICS
from chatbench.history.series import Series, build_series, detect, noise, splits
from chatbench.history.store import opened

LOW_NOISE = ("cpu_p10", *EXACT_METRICS)
GROUPS = ("low-noise", "wall p50", "wall p95/p99")
"""low-noise: cpu_p10, buffers, rows; then the wall-clock median apart from its tail: the median is as
steady as CPU time, the tail is where other processes on the machine show."""
STEADY = 0.02
"""A series is steady when its A/A runs' robust spread (1.4826 MAD / median) is at most 2%: a 10% step
is then 5 spreads; in a noisier series the bench also reports it, apart."""
STEPS = (0.10, 0.03)
STEP_AT, STEP_LENGTH, WITHIN = 30, 60, 5
SETTINGS: tuple[Options, ...] = (
    edivisive.OTAVA,
    Options(max_pvalue=0.0001, min_magnitude=0.05),
    Options(test="ranks", max_pvalue=0.001, min_magnitude=0.05),
    Options(test="ranks", max_pvalue=0.001, min_magnitude=0.05, min_segment=5),
    edivisive.DEFAULT,
    Options(test="ranks", max_pvalue=0.001, min_magnitude=0.05, min_segment=5, suspect_load=1.5, noise_factor=1.0),
    Options(test="ranks", max_pvalue=0.002, min_magnitude=0.05, min_segment=5, suspect_load=1.5),
    Options(test="ranks", max_pvalue=0.001, min_magnitude=0.03, min_segment=5, suspect_load=1.5),
)
"""Otava's defaults; the t-test at the best threshold it had; the rank test, each addition in turn up to
``DEFAULT``; then the candidates it was chosen over (noise floor, a looser p, a smaller minimum change)."""
OTAVA_SCRIPT = """
import json, sys
from otava.analysis import compute_change_points
out = []
for values in json.load(sys.stdin):
    out.append([int(c.index) for c in compute_change_points([float(v) for v in values])[0]])
json.dump(out, sys.stdout)
"""


def group(metric: str) -> str:
    return "low-noise" if metric in LOW_NOISE else ("wall p50" if metric == "wall_p50" else "wall p95/p99")


@dataclass(frozen=True)
class Sample:
    """One series as the detector reads it: values, each run's relative interval half-width, its load."""

    group: str
    values: np.ndarray
    noise: np.ndarray
    loads: tuple[float | None, ...]
    steady: bool = False  # the measured series it is drawn from is steady (``STEADY``)

    @classmethod
    def of(cls, series: Series, runs: int) -> Sample:
        points = series.points[:runs]
        values = np.asarray([p.measurement.value for p in points], dtype=float)
        middle = float(np.median(values))
        spread = 1.4826 * float(np.median(np.abs(values - middle))) / middle if middle else 0.0
        return cls(group(series.key.metric), values, np.asarray(noise(points), dtype=float),
                   tuple(p.run.load_per_cpu for p in points), spread <= STEADY)

    def drawn(self, length: int, rng: np.random.Generator) -> Sample:
        """``length`` runs drawn with replacement (value, interval and load of one run together)."""
        picked = rng.integers(0, len(self.values), size=length)
        return replace(self, values=self.values[picked], noise=self.noise[picked],
                       loads=tuple(self.loads[i] for i in picked))

    def stepped(self, at: int, step: float) -> Sample:
        values = self.values.copy()
        values[at:] *= 1.0 + step
        return replace(self, values=values)

    def first(self, runs: int) -> Sample:
        return replace(self, values=self.values[:runs], noise=self.noise[:runs], loads=self.loads[:runs])

    def indices(self, options: Options) -> list[int]:
        return [index for _, index, _ in splits(list(self.values), list(self.noise), self.loads, options)]

    def constant(self) -> bool:
        return bool(np.ptp(self.values) == 0)


@dataclass(frozen=True)
class Inputs:
    """What every setting is measured on: the same real and synthetic series."""

    reference: tuple[Sample, ...]  # the real series, their first quiet runs
    quiet_runs: int
    whole: tuple[Series, ...]
    whole_runs: int
    synthetic: tuple[Sample, ...]
    stepped: dict[float, tuple[Sample, ...]]


@dataclass(frozen=True)
class Quality:
    """One setting's numbers, per group."""

    options: Options
    real: dict[str, tuple[int, int]]  # group -> (series with a false change point, series)
    whole: dict[str, tuple[int, int, int]]  # group -> (series with a change point, of them naming load, series)
    synthetic: dict[str, tuple[int, int]]
    delays: dict[float, dict[str, list[tuple[int | None, bool]]]]  # step -> group -> (delay, steady series)
    seconds: float


def _flagged(samples: Sequence[Sample], options: Options) -> dict[str, tuple[int, int]]:
    counts = {g: [0, 0] for g in GROUPS}
    for sample in samples:
        counts[sample.group][0] += bool(sample.indices(options))
        counts[sample.group][1] += 1
    return {g: (c[0], c[1]) for g, c in counts.items()}


def _whole(all_series: Sequence[Series], options: Options) -> dict[str, tuple[int, int, int]]:
    counts = {g: [0, 0, 0] for g in GROUPS}
    for series in all_series:
        found = detect(series, options)
        counts[group(series.key.metric)][0] += bool(found)
        counts[group(series.key.metric)][1] += any("machine load" in c.cause for c in found)
        counts[group(series.key.metric)][2] += 1
    return {g: (c[0], c[1], c[2]) for g, c in counts.items()}


def delay(sample: Sample, at: int, horizon: int, options: Options) -> int | None:
    """Runs after the step (1 = found on the first run at the new level) until it is reported near ``at``."""
    for seen in range(at + 1, min(at + horizon, len(sample.values)) + 1):
        if any(abs(i - at) <= 2 for i in sample.first(seen).indices(options)):
            return seen - at
    return None


def measure(inputs: Inputs, options: Options, horizon: int) -> Quality:
    started = time.perf_counter()
    delays: dict[float, dict[str, list[tuple[int | None, bool]]]] = {}
    for step, samples in inputs.stepped.items():
        by_group: dict[str, list[tuple[int | None, bool]]] = {g: [] for g in GROUPS}
        for sample in samples:
            by_group[sample.group].append((delay(sample, STEP_AT, horizon, options), sample.steady))
        delays[step] = by_group
    return Quality(options, _flagged(inputs.reference, options), _whole(inputs.whole, options),
                   _flagged(inputs.synthetic, options), delays, time.perf_counter() - started)


def _share(count: int, total: int) -> str:
    if not total:
        return "-"
    share = count / total
    return f"{count}/{total} {share:.1%}" if share < 0.1 else f"{count}/{total} {share:.0%}"


def _found(delays: Sequence[int | None]) -> tuple[int, int, str]:
    """(found within WITHIN runs, steps, median delay of those found within the horizon)."""
    hits = sorted(d for d in delays if d is not None)
    within = sum(1 for d in hits if d <= WITHIN)
    return within, len(delays), (f"{hits[len(hits) // 2]}" if hits else "-")


LABEL, CELL = 38, 14


def block(quality: Quality, inputs: Inputs, length: int, trials: int, shipped: bool) -> list[str]:
    """One setting, one line per measurement, a column per group: 80 columns wide."""
    lines = [f"== {quality.options.describe()}" + ("  [default]" if shipped else ""),
             " " * LABEL + "".join(f"{g:>{CELL}}" for g in GROUPS)]

    def row(label: str, cells: Sequence[str]) -> None:
        lines.append(f"{label:{LABEL}}" + "".join(f"{c:>{CELL}}" for c in cells))

    row(f"A/A real, {inputs.quiet_runs} runs: series with a CP", [_share(*quality.real[g]) for g in GROUPS])
    if inputs.whole_runs > inputs.quiet_runs:
        row(f"A/A real, all {inputs.whole_runs} runs: with a CP",
            [_share(quality.whole[g][0], quality.whole[g][2]) for g in GROUPS])
        row("  of them naming the machine load", [str(quality.whole[g][1]) for g in GROUPS])
    row(f"A/A synthetic, {length} runs x{trials}: with a CP", [_share(*quality.synthetic[g]) for g in GROUPS])
    for step, by_group in quality.delays.items():
        found = [_found([d for d, _ in by_group[g]]) for g in GROUPS]
        steady = [_found([d for d, quiet in by_group[g] if quiet]) for g in GROUPS]
        row(f"+{step:.0%} step found within {WITHIN} runs", [_share(f[0], f[1]) for f in found])
        row(f"  in steady series (spread <= {STEADY:.0%})", [_share(f[0], f[1]) for f in steady])
        row("  median delay (runs)", [f[2] for f in found])
    lines.append(f"measured in {quality.seconds:.1f} s")
    return lines


def summary(qualities: Sequence[Quality]) -> list[str]:
    """Every setting in two lines: its name, then % of series per group (low-noise/wall p50/wall p95-p99)."""
    lines = ["summary, % of series: low-noise / wall p50 / wall p95-p99",
             "  " + "".join(f"{h:<16}" for h in ("A/A real", "A/A synthetic", f"+10% <= {WITHIN} runs",
                                                  f"+3% <= {WITHIN} runs")).rstrip()]
    for q in qualities:
        def shares(cells: Sequence[tuple[int, int]], digits: int) -> str:
            return "/".join(f"{100 * c[0] / c[1]:.{digits}f}" if c[1] else "-" for c in cells)

        found = [shares([_found([d for d, _ in q.delays[s][g]])[:2] for g in GROUPS], 0) for s in STEPS]
        cells = [shares([q.real[g] for g in GROUPS], 0), shares([q.synthetic[g] for g in GROUPS], 1), *found]
        lines.append(q.options.describe() + ("  [default]" if q.options == edivisive.DEFAULT else ""))
        lines.append(("  " + "".join(f"{c:<16}" for c in cells)).rstrip())
    return lines


def otava_indices(python: str, batch: Sequence[Sequence[float]]) -> list[list[int]]:
    done = subprocess.run([python, "-c", OTAVA_SCRIPT], input=json.dumps([list(map(float, v)) for v in batch]),
                          capture_output=True, text=True, check=True, timeout=3600)
    return [list(map(int, found)) for found in json.loads(done.stdout)]


def agreement(inputs: Inputs, python: str) -> list[str]:
    lines = []
    real = [list(s.values) for s in inputs.reference]
    stepped = [list(s.values) for s in inputs.stepped[STEPS[0]]][: len(real)]
    for name, batch in (("A/A real", real), ("+10% step", stepped)):
        theirs = otava_indices(python, batch)
        ours = [Sample("", np.asarray(v), np.zeros(len(v)), (None,) * len(v)).indices(edivisive.OTAVA) for v in batch]
        same = sum(1 for a, b in zip(ours, theirs, strict=True) if a == b)
        extra = sum(1 for a, b in zip(ours, theirs, strict=True) if set(a) < set(b))
        lines.append(f"apache-otava vs t-test (Otava) on {name}: {same}/{len(batch)} identical, otava has extra "
                     f"points in {extra}")
    lines.append("(extra points: Otava's merge step keeps a stale p-value for the left neighbour of a removed one)")
    return lines


def inputs_of(location: str, quiet_runs: int | None, length: int, trials: int, seed: int) -> Inputs:
    with opened(location, create=False) as store:
        rows = store.values()
    whole = tuple(s for s in build_series(rows) if len(s.points) >= 2)
    whole_runs = max(len(s.points) for s in whole)
    runs = min(quiet_runs or whole_runs, whole_runs)
    reference = tuple(Sample.of(s, runs) for s in whole)
    rng = np.random.default_rng(seed)
    synthetic = tuple(s.drawn(length, rng) for s in reference for _ in range(trials))
    stepped = {}
    for step in STEPS:
        # a constant exact series: any step is certain at once (p = 0), whatever the setting; left out
        stepped[step] = tuple(s.drawn(STEP_LENGTH, rng).stepped(STEP_AT, step)
                              for s in reference if not s.constant() for _ in range(trials))
    return Inputs(reference, runs, whole, whole_runs, synthetic, stepped)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", required=True, help="a store of A/A runs (one commit, one machine)")
    parser.add_argument("--quiet-runs", type=int, default=None,
                        help="the first N runs are the A/A reference (default all; later ones ran under load)")
    parser.add_argument("--length", type=int, default=200, help="runs per synthetic A/A series")
    parser.add_argument("--trials", type=int, default=10, help="synthetic series per measured series")
    parser.add_argument("--horizon", type=int, default=10, help="runs after a step before it counts as missed")
    parser.add_argument("--otava-python", default=None, help="python of a venv with apache-otava installed")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    inputs = inputs_of(args.history, args.quiet_runs, args.length, args.trials, args.seed)
    print(f"A/A store {args.history}: {len(inputs.reference)} series, {inputs.whole_runs} runs, the first "
          f"{inputs.quiet_runs} the reference; steps at run {STEP_AT} of {STEP_LENGTH}, "
          f"{len(inputs.stepped[STEPS[0]])} series per step")
    qualities = []
    for options in SETTINGS:
        quality = measure(inputs, options, args.horizon)
        qualities.append(quality)
        print("\n".join(block(quality, inputs, args.length, args.trials, options == edivisive.DEFAULT)), flush=True)
    print("\n".join(summary(qualities)))
    if args.otava_python:
        print("\n".join(agreement(inputs, args.otava_python)))
    print(f"bench time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
