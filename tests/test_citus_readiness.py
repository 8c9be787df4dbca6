"""Distribution readiness: the static rules on a single node (a preview) and on a Citus cluster, the
distribution step, and the dynamic part (routing per canonical query, shard skew, hot shard).

Every rule has a schema variant in ``tests/citus_variants`` that breaks it; each is caught with its fix.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from citus_support import VARIANTS, WHALE_CONVERSATION, citus, citus_server, load_history  # noqa: F401

from chatbench.provision import Server
from chatbench.schema import distributed
from chatbench.verify import citus as readiness
from chatbench.verify import verify
from chatbench.verify.catalog import read_catalog

pytestmark = pytest.mark.slow  # whole sign-offs, rehearsals or a Citus cluster: not in the fast tier

BREAKING = sorted(p for p in VARIANTS.glob("*.sql") if p.name != "history_data.sql")


def _header(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^-- (variant|breaks|object): (\S+)$", path.read_text(), re.MULTILINE))


def _static(server: Server, variant: distributed.DistributionVariant) -> list[readiness.Finding]:
    with psycopg.connect(server.conninfo()) as conn:
        facts = read_catalog(conn, "public")
    return list(readiness.static_findings(facts, variant, severity="error"))


def test_canonical_schema_is_not_distributable_naming_the_messages_primary_key(schema_db: Server) -> None:
    errors = [f for f in _static(schema_db, distributed.variant()) if f.severity == "error"]
    assert [(f.kind, f.object) for f in errors] == [("unique_without_distribution_column", "messages.pk_messages")]
    assert "PRIMARY KEY (conversation_id, id)" in errors[0].detail
    by_user = [(f.kind, f.object) for f in _static(schema_db, distributed.variant("by_user")) if f.severity == "error"]
    assert ("unique_without_distribution_column", "conversations.pk_conversations") in by_user
    assert ("foreign_key_without_distribution_column", "messages.fk_messages_conversation_id_conversations") in by_user


def test_single_node_verify_previews_the_rules_without_failing(schema_db: Server) -> None:
    result = verify(schema_db, only=["citus"])
    kinds = {(f.kind, f.object, f.severity) for f in result.findings}
    assert ("unique_without_distribution_column", "messages.pk_messages", "info") in kinds
    assert ("not_citus", "database", "info") in kinds
    assert not any(f.severity == "error" for f in result.findings)


@pytest.mark.parametrize("path", BREAKING, ids=[p.stem for p in BREAKING])
def test_each_breaking_variant_is_caught_with_its_fix(schema_db: Server, path: Path) -> None:
    header = _header(path)
    with psycopg.connect(schema_db.conninfo(), autocommit=True) as conn:
        conn.execute(path.read_text())  # type: ignore[arg-type]
    found = [f for f in _static(schema_db, distributed.variant(header["variant"])) if f.kind == header["breaks"]]
    assert [f.object for f in found if f.object == header["object"]] == [header["object"]], found
    caught = next(f for f in found if f.object == header["object"])
    assert caught.detail.startswith("fix: ") and len(caught.detail) > 10
    assert caught.severity == ("warning" if header["breaks"] == "table_not_placed" else "error")


def test_foreign_key_across_colocation_groups_is_caught(schema_db: Server) -> None:
    apart = replace(distributed.BY_CONVERSATION, name="apart", tables=tuple(
        replace(t, colocate_with=None) for t in distributed.BY_CONVERSATION.tables))
    found = [f for f in _static(schema_db, apart) if f.kind == "foreign_key_across_colocation_groups"]
    assert [f.object for f in found] == ["messages.fk_messages_conversation_id_conversations"]
    assert "colocate_with => 'conversations'" in found[0].detail


def test_triggers_on_distributed_tables_are_reported_with_the_setting(schema_db: Server) -> None:
    found = [f for f in _static(schema_db, distributed.variant()) if f.kind == "trigger_on_distributed_table"]
    assert {f.object for f in found} == {"messages.trg_messages_touch_conversation",
                                         "conversations.trg_conversations_touch_on_title"}
    assert all("citus.enable_unsafe_triggers" in f.detail for f in found)


@pytest.mark.parametrize("name", sorted(distributed.VARIANTS))
def test_each_distributed_variant_passes_the_static_rules(schema_db: Server, name: str) -> None:
    chosen = distributed.variant(name)
    with psycopg.connect(schema_db.conninfo(), autocommit=True) as conn:
        for statement in [*distributed.prepare_statements(chosen), *distributed.foreign_key_statements(chosen),
                          *distributed.trigger_statements()]:
            conn.execute(statement)  # type: ignore[arg-type]
    assert [f.message() for f in _static(schema_db, chosen) if f.severity != "info"] == []


# --- on a Citus cluster ----------------------------------------------------------------------------


def test_distribute_moves_the_rows_into_colocated_shards(citus: Server) -> None:  # noqa: F811
    load_history(citus)
    with psycopg.connect(citus.conninfo(), autocommit=True) as conn:
        before = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                  for t in ("users", "conversations", "messages")}
        distributed.distribute(citus, distributed.variant())
        after = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                 for t in ("users", "conversations", "messages")}
        tables = conn.execute("SELECT table_name::text, citus_table_type, distribution_column, colocation_id, "
                              "shard_count FROM citus_tables ORDER BY 1").fetchall()
        workers = conn.execute("SELECT count(*) FROM citus_get_active_worker_nodes()").fetchone()
    assert before == after == {"users": 200, "conversations": 2000, "messages": 30000}
    shape = {name: (kind, column, shards) for name, kind, column, _group, shards in tables}
    assert shape == {"users": ("reference", "<none>", 1), "conversations": ("distributed", "id", 32),
                     "messages": ("distributed", "conversation_id", 32)}
    groups = {name: group for name, _k, _c, group, _s in tables}
    assert groups["conversations"] == groups["messages"]
    assert workers == (2,)
    result = verify(citus, only=["citus"])
    by_kind = {(f.kind, f.object): f for f in result.findings}
    assert not [f for f in result.findings if f.check == "citus" and f.kind in (
        "unique_without_distribution_column", "foreign_key_without_distribution_column", "sequence_not_bigint")]
    history = by_kind[("history_router_share", "history pagination")]
    assert (history.actual, history.severity) == ("100% router", "info")
    routes = {f.object: f.actual for f in result.findings if f.kind == "routing"}
    assert routes["latest_messages"] == routes["messages_before"] == "router (1 shard)"
    assert routes["list_conversations_first"] == "multi-shard (32 tasks)"
    unplannable = [f.object for f in result.findings if f.kind == "unplannable"]
    assert unplannable == ["append_message"]  # INSERT ... SELECT with bound parameters: Citus refuses to plan it
    skew = by_kind[("shard_skew", "messages (32 shards)")]
    assert skew.severity == "error"  # one 6000-message whale among 30000 messages on 32 shards: over 3x the mean
    hot = by_kind[("hot_shard", f"conversation {WHALE_CONVERSATION}")]
    assert "6012 of its" in hot.actual


def test_by_user_makes_history_pagination_multi_shard() -> None:
    with citus_server(workers=1) as server:
        load_history(server)
        distributed.distribute(server, distributed.variant("by_user"))
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            routes = {r.query: r for r in readiness.routing(conn)}
            findings = list(readiness.dynamic_findings(conn, readiness.load_citus_targets()))
    assert routes["list_conversations_first"].router
    assert not routes["latest_messages"].router and routes["latest_messages"].tasks >= 32  # + the ownership probe
    history = next(f for f in findings if f.kind == "history_router_share")
    assert history.severity == "error" and history.actual == "0% router"
