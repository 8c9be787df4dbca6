"""Shared buffers of one execution counted on every server that ran a part of it.

On a single node, the top plan node's counts include its children's. On a Citus cluster, the
coordinator's counts leave out the shards' work: each task's remote plan (shown with
``citus.explain_all_tasks``) carries its own counts, which are added here. Writes run in a transaction
that is rolled back, so measuring them changes nothing.

Why not ``EXPLAIN ... EXECUTE`` of a prepared statement, as on a single node
(``benchmarks.scenarios.explain_buffers``): Citus 14 writes the remote plan of that form as plain text
inside the JSON document, which no JSON parser reads. The statement itself, with its parameters bound by
the driver, is planned and executed the same way on the shards.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import psycopg

from chatbench.benchmarks.results import BufferUsage
from chatbench.verify.citus import is_citus


def plan_usage(plan: Mapping[str, Any]) -> BufferUsage:
    """Buffers of one executed plan tree (its top node's counts), plus every shard's remote plan (Citus)."""
    usage = _own(plan)
    for node in _nodes(plan):
        for task in node.get("Distributed Query", {}).get("Job", {}).get("Tasks", ()):
            for remote in task.get("Remote Plan", ()):
                for entry in remote:
                    usage = _add(usage, plan_usage(entry["Plan"]))
    return usage


def execution_usage(conn: psycopg.Connection[Any], sql: str, params: Mapping[str, Any]) -> BufferUsage:
    """Buffers of one execution of ``sql`` (EXPLAIN ANALYZE, rolled back), every task shown on a cluster."""
    with conn.transaction(force_rollback=True):
        if is_citus(conn):
            conn.execute("SET LOCAL citus.explain_distributed_queries = on")
            conn.execute("SET LOCAL citus.explain_all_tasks = on")
        row = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, dict(params)).fetchone()
    assert row is not None
    return plan_usage(row[0][0]["Plan"])


def _own(plan: Mapping[str, Any]) -> BufferUsage:
    return BufferUsage(int(plan.get("Shared Hit Blocks", 0)), int(plan.get("Shared Read Blocks", 0)),
                       int(plan.get("Shared Dirtied Blocks", 0)), int(plan.get("Shared Written Blocks", 0)))


def _add(a: BufferUsage, b: BufferUsage) -> BufferUsage:
    return BufferUsage(a.shared_hit + b.shared_hit, a.shared_read + b.shared_read,
                       a.shared_dirtied + b.shared_dirtied, a.shared_written + b.shared_written)


def _nodes(plan: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)
