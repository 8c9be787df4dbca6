"""One benchmark per canonical query x scenario, judged against ``targets.toml``.

Each test times its scenario with ``benchmark.pedantic`` (pytest-benchmark keeps the raw round
times), computes p50/p95/p99/IQR/CV from them with ``chatbench.benchmarks.stats`` and stores statistics, raw
samples (ms), buffers and verdict in ``benchmark.extra_info`` (``benchmarks.publish.extra_info``, as
``chatbench bench --json`` writes them), so ``--benchmark-json`` holds them.
A missed budget fails the test with one line: ``scenario: p95 1.230 ms > target 0.800 ms (...)``; a
target the machine's noise left undecided skips it with the reason (INCONCLUSIVE: pytest counts a skip
as no failure; ``chatbench bench``, which measures the same scenarios through
``benchmarks.session.measure_scenarios``, exits 3).
Writes come last (see ``benchmarks/scenarios.py`` for how they are committed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chatbench.benchmarks.publish import extra_info
from chatbench.benchmarks.scenarios import SCENARIOS, Scenario, runner
from chatbench.benchmarks.session import BenchSession, time_rounds


def _pedantic(benchmark: Any) -> Callable[[Callable[[], Any], int, int], list[float]]:
    def timed(target: Callable[[], Any], rounds: int, warmup: int) -> list[float]:
        benchmark.pedantic(target, rounds=rounds, iterations=1, warmup_rounds=warmup)
        return list(benchmark.stats.stats.data)

    return timed


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_history(benchmark: Any, bench_session: BenchSession, scenario: Scenario) -> None:
    benchmark.group = scenario.query
    params = bench_session.params_for(scenario)
    if not params:
        reason = bench_session.no_instance(scenario)
        bench_session.skipped[scenario.name] = reason
        pytest.skip(reason)
    if benchmark.disabled:  # --benchmark-disable: prove every parameter set runs, judge nothing
        run = runner(bench_session.conn, scenario.canonical, bench_session.driver)
        assert all(run(p) >= 0 for p in params)
        return
    result = bench_session.measure(scenario, _pedantic(benchmark), params=params, retry_timed=time_rounds)
    benchmark.extra_info.update(extra_info(result, bench_session.pinning.describe()))  # as bench.json has it
    if result.failures:
        pytest.fail("; ".join(result.failures), pytrace=False)
    if result.undecided:  # not a failure: the machine's noise hid the answer (``chatbench bench`` exits 3)
        pytest.skip("INCONCLUSIVE: " + "; ".join(result.undecided))
