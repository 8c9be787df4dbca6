"""Growth classes of latency and buffers: over page depth (one run) and over data size (several runs).

Depth scaling comes from one run (``BenchSession.depth_scaling``: keyset vs OFFSET pages at
depths 1, 5, 20 and the last page). Size scaling needs one run per profile (smoke / ci / release):
``size_scaling`` fits each scenario's p50 and buffers against the number of messages. Runs of
different environments are refused (a faster machine is not a flatter curve).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from chatbench.benchmarks.results import BenchmarkRun, read
from chatbench.benchmarks.stats import fit_growth
from chatbench.convert import to_plain
from chatbench.errors import ChatbenchError


def size_scaling(runs: Sequence[BenchmarkRun]) -> dict[str, dict[str, Any]]:
    """Per scenario: messages, p50 and buffers per run, and their growth classes over data size."""
    if len(runs) < 2:
        raise ChatbenchError("size scaling needs runs of at least two profiles (e.g. smoke, ci, release)")
    base = runs[0].environment
    for run in runs[1:]:
        differing = [name for name in base.differences(run.environment, decisive_only=True)
                     if name not in ("spec", "data_sizes", "seed")]
        if differing:
            raise ChatbenchError(f"runs {runs[0].run_id} and {run.run_id} differ in {', '.join(differing)}: "
                                 "measure every profile on the same server and machine")
    by_size = sorted(runs, key=lambda r: r.environment.data_sizes.get("messages", 0))
    out: dict[str, dict[str, Any]] = {}
    names = [s.scenario for s in by_size[-1].scenarios]
    for name in names:
        points = []
        for run in by_size:
            try:
                result = run.scenario(name)
            except KeyError:
                continue
            points.append((run.environment.data_sizes.get("messages", 0), result.stats.p50,
                           result.buffers.total if result.buffers else None, result.stats.iqr))
        sizes = [float(p[0]) for p in points]
        entry: dict[str, Any] = {"messages": [p[0] for p in points], "p50_ms": [p[1] for p in points],
                                 "latency": to_plain(fit_growth(sizes, [p[1] for p in points], [p[3] for p in points]))}
        buffers = [p[2] for p in points if p[2] is not None]
        if len(buffers) == len(points):
            entry["buffers"] = buffers
            entry["buffer_growth"] = to_plain(fit_growth(sizes, [float(b) for b in buffers]))
        out[name] = entry
    return out


def render(fits: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'scenario':<26}{'messages':>28}  {'p50 ms':<30}{'latency':<13}{'buffers':<24}growth"]
    for name, entry in fits.items():
        p50 = ", ".join(f"{v:.3f}" for v in entry["p50_ms"])
        buffers = ", ".join(str(b) for b in entry.get("buffers", []))
        lines.append(f"{name:<26}{', '.join(str(m) for m in entry['messages']):>28}  {p50:<30}"
                     f"{entry['latency']['growth_class']:<13}{buffers:<24}"
                     f"{entry.get('buffer_growth', {}).get('growth_class', '-')}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m chatbench.benchmarks.scaling RUN.json RUN.json ...``: growth class per scenario over data size."""
    parser = argparse.ArgumentParser(prog="python -m chatbench.benchmarks.scaling", description=main.__doc__)
    parser.add_argument("runs", nargs="+", help="chatbench results JSON of one profile each (bench-run.json)")
    args = parser.parse_args(argv)
    try:
        print(render(size_scaling([read(path) for path in args.runs])))
    except ChatbenchError as exc:
        print(f"scaling: error: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
