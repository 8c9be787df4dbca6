"""The queries file (``--queries``): parsed, its parameters bound to roles, its bad input refused in one line.

No server here: parsing and role binding are checked before any server starts. The CLI tests run the real
command and assert exit 2 with a one-line error and no server started.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from app_queries_support import CORPUS, DEFECTS, queries_of
from commandline import in_process

from chatbench.errors import ConfigError
from chatbench.schema.appqueries import PARAM_ROLES, load_queries, parse_queries, placeholders
from chatbench.verify.pagewalk import Walk, findings

GOOD = """-- name: history_page
-- The chat screen scrolled up.
SELECT id, created_at::text AS at FROM messages m
 WHERE m.conversation_id = :conversation_id AND content <> ':not_a_param' -- :nor_this
   AND (m.created_at, m.id) < (:before_created_at, :before_id)
 ORDER BY m.created_at DESC, m.id DESC LIMIT :limit;

-- name: send
INSERT INTO messages (conversation_id, user_id, role, content)
VALUES (:conversation_id, :user_id, :role, :content);
"""


def test_blocks_params_and_shape() -> None:
    queries = parse_queries(GOOD, "app.sql")
    page, send = queries.queries
    assert page.name == "history_page" and page.kind == "read" and page.doc == "The chat screen scrolled up."
    assert page.order == ("conversation_id", "before_created_at", "before_id", "limit")
    assert "%(conversation_id)s" in page.sql and "':not_a_param'" in page.sql and "-- :nor_this" in page.sql
    assert "$1" in page.positional and "$4" in page.positional and "::text" in page.positional
    shape = page.shape
    assert [u.column for u in shape.equality] == ["conversation_id"]
    assert [u.key() for u in shape.order_by] == ["created_at DESC", "id DESC"]
    assert [u.column for u in shape.cursor] == ["created_at", "id"]
    assert shape.has_limit and not shape.has_offset and shape.tables == ("messages",)
    assert page.pages and send.kind == "write" and queries.writes == (send,)


def test_percent_is_doubled_for_psycopg_only() -> None:
    named, positional, order = placeholders("SELECT 1 WHERE title LIKE '50%' AND id = :user_id", "q")
    assert named.endswith("'50%%' AND id = %(user_id)s") and positional.endswith("'50%' AND id = $1")
    assert order == ("user_id",)


@pytest.mark.parametrize(("text", "words"), [
    ("-- name: q\nSELECT * FROM messages WHERE tenant = :tenant_id", ("parameter :tenant_id is not a role",
                                                                      ":conversation_id")),
    ("-- name: q\n-- scenarios: whale, huge\nSELECT 1", ("scenario 'huge' is not a role", "whale")),
    ("SELECT 1;\n-- name: q\nSELECT 2", ("SQL before the first '-- name: ...' line",)),
    ("-- name: q\nSELECT 1;\n-- name: q\nSELECT 2", ("query q: the name is given twice",)),
    ("-- name: q\nSELEC 1", ("query q: PostgreSQL cannot parse it",)),
    ("-- name: q\nSELECT * FROM messages WHERE id = $1", ("positional parameter $1; name it",)),
    ("-- name: q\nSELECT 1; SELECT 2", ("holds 2 statements",)),
    ("-- name: q\nCREATE INDEX i ON messages (id)", ("is a IndexStmt",)),
    ("-- name: two words\nSELECT 1", ("is not a name",)),
    ("-- just a comment\n", ("no query found",)),
])
def test_bad_files_are_one_line(text: str, words: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_queries(text, "app.sql")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("app.sql")
    for word in words:
        assert word in message


def test_overrides_are_checked(tmp_path: Path) -> None:
    (tmp_path / "app.sql").write_text(GOOD)
    targets = tmp_path / "targets.toml"
    targets.write_text("[queries.history_page]\nbuffers = 400\nseq_scan_ok = ['conversations']\nwhy = 'big rows'\n")
    queries = load_queries(tmp_path / "app.sql", targets)
    assert queries.override("history_page").buffers == 400
    assert queries.override("history_page").seq_scan_ok == ("conversations",)
    targets.write_text("[queries.nope]\nbuffers = 4\n")
    with pytest.raises(ConfigError, match=r"\[queries.nope\]: no query 'nope'"):
        load_queries(tmp_path / "app.sql", targets)
    targets.write_text("[queries.history_page]\nbufers = 4\n")
    with pytest.raises(ConfigError, match="unknown key 'bufers'"):
        load_queries(tmp_path / "app.sql", targets)


def test_corpus_files_parse_and_bind() -> None:
    """Every corpus query binds to roles; every named defect has its fixed twin."""
    for folder in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        queries = queries_of(folder.name)
        assert set(DEFECTS[folder.name]) <= set(queries.names)
        assert all(p in PARAM_ROLES for q in queries for p in q.params)
        for name in DEFECTS[folder.name]:
            assert f"{name}_fixed" in queries.names, f"{folder.name}: {name} has no fixed twin"
    assert sum(len(d) for d in DEFECTS.values()) >= 10


def test_cli_refuses_unknown_role_before_any_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "app.sql"
    bad.write_text("-- name: by_tenant\nSELECT * FROM messages WHERE tenant_id = :tenant LIMIT :limit\n")
    done = in_process(capsys, "verify", "--profile", "smoke", "--queries", str(bad), "--backend", "local")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "parameter :tenant is not a role" in lines[0] and "Traceback" not in done.stderr
    assert "starting" not in done.stderr.lower() and "provision" not in done.stderr.lower()


def test_cli_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    done = in_process(capsys, "verify", "--queries", str(tmp_path / "none.sql"))
    assert done.returncode == 2 and "--queries" in done.stderr and "Traceback" not in done.stderr


def test_role_map_parsing() -> None:
    from chatbench.schema.rolemap import parse_map

    roles = parse_map({"messages": "Message", "messages.conversation_id": "chatId", "conversations": "Chat"})
    assert roles.table("messages") == "Message" and roles.table("users") == "users"
    assert roles.column("messages", "conversation_id") == "chatId" and roles.column("messages", "id") == "id"
    assert roles.role_of("Message") == "messages" and roles.role_of("messages") is None
    assert roles.role_column("messages", "chatId") == "conversation_id"
    for bad, words in (({"msgs": "M"}, "'msgs' is not a role"), ({"messages.chat": "c"}, "'chat' is not a column"),
                       ({"messages": 3}, "give the name"), ({"messages": "X", "users": "X"}, "two roles")):
        with pytest.raises(ConfigError, match=words):
            parse_map(bad)


def test_map_table_in_pyproject_is_not_a_setting(tmp_path: Path) -> None:
    from chatbench.settings import read_file

    (tmp_path / "pyproject.toml").write_text('[tool.chatbench]\nprofile = "smoke"\n'
                                             '[tool.chatbench.map]\nmessages = "Message"\n')
    file = read_file(tmp_path)
    assert dict(file.values) == {"profile": "smoke"} and file.tables["map"] == {"messages": "Message"}


def test_a_walk_that_lost_rows_names_the_missing_tie_breaker_of_its_cursor_or_its_order() -> None:
    """A cursor on one column loses the rows sharing the cursor's value; an OFFSET page has no cursor, and its
    ORDER BY on one column returns rows of equal value in any order from one page's execution to the next."""
    queries = parse_queries(
        "-- name: by_cursor\nSELECT id FROM messages WHERE conversation_id = :conversation_id "
        "AND created_at < :before_created_at ORDER BY created_at DESC LIMIT :limit;\n\n"
        "-- name: by_offset\nSELECT id FROM messages WHERE conversation_id = :conversation_id "
        "ORDER BY created_at DESC LIMIT :limit OFFSET :offset;\n")
    walks = tuple(Walk(name, "conversation 1 (100 messages)", 10, 10, 99, 100, lost=((7, 3, None),),
                       repeated=((8, 2, 3),), reference="the query as one page") for name in ("by_cursor", "by_offset"))
    found = {(f.query, f.kind): f.detail for f in findings(walks, {q.name: q for q in queries})}
    assert "cursor_without_tiebreaker" in found[("by_cursor", "lost_rows")]
    assert "cursor_without_tiebreaker" in found[("by_cursor", "repeated_rows")]
    assert "order_without_tiebreaker" in found[("by_offset", "lost_rows")]
    assert "order_without_tiebreaker" in found[("by_offset", "repeated_rows")]
