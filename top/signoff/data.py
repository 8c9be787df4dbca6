"""The data stages: seed (through the cache; the seeder builds the schema from the package, or the rows are
seeded into an application-built schema) and integrity.

On a Citus cluster the seed stage is also the distribution step: the empty schema distributed as the
sign-off's ``citus_distribution`` and the rows seeded into the shards where they stand (``seed_distributed``;
1.15-1.6x faster than seeding plain tables and moving the rows, in four paired runs: README "Citus"), or,
for a variant whose conversations and messages are not co-located (the seed's integrity joins would be
refused), the rows seeded first and distributed after."""

from __future__ import annotations

import time
from dataclasses import replace

import psycopg

from chatbench import loadgen
from chatbench.loadgen.ddl import drop_schema
from chatbench.loadgen.result import SeedResult
from chatbench.provision import Server
from chatbench.schema import distributed
from chatbench.signoff.evidence import Evidence, StageContext


def seed_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    options = ctx.options
    server = evidence.need_server()
    with ctx.rec.stage("seed") as note:
        if ctx.on_cluster and not options.prebuilt and seeds_in_place(options.citus_distribution):
            result, note.detail = seed_distributed(ctx, server)
            return replace(evidence, server=on_cluster(result.server_for(server), options.citus_distribution),
                           seed=result)
        # A schema the application built is filled where it stands (the seeder reads it: ``prebuilt``).
        result = loadgen.seed(server, ctx.spec, seed=options.seed, use_cache=cache_allowed(ctx), progress=True,
                              package=options.package, prebuilt=options.prebuilt, roles=options.roles)
        note.detail = seed_detail(result) + ("; seeded into the pre-built schema" if options.prebuilt else "")
        seeded = result.server_for(server)
        if ctx.on_cluster:
            note.detail += "; " + distribute(seeded, options.citus_distribution)
            seeded = on_cluster(seeded, options.citus_distribution)
    return replace(evidence, server=seeded, seed=result)


def seed_distributed(ctx: StageContext, server: Server) -> tuple[SeedResult, str]:
    """On a Citus cluster: the empty canonical schema distributed as ``citus_distribution`` (the distribution
    step of ``chatbench.schema.distributed``), then the rows seeded through the coordinator into the shards
    where they stand; every later stage judges and measures the distributed schema. Never from the seed
    cache: a cached database is one node's copy, and the shards live on the workers."""
    options, chosen = ctx.options, distributed.variant(ctx.options.citus_distribution)
    started = time.perf_counter()
    server.require_destructive("distribute the tables")
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        drop_schema(conn)  # a previous run's schema (--use-dsn-database); Citus's own objects stay
    with distributed.seeding_distributed(server, chosen):
        placed = time.perf_counter()
        result = loadgen.seed(server, ctx.spec, seed=options.seed, use_cache=False, progress=True,
                              package=options.package, prebuilt=True, roles=options.roles)
        seeded = time.perf_counter()
    step = placed - started + time.perf_counter() - seeded
    return result, (f"distributed {chosen.name} in {step:.2f} s (the empty schema placed; keys and triggers after "
                    f"the rows), {seed_detail(result)} into the shards")


def seeds_in_place(name: str) -> bool:
    """Whether the variant ``name`` is seeded into its distributed tables where they stand: the seed checks the
    rows it loaded with joins on the conversation key, which Citus runs only when a conversation's messages
    share its shard (``conversations_colocated``); any other variant is seeded first and distributed after."""
    return distributed.variant(name).conversations_colocated


def distribute(server: Server, name: str) -> str:
    """On a Citus cluster, after the seed (an application-built schema, ``--schema-from``, or a variant not
    seeded in place): the seeded rows move into the shards of the variant ``name`` (the distribution step of
    ``chatbench.schema.distributed``)."""
    chosen = distributed.variant(name)
    started = time.perf_counter()
    distributed.distribute(server, chosen)
    return f"distributed {chosen.name} in {time.perf_counter() - started:.2f} s"


def on_cluster(server: Server, name: str) -> Server:
    """``server`` as a report describes a cluster: Citus's version and workers (read from its database, whatever
    backend brought it) and the variant its tables are distributed as."""
    return replace(server, details={**distributed.cluster_details(server), **server.details, "distribution": name})


def cache_allowed(ctx: StageContext) -> bool:
    """The seed cache, except on a ``--dsn`` Citus coordinator: a template database is made on the coordinator
    alone, and a restored one would not be the database created on every worker."""
    return ctx.options.use_cache and not (ctx.on_cluster and ctx.choice.backend == "dsn")


def integrity_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    seed, options = evidence.need_seed(), ctx.options
    with ctx.rec.stage("integrity") as note:
        with ctx.display.status("integrity check"):
            try:
                report = loadgen.check_integrity(evidence.need_server(), ctx.spec, result=seed,
                                                 raise_on_failure=False, roles=options.roles)
            except psycopg.errors.FeatureNotSupported as exc:
                if not ctx.on_cluster:
                    raise
                # The check joins a conversation's messages to it; Citus refuses that join across the shards of
                # a variant that does not keep them together. The seed checked these rows before distributing.
                why = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
                ctx.rec.check("integrity", "integrity", False, f"integrity not re-checked on the cluster "
                              f"(distributed {options.citus_distribution}): {why}; the seed checked these rows "
                              "before distributing them", "warning")
                note.detail = f"checked by the seed before distribution ({why})"
                note.status = ctx.rec.status_of("integrity")
                return evidence
        for item in report.checks:
            ctx.rec.check("integrity", item.name, item.ok, f"{item.name}: expected {item.expected}, got {item.actual}")
        note.detail = report.summary()
        note.status = ctx.rec.status_of("integrity")
    return evidence


def seed_detail(result: SeedResult) -> str:
    how = "snapshot/template cache hit" if result.from_cache else "seeded now"
    seconds = sum(v for v in result.timings.values())
    return f"{result.counts.get('messages', 0):,} messages, {how} ({seconds:.2f} s in loadgen)"
