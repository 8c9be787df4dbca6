"""Partitioned ``messages`` on a real server: read as its parent by the catalog and the plan reader,
partition counts per history query, and the primary key that had to take the partition key in.

The data is plain SQL (``verify_fixtures.fill_history``): a 3000-message conversation over five months,
tiny conversations, a heavy and light users, background conversations in every month; the scenarios
are discovered from it as ``verify --url`` does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from verify_fixtures import execute, fill_history, hashed_messages, monthly_messages

from chatbench.provision import Server
from chatbench.provision.databases import create_database, drop_database
from chatbench.schema.package import canonical
from chatbench.verify import DriftMode, VerificationResult, verify
from chatbench.verify.catalog import read_catalog
from chatbench.verify.context import canonical_facts, connect

HISTORY = "ix_messages_conversation_id_created_at_id"
PAGE_QUERIES = ("latest_messages", "messages_before", "messages_after")


def _partitioned(pg: Server, prefix: str, layout: tuple[str, ...]) -> Iterator[Server]:
    db = create_database(pg, prefix)
    try:
        canonical().apply(db.url)
        execute(db, *layout, *fill_history())
        yield db
    finally:
        drop_database(db)


# Its module-scoped fixtures (seeded databases) are made once on one xdist worker, not once on each.
pytestmark = pytest.mark.xdist_group("verify_partitions")


@pytest.fixture(scope="module")
def monthly(pg: Server) -> Iterator[Server]:
    yield from _partitioned(pg, "vmonth", monthly_messages())


@pytest.fixture(scope="module")
def hashed(pg: Server) -> Iterator[Server]:
    yield from _partitioned(pg, "vhash", hashed_messages(4))


@pytest.fixture(scope="module")
def monthly_contract(monthly: Server) -> VerificationResult:
    return verify(monthly, None, mode="contract", canonical=canonical_facts(monthly, read_only=False))


def _errors(result: VerificationResult) -> str:
    return "\n".join(f.message() for f in result.errors)


def test_the_catalog_presents_a_partitioned_table_as_its_parent(monthly: Server) -> None:
    with connect(monthly, read_only=True) as conn:
        facts = read_catalog(conn)
    assert set(facts.tables) == {"users", "conversations", "messages"}, "leaf partitions are not tables"
    partition = facts.tables["messages"].partition
    assert partition is not None and partition.strategy == "range" and partition.key == "RANGE (created_at)"
    assert partition.key_columns == ("created_at",) and partition.leaf_count == 7
    assert "messages_2026_01" in partition.leaves and "messages_default" in partition.leaves
    assert facts.tables["messages"].estimated_rows > 60_000  # the leaves' rows, not the empty parent's
    assert facts.leaf_parents["messages_2026_03"] == "messages"
    leaf_history = [i for i, parent in facts.index_parents.items() if parent == HISTORY]
    assert len(leaf_history) == 7
    assert not [t for t, _ in facts.columns if t.startswith("messages_")]
    assert not [t for t, _ in facts.constraints if t.startswith("messages_")]
    assert not [t for t, _ in facts.indexes if t.startswith("messages_")]


def test_monthly_partitions_pass_in_contract_mode_read_as_messages(monthly_contract: VerificationResult) -> None:
    result = monthly_contract
    assert result.passed, _errors(result)
    assert not [f for f in result.findings if f.kind == "index_access"]
    # the plans read the leaves as messages, through the parent's partitioned index
    whale = next(p for p in result.plans if p.scenario == "whale-latest" and p.mode == "custom")
    assert f"Index Scan Backward using {HISTORY} on messages (partition messages_2026_05)" in whale.shape
    assert "Merge Append" in whale.shape or "Append" in whale.shape
    keyset = [p for p in result.plans if p.scenario.startswith("keyset-d")]
    assert len(keyset) >= 6


def test_monthly_partition_counts_are_reported_and_judged(monthly_contract: VerificationResult) -> None:
    pruning = {(f.query, f.severity): f for f in monthly_contract.findings if f.kind == "partition_pruning"}
    queries = {q.split(" (")[0] for q, _ in pruning}
    assert {*PAGE_QUERIES, "count_messages"} <= queries
    for (query, severity), f in pruning.items():
        assert f.object == "messages" and "of 7 partitions in the plan" in f.actual, f.message()
        assert severity != "error", f.message()  # range on created_at: a conversation's pages cannot be pruned
        if query.startswith("count_messages"):
            assert severity == "info", "a count reads every partition by design"
    # a page that read every month is a warning: its cost grows with the number of months
    page = next(f for f in monthly_contract.findings if f.kind == "partition_pruning"
                and f.query == "latest_messages (custom plan)")
    assert page.severity == "warning" and "7 executed" in page.actual


def test_primary_key_with_the_partition_key_is_a_warning_saying_what_was_given_up(
    monthly_contract: VerificationResult,
) -> None:
    pk = [f for f in monthly_contract.findings if f.object == "messages.pk_messages" and f.check == "drift"]
    assert [(f.kind, f.severity) for f in pk] == [("partition_key_in_primary_key", "warning")]
    assert pk[0].expected == "PRIMARY KEY (id)" and pk[0].actual == "PRIMARY KEY (id, created_at)"
    assert "(id) alone is no longer unique" in pk[0].detail and "created_at differ" in pk[0].detail


def test_monthly_partitions_in_exact_mode_are_drift_but_never_plan_errors(monthly: Server) -> None:
    result = verify(monthly, None, mode="exact", canonical=canonical_facts(monthly, read_only=False))
    kinds = {(f.kind, f.object) for f in result.errors}
    assert kinds == {("partitioning", "messages"), ("partition_key_in_primary_key", "messages.pk_messages")}, (
        _errors(result)
    )


def test_hash_partitions_by_conversation_are_pruned_to_one(hashed: Server) -> None:
    result = verify(hashed, None, mode="contract", canonical=canonical_facts(hashed, read_only=False))
    assert result.passed, _errors(result)
    pruning = [f for f in result.findings if f.kind == "partition_pruning"]
    assert {f.query for f in pruning} >= {f"{q} ({m} plan)" for q in PAGE_QUERIES for m in ("custom", "generic")}
    for f in pruning:  # conversation_id fixes the partition: one partition executed, or it is an error
        assert f.severity == "info" and f.expected.startswith("1 partition executed"), f.message()
        assert "1 executed" in f.actual, f.message()
    custom = next(f for f in pruning if f.query == "latest_messages (custom plan)")
    generic = next(f for f in pruning if f.query == "latest_messages (generic plan)")
    assert "1 of 4 partitions in the plan" in custom.actual  # pruned when planning
    assert "4 of 4 partitions in the plan" in generic.actual  # pruned when the executor starts
    pk = next(f for f in result.findings if f.object == "messages.pk_messages" and f.check == "drift")
    assert pk.kind == "partition_key_in_primary_key" and pk.severity == "warning"
    assert "conversation_id differ" in pk.detail
    whale = next(p for p in result.plans if p.scenario == "whale-latest" and p.mode == "custom")
    assert f"using {HISTORY} on messages (partition messages_h" in whale.shape


def test_an_unlogged_partition_is_a_durability_error(fresh_db: Server) -> None:
    canonical().apply(fresh_db.url)
    execute(fresh_db, *monthly_messages(), "ALTER TABLE messages_2026_03 SET UNLOGGED")
    modes: tuple[DriftMode, ...] = ("contract", "exact")
    for mode in modes:
        result = verify(fresh_db, None, only=["drift"], mode=mode, canonical=canonical_facts(fresh_db, read_only=False))
        durability = [f for f in result.errors if f.kind == "durability"]
        assert [(f.object, f.actual) for f in durability] == [("messages", "UNLOGGED (partitions messages_2026_03)")]
