"""Every unsafe migration of the corpus FAILs naming the statement, the lock and the blocked time;
every safe one passes (no finding at all, and the migrated schema verifies clean), except for the rules
a case's ``safe_trips`` names (the type change breaks prepared statements however it is written): at the
smoke profile and a fifth of it (``SPEC``, ``SMALL_SPEC``), on PostgreSQL 18 (embedded) and 15 (Debian).

Real servers, real live load, real locks: nothing here is mocked. The seeded templates are made
once per server (the seed cache) and every rehearsal clones them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rehearse_corpus import CASES, SMALL_SPEC, SPEC, Case
from servers import DEBIAN_PG15, require_pg15

from chatbench.benchmarks.loadtest.mix import DEFAULT_WEIGHTS
from chatbench.provision import Server, provision
from chatbench.rehearse import Rehearsal, RehearsalPlan, rehearse
from chatbench.rehearse.budgets import load_budgets
from chatbench.rehearse.locks import short
from chatbench.rehearse.statements import read_migration

pytestmark = pytest.mark.slow  # whole sign-offs, rehearsals or a Citus cluster: not in the fast tier


@pytest.fixture(scope="module")
def pg15() -> Iterator[Server]:
    require_pg15()
    with provision("local", pg_bin=str(DEBIAN_PG15)) as server:
        yield server


def plan_for(case: Case, folder: Path, *, safe: bool) -> RehearsalPlan:
    migration = case.migration(folder, safe)
    return RehearsalPlan(
        migration=read_migration(migration), migration_source=f"--migration {migration.name}", migration_cmd=None,
        before_file=case.before_sql(folder, safe), before_cmd=None, spec=SPEC, small_spec=SMALL_SPEC, seed=1,
        production_messages=1_000_000_000, clients=2, rate_per_s=100.0, weights=DEFAULT_WEIGHTS, baseline_s=0.3,
        budgets=load_budgets(), timeout_s=120.0)


def check_unsafe(case: Case, result: Rehearsal) -> None:
    assert result.verification is not None and result.verification.passed, result.failing_lines()
    assert result.verdict == "FAIL", result.headline()
    blocking = [f for f in result.findings if f.rule == "blocking" and f.severity == "FAIL"]
    assert blocking, [f.line() for f in result.findings]
    finding = next((f for f in blocking if f.statement == case.statement and f.table == case.table), None)
    assert finding is not None, [f.line() for f in blocking]
    assert finding.lock == case.lock, finding.line()
    assert finding.measured_s is not None and finding.measured_s > 0
    assert finding.extrapolated_s is not None and finding.budget_s is not None
    assert max(finding.measured_s, finding.extrapolated_s) > finding.budget_s
    statement = result.measured.statements[case.statement - 1]
    assert statement.sql in finding.line() or statement.sql[:160] in finding.line()
    assert short(case.lock) in finding.evidence and f"{finding.measured_s:.3f} s" in finding.evidence
    assert "extrapolat" in finding.evidence and finding.rewrite


def check_safe(case: Case, result: Rehearsal) -> None:
    assert {f.rule for f in result.findings} == set(case.safe_trips), [f.line() for f in result.findings]
    assert result.verification is not None and result.verification.passed, result.failing_lines()
    assert result.verdict == ("FAIL" if case.safe_trips else "PASS")
    assert all(s.outcome == "completed" for s in result.sizes)
    if "app_errors" in case.safe_trips:  # a prepared statement's result type changed: the advice says so
        assert all("cached plan must not change result type" in f.evidence and "prepared statements" in f.rewrite
                   for f in result.findings), [f.line() for f in result.findings]


@pytest.mark.parametrize("safe", [False, True], ids=["unsafe", "safe"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_pg18(pg: Server, case: Case, safe: bool, tmp_path: Path) -> None:
    result = rehearse(pg, plan_for(case, tmp_path, safe=safe))
    check_safe(case, result) if safe else check_unsafe(case, result)


ON_PG15 = ("index_messages_user_id", "column_default_users_last_seen_at", "fk_messages_conversation", "type_change",
           "not_null_messages_content")
"""One case of each kind of statement (index, column, foreign key, type change, NOT NULL) on PostgreSQL 15 too:
the locks and rewrites they take are the same there; the whole corpus would double the suite's longest module."""


@pytest.mark.pg15
@pytest.mark.parametrize("safe", [False, True], ids=["unsafe", "safe"])
@pytest.mark.parametrize("case", [c for c in CASES if c.name in ON_PG15],
                         ids=[c.name for c in CASES if c.name in ON_PG15])
def test_corpus_pg15(pg15: Server, case: Case, safe: bool, tmp_path: Path) -> None:
    result = rehearse(pg15, plan_for(case, tmp_path, safe=safe))
    check_safe(case, result) if safe else check_unsafe(case, result)
