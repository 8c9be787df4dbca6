"""The data stages: seed (through the cache; the seeder builds the schema from the package, or the rows are
seeded into an application-built schema) and integrity."""

from __future__ import annotations

import time
from dataclasses import replace

from chatbench.loadgen.result import SeedResult
from chatbench.provision import Server
from chatbench.signoff.evidence import Evidence, StageContext


def seed_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    from chatbench import loadgen

    options = ctx.options
    server = evidence.need_server()
    with ctx.rec.stage("seed") as note:
        # A schema the application built is filled where it stands (the seeder reads it: ``prebuilt``).
        result = loadgen.seed(server, ctx.spec, seed=options.seed, use_cache=options.use_cache, progress=True,
                              package=options.package, prebuilt=options.prebuilt)
        note.detail = seed_detail(result) + ("; seeded into the pre-built schema" if options.prebuilt else "")
        seeded = result.server_for(server)
        if ctx.on_cluster:
            note.detail += "; " + distribute(seeded)
    return replace(evidence, server=seeded, seed=result)


def distribute(server: Server) -> str:
    """On a Citus cluster the seeded rows move into the shards of the default variant (the distribution step
    of ``chatbench.schema.distributed``): every later stage judges and measures the distributed schema."""
    from chatbench.schema import distributed

    chosen = distributed.variant()
    started = time.perf_counter()
    distributed.distribute(server, chosen)
    return f"distributed {chosen.name} in {time.perf_counter() - started:.2f} s"


def integrity_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    from chatbench import loadgen

    seed = evidence.need_seed()
    with ctx.rec.stage("integrity") as note:
        with ctx.display.status("integrity check"):
            report = loadgen.check_integrity(evidence.need_server(), ctx.spec, result=seed, raise_on_failure=False)
        for item in report.checks:
            ctx.rec.check("integrity", item.name, item.ok, f"{item.name}: expected {item.expected}, got {item.actual}")
        note.detail = report.summary()
        note.status = ctx.rec.status_of("integrity")
    return evidence


def seed_detail(result: SeedResult) -> str:
    how = "snapshot/template cache hit" if result.from_cache else "seeded now"
    seconds = sum(v for v in result.timings.values())
    return f"{result.counts.get('messages', 0):,} messages, {how} ({seconds:.2f} s in loadgen)"
