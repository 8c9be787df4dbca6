"""Start the load clients as processes, wait for them, merge their histograms into a ``LoadResult``.

Processes, not threads: one Python client saturates a core's worth of interpreter time at these
latencies, and the GIL would make N threads measure Python, not PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.context import SpawnContext
from typing import Any

from hdrh.histogram import HdrHistogram

from chatbench.benchmarks.loadtest.mix import OPERATIONS, not_measurable
from chatbench.benchmarks.loadtest.worker import START_TIMEOUT_S, ClientTask, join_start, new_histogram, run_client
from chatbench.benchmarks.results import LoadResult, OperationLoadResult
from chatbench.errors import ChatbenchError, ConfigError
from chatbench.schema.queries import QUERIES_BY_NAME

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}


@dataclass(frozen=True)
class LoadConfig:
    clients: int = 1
    duration_s: float = 10.0
    warmup_s: float = 1.0
    rate_per_s: float | None = None  # total arrival rate (open loop); None = closed loop
    weights: Mapping[str, float] = field(default_factory=dict)
    seed: int = 1

    def validate(self) -> None:
        if self.clients < 1:
            raise ConfigError(f"--clients {self.clients}: must be at least 1")
        if self.duration_s <= 0:
            raise ConfigError(f"--duration {self.duration_s}: must be greater than 0 seconds")
        if self.warmup_s < 0:
            raise ConfigError(f"--warmup {self.warmup_s}: must be 0 or more seconds")
        if self.rate_per_s is not None and self.rate_per_s <= 0:
            raise ConfigError(f"--rate {self.rate_per_s}: must be greater than 0 operations per second")


def _operation(name: str, query: str, histogram: HdrHistogram, raw: HdrHistogram,
               errors: int) -> OperationLoadResult:
    """Percentiles (ms) of the corrected histogram, plus the uncorrected p99: the gap is what
    coordinated omission would have hidden."""
    count = histogram.get_total_count()
    nan = float("nan")
    percentiles = {label: histogram.get_value_at_percentile(p) / 1000.0 if count else nan
                   for label, p in PERCENTILES.items()}
    percentiles["max"] = histogram.get_max_value() / 1000.0 if count else nan
    percentiles["p99_uncorrected"] = raw.get_value_at_percentile(99.0) / 1000.0 if raw.get_total_count() else nan
    return OperationLoadResult(name, query, int(raw.get_total_count()), errors, percentiles,
                               histogram.get_mean_value() / 1000.0 if count else nan,
                               histogram.encode().decode())


def _run_clients(context: SpawnContext, tasks: list[ClientTask]) -> list[dict[str, Any]]:
    """One process per task, started together once all have connected (a barrier, not a guessed delay: a
    client's start-up is 0.2 s on a quiet machine and seconds on a busy one).

    A client that fails aborts the barrier, so the others raise ``BrokenBarrierError``: the error raised
    here is the failing client's own, whichever client's result arrives first."""
    barrier = context.Barrier(len(tasks))
    with context.Pool(len(tasks), initializer=join_start, initargs=(barrier,)) as pool:
        pending = [pool.apply_async(run_client, (task,)) for task in tasks]
        outputs: list[dict[str, Any]] = []
        own_errors: list[Exception] = []
        broken = False
        for result in pending:
            try:
                outputs.append(result.get())
            except threading.BrokenBarrierError:
                broken = True
            except Exception as exc:
                own_errors.append(exc)
    if own_errors:
        raise own_errors[0]
    if broken:
        raise ChatbenchError(f"load: not all {len(tasks)} clients connected within {START_TIMEOUT_S:g} s")
    return outputs


def run_load(conninfo: str, config: LoadConfig, pools: Mapping[str, list[dict[str, Any]]],
             progress: Callable[[str], None] = lambda _m: None) -> LoadResult:
    """Run ``config.clients`` processes for warm-up + duration and merge what they measured.

    An operation a Citus cluster refuses (``mix.not_measurable``) leaves the mix before the clients start and
    is reported once, with the reason, in ``LoadResult.not_measured``: not as errors of every try."""
    config.validate()
    weights = {name: w for name, w in config.weights.items() if w > 0}
    refused = not_measurable(conninfo, {n: OPERATIONS[n].query for n in weights}, pools)
    for name, why in refused.items():
        progress(f"{name}: {why}; left out of the mix")
        del weights[name]
    if not weights:
        raise ConfigError(f"--mix: every operation is refused by this server ({'; '.join(refused.values())}); "
                          "give weight to another operation")
    per_client_rate = None if config.rate_per_s is None else config.rate_per_s / config.clients
    context = multiprocessing.get_context("spawn")  # no inherited connections or locks
    queries = {n: QUERIES_BY_NAME[OPERATIONS[n].query] for n in weights}
    tasks = [ClientTask(i, conninfo, {n: q.sql() for n, q in queries.items()},
                        {n: q.returns_rows for n, q in queries.items()}, weights,
                        {n: list(pools[n]) for n in weights}, config.warmup_s, config.duration_s,
                        per_client_rate, config.seed) for i in range(config.clients)]
    loop = "closed loop" if config.rate_per_s is None else f"open loop at {config.rate_per_s:.0f}/s"
    progress(f"{config.clients} client(s), {loop}, {config.warmup_s:g} s warm-up + {config.duration_s:g} s")
    outputs = _run_clients(context, tasks)
    merged = {n: new_histogram() for n in weights}
    raw_merged = {n: new_histogram() for n in weights}
    errors = dict.fromkeys(weights, 0)
    samples: list[str] = []
    for out in outputs:
        for name in weights:
            merged[name].add(HdrHistogram.decode(out["histograms"][name]))
            raw_merged[name].add(HdrHistogram.decode(out["raw_histograms"][name]))
            errors[name] += out["errors"][name]
        samples += out["error_samples"]
    overall, raw_overall = new_histogram(), new_histogram()
    for name in weights:
        overall.add(merged[name])
        raw_overall.add(raw_merged[name])
    total = sum(int(sum(out["counts"].values())) for out in outputs)
    elapsed = max(out["elapsed_s"] for out in outputs)
    return LoadResult(
        clients=config.clients, duration_s=elapsed, mode="closed" if config.rate_per_s is None else "open",
        rate_per_s=config.rate_per_s, weights=weights, throughput_per_s=total / elapsed if elapsed else 0.0,
        total=total, errors=sum(errors.values()), corrected_for_coordinated_omission=True,
        operations=tuple(_operation(n, OPERATIONS[n].query, merged[n], raw_merged[n], errors[n]) for n in weights),
        overall=_operation("all", "*", overall, raw_overall, sum(errors.values())),
        error_samples=tuple(samples[:10]),
        not_measured=refused,
        correction=("closed loop: HdrHistogram record_corrected_value, expected interval = each client's "
                    f"warm-up median ({', '.join(str(out['expected_interval_us']) for out in outputs)} µs)"
                    if config.rate_per_s is None else
                    "open loop: latency measured from each request's intended (scheduled) start"))
