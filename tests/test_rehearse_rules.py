"""The deterministic parts of the rehearsal's verdict: lock conflicts, extrapolation, rules, budgets.

Built from small hand-made ``SizeRun``s (what the analysis hands over); the measuring side is covered
by the corpus on real servers.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from chatbench.errors import ConfigError
from chatbench.rehearse.budgets import load_budgets, parse_budgets
from chatbench.rehearse.extrapolate import extrapolate, extrapolate_wal
from chatbench.rehearse.locks import MODES, conflicts, short
from chatbench.rehearse.result import (
    AppWindow,
    Attempt,
    Blocked,
    Latency,
    LockHold,
    Queued,
    Residue,
    SizeRun,
    StatementRun,
)
from chatbench.rehearse.rules import judge


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
    (finding,) = judge((small, large), (estimate,), load_budgets())  # lock_timeout = 0 alone is no finding: the
    assert finding.rule == "blocking" and finding.severity == "FAIL" and finding.lock == "ShareLock"  # queue is
    assert "CREATE INDEX CONCURRENTLY" in finding.rewrite and "0.210 s at 200,000 messages" in finding.evidence
    assert "2 app appends seen blocked" in finding.evidence  # measured (test_rehearse_queue), not read from text


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
    (finding,) = judge((small, large), (estimate,), load_budgets())
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


def _waiting(timeout: str, longest: float, *, attempts: tuple[Attempt, ...] = ()) -> StatementRun:
    """An ADD COLUMN that waited ``longest`` s for ACCESS EXCLUSIVE behind a long transaction, held it 2 ms."""
    hold = LockHold("messages", "messages", "AccessExclusiveLock", longest + 0.002, longest, ("reads", "appends"))
    return StatementRun(1, "ALTER TABLE messages ADD COLUMN edited_at timestamptz", 1, "AlterTableStmt", 0.0,
                        longest + 0.002, longest + 0.002, (hold,), (), (), timeout, {"reads": Blocked(3, longest)},
                        AppWindow(), attempts=attempts, queue=(Queued("messages", "reads", 3, longest),),
                        waited_s=longest, lock_timeout_source="read from the migration's session",
                        waited_for="pid 7 (chatbench-rehearse-long-transaction), idle in transaction")


def test_the_queue_behind_a_waiting_lock_is_judged_against_the_budget_not_the_hold() -> None:
    small, large = _size(20_000, _waiting("0", 4.9)), _size(200_000, _waiting("0", 5.0))
    estimates = extrapolate(small, large, 1_000_000_000)
    assert all(e.large_s < 0.01 for e in estimates)  # held 2 ms once granted: the wait is not the hold's
    (finding,) = judge((small, large), estimates, load_budgets())
    assert finding.rule == "lock_timeout" and finding.severity == "FAIL" and finding.measured_s == 5.0
    assert "3 app reads on messages (longest 5.000 s)" in finding.evidence and "lock_timeout = 0" in finding.evidence
    assert "chatbench-rehearse-long-transaction" in finding.evidence and "below the blocking budget" in finding.rewrite


def test_a_timeout_under_the_budget_passes_and_one_over_it_fails() -> None:
    tries = (Attempt(1, 0.0, 0.5, "lock timeout", "pid 7"), Attempt(2, 1.0, 0.5, "lock timeout", "pid 7"),
             Attempt(3, 2.5, 0.5, "lock timeout", "pid 7"), Attempt(4, 5.0, 0.002, "completed"))
    short_ = _size(200_000, _waiting("500ms", 0.5, attempts=tries))
    assert judge((short_, short_), extrapolate(short_, short_, 10**9), load_budgets()) == ()
    long_ = _size(200_000, _waiting("2s", 2.0, attempts=tries))
    (finding,) = judge((long_, long_), extrapolate(long_, long_, 10**9), load_budgets())
    assert finding.rule == "lock_timeout" and "lower lock_timeout" in finding.rewrite
    assert "4: at 5.00 s, completed" in finding.evidence


def test_retries_exhausted_fail_naming_the_transaction() -> None:
    tries = (Attempt(1, 0.0, 0.2, "lock timeout", "pid 7 (chatbench-rehearse-long-transaction)"),
             Attempt(2, 0.7, 0.2, "lock timeout", "pid 7 (chatbench-rehearse-long-transaction)"))
    run = replace(_waiting("200ms", 0.2, attempts=tries), error="LockNotAvailable: canceling statement due to lock "
                  "timeout")
    size = replace(_size(20_000, run), outcome="failed", failure="statement 1 (line 1) gave up on its lock_timeout "
                   "on all 2 attempt(s); it waited for pid 7 (chatbench-rehearse-long-transaction)")
    (finding,) = judge((size,), (), load_budgets())
    assert finding.rule == "lock_retries" and finding.severity == "FAIL" and finding.statement == 1
    assert "chatbench-rehearse-long-transaction" in finding.evidence and "end it" in finding.rewrite


@pytest.mark.parametrize("command", [False, True], ids=["sql-file", "migration-cmd"])
def test_a_statement_that_failed_after_lock_timeouts_is_failed_not_lock_retries(command: bool) -> None:
    """Only a lock timeout is retried, and only the last try says why the migration stopped: an ALTER that gave
    up on its lock_timeout and, once it had its lock, failed on a missing table is ``failed``, its tries the
    evidence (a command's tries are its runs)."""
    gave_up = Attempt(1, 0.0, 1.0, "lock timeout", "pid 7 (chatbench-rehearse-long-transaction)")
    failed = Attempt(2, 1.5, 0.5, "failed")
    error = 'UndefinedTable: relation "nowhere" does not exist'
    # a file's statement carries every try and the error; a command's sampled statement only its gave-up wait
    run = replace(_waiting("1s", 1.0, attempts=(gave_up,) if command else (gave_up, failed)),
                  error="gave up waiting for its lock after 1.00 s (lock_timeout, or cancelled)" if command else error)
    size = replace(_size(20_000, run), outcome="failed", failure=f"statement 1 (line 1) failed: {error}",
                   command_tries=(gave_up, failed) if command else ())
    (finding,) = judge((size,), (), load_budgets())
    assert finding.rule == "failed" and finding.severity == "FAIL" and "nowhere" in finding.evidence
    assert finding.statement == (None if command else 1)  # a command: the statement that gave up did not stop it
    assert "tries: 1: at 0.00 s, lock timeout after 1.00 s (waited for pid 7" in finding.evidence
    assert "2: at 1.50 s, failed after 0.50 s" in finding.evidence


def test_a_command_that_gave_up_on_every_run_is_lock_retries() -> None:
    gave_up = (Attempt(1, 0.0, 0.5, "lock timeout", "pid 7"), Attempt(2, 1.0, 0.5, "lock timeout", "pid 7"))
    run = replace(_waiting("about 500ms", 0.5, attempts=gave_up[:1]), error="gave up waiting for its lock")
    size = replace(_size(20_000, run), outcome="failed", failure="--migration-cmd 'alembic upgrade head' exited 1 on "
                   "all 2 attempt(s), each giving up on its lock_timeout", command_tries=gave_up)
    findings = judge((size,), (), load_budgets())
    assert [f.rule for f in findings] == ["lock_retries"] and findings[0].statement == 1


def _writing(sql: str, wal_bytes: int, index: int = 1) -> StatementRun:
    return StatementRun(index, sql, 1, "UpdateStmt", 0.0, 1.0, 1.0, (), (), ("messages",), "0", {}, AppWindow(),
                        wal_bytes=wal_bytes)


def test_wal_of_a_one_statement_backfill_is_extrapolated_and_fails_with_a_batched_rewrite() -> None:
    sql = "UPDATE messages SET n = length(content)"
    small, large = _size(20_000, _writing(sql, 15_400_000)), _size(200_000, _writing(sql, 156_000_000))
    budgets = load_budgets()
    (estimate,) = extrapolate_wal(small, large, 1_000_000_000, budgets.wal)
    assert estimate.scales and math.isclose(estimate.extrapolated_bytes,
                                            156e6 + (156e6 - 15.4e6) / 180_000 * (1e9 - 200_000))
    (finding,) = judge((small, large), (), budgets, (estimate,))
    assert finding.rule == "wal" and finding.severity == "FAIL" and "GB" in finding.evidence
    assert "batches" in finding.rewrite and finding.budget_s == budgets.wal.lag_allowed_s


def test_one_batch_writes_the_same_wal_at_any_size_and_passes() -> None:
    sql = "UPDATE messages SET n = length(content) WHERE id IN (SELECT id FROM messages LIMIT 5000)"
    small, large = _size(20_000, _writing(sql, 3_890_000)), _size(200_000, _writing(sql, 3_960_000))
    (estimate,) = extrapolate_wal(small, large, 1_000_000_000, load_budgets().wal)
    assert not estimate.scales and estimate.extrapolated_bytes == 3_960_000
    assert judge((small, large), (), load_budgets(), (estimate,)) == ()


def test_residue_fails_with_the_statement_and_the_fix_even_when_the_migration_failed() -> None:
    left = Residue("invalid index", "ux", "messages", "index ux on messages is INVALID", 2,
                   "CREATE UNIQUE INDEX CONCURRENTLY ux ON messages (user_id)", "DROP INDEX CONCURRENTLY ux; ...")
    size = replace(_size(20_000), outcome="failed", failure="statement 2 failed: UniqueViolation", residue=(left,))
    findings = judge((size,), (), load_budgets())
    assert [f.rule for f in findings] == ["residue", "failed"]
    assert findings[0].statement == 2 and "left by statement 2" in findings[0].evidence
    assert findings[0].rewrite.startswith("DROP INDEX CONCURRENTLY ux")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("wal = 1", "expected a table like"),
        ("wal = { apply = 1 }", "unknown key(s) apply"),
        ("wal = { lag_allowed_s = 0 }", "wal.lag_allowed_s = 0: expected a number greater than 0"),
    ],
)
def test_bad_wal_budgets_name_the_key(text: str, message: str) -> None:
    base = "[rehearsal]\ndefault = { reads_blocked_s = 1, appends_blocked_s = 1 }\n"
    with pytest.raises(ConfigError) as caught:
        parse_budgets(base + text + "\n", "t.toml")
    assert message in str(caught.value)


def test_the_shipped_wal_budget_is_the_default_and_a_targets_file_can_change_it() -> None:
    wal = load_budgets().wal
    assert wal.replica_apply_mb_s == 100.0 and wal.lag_allowed_s == 300.0 and wal.allowed_bytes == 30e9
    text = "[rehearsal]\ndefault = { reads_blocked_s = 1, appends_blocked_s = 1 }\nwal = { lag_allowed_s = 60 }\n"
    changed = parse_budgets(text, "t.toml").wal
    assert changed.lag_allowed_s == 60.0 and changed.replica_apply_mb_s == 100.0


def test_a_load_that_left_requests_unsent_makes_the_rehearsal_unable_to_judge_blocking() -> None:
    """Requests due while the rehearsal watched and never sent mean the load queued behind itself: an ERROR
    (the evidence cannot tell the migration's queue from the load's), not a silent empty window."""
    saturated = replace(_size(200_000), phases={
        "before": AppWindow(Latency(40, 0, 261.0, 3300.0, 3400.0, unserved=0)),
        "during": AppWindow(Latency(60, 0, 2400.0, 3100.0, 3300.0, unserved=25)),
    })
    findings = [f for f in judge((_size(20_000), saturated), (), load_budgets()) if f.rule == "load_saturated"]
    assert [(f.severity, f.rule) for f in findings] == [("ERROR", "load_saturated")]
    assert "25 of the 100 app requests" in findings[0].evidence and "lower --rate" in findings[0].rewrite
    kept_up = replace(_size(200_000), phases={"during": AppWindow(Latency(60, 0, 2.0, 9.0, 12.0))})
    assert not [f for f in judge((_size(20_000), kept_up), (), load_budgets()) if f.rule == "load_saturated"]


def test_a_request_left_by_each_client_at_the_stop_is_no_saturation() -> None:
    stragglers = replace(_size(200_000), phases={"after": AppWindow(Latency(300, 0, 2.0, 9.0, 12.0, unserved=3))})
    assert not [f for f in judge((_size(20_000), stragglers), (), load_budgets()) if f.rule == "load_saturated"]
