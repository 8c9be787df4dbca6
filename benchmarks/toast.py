"""History pages on long content: short texts against AI-chat texts, pglz against lz4, in one run.

``python -m chatbench.benchmarks.toast [--profile ci] [--rounds 300]`` starts one throwaway server and
seeds the profile three times, each into a fresh database:

* ``short``: the ``human`` content style (a few sentences per message, nothing reaches TOAST);
* ``ai, pglz``: the profile's own content (heavy-tailed answers, code, JSON), PostgreSQL's default
  ``default_toast_compression = pglz``;
* ``ai, lz4``: the same rows with ``default_toast_compression = lz4`` (set on the database before the
  seed: a schema that sets ``COMPRESSION lz4`` on ``messages.content`` stores exactly this).

For each it prints the seed time, the size on disk (messages' heap, TOAST, total), and for the history
scenarios that long content stresses, the page latency (prepared, rows fetched: p50/p95 over
``--rounds`` rounds), the buffers the client's page costs (``EXPLAIN ... SERIALIZE`` on 17+, the
whole-row probe on 15/16: ``chatbench.verify.serialize``) beside what plain ``EXPLAIN (ANALYZE,
BUFFERS)`` reports, the bytes returned and the TOAST chunks read (17+):

* ``whale latest``: the largest conversation's latest page (what every history benchmark measures);
* ``long whale``: the latest page of the conversation of 1000+ messages whose assistant turns are the
  longest on average;
* ``largest answers``: the page of 50 consecutive messages holding the most bytes in the whole history
  (the tail: the longest answers, back to back);

and ``list``: the user's conversation list. The canonical list shows no preview of the last message
(title and times only), so no list scenario detoasts; an application whose list shows one should
judge it with ``assert_plan``. A benchmark prints numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from chatbench import loadgen
from chatbench.benchmarks.scenarios import runner
from chatbench.benchmarks.session import time_rounds
from chatbench.benchmarks.stats import describe
from chatbench.loadgen.spec import Spec
from chatbench.provision import Server, provision
from chatbench.provision.databases import create_database, drop_database
from chatbench.schema.queries import QUERIES_BY_NAME
from chatbench.verify.serialize import client_explain, explain_options, has_serialize

PAGE = 50


@dataclass(frozen=True)
class Variant:
    label: str
    style: str  # content.style
    compression: str  # default_toast_compression


VARIANTS = (Variant("short", "human", "pglz"), Variant("ai, pglz", "ai", "pglz"), Variant("ai, lz4", "ai", "lz4"))


@dataclass(frozen=True)
class PageMeasure:
    scenario: str
    p50_ms: float
    p95_ms: float
    buffers: int  # what the client's page costs (detoasting included)
    plain_buffers: int  # what EXPLAIN (ANALYZE, BUFFERS) alone reports
    bytes: int
    toast_chunks: int  # -1: not measurable on this server version


@dataclass(frozen=True)
class VariantResult:
    variant: Variant
    seed_s: float
    heap_mb: float
    toast_mb: float
    total_mb: float
    pages: tuple[PageMeasure, ...]


def _scenarios(conn: psycopg.Connection[Any], result: loadgen.SeedResult) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, canonical query, parameters) of the scenarios long content stresses."""
    whale = result.params.whales[0]
    out: list[tuple[str, str, dict[str, Any]]] = [
        ("whale latest", "latest_messages",
         {"user_id": whale.user_id, "conversation_id": whale.conversation_id, "limit": PAGE}),
    ]
    ids = [w.conversation_id for w in result.params.whales]
    long = conn.execute(
        "SELECT conversation_id, user_id FROM messages WHERE conversation_id = ANY(%s) AND role = 'assistant' "
        "GROUP BY 1, 2 ORDER BY avg(octet_length(content)) DESC, 1 LIMIT 1", (ids,)).fetchone()
    if long is not None:
        out.append(("long whale", "latest_messages", {"user_id": long[1], "conversation_id": long[0], "limit": PAGE}))
    heaviest = conn.execute(  # the 50 consecutive messages with the most bytes, in any conversation
        "SELECT conversation_id, user_id, created_at, id FROM (SELECT conversation_id, user_id, created_at, id, "
        "sum(octet_length(content)) OVER (PARTITION BY conversation_id ORDER BY created_at DESC, id DESC "
        "ROWS BETWEEN CURRENT ROW AND %s FOLLOWING) AS page_bytes FROM messages) w "
        "ORDER BY page_bytes DESC, id LIMIT 1", (PAGE - 1,)).fetchone()
    if heaviest is not None:  # the page before the row just newer than that window's newest row is the window
        newer = conn.execute(
            "SELECT created_at, id FROM messages WHERE conversation_id = %s AND (created_at, id) > (%s, %s) "
            "ORDER BY created_at, id LIMIT 1", (heaviest[0], heaviest[2], heaviest[3])).fetchone()
        if newer is None:
            out.append(("largest answers", "latest_messages",
                        {"user_id": heaviest[1], "conversation_id": heaviest[0], "limit": PAGE}))
        else:
            out.append(("largest answers", "messages_before",
                        {"user_id": heaviest[1], "conversation_id": heaviest[0], "cursor_created_at": newer[0],
                         "cursor_id": newer[1], "limit": PAGE}))
    heavy = result.params.heavy_users[0]
    out.append(("list", "list_conversations_first", {"user_id": heavy.user_id, "limit": 20}))
    return out


def _toast_chunks(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> int:
    """TOAST chunks of the page's values (PostgreSQL 17+: ``pg_column_toast_chunk_id``), else -1."""
    if not has_serialize(conn) or "content" not in sql:
        return -1
    row = conn.execute("SELECT reltoastrelid::regclass::text FROM pg_class WHERE relname = 'messages'").fetchone()
    if row is None or row[0] == "-":
        return -1
    cur = psycopg.ClientCursor(conn)
    found = cur.execute(f"SELECT count(*) FROM {row[0]} WHERE chunk_id IN "
                        f"(SELECT pg_column_toast_chunk_id(content) FROM ({sql}) page)", params).fetchone()
    return int(found[0]) if found else 0


def _measure_page(conn: psycopg.Connection[Any], name: str, query: str, params: dict[str, Any],
                  rounds: int) -> PageMeasure:
    sql = QUERIES_BY_NAME[query].sql()
    cur = psycopg.ClientCursor(conn)
    plain_row = cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params).fetchone()
    assert plain_row is not None
    plain = plain_row[0][0]["Plan"]
    row = cur.execute(explain_options(conn) + sql, params).fetchone()
    assert row is not None
    counted, serialization = client_explain(conn, row[0], sql, params)
    root = counted[0]["Plan"]
    run = runner(conn, QUERIES_BY_NAME[query])  # prepared, every row fetched and decoded
    stats = describe([s * 1000 for s in time_rounds(lambda: run(params), rounds, 5)])
    return PageMeasure(name, stats.p50, stats.p95, _shared_buffers(root), _shared_buffers(plain),
                       serialization.bytes, _toast_chunks(conn, sql, params))


def _shared_buffers(plan: dict[str, Any]) -> int:
    return int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0))


def _sizes(conn: psycopg.Connection[Any]) -> tuple[float, float, float]:
    row = conn.execute("SELECT pg_relation_size('messages'), pg_relation_size(reltoastrelid), "
                       "pg_total_relation_size('messages') FROM pg_class WHERE relname = 'messages'").fetchone()
    assert row is not None
    return row[0] / 1e6, row[1] / 1e6, row[2] / 1e6


def run_variant(server: Server, spec: Spec, variant: Variant, seed: int, rounds: int) -> VariantResult:
    db = create_database(server, "cbs_toast")
    try:
        with psycopg.connect(db.conninfo(), autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE \"{db.database}\" SET default_toast_compression = '{variant.compression}'")
        varied = loadgen.load_spec(spec.name, overrides={"content.style": variant.style})
        result = loadgen.seed(db, varied, seed=seed, use_cache=False, progress=False)
        with psycopg.connect(db.conninfo(), autocommit=True) as conn:
            conn.execute("SET jit = off")
            heap, toast, total = _sizes(conn)
            pages = tuple(_measure_page(conn, name, query, params, rounds)
                          for name, query, params in _scenarios(conn, result))
        return VariantResult(variant, float(result.timings["load"]), heap, toast, total, pages)
    finally:
        drop_database(db)


def _print(results: Sequence[VariantResult], say: Callable[[str], None] = print) -> None:
    say("| content | seed s | heap MB | TOAST MB | total MB |")
    say("|---|---:|---:|---:|---:|")
    for r in results:
        say(f"| {r.variant.label} | {r.seed_s:.1f} | {r.heap_mb:,.0f} | {r.toast_mb:,.0f} | {r.total_mb:,.0f} |")
    say("")
    say("| scenario | content | p50 ms | p95 ms | buffers (client) | buffers (EXPLAIN alone) | bytes | TOAST chunks |")
    say("|---|---|---:|---:|---:|---:|---:|---:|")
    names = [p.scenario for p in results[0].pages]
    for name in names:
        for r in results:
            page = next((p for p in r.pages if p.scenario == name), None)
            if page is None:
                continue
            chunks = "-" if page.toast_chunks < 0 else f"{page.toast_chunks:,}"
            say(f"| {name} | {r.variant.label} | {page.p50_ms:.3f} | {page.p95_ms:.3f} | {page.buffers:,} | "
                f"{page.plain_buffers:,} | {page.bytes:,} | {chunks} |")
    say("")
    say("conversation list: the canonical list shows no preview of the last message (title and times only), "
        "so it reads no message content; an application's list that does should be judged with assert_plan.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatbench.benchmarks.toast", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--backend", default="local")
    parser.add_argument("--pg-bin", default=None)
    args = parser.parse_args(argv)
    spec = loadgen.load_spec(args.profile)
    with provision(args.backend, pg_bin=args.pg_bin, announce=lambda _: None) as server:
        print(f"toast bench: profile {spec.name} ({spec.messages.count:,} messages), PostgreSQL {server.version}, "
              f"{args.rounds} rounds per page, load average {os.getloadavg()[0]:.2f}")
        with psycopg.connect(server.conninfo()) as conn:
            row = conn.execute("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'").fetchone()
        methods = set(row[0]) if row else {"pglz"}
        variants = [v for v in VARIANTS if v.compression in methods]
        if len(variants) < len(VARIANTS):
            print(f"this server was built without {', '.join(sorted({v.compression for v in VARIANTS} - methods))}: "
                  "those variants are left out (Debian's packages have lz4: --pg-bin /usr/lib/postgresql/15/bin)")
        results = [run_variant(server, spec, variant, args.seed, args.rounds) for variant in variants]
        _print(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
