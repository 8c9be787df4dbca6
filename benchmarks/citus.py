"""The same history on one node and on a Citus cluster, side by side: the seed and every history query.

Seed (same spec, same seed, so the same rows):

- single node: ``loadgen.seed`` on the ``local`` backend;
- cluster, full seed through the coordinator: the distribution step on the empty schema (re-key, place:
  ``chatbench.schema.distributed.seeding_distributed``), ``loadgen.seed`` into the distributed tables where
  they stand (its COPY through the coordinator into the shards, indexes and keys built on every shard), then
  the variant's foreign keys and triggers. (Until 2026-12 the seed went into plain tables on the coordinator
  and ``create_distributed_table`` moved the rows: 1.15-1.6x slower in four paired runs, see the README.)
- cluster, raw COPY: the same rows (dumped from the cluster beforehand, in key order as the seeder writes
  them) copied through the coordinator into bare distributed tables of the same variant in a database of
  their own: the cluster's COPY limit.

Queries: every benchmark scenario's canonical query with the scenario's parameters (the seed's whales
and heavy users), as a prepared statement through psycopg, on each server: p50, p95 and the shared
buffers of one execution (on the cluster: the coordinator's plus every shard's, from the distributed
``EXPLAIN (ANALYZE, BUFFERS)``), and whether Citus routed it to one shard.

Run: ``python -m chatbench.benchmarks.citus --profile ci`` (``CHATBENCH_CITUS_TARBALL`` names the tarball).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from chatbench.benchmarks.results import BenchmarkRun
from chatbench.benchmarks.scenarios import SCENARIOS, Scenario, build_params, rotate, runner
from chatbench.benchmarks.session import time_rounds
from chatbench.benchmarks.shard_buffers import execution_usage
from chatbench.benchmarks.stats import describe
from chatbench.loadgen import SeedResult, Spec, load_spec, seed
from chatbench.loadgen.ddl import create_bare
from chatbench.loadgen.result import SeedParameters
from chatbench.provision import Server
from chatbench.provision.choice import provision_from
from chatbench.provision.citus import drop_citus_database, enable_citus
from chatbench.provision.databases import create_database
from chatbench.schema import distributed
from chatbench.settings import CITUS_DISTRIBUTIONS, SERVER_SETTINGS, resolve
from chatbench.verify.citus import explain_routing, is_citus

TABLES = ("users", "conversations", "messages")
DEFAULT_ROUNDS = 300


@dataclass(frozen=True)
class SeedComparison:
    """Seconds to load the same rows three ways."""

    messages: int
    single_node_s: float
    cluster_seed_s: float  # loadgen.seed through the coordinator into the distributed tables
    cluster_distribute_s: float  # the distribution step around it (the empty schema placed; keys, triggers)
    raw_copy_s: float  # COPY of the same rows through the coordinator into bare distributed tables

    @property
    def cluster_total_s(self) -> float:
        return self.cluster_seed_s + self.cluster_distribute_s

    @property
    def over_raw_copy(self) -> float:
        return self.cluster_total_s / self.raw_copy_s if self.raw_copy_s else 0.0

    @property
    def over_single_node(self) -> float:
        return self.cluster_total_s / self.single_node_s if self.single_node_s else 0.0


@dataclass(frozen=True)
class Measured:
    p50_ms: float
    p95_ms: float
    buffers: int
    rounds: int


@dataclass(frozen=True)
class QueryComparison:
    """One scenario on both servers (same data, same parameters)."""

    scenario: str
    query: str
    single: Measured
    cluster: Measured
    router: bool
    tasks: int


def measure(conn: psycopg.Connection[Any], scenario: Scenario, params: Sequence[Mapping[str, Any]],
            rounds: int) -> Measured:
    run = runner(conn, scenario.canonical)
    cycle = rotate([dict(p) for p in params])
    rolled_back: contextlib.AbstractContextManager[Any] = (
        conn.transaction(force_rollback=True) if scenario.kind == "write" else contextlib.nullcontext())
    with rolled_back:  # a write's rows go away with the transaction
        samples = time_rounds(lambda: run(next(cycle)), rounds, rounds // 10, budget_s=3.0)
    stats = describe([s * 1000 for s in samples])
    buffers = max(execution_usage(conn, scenario.canonical.sql(), p).total for p in params)
    return Measured(stats.p50, stats.p95, buffers, stats.rounds)


@dataclass(frozen=True)
class QueryCost:
    """One scenario on one server, beside its timings: the shared buffers of one execution (every shard's
    counted on a cluster) and how Citus routes it (``tasks`` 0 on a single node, -1 when Citus refuses it)."""

    scenario: str
    query: str
    buffers: int
    tasks: int
    router: bool


def query_costs(conn: psycopg.Connection[Any], seed_params: SeedParameters,
                scenarios: Sequence[Scenario] = SCENARIOS) -> tuple[QueryCost, ...]:
    """Every read scenario with parameters in this seed: buffers of its worst parameter set and its routing.

    A sign-off takes it on each server (``chatbench.signoff``) and pairs them with ``side_by_side``; the
    timings come from each server's benchmark run, so nothing here is timed."""
    on_citus = is_citus(conn)
    out: list[QueryCost] = []
    for scenario in scenarios:
        if scenario.kind != "read":
            continue
        params = build_params(scenario, conn, seed_params)
        if not params:
            continue
        route = explain_routing(conn, scenario.canonical, params[0]) if on_citus else None
        if route is not None and route.tasks < 0:
            out.append(QueryCost(scenario.name, scenario.query, -1, route.tasks, False))
            continue
        buffers = max(execution_usage(conn, scenario.canonical.sql(), p).total for p in params)
        out.append(QueryCost(scenario.name, scenario.query, buffers, route.tasks if route else 0,
                             route.router if route else False))
    return tuple(out)


def side_by_side(single: BenchmarkRun, single_costs: Sequence[QueryCost], cluster: BenchmarkRun,
                 cluster_costs: Sequence[QueryCost]) -> tuple[QueryComparison, ...]:
    """Each scenario both servers measured, single node beside cluster: p50/p95 from each benchmark run,
    buffers and routing from each server's ``query_costs`` (same data, same run)."""
    costs = ({c.scenario: c for c in single_costs}, {c.scenario: c for c in cluster_costs})
    timed = ({r.scenario: r for r in single.scenarios}, {r.scenario: r for r in cluster.scenarios})
    out = []
    for name, one in costs[0].items():
        many = costs[1].get(name)
        if many is None or name not in timed[0] or name not in timed[1]:
            continue
        a, b = timed[0][name].stats, timed[1][name].stats
        out.append(QueryComparison(name, one.query, Measured(a.p50, a.p95, one.buffers, a.rounds),
                                   Measured(b.p50, b.p95, many.buffers, b.rounds), many.router, many.tasks))
    return tuple(out)


def route_text(q: QueryComparison) -> str:
    return "router" if q.router else ("refused" if q.tasks < 0 else f"{q.tasks} tasks")


def compare_queries(single: Server, single_seed: SeedResult, cluster: Server, cluster_seed: SeedResult,
                    *, rounds: int = DEFAULT_ROUNDS) -> tuple[QueryComparison, ...]:
    """Every scenario with parameters, single node then cluster, same parameters on both."""
    out: list[QueryComparison] = []
    with psycopg.connect(single.conninfo(), autocommit=True) as one, \
            psycopg.connect(cluster.conninfo(), autocommit=True) as many:
        for scenario in SCENARIOS:
            params = build_params(scenario, one, single_seed.params)
            if not params:
                continue
            route = explain_routing(many, scenario.canonical, params[0])
            try:
                on_cluster = measure(many, scenario, params, rounds)
            except psycopg.Error:
                on_cluster = Measured(float("nan"), float("nan"), -1, 0)  # Citus refuses it (see route)
            out.append(QueryComparison(scenario.name, scenario.query, measure(one, scenario, params, rounds),
                                       on_cluster, route.router, route.tasks))
    return tuple(out)


def seed_cluster(cluster: Server, spec: Spec, *, seed_value: int,
                 chosen: distributed.DistributionVariant) -> tuple[SeedResult, float, float]:
    """The full seed through the coordinator: the empty schema distributed, the seed into the distributed tables
    where they stand, then the keys and triggers; (result, seed s, distribution s before and after it). A variant
    that does not keep a conversation's messages on its shard is seeded first and distributed after."""
    started = time.perf_counter()
    if not chosen.conversations_colocated:  # the seed's integrity check joins a conversation to its messages
        result = seed(cluster, spec, seed=seed_value, use_cache=False, progress=False)
        seeded = time.perf_counter()
        distributed.distribute(result.server_for(cluster), chosen)
        return result, seeded - started, time.perf_counter() - seeded
    with distributed.seeding_distributed(cluster, chosen):
        placed = time.perf_counter()
        result = seed(cluster, spec, seed=seed_value, use_cache=False, progress=False, prebuilt=True)
        seeded = time.perf_counter()
    return result, seeded - placed, placed - started + time.perf_counter() - seeded


def raw_copy_seconds(cluster: Server, chosen: distributed.DistributionVariant) -> float:
    """The same rows copied through the coordinator into bare distributed tables (a database of their own)."""
    dumps: dict[str, bytes] = {}
    with psycopg.connect(cluster.conninfo()) as conn, conn.cursor() as cur:
        for table in TABLES:
            # In key order, as the seeder writes them (a distributed table reads back shard by shard).
            with cur.copy(f"COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT (FORMAT BINARY)") as copy:
                dumps[table] = b"".join(bytes(block) for block in copy)
    raw = create_database(cluster, "cbs_citusraw")
    try:
        create_bare(raw.conninfo())
        enable_citus(raw)
        with psycopg.connect(raw.conninfo(), autocommit=True) as conn:
            for statement in distributed.placement_statements(chosen):
                conn.execute(statement)
        started = time.perf_counter()
        with psycopg.connect(raw.conninfo()) as conn, conn.cursor() as cur:
            for table in TABLES:
                with cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(dumps[table])
        return time.perf_counter() - started
    finally:
        drop_citus_database(raw)


@dataclass(frozen=True)
class SideBySide:
    profile: str
    variant: str
    workers: int
    seed: SeedComparison
    queries: tuple[QueryComparison, ...]


def run(single: Server, cluster: Server, spec: Spec, *, profile: str, seed_value: int = 1,
        variant_name: str | None = None, rounds: int = DEFAULT_ROUNDS) -> SideBySide:
    chosen = distributed.variant(variant_name)
    started = time.perf_counter()
    single_seed = seed(single, spec, seed=seed_value, use_cache=False, progress=False)
    single_s = time.perf_counter() - started
    cluster_seed, seed_s, distribute_s = seed_cluster(cluster, spec, seed_value=seed_value, chosen=chosen)
    clustered = cluster_seed.server_for(cluster)
    copy_s = raw_copy_seconds(clustered, chosen)
    comparison = SeedComparison(int(single_seed.counts["messages"]), single_s, seed_s, distribute_s, copy_s)
    queries = compare_queries(single_seed.server_for(single), single_seed, clustered, cluster_seed, rounds=rounds)
    return SideBySide(profile, chosen.name, int(cluster.details.get("workers", "0")), comparison, queries)


def render(result: SideBySide) -> str:
    s = result.seed
    lines = [
        f"profile {result.profile}, {s.messages} messages, Citus variant {result.variant}, "
        f"coordinator + {result.workers} workers",
        f"seed: single node {s.single_node_s:.2f} s; cluster {s.cluster_total_s:.2f} s (distribution of the empty "
        f"schema, keys and triggers {s.cluster_distribute_s:.2f} s + seed into the distributed tables "
        f"{s.cluster_seed_s:.2f} s); raw COPY into the distributed tables {s.raw_copy_s:.2f} s",
        f"seed ratios: cluster / raw COPY {s.over_raw_copy:.2f}x; cluster / single node {s.over_single_node:.2f}x",
        "",
        f"{'scenario':<26}{'route':>10}{'p50 1node':>11}{'p50 citus':>11}{'p95 1node':>11}{'p95 citus':>11}"
        f"{'buf 1node':>11}{'buf citus':>11}",
    ]
    for q in result.queries:
        lines.append(f"{q.scenario:<26}{route_text(q):>10}{q.single.p50_ms:>11.3f}{q.cluster.p50_ms:>11.3f}"
                     f"{q.single.p95_ms:>11.3f}{q.cluster.p95_ms:>11.3f}{q.single.buffers:>11}{q.cluster.buffers:>11}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatbench.benchmarks.citus", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--citus-distribution", default=distributed.DEFAULT_VARIANT, choices=CITUS_DISTRIBUTIONS)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--citus-workers", type=int, default=None)
    args = parser.parse_args(argv)
    spec = load_spec(args.profile)
    single_settings = resolve("bench", {"backend": "local"}, names=SERVER_SETTINGS)
    cluster_settings = resolve("bench", {"backend": "citus", "citus_workers": args.citus_workers},
                               names=SERVER_SETTINGS)
    with contextlib.ExitStack() as stack:
        single = stack.enter_context(provision_from(single_settings, announce=print))
        cluster = stack.enter_context(provision_from(cluster_settings, announce=print))
        print(render(run(single, cluster, spec, profile=args.profile, variant_name=args.citus_distribution,
                         rounds=args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
