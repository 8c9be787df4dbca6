"""A migration that fails or hangs: the statement is named, the verdict is FAIL (exit 1), the larger
size is not run, and nothing the rehearsal created is left on the server (databases, sessions)."""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg
import pytest
from chatbench.benchmarks.loadtest.mix import DEFAULT_WEIGHTS
from chatbench.rehearse import Rehearsal, RehearsalPlan, rehearse
from chatbench.rehearse.budgets import load_budgets
from chatbench.rehearse.stage import smaller_spec
from chatbench.rehearse.statements import split_sql

from chatbench import loadgen
from chatbench.provision import Server


def _plan(*, sql: str | None = None, command: str | None = None, timeout_s: float = 60.0) -> RehearsalPlan:
    spec = loadgen.load_spec("ci")
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
    assert len(result.sizes) == 1 and result.sizes[0].messages == 20_000
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
