"""``chatbench verify`` end to end: ci profile passes; --schema-from / --schema-from-cmd; --url read-only."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import psycopg
import pytest
from verify_fixtures import clone, seed_database

from chatbench import schema
from chatbench.cli import main
from chatbench.provision import Server
from chatbench.provision.databases import create_database, drop_database
from chatbench.verify import verify


def _ddl_with(replace: tuple[str, str] | None = None) -> str:
    text = schema.ddl()
    if replace is not None:
        assert replace[0] in text
        text = text.replace(*replace)
    return text


@pytest.mark.xdist_group("ci_seed_0")  # with test_content's ci test: the worker's server seeds ci once (template)
@pytest.mark.slow  # the ci profile (200,000 messages): its seed is most of the pair's 7.5 core-seconds
def test_ci_profile_passes_and_gives_the_same_verdict_twice(pg: Server) -> None:
    db = create_database(pg, "vci")
    try:
        seeded = seed_database(db, "ci")
        first, second = verify(db, seeded), verify(db, seeded)
    finally:
        drop_database(db)
    assert first.passed, "\n".join(f.message() for f in first.errors)
    assert first.findings == second.findings
    assert [(p.scenario, p.mode, p.buffers) for p in first.plans] == [
        (p.scenario, p.mode, p.buffers) for p in second.plans
    ]
    whale = next(p for p in first.plans if p.scenario == "whale-latest" and p.mode == "custom")
    assert "Index Scan Backward using ix_messages_conversation_id_created_at_id" in whale.shape


def test_schema_from_sql_file_drift_fails_and_exact_ddl_passes(tmp_path: Path) -> None:
    widened = tmp_path / "widened.sql"
    widened.write_text(_ddl_with(("title VARCHAR(255)", "title VARCHAR(400)")))
    out = tmp_path / "widened.json"
    assert (
        main(["verify", "--backend", "local", "--profile", "smoke", "--schema-from", str(widened), "--json", str(out)])
        == 1
    )
    data = json.loads(out.read_text())
    assert not data["passed"]
    errors = [f for f in data["findings"] if f["severity"] == "error"]
    # the length is judged by what the column accepts: the probes are the errors, the type a warning
    assert sorted((f["kind"], f["object"], f["actual"]) for f in errors) == [
        ("behaviour", "conversations.title", "a rename to 256 characters is accepted"),
        ("behaviour", "conversations.title", "a title of 256 characters is accepted"),
    ]
    assert all("rename_conversation" in f["query"] for f in errors)
    column = next(f for f in data["findings"] if f["kind"] == "column_type")
    assert (column["object"], column["actual"], column["severity"]) == (
        "conversations.title",
        "character varying(400)",
        "warning",
    )
    assert data["plans"], "the seed was loaded into the pre-built schema and plans were judged"

    exact = tmp_path / "exact.sql"
    exact.write_text(_ddl_with())
    assert main(["verify", "--backend", "local", "--profile", "smoke", "--schema-from", str(exact)]) == 0


def test_schema_from_cmd_gets_the_database_url(tmp_path: Path) -> None:
    migration = tmp_path / "migrate.py"
    ddl = _ddl_with(("CREATE INDEX ix_messages_user_id ON messages (user_id);", ""))
    migration.write_text(
        "import os, psycopg\n"
        f"ddl = {ddl!r}\n"
        "with psycopg.connect(os.environ['DATABASE_URL'], autocommit=True) as conn:\n"
        "    assert os.environ['CHATBENCH_DATABASE_URL'] == os.environ['DATABASE_URL']\n"
        "    conn.execute(ddl)\n"
    )
    out = tmp_path / "r.json"
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(migration))}"
    assert (
        main(["verify", "--backend", "local", "--profile", "smoke", "--schema-from-cmd", command, "--json", str(out)])
        == 1
    )
    errors = {(f["kind"], f["object"]) for f in json.loads(out.read_text())["findings"] if f["severity"] == "error"}
    assert ("missing_index", "messages.ix_messages_user_id") in errors
    assert ("fk_without_index", "messages.fk_messages_user_id_users") in errors


def test_schema_from_cmd_failure_is_a_one_line_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--backend", "local", "--profile", "smoke", "--schema-from-cmd", "false"]) == 2
    assert "--schema-from-cmd 'false' exited 1" in capsys.readouterr().err


def test_url_is_verified_read_only(pg: Server, tmp_path: Path) -> None:
    template = create_database(pg, "vurl")
    try:
        seed_database(template, "smoke")
        with clone(template) as db:
            with psycopg.connect(db.conninfo()) as conn:
                before = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
                del before
            url = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
            out = tmp_path / "url.json"
            assert main(["verify", "--url", url, "--json", str(out)]) == 0
            data = json.loads(out.read_text())
            assert data["read_only"] and data["params_source"] == "discovered"
            assert "throwaway local server" in data["canonical_source"]
            with psycopg.connect(db.conninfo()) as conn:
                tables = conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'cbv%'").fetchone()
                databases = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'cbv%'").fetchone()
            assert tables == (0,) and databases == (0,)
    finally:
        drop_database(template)


def test_schema_from_file_failing_halfway_is_one_line_with_the_line_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    statements = schema.ddl().split(";\n\n")
    broken_at = len(statements) // 2
    statements[broken_at] = statements[broken_at].replace("CREATE", "CREAT", 1)
    broken = tmp_path / "broken.sql"
    broken.write_text(";\n\n".join(statements))
    line = ";\n\n".join(statements[:broken_at]).count("\n") + 3
    assert main(["verify", "--backend", "local", "--profile", "smoke", "--schema-from", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len([e for e in err if "error" in e]) == 1 and "Traceback" not in "\n".join(err)
    assert f"--schema-from {broken}: the SQL failed at line {line} (nothing was kept)" in err[-1]
    assert 'syntax error at or near "CREAT"' in err[-1]
