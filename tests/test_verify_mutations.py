"""Acceptance: the canonical seeded database passes; each mutant fails naming the object and the query.

Seeded once per module into a template database; each test mutates its own clone
(``CREATE DATABASE ... TEMPLATE``), so a test costs a clone plus one verification.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from verify_fixtures import clone, seed_database

from chatbench.loadgen.result import SeedResult
from chatbench.provision import Server
from chatbench.provision.databases import create_database, drop_database
from chatbench.schema.models import TRIGGERS
from chatbench.verify import DriftMode, VerificationResult, verify
from chatbench.verify.catalog import CatalogFacts
from chatbench.verify.context import canonical_facts


@pytest.fixture(scope="module")
def seeded(pg: Server) -> Iterator[tuple[Server, SeedResult]]:
    template = create_database(pg, "vtpl")
    try:
        result = seed_database(template, "smoke")
        yield template, result
    finally:
        drop_database(template)


@pytest.fixture(scope="module")
def canonical(pg: Server) -> tuple[CatalogFacts, str]:
    return canonical_facts(pg, read_only=False)


def _verify(db: Server, seeded: tuple[Server, SeedResult], canonical: tuple[CatalogFacts, str],
            mode: DriftMode = "exact") -> VerificationResult:
    return verify(db, seeded[1], canonical=canonical, mode=mode)


def _mutate(db: Server, statements: list[str]) -> None:
    with psycopg.connect(db.conninfo(), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def test_canonical_seeded_database_passes_and_is_deterministic(seeded, canonical) -> None:
    with clone(seeded[0]) as db:
        first = _verify(db, seeded, canonical)
        second = _verify(db, seeded, canonical)
    assert first.passed, "\n".join(f.message() for f in first.errors)
    assert all(c.passed for c in first.checks)
    assert first.findings == second.findings
    assert [(p.scenario, p.mode, p.shape, p.buffers) for p in first.plans] == [
        (p.scenario, p.mode, p.shape, p.buffers) for p in second.plans
    ]
    # every canonical read query was judged, in both plan modes
    judged = {(p.query, p.mode) for p in first.plans}
    for query in (
        "list_conversations_first",
        "list_conversations_next",
        "latest_messages",
        "messages_before",
        "messages_after",
        "messages_offset",
        "count_messages",
    ):
        assert {(query, "custom"), (query, "generic")} <= judged
    scenarios = {p.scenario for p in first.plans}
    assert {
        "whale-latest",
        "small-latest",
        "tie-before",
        "heavy-list-first",
        "heavy-list-next",
        "light-list-first",
    } <= scenarios
    assert sum(s.startswith("keyset-d") for s in scenarios) >= 3
    # growth: keyset flat, OFFSET grows (the contrast is reported, not failed)
    curves = {(c.curve, c.mode): c.points for c in first.curves}
    keyset, offset = curves[("keyset", "custom")], curves[("offset", "custom")]
    assert max(b for _, b in keyset) <= 1.5 * min(b for _, b in keyset) + 10
    assert offset[-1][1] > 2 * offset[0][1]
    assert any(f.kind == "offset_growth" and f.severity == "info" for f in first.findings)


HISTORY = "ix_messages_conversation_id_created_at_id"
CONV_INDEX = "ix_conversations_user_id_updated_at_id"
FK = "fk_messages_conversation_id_conversations"


def _with_title_trigger_off(*statements: str) -> list[str]:
    """A column used by ``UPDATE OF title`` cannot change type: drop the trigger, alter, recreate it."""
    name = "trg_conversations_touch_on_title"
    return [f"DROP TRIGGER {name} ON conversations", *statements, TRIGGERS[name][1]]


# name -> (statements, [(check, kind or None, object substring, query substring)] that must all be errors)
MUTATIONS: dict[str, tuple[list[str], list[tuple[str, str | None, str, str]]]] = {
    "history_index_dropped": (
        [f"DROP INDEX {HISTORY}"],
        [
            ("drift", "missing_index", f"messages.{HISTORY}", "latest_messages"),
            ("health", "fk_without_index", f"messages.{FK}", "latest_messages"),
            ("plans", None, "messages", "latest_messages"),
        ],
    ),
    "history_index_wrong_column_order": (
        [f"DROP INDEX {HISTORY}", f"CREATE INDEX {HISTORY} ON messages (created_at, conversation_id, id)"],
        [
            ("drift", "index_columns", f"messages.{HISTORY}", "latest_messages"),
            ("plans", None, "messages", "messages_before"),
        ],
    ),
    # A length is judged by what the column accepts: the type difference is a warning, the probe the error.
    "title_widened": (
        _with_title_trigger_off("ALTER TABLE conversations ALTER COLUMN title TYPE varchar(1000)"),
        [("drift", "behaviour", "conversations.title", "rename_conversation")],
    ),
    "title_narrowed": (
        _with_title_trigger_off(
            "UPDATE conversations SET title = left(title, 100) WHERE length(title) > 100",
            "ALTER TABLE conversations ALTER COLUMN title TYPE varchar(100)",
        ),
        [("drift", "behaviour", "conversations.title", "create_conversation")],
    ),
    "not_null_dropped": (
        ["ALTER TABLE messages ALTER COLUMN content DROP NOT NULL"],
        [
            ("drift", "nullability", "messages.content", "latest_messages"),
            ("drift", "behaviour", "messages.content", "append_message"),
        ],
    ),
    "fk_on_delete_changed": (
        [
            f"ALTER TABLE messages DROP CONSTRAINT {FK}",
            f"ALTER TABLE messages ADD CONSTRAINT {FK} FOREIGN KEY (conversation_id) REFERENCES conversations (id) "
            "ON DELETE RESTRICT",
        ],
        [
            ("drift", "foreign_key_on_delete", f"messages.{FK}", "latest_messages"),
            ("drift", "behaviour", "messages.conversation_id", ""),
        ],
    ),
    # An extra index is not a difference in meaning (drift warns); a duplicate is a health error.
    "duplicate_index_added": (
        ["CREATE INDEX ix_messages_history_copy ON messages (conversation_id, created_at, id)"],
        [("health", "duplicate_index", "messages.ix_messages_history_copy", "latest_messages")],
    ),
    "conversations_index_on_user_id_alone": (
        [f"DROP INDEX {CONV_INDEX}", "CREATE INDEX ix_conversations_user_id ON conversations (user_id)"],
        [
            ("drift", "missing_index", f"conversations.{CONV_INDEX}", "list_conversations_first"),
            ("plans", "index_access", "conversations", "list_conversations_first"),
        ],
    ),
    "check_removed": (
        ["ALTER TABLE messages DROP CONSTRAINT ck_messages_role_allowed"],
        [("drift", "behaviour", "messages.role", "append_message")],
    ),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutant_fails_naming_object_and_query(name: str, seeded, canonical) -> None:
    statements, expected = MUTATIONS[name]
    with clone(seeded[0]) as db:
        _mutate(db, statements)
        result = _verify(db, seeded, canonical)
        again = _verify(db, seeded, canonical)
    assert not result.passed
    assert result.findings == again.findings, "verdict must be deterministic"
    errors = result.errors
    for check, kind, obj, query in expected:
        matching = [
            f
            for f in errors
            if f.check == check and (kind is None or f.kind == kind) and obj in f.object and query in (f.query or "")
        ]
        assert matching, f"{name}: no {check}/{kind} error on {obj} naming {query}; errors:\n" + "\n".join(
            f.message() for f in errors
        )
        message = matching[0].message()
        assert obj in message and query in message


def _only_failing_checks(result: VerificationResult) -> set[str]:
    return {c.name for c in result.checks if not c.passed}


TITLE_FN = "chatbench_touch_conversation_on_title"
MESSAGE_FN = "chatbench_touch_conversation_on_message"

# contract -> (a mutant only that contract's probes catch, the breach it reports). Each keeps every
# structure drift compares exactly (names, keys, FKs, index shapes, trigger timing and events): what
# changes is spelled in a CHECK, a default, a sequence or a trigger function, so only behaviour tells.
BEHAVIOUR_MUTANTS: dict[str, tuple[list[str], str]] = {
    "role_allowed": (
        [
            "ALTER TABLE messages DROP CONSTRAINT ck_messages_role_allowed",
            "ALTER TABLE messages ADD CONSTRAINT ck_messages_role_allowed "
            "CHECK (role IN ('user', 'assistant', 'system', 'tool', 'admin'))",
        ],
        "a role 'admin' is accepted",
    ),
    "title_length": (
        _with_title_trigger_off(
            "ALTER TABLE conversations ALTER COLUMN title TYPE text",
            "ALTER TABLE conversations ADD CONSTRAINT title_length CHECK (char_length(title) <= 300)",
        ),
        "a title of 256 characters is accepted",
    ),
    "content_required": (
        [
            "CREATE FUNCTION fill_content() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.content := coalesce(NEW.content, ''); RETURN NEW; END $$",
            "CREATE TRIGGER fill_content BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION fill_content()",
        ],
        "a message without content (NULL) is accepted",
    ),
    "deletes_cascade": (
        [
            "CREATE FUNCTION keep_messages() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
            "CREATE TRIGGER keep_messages BEFORE DELETE ON messages FOR EACH ROW EXECUTE FUNCTION keep_messages()",
        ],
        "deleting a conversation leaves its messages behind",
    ),
    "append_moves_updated_at": (
        [
            f"CREATE OR REPLACE FUNCTION {MESSAGE_FN}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "UPDATE conversations SET updated_at = NEW.created_at WHERE id = NEW.conversation_id; RETURN NULL; END $$"
        ],
        "appending an older message moves updated_at backwards",
    ),
    "rename_touches_updated_at": (
        [f"CREATE OR REPLACE FUNCTION {TITLE_FN}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"],
        "renaming a conversation does not touch updated_at",
    ),
    "updated_not_before_created": (
        [
            "ALTER TABLE conversations DROP CONSTRAINT ck_conversations_updated_after_created",
            "ALTER TABLE conversations ADD CONSTRAINT ck_conversations_updated_after_created "
            "CHECK (updated_at >= created_at - interval '1 day')",
        ],
        "a conversation whose updated_at precedes its created_at is accepted",
    ),
    "ids_generated": (
        ["ALTER TABLE users ALTER COLUMN id DROP IDENTITY"],
        "(inserting a user without an id) is rejected",
    ),
    "history_order": (
        [
            "ALTER TABLE messages ALTER COLUMN id SET INCREMENT BY -1 SET MINVALUE -9223372036854775808 "
            "SET MAXVALUE -1 SET START WITH -1 RESTART"
        ],
        "messages with equal created_at do not page in the order they were appended",
    ),
    "times_default_to_now": (
        ["ALTER TABLE messages ALTER COLUMN created_at SET DEFAULT '2000-01-01 00:00:00+00'"],
        "messages.created_at do not default to the current time",
    ),
    "email_length": (
        ["ALTER TABLE users ALTER COLUMN email TYPE varchar(400)"],
        "an email of 321 characters is accepted",
    ),
    "display_name_length": (
        ["ALTER TABLE users ALTER COLUMN display_name TYPE varchar(200)"],
        "inserting a display_name of 255 characters is rejected",
    ),
}


def test_every_contract_has_a_mutant() -> None:
    from chatbench.schema.behaviour import BEHAVIOUR_CONTRACTS

    assert set(BEHAVIOUR_MUTANTS) == set(BEHAVIOUR_CONTRACTS)


@pytest.mark.parametrize("contract", sorted(BEHAVIOUR_MUTANTS))
def test_behaviour_mutant_is_caught_by_its_contract_alone(contract: str, seeded, canonical) -> None:
    statements, breach = BEHAVIOUR_MUTANTS[contract]
    with clone(seeded[0]) as db:
        _mutate(db, statements)
        # Contract mode: a mutant that adds a trigger is judged by what it does (exact mode would also
        # name the trigger as drift), so the behaviour contract is the only error.
        result = _verify(db, seeded, canonical, mode="contract")
    assert _only_failing_checks(result) == {f"drift.behaviour.{contract}"}, "\n".join(
        f.message() for f in result.errors
    )
    assert all(f.kind == "behaviour" for f in result.errors)
    messages = [f.actual for f in result.errors]
    assert any(breach in m for m in messages), messages
    for f in result.errors:
        assert f.detail.startswith("probe "), f.detail  # the probe is the evidence
    assert "schema-only copy" in result.probes_site and "same server" in result.probes_site


def test_health_catches_invalid_missing_pk_narrow_ids_and_redundant(seeded, canonical) -> None:
    with clone(seeded[0]) as db:
        _mutate(
            db,
            [
                "CREATE TABLE audit (id integer GENERATED BY DEFAULT AS IDENTITY, note text)",
                "CREATE TABLE tags (id serial PRIMARY KEY, name text)",
                "CREATE INDEX ix_messages_conversation_only ON messages (conversation_id)",
            ],
        )
        with psycopg.connect(db.conninfo(), autocommit=True) as conn, pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY ix_messages_bad ON messages (conversation_id)")
        result = verify(db, seeded[1], canonical=canonical, only=["health", "drift.tables"])
    by_kind = {(f.kind, f.object): f for f in result.findings}
    assert by_kind[("table_without_primary_key", "audit")].severity == "error"
    assert by_kind[("invalid_index", "messages.ix_messages_bad")].severity == "error"
    assert by_kind[("narrow_id", "tags.id")].severity == "warning"
    assert any(k == "narrow_sequence" and "tags_id_seq" in o for k, o in by_kind)
    assert by_kind[("redundant_index", "messages.ix_messages_conversation_only")].severity == "warning"
    assert by_kind[("extra_table", "audit")].severity == "error"  # exact: the database must equal the models


def test_read_only_discovers_scenarios_and_never_writes(seeded, canonical) -> None:
    from chatbench.verify.context import connect
    from chatbench.verify.discover import discover

    with clone(seeded[0]) as db:
        with connect(db, read_only=True) as conn:
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("CREATE TABLE x (id int)")
            params = discover(conn)
        assert params.whales and params.whales[0].messages >= 1000
        assert params.heavy_users[0].conversations > params.light_users[0].conversations
        assert params.tie_cursors and params.tie_cursors[0].tie_size >= 2
        assert params.whales[0].conversation_id == seeded[1].params.whales[0].conversation_id
        result = verify(db, None, read_only=True, canonical=canonical)
    assert result.params_source == "discovered"
    assert result.passed, "\n".join(f.message() for f in result.errors)
