"""The sentences every renderer uses to say how latency was judged and what noise was measured.

One wording for Markdown, HTML and the terminal, so a reader gets the same explanation wherever
they look, and it matches what ``chatbench.benchmarks.verdict`` and ``chatbench.reports.compare`` do.
"""

from __future__ import annotations

import numpy as np

from chatbench.benchmarks.noise import pooled
from chatbench.benchmarks.results import BenchmarkRun, ScenarioResult
from chatbench.benchmarks.stats import PERCENTILE_CONFIDENCE

LATENCY_RULE = (
    "p95/p99: the wall-clock percentile over every round of the measurement that decided (the number "
    "judged, shown everywhere). [low–high]: the interval it was judged with. High: the percentile's "
    f"{PERCENTILE_CONFIDENCE:.0%} upper confidence bound (a busy machine only adds to it). Low: the same "
    "percentile of the rounds' CPU time (client + backend: what the query costs without waiting for a "
    "CPU), or, where CPU time cannot be measured, the high end less what the machine added to a fixed "
    "round trip. PASS: high ≤ target. FAIL: low > target (the query itself is too slow). INCONCLUSIVE: "
    "the target lies inside the interval, the machine's noise hides the answer; the scenario was measured "
    "again first. Buffers, rows and plans are deterministic and judged exactly."
)


def noise_summary(run: BenchmarkRun) -> str:
    """One sentence naming the noise a run measured (calibration probes, machine load, CPU-time source)."""
    parts: list[str] = []
    if run.calibration:
        trips = pooled(run.calibration, "round_trip_ms")
        loops = pooled(run.calibration, "cpu_loop_ms")
        loop_cpu = pooled(run.calibration, "cpu_loop_cpu_ms")
        p50, p99 = np.percentile(trips, [50, 99])
        text = (f"{len(run.calibration)} calibration probes: a fixed round trip took p50 {p50:.3f} ms, "
                f"p99 {p99:.3f} ms; a fixed CPU loop took p50 {np.median(loops):.3f} ms, "
                f"p95 {np.percentile(loops, 95):.3f} ms of wall time")
        if loop_cpu.size:
            text += f" for {np.median(loop_cpu):.3f} ms of CPU time"
        parts.append(text)
    if run.machine is not None:
        parts.append(f"machine: {run.machine.describe()}")
    if run.cpu_time:
        parts.append(f"CPU time per round: {run.cpu_time}")
    return "Noise measured: " + "; ".join(parts) + "." if parts else "Noise: not measured (an older result file)."


def interval_cell(result: ScenarioResult, statistic: str) -> str:
    """``0.152 [0.121–0.160]``: the judged value and the interval that decided (value alone when not judged)."""
    judgement = result.judgement(statistic)
    value = result.stats.percentile(statistic)
    if judgement is None:
        return f"{value:.3f}"
    return f"{judgement.value_ms:.3f} [{judgement.low_ms:.3f}–{judgement.high_ms:.3f}]"


def verdict_words(result: ScenarioResult) -> str:
    """The verdict and, when it took more than one measurement, how many."""
    if result.verdict == "NO TARGET":
        return "no target"
    more = f" ({result.attempts} measurements)" if result.attempts > 1 else ""
    return result.verdict + more
