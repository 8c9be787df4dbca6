"""A migration that fails or hangs: the statement is named, the verdict is FAIL (exit 1), the larger
size is not run, and nothing the rehearsal created is left on the server (databases, sessions)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import psycopg
import pytest

from chatbench import loadgen
from chatbench.benchmarks.loadtest.mix import DEFAULT_WEIGHTS
from chatbench.provision import Server
from chatbench.rehearse import Rehearsal, RehearsalPlan, rehearse
from chatbench.rehearse.budgets import load_budgets
from chatbench.rehearse.result import FORMAT_VERSION
from chatbench.rehearse.stage import smaller_spec
from chatbench.rehearse.statements import split_sql

# Every rehearsal here seeds the smoke profile and its smaller size (smoke_fifth, 4,000 messages: what is judged
# here is a verdict, not a volume), with seed 1 on the worker's session server; the seed cache keeps each as a
# template database on that server (the rehearsal corpus uses the same two), so on one worker the sizes are
# seeded once for the file instead of once per worker.
pytestmark = [pytest.mark.slow,  # whole rehearsals (about 20 s of the fast tier's worker time): not in the edit loop
              pytest.mark.xdist_group("rehearse_smoke_seed_1")]
SMALL_MESSAGES = 4_000  # smoke_fifth: the size a failing migration stops at


def _plan(*, sql: str | None = None, command: str | None = None, timeout_s: float = 60.0) -> RehearsalPlan:
    spec = loadgen.load_spec("smoke")
    return RehearsalPlan(
        migration=None if sql is None else split_sql(sql, "t.sql"), migration_source="t", migration_cmd=command,
        before_file=None, before_cmd=None, spec=spec, small_spec=smaller_spec(spec), seed=1,
        production_messages=1_000_000_000, clients=2, rate_per_s=100.0, weights=DEFAULT_WEIGHTS, baseline_s=0.2,
        budgets=load_budgets(), timeout_s=timeout_s)


def _left_over(pg: Server) -> list[str]:
    with psycopg.connect(pg.admin_conninfo(), autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'cbr_%'").fetchall()]


def _only_small_and_failed(result: Rehearsal, rule: str) -> None:
    assert result.verdict == "FAIL" and result.exit_code == 1
    assert len(result.sizes) == 1 and result.sizes[0].messages == SMALL_MESSAGES
    assert result.verification is None
    (finding,) = [f for f in result.findings if f.severity == "FAIL"]
    assert finding.rule == rule, finding.line()


def test_a_failing_statement_is_named(pg: Server) -> None:
    result = rehearse(pg, _plan(sql="SET lock_timeout = '1s';\nCREATE INDEX ix_ok ON conversations (title);\n"
                                    "ALTER TABLE messages ADD COLUMN broken int REFERENCES nowhere (id);\n"))
    _only_small_and_failed(result, "failed")
    finding = result.findings[0]
    assert finding.statement == 3 and "line 3" in finding.evidence and "nowhere" in finding.evidence
    assert result.sizes[0].statements[-1].error is not None
    assert _left_over(pg) == []


def test_a_hanging_statement_is_stopped_at_the_timeout(pg: Server) -> None:
    result = rehearse(pg, _plan(sql="SELECT pg_sleep(60);\n", timeout_s=2.0))
    _only_small_and_failed(result, "timed_out")
    assert "did not finish within 2 s" in result.findings[0].evidence
    assert "pg_sleep" in result.findings[0].evidence  # what it was running
    assert result.sizes[0].migration_s < 10
    assert _left_over(pg) == []


@pytest.mark.parametrize(("command", "rule", "text"), [
    (f"{sys.executable} -c 'import sys; sys.exit(3)'", "failed", "exited 3"),
    (f"{sys.executable} -c 'import time; time.sleep(60)'", "timed_out", "did not finish within 2 s"),
])
def test_a_failing_or_hanging_command(pg: Server, command: str, rule: str, text: str, tmp_path: Path) -> None:
    result = rehearse(pg, _plan(command=command, timeout_s=2.0))
    _only_small_and_failed(result, rule)
    assert text in result.findings[0].evidence
    assert _left_over(pg) == []


def test_a_lost_lock_sampler_makes_the_verdict_error_not_pass(pg: Server, tmp_path: Path) -> None:
    """The migration itself terminates the sampler's session: the locks after that were never seen, so
    the rehearsal must not read as "nothing blocked" (it did: the sampler's error was dropped)."""
    from chatbench.rehearse.sampler import SAMPLER_NAME
    from chatbench.reports.rehearsal_output import write_rehearsal

    result = rehearse(pg, _plan(sql=(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{SAMPLER_NAME}';\n"
        "SELECT pg_sleep(0.3);\nCREATE INDEX CONCURRENTLY ix_unseen ON conversations (title);\n")))
    assert result.verdict == "ERROR" and result.exit_code == 2, result.failing_lines()
    assert [s.outcome for s in result.sizes] == ["completed", "completed"]
    for size in result.sizes:
        assert size.sampler_error is not None and "into the migration" in size.sampler_error, size.sampler_error
    errors = [f for f in result.findings if f.severity == "ERROR"]
    assert [f.rule for f in errors] == ["sampler", "sampler"]
    # The server's word for it depends on when the sampler next reads: the termination notice, or a closed socket.
    assert any(w in errors[0].evidence for w in ("terminat", "closed the connection")), errors[0].evidence
    assert f"{SMALL_MESSAGES:,} messages" in errors[0].evidence
    assert "incomplete lock evidence" in result.headline() and len(result.failing_lines()) == 2
    written = write_rehearsal(result, tmp_path)
    assert "## Could not judge" in written["rehearsal.md"].read_text(encoding="utf-8")
    junit = written["rehearsal.junit.xml"].read_text(encoding="utf-8")
    assert 'errors="2"' in junit and "<error " in junit
    data = json.loads(written["rehearsal.json"].read_text(encoding="utf-8"))
    assert data["verdict"] == "ERROR" and data["format_version"] == FORMAT_VERSION
    assert all(s["sampler_error"] for s in data["sizes"])
    assert _left_over(pg) == []


def test_a_migration_that_breaks_the_app_fails_with_the_errors_it_saw(pg: Server, tmp_path: Path) -> None:
    """A migration that hides a table for a moment: the app's requests fail while it runs (never before),
    the verdict is FAIL (``app_errors``, it said WARN before), and the report shows the errors themselves."""
    from chatbench.reports.rehearsal_output import write_rehearsal

    result = rehearse(pg, _plan(sql="ALTER TABLE messages RENAME TO messages_hidden;\nSELECT pg_sleep(0.5);\n"
                                    "ALTER TABLE messages_hidden RENAME TO messages;\n"))
    size = result.measured
    assert size.app_errors and any("messages" in error and "UndefinedTable" in error for error in size.app_errors)
    assert size.phases["during"].errors > 0 and size.phases["before"].errors == 0
    assert result.verdict == "FAIL" and result.exit_code == 1
    broke = [f for f in result.findings if f.rule == "app_errors"]
    assert [f.severity for f in broke] == ["FAIL", "FAIL"]  # at both sizes
    assert "the migration broke the running app" in broke[-1].evidence and "UndefinedTable" in broke[-1].evidence
    assert f"{size.phases['during'].errors} of {size.phases['during'].requests} app requests" in broke[-1].evidence
    written = write_rehearsal(result, tmp_path)
    report = written["rehearsal.md"].read_text(encoding="utf-8")
    assert f"Errors the app saw at {size.messages:,} messages" in report and size.app_errors[0] in report
    assert size.app_errors[0].split(":")[0] in written["rehearsal.html"].read_text(encoding="utf-8")
