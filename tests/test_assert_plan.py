"""``assert_plan``: an application's query judged with the verifier's contract machinery, on seeded data.

The database is what an application's test gets from ``seeded_chat_db`` (smoke profile: whales of
1000+ messages, heavy users, deep cursors), made here through ``FixtureSession``, the object behind
the fixture. Every breach kind the verifier reports is provoked by a real query; every bad argument
is one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import bindparam, select

from chatbench.errors import ConfigError
from chatbench.pytest_plugin import FIXTURE_COMMAND, FIXTURE_SETTINGS
from chatbench.schema import messages
from chatbench.settings import resolve
from chatbench.testing import PlanContractError, SeededChatDatabase, assert_plan
from chatbench.testing.session import FixtureSession
from chatbench.testing.sharing import run_folder

HISTORY_PAGE = """
SELECT id, role, content, created_at FROM messages
 WHERE conversation_id = %(conversation_id)s AND (created_at, id) < (%(created_at)s, %(id)s)
 ORDER BY created_at DESC, id DESC LIMIT 50"""
HISTORY_INDEX = "messages(conversation_id, created_at, id)"


# Its module-scoped fixtures (seeded databases) are made once on one xdist worker, not once on each.
pytestmark = pytest.mark.xdist_group("assert_plan")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededChatDatabase]:
    base = tmp_path_factory.mktemp("plans")
    settings = resolve(FIXTURE_COMMAND, {"backend": "local"}, names=FIXTURE_SETTINGS, env={}, cwd=base)
    session = FixtureSession.open(settings, run_folder(base, xdist_worker=False), "main")
    try:
        with session.seeded_chat_db(None) as db:
            yield db
    finally:
        session.close()


def _deep_page(db: SeededChatDatabase) -> dict[str, Any]:
    cursor = db.deep_cursor
    return {"conversation_id": cursor.conversation_id, "created_at": cursor.created_at, "id": cursor.id}


def test_a_keyset_page_keeps_its_contract_in_both_plans(seeded: SeededChatDatabase) -> None:
    check = assert_plan(seeded, HISTORY_PAGE, _deep_page(seeded), uses_index=HISTORY_INDEX, max_buffers=200,
                        max_sort_rows=100, name="history page")
    assert check.passed and [p.mode for p in check.plans] == ["custom", "generic"]
    assert all(p.root.shape().startswith("Limit [Index Scan Backward") for p in check.plans)
    assert "$1" not in HISTORY_PAGE and check.plans[1].buffers <= 200


def test_a_sqlalchemy_statement_is_judged_the_same_way(seeded: SeededChatDatabase) -> None:
    m = messages.c
    page = (select(m.id).where(m.conversation_id == bindparam("cid")).order_by(m.created_at.desc(), m.id.desc())
            .limit(50))
    check = assert_plan(seeded, page, {"cid": seeded.whale.conversation_id}, uses_index=HISTORY_INDEX,
                        max_buffers=200)
    assert check.passed


def test_every_breach_kind_is_reported_per_plan(seeded: SeededChatDatabase) -> None:
    """A search by content: Seq Scan of messages, a Sort of every row, far over any page's buffers."""
    with pytest.raises(PlanContractError) as raised:
        assert_plan(seeded, "SELECT id FROM messages WHERE content <> %s ORDER BY created_at LIMIT 10", ["x"],
                    uses_index="messages(conversation_id)", max_buffers=50, max_sort_rows=100, name="search")
    report = str(raised.value)
    assert report.startswith("query 'search': ")
    for mode in ("custom", "generic"):
        assert f"{mode} plan: seq_scan on messages: expected no Seq Scan on messages" in report
        assert f"{mode} plan: sort_rows on messages: expected Sort of at most 100 rows" in report
        assert f"{mode} plan: buffer_budget on messages: expected at most 50 buffers" in report
    assert "custom plan: Limit [Sort [Seq Scan on messages]]" in report


def test_an_index_that_cannot_deliver_the_order_is_a_breach(seeded: SeededChatDatabase) -> None:
    """The whale's page read through the right index, but the test demands an index led by user_id."""
    with pytest.raises(PlanContractError, match="index_access on messages.* expected messages read via an index on "
                                                r"\(user_id, created_at, id\)"):
        assert_plan(seeded, HISTORY_PAGE, _deep_page(seeded), uses_index="messages(user_id, created_at, id)")


def test_a_write_is_explained_and_rolled_back(seeded: SeededChatDatabase) -> None:
    whale = seeded.whale
    update = "UPDATE conversations SET title = %(title)s WHERE id = %(id)s"
    check = assert_plan(seeded, update, {"title": "renamed", "id": whale.conversation_id},
                        uses_index="conversations(id)", max_buffers=100)
    assert check.passed
    with seeded.connect() as conn:
        title = conn.execute("SELECT title FROM conversations WHERE id = %s", (whale.conversation_id,)).fetchone()
    assert title is not None and title[0] != "renamed"


@pytest.mark.parametrize(
    "query,params,options,message",
    [
        ("SELECT 1", None, {"uses_index": "messages conversation_id"}, "not TABLE(COLUMN, ...)"),
        ("SELECT 1", None, {"uses_index": "messages(conversation_id DESC)"}, "the leading column takes no direction"),
        ("SELECT 1", None, {"uses_index": "message(conversation_id)"}, "no table 'message' in the database"),
        ("SELECT 1", None, {"uses_index": "messages(conversation)"}, "messages has no column 'conversation'"),
        ("SELECT 1", None, {"max_buffers": -1}, "assert_plan(max_buffers=-1): give a whole number >= 0"),
        ("SELECT 1", None, {"max_sort_rows": True}, "assert_plan(max_sort_rows=True): give a whole number"),
        ("SELECT 1", None, {"modes": ("fast",)}, "use custom and/or generic"),
        ("", None, {}, "the query is empty"),
        (42, None, {}, "the query is a int"),
        ("SELECT %(a)s", {}, {}, "no value for a"),
        ("SELECT %(a)s", None, {}, "give params as a mapping"),
        ("SELECT %(a)s, %s", {"a": 1}, {}, "mixes %(name)s and %s placeholders"),
        ("SELECT %s, %s", [1], {}, "2 %s placeholder(s) and 1 value(s)"),
        ("SELECT nope FROM messages", None, {}, "assert_plan('query'): the query failed: column \"nope\""),
    ],
)
def test_bad_arguments_are_one_line(seeded: SeededChatDatabase, query: Any, params: Any, options: dict[str, Any],
                                    message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        assert_plan(seeded, query, params, **options)
    assert message in str(raised.value) and "\n" not in str(raised.value)



def test_a_partitioned_messages_table_is_judged_as_messages(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The application's messages partitioned by month: the page reads the partitions' indexes, which is
    reading messages by its history index (a leaf's scan is its parent's, as verify reads it)."""
    from pathlib import Path

    schema = Path(__file__).parent / "schema_variants" / "partitioned_by_month.sql"
    base = tmp_path_factory.mktemp("partitioned")
    settings = resolve(FIXTURE_COMMAND, {"backend": "local", "schema_from": str(schema)}, names=FIXTURE_SETTINGS,
                       env={}, cwd=base)
    session = FixtureSession.open(settings, run_folder(base, xdist_worker=False), "main")
    try:
        with session.seeded_chat_db(None) as db:
            check = assert_plan(db, HISTORY_PAGE, _deep_page(db), uses_index=HISTORY_INDEX, name="history page")
    finally:
        session.close()
    assert check.passed
    assert any("Append" in p.root.shape() for p in check.plans)  # the partitions were read, as messages
