"""The application's own queries (``--queries``) in ``chatbench rehearse``: part of the live load, bound to the
seeded data as the benchmarks bind them, writes rolled back, and named in the report's blocked queries; a schema
on its own names is seeded and verified through its role map (``[tool.chatbench.map]``).

Real rehearsals on the session's server at the smallest sizes of the rehearsal corpus (``SPEC`` and
``SMALL_SPEC`` of ``tests/rehearse_corpus.py``). The migration holds a lock for a fixed second, so which app
queries it blocks does not depend on timing: ``SHARE`` blocks every write and no read, and the only writes of
the load are the application's. Asserted on names, counts and findings; never on timings.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from app_queries_support import CORPUS, queries_of, roles_of
from commandline import in_process
from rehearse_corpus import SMALL_SPEC, SPEC

from chatbench.provision import Server
from chatbench.rehearse import Rehearsal, RehearsalPlan, rehearse
from chatbench.rehearse.budgets import load_budgets
from chatbench.rehearse.statements import read_migration
from chatbench.reports.rehearsal_markdown import section
from chatbench.schema.appqueries import AppQueries, parse_queries
from chatbench.schema.rolemap import CANONICAL, RoleMap

QUERIES = """
-- name: history_page
SELECT id, created_at, content FROM messages WHERE conversation_id = :conversation_id
   AND (created_at, id) < (:before_created_at, :before_id)
 ORDER BY created_at DESC, id DESC LIMIT :limit;

-- name: add_message
INSERT INTO messages (conversation_id, user_id, role, content) VALUES (:conversation_id, :user_id, :role, :content);
"""
LOCK_A_SECOND = "BEGIN;\nLOCK TABLE {table} IN SHARE MODE;\nSELECT pg_sleep(1);\nCOMMIT;\n"


def _plan(folder: Path, migration: str, queries: AppQueries, weights: dict[str, float], *,
          before: Path | None = None, roles: RoleMap = CANONICAL) -> RehearsalPlan:
    path = folder / "migration.sql"
    path.write_text(migration)
    return RehearsalPlan(
        migration=read_migration(path), migration_source=f"--migration {path.name}", migration_cmd=None,
        before_file=before, before_cmd=None, spec=SPEC, small_spec=SMALL_SPEC, seed=1,
        production_messages=1_000_000_000, clients=2, rate_per_s=100.0, weights=weights, baseline_s=0.3,
        budgets=load_budgets(), timeout_s=120.0, queries=queries, roles=roles)


def _blocked(result: Rehearsal) -> dict[str, set[str]]:
    """access -> the operations the report names blocked, at the profile's size."""
    out: dict[str, set[str]] = {"reads": set(), "appends": set()}
    for run in result.measured.statements:
        for access, blocked in run.blocked.items():
            out[access].update(blocked.operations)
    return out


@pytest.mark.slow  # two seeded sizes under live load
def test_the_app_queries_run_in_the_live_load_and_are_named_when_blocked(pg: Server, tmp_path: Path) -> None:
    """The canonical ``latest_page`` and the application's read and write make the load; the migration's SHARE
    lock blocks the application's write, which the statements table names; every write was rolled back."""
    plan = _plan(tmp_path, LOCK_A_SECOND.format(table="messages"), parse_queries(QUERIES, "app.sql"),
                 {"latest_page": 1.0})
    result = rehearse(pg, plan)
    size = result.measured
    assert size.outcome == "completed", size.failure
    assert "latest_page=1, app:history_page=0.5, app:add_message=0.5" in size.load, size.load
    assert size.phases["before"].reads.requests > 0 and size.phases["before"].appends.requests > 0
    assert not size.app_errors, size.app_errors
    assert _blocked(result) == {"reads": set(), "appends": {"app:add_message"}}
    assert size.blocked and {b.operation for b in size.blocked} == {"app:add_message"}
    assert {b.access for b in size.blocked} == {"appends"}
    # each app write ran in a transaction rolled back: the table holds the seeded messages, no more
    assert size.counts["messages"] == SPEC.messages.count
    # the report's statements table names the blocked operation beside its count
    assert any("(app:add_message)" in line for line in section(result)), "\n".join(section(result))
    assert result.verification is not None and result.verification.passed, result.failing_lines()


@pytest.mark.slow  # two seeded sizes of an application's own schema
def test_a_mapped_schema_is_seeded_loaded_and_verified_through_its_map(pg: Server, tmp_path: Path) -> None:
    """``ai_chatbot`` names every role its own way: the seed fills it through the map, the canonical operations
    (on the canonical names) are left out of the load and the application's queries make it, and the migrated
    schema is judged through the map (its drift is warnings, never a missing ``messages`` table)."""
    name = "ai_chatbot"
    plan = _plan(tmp_path, LOCK_A_SECOND.format(table='"Message_v2"'), queries_of(name), {"latest_page": 1.0,
                 "append_message": 1.0}, before=CORPUS / name / "schema.sql", roles=roles_of(name))
    result = rehearse(pg, plan)
    size = result.measured
    assert size.outcome == "completed", size.failure
    mix = size.load.split(" mix ", 1)[1].split(", ")
    assert mix and all(item.startswith("app:") for item in mix), size.load
    assert size.phases["before"].reads.requests > 0
    assert size.counts["messages"] == SPEC.messages.count  # counted in "Message_v2"
    assert result.verification is not None
    drift = [f for f in result.verification.findings if f.check == "drift"]
    assert not [f for f in drift if f.severity == "error"], [f.message() for f in drift]
    assert {f.kind for f in drift} >= {"no_owner_column", "no_updated_at"}
    # the application's own plans are judged on the migrated schema: its two defects, named
    mine = {(f.kind, (f.query or "").split(" ")[0]) for f in result.verification.findings
            if f.check == "queries" and f.severity == "error"}
    assert {("no_limit", "messages_of_chat"), ("lost_rows", "history_before")} <= mine, mine


def test_a_bad_queries_file_is_one_line_before_any_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "app.sql"
    bad.write_text("-- name: by_tenant\nSELECT * FROM messages WHERE tenant_id = :tenant LIMIT :limit\n")
    migration = tmp_path / "m.sql"
    migration.write_text("CREATE INDEX CONCURRENTLY ix_m ON messages (user_id);\n")
    done = in_process(capsys, "rehearse", "--backend", "local", "--profile", "ci", "--migration", str(migration),
                      "--queries", str(bad), "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "parameter :tenant is not a role" in lines[0], lines
    assert "postgresql" not in (done.stdout + done.stderr).lower() and not (tmp_path / "out").exists()
