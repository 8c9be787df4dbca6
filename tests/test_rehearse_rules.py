"""The deterministic parts of the rehearsal's verdict: lock conflicts, extrapolation, rules, budgets.

Built from small hand-made ``SizeRun``s (what the analysis hands over); the measuring side is covered
by the corpus on real servers.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from chatbench.rehearse.budgets import load_budgets, parse_budgets
from chatbench.rehearse.extrapolate import extrapolate
from chatbench.rehearse.locks import MODES, conflicts, short
from chatbench.rehearse.result import AppWindow, Blocked, LockHold, SizeRun, StatementRun
from chatbench.rehearse.rules import judge

from chatbench.errors import ConfigError


def _run(sql: str, held_s: float, *, mode: str = "ShareLock", blocks: tuple[str, ...] = ("appends",),
         scanned: tuple[str, ...] = (), rewrites: tuple[str, ...] = (), lock_timeout: str = "0") -> StatementRun:
    hold = LockHold("messages", "messages", mode, held_s, 0.0, blocks)  # type: ignore[arg-type]
    kind = "IndexStmt" if sql.startswith("CREATE INDEX") else "AlterTableStmt"
    return StatementRun(1, sql, 1, kind, 0.0, held_s, held_s, (hold,), rewrites, scanned, lock_timeout,
                        {"reads": Blocked(), "appends": Blocked(2, held_s * 0.9)}, AppWindow())


def _size(messages: int, *runs: StatementRun) -> SizeRun:
    return SizeRun("p", messages, {"messages": messages}, "completed", None, 1.0, runs, {}, (), (), (), 10, 5.0, "")


def test_the_conflict_matrix_is_symmetric_and_matches_the_docs() -> None:
    assert all(conflicts(a, b) == conflicts(b, a) for a in MODES for b in MODES)
    assert conflicts("ShareLock", "RowExclusiveLock") and not conflicts("ShareLock", "AccessShareLock")
    assert not conflicts("ShareUpdateExclusiveLock", "RowExclusiveLock")
    assert all(conflicts("AccessExclusiveLock", m) for m in MODES)
    assert short("ShareRowExclusiveLock") == "SHARE ROW EXCLUSIVE"


def test_a_scanning_statement_is_extrapolated_linearly() -> None:
    small = _size(20_000, _run("CREATE INDEX i ON messages (user_id)", 0.03, scanned=("messages",)))
    large = _size(200_000, _run("CREATE INDEX i ON messages (user_id)", 0.21, scanned=("messages",)))
    (estimate,) = extrapolate(small, large, 1_000_000_000)
    slope = (0.21 - 0.03) / 180_000
    assert estimate.scales and math.isclose(estimate.extrapolated_s, 0.21 + slope * (1_000_000_000 - 200_000))
    finding, warning = judge((small, large), (estimate,), load_budgets())
    assert finding.rule == "blocking" and finding.severity == "FAIL" and finding.lock == "ShareLock"
    assert "CREATE INDEX CONCURRENTLY" in finding.rewrite and "0.210 s at 200,000 messages" in finding.evidence
    assert "2 app appends seen blocked" in finding.evidence
    assert warning.rule == "lock_timeout" and warning.severity == "WARN"


def test_a_metadata_only_statement_does_not_grow_with_noise() -> None:
    sql = "ALTER TABLE messages ADD COLUMN x int DEFAULT 1"
    small = _size(20_000, _run(sql, 0.002, mode="AccessExclusiveLock", blocks=("reads", "appends")))
    large = _size(200_000, _run(sql, 0.009, mode="AccessExclusiveLock", blocks=("reads", "appends"),
                                lock_timeout="2s"))
    estimates = extrapolate(small, large, 1_000_000_000)
    assert {e.access for e in estimates} == {"reads", "appends"}
    assert all(not e.scales and e.extrapolated_s == 0.009 for e in estimates)
    assert judge((small, large), estimates, load_budgets()) == ()


def test_a_noisy_slope_falls_back_to_proportional() -> None:
    small = _size(20_000, _run("ALTER TABLE messages ALTER COLUMN c TYPE bigint", 0.05, rewrites=("messages",)))
    large = _size(200_000, _run("ALTER TABLE messages ALTER COLUMN c TYPE bigint", 0.04, rewrites=("messages",)))
    (estimate,) = extrapolate(small, large, 20_000_000)
    assert estimate.scales and math.isclose(estimate.extrapolated_s, 0.04 * 100)
    (finding, _warning) = judge((small, large), (estimate,), load_budgets())
    assert "add a column of the new type" in finding.rewrite


def test_a_slope_within_the_noise_falls_back_to_proportional() -> None:
    """A table rewritten at both sizes in about the same few milliseconds (what CI saw for the small
    ``users`` table): fitting 3.0 ms and 3.1 ms would extrapolate to half a second and pass the budget."""
    sql = "ALTER TABLE messages ADD COLUMN x timestamptz NOT NULL DEFAULT clock_timestamp()"
    small = _size(20_000, _run(sql, 0.0030, rewrites=("messages",)))
    large = _size(200_000, _run(sql, 0.0031, rewrites=("messages",)))
    (estimate,) = extrapolate(small, large, 1_000_000_000)
    assert estimate.scales and math.isclose(estimate.extrapolated_s, 0.0031 * 5000)
    assert "too noisy to fit" in estimate.basis
    (finding, *_) = judge((small, large), (estimate,), load_budgets())
    assert finding.severity == "FAIL" and finding.rule == "blocking"


def test_a_failed_migration_is_one_fail_naming_the_statement() -> None:
    broken = replace(_run("ALTER TABLE nope ADD COLUMN x int", 0.001), error="UndefinedTable: relation does not exist")
    size = replace(_size(20_000, broken), outcome="failed", failure="statement 1 (line 1) failed: UndefinedTable")
    (finding,) = judge((size,), (), load_budgets())
    assert finding.rule == "failed" and finding.statement == 1 and "UndefinedTable" in finding.evidence


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[rehearsal]\nmessages = 1\n", "expected a table"),
        ("[rehearsal]\nmessages = { reads_blocked = 1 }\n", "unknown key(s) reads_blocked"),
        ("[rehearsal]\nmessages = { reads_blocked_s = 0 }\n", "greater than 0"),
        ("[rehearsal]\nmessages = { reads_blocked_s = 1 }\n", "default needs both"),
        ("[other]\n", "no [rehearsal] table"),
    ],
)
def test_bad_budgets_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        parse_budgets(text, "t.toml")
    assert message in str(caught.value)


def test_the_shipped_budgets_cover_the_history_tables() -> None:
    budgets = load_budgets()
    assert budgets.why
    for table in ("messages", "conversations", "users", "anything_else"):
        assert budgets.budget(table, "reads") > 0 and budgets.budget(table, "appends") > 0
