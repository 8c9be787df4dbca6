"""``verify --url`` on an application's database on its own names: the scenarios are discovered through its role
map (``[tool.chatbench.map]``), so the application's queries are judged on a database chatbench did not seed.

Asserted on the parameters found (the seed's own whale and a cursor inside a tie) and on the findings named;
never timings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from app_queries_support import CORPUS, roles_of, seeded_schema
from commandline import in_process

from chatbench.loadgen.result import SeedResult
from chatbench.provision import Server
from chatbench.verify.discover import discover

NAME = "ai_chatbot"


@pytest.fixture(scope="module")
def chatbot(pg: Server) -> Iterator[tuple[Server, SeedResult]]:
    with seeded_schema(pg, NAME) as seeded:
        yield seeded


def test_discovery_reads_the_mapped_names(chatbot: tuple[Server, SeedResult]) -> None:
    server, result = chatbot
    with psycopg.connect(server.conninfo()) as conn:
        found = discover(conn, roles_of(NAME))
    whale = result.params.whales[0]
    assert (found.whales[0].conversation_id, found.whales[0].user_id, found.whales[0].messages) == \
        (whale.conversation_id, whale.user_id, whale.messages)
    assert found.small_conversations and found.heavy_users and found.light_users
    tie = found.tie_cursors[0]  # a cursor inside a run of messages sharing one "createdAt"
    assert tie.tie_size > 1
    with psycopg.connect(server.conninfo()) as conn:
        same = conn.execute('SELECT count(*) FROM "Message_v2" WHERE "chatId" = %s AND "createdAt" = %s',
                            (tie.conversation_id, tie.created_at)).fetchone()
    assert same == (tie.tie_size,)


def test_verify_url_judges_the_application_queries_from_its_folder(
    chatbot: tuple[Server, SeedResult], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = chatbot
    url = server.url.set(drivername="postgresql").render_as_string(hide_password=False)
    out = tmp_path / "verify.json"
    monkeypatch.chdir(CORPUS / NAME)  # the folder the application runs it from (its chatbench.toml)
    done = in_process(capsys, "verify", "--url", url, "--queries", "queries.sql", "--json", str(out))
    assert done.returncode == 1, done.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["read_only"]
    mine = [f for f in data["findings"] if f["check"] == "queries"]
    errors = {(f["kind"], (f["query"] or "").split(" ")[0]) for f in mine if f["severity"] == "error"}
    assert {("no_limit", "messages_of_chat"), ("lost_rows", "history_before")} <= errors, errors
    assert not {q for _, q in errors if q.endswith("_fixed")}
    refused = {(f["query"] or "").split(" ")[0] for f in mine if f["kind"] == "write_refused"}
    assert refused == {"save_message"}  # a database chatbench did not create: the write is refused, not run
