"""An application's schema on its own names, seeded through its role map and judged from its own folder.

``tests/app_queries/ai_chatbot`` is shaped like an open-source AI chat app's Drizzle schema ("User", "Chat",
"Message_v2" with ``"chatId"``, ``"createdAt"`` and a json ``parts`` column, uuid keys, timestamps without
time zone, votes, documents with a composite key and suggestions referencing it, streams); its
``chatbench.toml`` maps the names to the roles. The seed (one module-scoped database, smoke profile) must put
the plan's history into the mapped tables and columns, ``parts`` as ``[{"type": "text", "text": ...}]``;
``chatbench verify`` run from the folder must read the same map and reach a verdict naming the defective
queries and passing their twins. Asserted on rows, keys and findings; never timings.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import psycopg
import pytest
from app_queries_support import CORPUS, DEFECTS, roles_of, seeded_schema
from commandline import chatbench
from servers import drop_database, make_database

from chatbench import loadgen
from chatbench.benchmarks.scenarios import SCENARIOS
from chatbench.errors import ConfigError
from chatbench.loadgen.pools import build_pools
from chatbench.loadgen.result import SeedResult
from chatbench.provision import Server
from chatbench.schema.contracts import CONTRACTS
from chatbench.schema.rolemap import CANONICAL, parse_map
from chatbench.verify import verify

NAME = "ai_chatbot"
FOLDER = CORPUS / NAME
SPEC = loadgen.load_spec("smoke")


@pytest.fixture(scope="module")
def chatbot(pg: Server) -> Iterator[tuple[Server, SeedResult]]:
    with seeded_schema(pg, NAME) as seeded:
        yield seeded


def _one(server: Server, sql: str, params: tuple[object, ...] = ()) -> tuple[object, ...]:
    with psycopg.connect(server.conninfo()) as conn:
        row = conn.execute(sql, params).fetchone()  # type: ignore[call-overload]
    assert row is not None
    return tuple(row)


def test_the_history_lands_in_the_mapped_tables(chatbot: tuple[Server, SeedResult]) -> None:
    server, result = chatbot
    plan = {"users": SPEC.users.count, "conversations": SPEC.conversations.count, "messages": SPEC.messages.count}
    assert {role: result.counts[role] for role in plan} == plan
    assert _one(server, 'SELECT (SELECT count(*) FROM "User"), (SELECT count(*) FROM "Chat"), '
                        '(SELECT count(*) FROM "Message_v2")') == tuple(plan.values())
    whale = result.params.whales[0]
    assert whale.messages >= 1000
    # the largest chat in "Message_v2" is the plan's whale, under its uuid key, owned by the user the plan gave it
    assert _one(server, 'SELECT "chatId"::text, count(*) FROM "Message_v2" GROUP BY 1 ORDER BY 2 DESC LIMIT 1') == \
        (whale.conversation_id, whale.messages)
    assert _one(server, 'SELECT "userId"::text FROM "Chat" WHERE id = %s', (whale.conversation_id,)) == \
        (whale.user_id,)
    # every foreign key is back and validated, the composite one of "Suggestion" included
    assert _one(server, "SELECT count(*), bool_and(convalidated) FROM pg_constraint WHERE contype = 'f'") == (8, True)
    assert _one(server, 'SELECT count(*) FROM "Suggestion" s JOIN "Document" d '
                        'ON (d.id, d."createdAt") = (s."documentId", s."documentCreatedAt")') == \
        (result.counts["Suggestion"],)


def test_parts_is_each_message_text_as_json_parts(chatbot: tuple[Server, SeedResult]) -> None:
    server, _ = chatbot
    shaped = _one(server, """SELECT count(*), count(*) FILTER (WHERE json_typeof(parts) = 'array'
                                      AND json_array_length(parts) = 1 AND parts->0->>'type' = 'text'
                                      AND length(parts->0->>'text') > 0),
                                    count(*) FILTER (WHERE parts->0->>'text' ~ '["\\\\\n]')
                               FROM "Message_v2" """)
    assert shaped[0] == shaped[1] == SPEC.messages.count
    assert isinstance(shaped[2], int) and shaped[2] > 0  # quotes, backslashes or newlines went through escaped
    with psycopg.connect(server.conninfo()) as conn:
        texts = {r[0] for r in conn.execute('SELECT DISTINCT parts->0->>\'text\' FROM "Message_v2"')}
    pools = build_pools(SPEC.locales, SPEC.non_ascii_share, 0, SPEC.content)
    assert texts <= set(pools.contents)  # each text exactly as generated (the seed number is the fixture's: 0)


def test_only_the_columns_the_application_has_are_filled(chatbot: tuple[Server, SeedResult]) -> None:
    server, result = chatbot
    # no updated_at, no owner on messages, no display name: nothing to fill; its own columns by type
    assert _one(server, 'SELECT count(*) FILTER (WHERE title IS NULL), count(DISTINCT visibility), '
                        'min("createdAt") >= %s, max("createdAt") < %s FROM "Chat"',
                (SPEC.start_datetime.replace(tzinfo=None), SPEC.start_datetime.replace(tzinfo=None).replace(year=2026))
                ) == (0, 1, True, True)
    assert _one(server, 'SELECT count(*) FILTER (WHERE email LIKE %s), max(length(email)) <= 64 FROM "User"',
                ("%@%",)) == (SPEC.users.count, True)
    assert _one(server, "SELECT count(*) FILTER (WHERE json_typeof(attachments) IS NOT NULL) FROM \"Message_v2\"") \
        == (SPEC.messages.count,)
    # a timestamp without time zone holds the same instant, as UTC wall clock: a tie cursor's row has its time
    tie = result.params.tie_cursors[0]
    assert _one(server, 'SELECT "createdAt" FROM "Message_v2" WHERE id = %s', (tie.id,)) == \
        (tie.created_at.replace(tzinfo=None),)


def test_integrity_and_the_cache_key_read_the_map(chatbot: tuple[Server, SeedResult], pg: Server) -> None:
    server, result = chatbot
    roles = roles_of(NAME)
    report = loadgen.check_integrity(server, SPEC, result=result, roles=roles)
    names = {c.name for c in report.checks}
    assert report.ok and {"rows in User", "rows in Chat", "rows in Message_v2", "content checksum"} <= names
    # the checks about columns the application lacks (updated_at of a chat) are not made
    assert not any("updated_at" in n for n in names)
    with pytest.raises(ConfigError, match="no 'users' table"):
        loadgen.check_integrity(server, SPEC, result=result)
    assert loadgen.cache_key(pg, SPEC, 0, "time", schema="s", roles=roles) != \
        loadgen.cache_key(pg, SPEC, 0, "time", schema="s", roles=CANONICAL)


def test_a_map_naming_a_missing_column_is_one_line_before_any_row(pg: Server) -> None:
    db = make_database(pg, "aq")
    try:
        with psycopg.connect(db.conninfo(), autocommit=True) as conn:
            conn.execute((FOLDER / "schema.sql").read_text())  # type: ignore[arg-type]
        roles = parse_map({"messages": "Message_v2", "messages.created_at": "created", "conversations": "Chat",
                           "users": "User"})
        with pytest.raises(ConfigError, match=r"\"messages.created_at\" = 'created': table 'Message_v2' has no "):
            loadgen.seed(db, SPEC, use_cache=False, progress=False, prebuilt=True, roles=roles)
        assert _one(db, 'SELECT count(*) FROM "Message_v2"') == (0,)
    finally:
        drop_database(db)


@pytest.fixture(scope="module")
def verified(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``chatbench verify --schema-from schema.sql --queries queries.sql`` run once where ``chatbench.toml`` is:
    the command's outcome and its JSON (empty when it wrote none)."""
    out = tmp_path_factory.mktemp("verify") / "verify.json"
    done = chatbench("verify", "--profile", "smoke", "--backend", "local", "--schema-from", "schema.sql",
                     "--queries", "queries.sql", "--json", str(out), cwd=FOLDER, timeout=900)
    return done, json.loads(out.read_text()) if out.exists() else {}


def test_cli_verify_from_the_app_folder(verified: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    """``chatbench verify --schema-from schema.sql --queries queries.sql`` run where ``chatbench.toml`` is: seeded
    through the map, a verdict (exit 1), each defect named and each twin passing; canonical contracts the
    schema lacks are findings, not a traceback."""
    done, data = verified
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "messages 20,000" in done.stderr and "Vote_v2" in done.stderr  # the seed filled the pre-built schema
    errors = {(f["kind"], (f["query"] or "").split(" ")[0]) for f in data["findings"]
              if f["check"] == "queries" and f["severity"] == "error"}
    assert {(defect, query) for query, defect in DEFECTS[NAME].items()} <= errors
    assert {query for _, query in errors} == set(DEFECTS[NAME])  # the twins and the other queries pass
    walked = [f for f in data["findings"] if f["kind"] == "page_walk" and f["object"] == "history_before_fixed"]
    assert walked and "2500 of 2500 rows, each once" in walked[0]["actual"]


def test_cli_verify_names_what_the_schema_lacks_by_meaning(
        verified: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    """Drift reads the map: the role tables are found under their names, and each canonical contract the
    application lacks is a warning named in the role's words and the application's; the canonical plan
    contracts are skipped with why, not run against tables that do not exist."""
    _, data = verified
    findings = data["findings"]
    drift = {(f["kind"], f["object"], f["severity"]) for f in findings if f["check"] == "drift"}
    assert {
        ("no_owner_column", 'messages ("Message_v2")', "warning"),
        ("no_updated_at", 'conversations ("Chat")', "warning"),
        ("timestamp_without_time_zone", 'messages.created_at ("Message_v2"."createdAt")', "warning"),
        ("timestamp_without_time_zone", 'conversations.created_at ("Chat"."createdAt")', "warning"),
        ("no_cascade", 'messages.conversation_id ("Message_v2"."chatId")', "warning"),
        ("no_cascade", 'conversations.user_id ("Chat"."userId")', "warning"),
        ("missing_role_column", 'users ("User")', "info"),
    } <= drift, sorted(drift)
    by_kind = {f["kind"]: f for f in findings if f["check"] == "drift"}
    assert 'join through "Chat"' in by_kind["no_owner_column"]["detail"]
    assert "cannot use an index" in by_kind["no_updated_at"]["detail"]
    assert any('no ON DELETE CASCADE from "Message_v2" to "Chat"' in f["detail"] for f in findings)
    assert not [f for f in findings if f["kind"] in ("missing_table", "check_failed", "missing_column")]
    assert not [f for f in findings if f["check"] == "drift" and f["severity"] == "error"]
    extra = {f["object"] for f in findings if f["kind"] == "extra_table"}
    assert extra == {"Vote_v2", "Document", "Suggestion", "Stream"}  # the role tables play their roles
    assert 'messages ("Message_v2") has no user_id' in by_kind["probes_not_run"]["actual"]
    # every canonical plan contract is skipped with its reason; the application's queries are judged
    skipped = {f["object"]: f for f in findings if f["kind"] == "skipped"}
    assert set(skipped) == set(CONTRACTS) and {f["severity"] for f in skipped.values()} == {"info"}
    assert skipped["latest_messages"]["actual"].startswith('skipped: needs messages.user_id, which "Message_v2"')
    assert skipped["list_conversations_first"]["actual"].startswith("skipped: needs conversations.updated_at")
    assert not [p for p in data["plans"] if p["query"] in CONTRACTS]


def test_exact_mode_compares_the_canonical_names(chatbot: tuple[Server, SeedResult]) -> None:
    """Exact mode with a map says in one line that it compares the canonical names; without a map the roles
    check has nothing to say."""
    server, result = chatbot
    exact = verify(server, result, mode="exact", only=["drift.roles"], roles=roles_of(NAME))
    assert [(f.kind, f.severity) for f in exact.findings] == [("map_not_read", "info")]
    assert "--drift-mode contract" in exact.findings[0].detail
    assert not verify(server, result, mode="contract", only=["drift.roles"]).findings


@pytest.mark.slow  # a whole sign-off: not in the fast tier
def test_cli_signoff_judges_the_application_queries_not_the_canonical_ones(tmp_path: Path) -> None:
    """``chatbench signoff`` on the mapped schema reaches a verdict (FAIL, not ERROR): the two defects are
    failing with their evidence, their twins pass their plan contracts, the drift findings are warnings, and
    the canonical queries are skipped with why in every report format (plans and benchmarks)."""
    out = tmp_path / "signoff"
    done = chatbench("signoff", "--backend", "local", "--profile", "smoke", "--scaling", "none", "--rounds", "20",
                     "--warmup", "2", "--retries", "0", "--schema-from", "schema.sql", "--queries", "queries.sql",
                     "--out", str(out), cwd=FOLDER, timeout=900)
    assert done.returncode == 1, done.stderr[-3000:]
    data = json.loads((out / "signoff.json").read_text())
    (target,) = data["targets"]
    assert data["verdict"] == target["verdict"] == "FAIL"
    assert all(s["status"] != "error" for s in target["stages"]), target["stages"]
    failing = target["failing"]
    assert any("queries/no_limit" in line and "query messages_of_chat " in line for line in failing), failing
    assert any("queries/lost_rows" in line and "query history_before;" in line and "rows never returned" in line
               for line in failing), failing
    plan_lines = [line for line in failing if line.startswith("plans: ")]
    assert not [line for line in plan_lines if "_fixed" in line]  # the twins keep their contracts (no timing)
    assert not [line for line in failing if line.startswith("drift: ")]
    checks = target["checks"]
    warned = {re.findall(r"drift/\w+", c["message"])[0] for c in checks if c["stage"] == "drift" and not c["passed"]}
    assert {"drift/no_owner_column", "drift/no_updated_at", "drift/timestamp_without_time_zone",
            "drift/no_cascade"} <= warned, warned
    skipped = {(c["stage"], c["name"]): c for c in checks if c["outcome"] == "skipped"}
    canonical = {s.query for s in SCENARIOS}
    assert set(skipped) == {("plans", q) for q in CONTRACTS} | {("benchmarks", q) for q in canonical}
    assert all(not c["passed"] and not c["failing"] and c["severity"] == "info" for c in skipped.values())
    latest = skipped[("benchmarks", "latest_messages")]["message"]
    assert latest.startswith('latest_messages (latest_page): skipped: needs messages.user_id, which "Message_v2"')
    assert set(target["benchmark"]["skipped"]) == {s.name for s in SCENARIOS}
    assert {s["scenario"] for s in target["benchmark"]["scenarios"]} >= {"app:messages_of_chat/whale",
                                                                        "app:messages_of_chat_fixed/whale"}
    assert not [c for c in checks if c["stage"] == "benchmarks" and "not measured" in c["message"]]
    # the Markdown and the JUnit say "skipped" with the same reason, not an error
    line = 'plans: latest_messages: skipped: needs messages.user_id, which "Message_v2" does not have'
    assert line in (out / "signoff.md").read_text()
    cases = {case.get("name"): case for case in ElementTree.parse(out / "signoff.junit.xml").getroot().iter("testcase")}
    mark = cases["latest_messages"].find("skipped")
    assert mark is not None and "skipped: needs messages.user_id" in (mark.get("message") or "")


def test_a_write_is_judged_by_the_columns_it_writes() -> None:
    """An INSERT's or UPDATE's target columns are names, not column references: they are read from PostgreSQL's
    parse (``QueryShape.written``, the parser of the application's queries), so a write whose only use of a
    renamed column is to write it is still not run on the mapped schema."""
    from chatbench.schema.appqueries import ColumnUse, parse_queries
    from chatbench.schema.queries import CANONICAL_QUERIES
    from chatbench.schema.rolemap import ROLE_COLUMNS
    from chatbench.verify.mapped import not_run, uses

    by_name = {q.name: q for q in CANONICAL_QUERIES}
    assert {("messages", c) for c in ("conversation_id", "user_id", "role", "content")} <= uses(
        by_name["append_message"])[1]
    assert ("conversations", "title") in uses(by_name["rename_conversation"])[1]
    # messages.role is only written by append_message (no read selects it from that statement)
    roles = parse_map({"messages.role": "kind"})
    live = {(t, roles.column(t, c)) for t, cols in ROLE_COLUMNS.items() for c in cols}
    why = not_run(roles, live, [by_name["append_message"]])
    assert why == {"append_message": 'skipped: written on the canonical names, and here messages.role is "kind" '
                                     "(a mapped schema is judged on the application's own queries)"}
    shapes = parse_queries('-- name: add\nINSERT INTO "Message" ("chatId", parts) VALUES (:conversation_id, '
                           ':content)\n-- name: retitle\nUPDATE "Chat" c SET title = :title, (a, b) = (1, 2) '
                           'WHERE c.id = :conversation_id\n-- name: read\nSELECT 1 FROM "Chat" WHERE id = '
                           ':conversation_id')
    assert [q.shape.written for q in shapes] == [
        (ColumnUse("Message", "chatId"), ColumnUse("Message", "parts")),
        (ColumnUse("Chat", "title"), ColumnUse("Chat", "a"), ColumnUse("Chat", "b")), ()]
