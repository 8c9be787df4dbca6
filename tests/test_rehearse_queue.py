"""The rules the long transaction, WAL and residue brought, judged on their corpus pairs (``rehearse_corpus.PAIRS``)
on PostgreSQL 18 (embedded) and, one pair of each rule, 15 (Debian): each unsafe version FAILs its rule with the
evidence in every report format (Markdown, HTML, JSON, JUnit), each safe version passes every rule.

- a metadata-only ADD COLUMN behind a long transaction: without lock_timeout the app queues behind its waiting lock
  for as long as the transaction runs (``lock_timeout`` FAIL naming it); with a short one, each try gives up, is
  retried with backoff, and the app is never queued longer than the timeout (PASS, every try shown); the same in
  the file's own BEGIN ... COMMIT block, retried whole from its BEGIN (its ``SET LOCAL lock_timeout`` with it);
- a one-statement backfill against a batched one (``wal``);
- a concurrent unique build that meets a duplicate against one that succeeds (``residue``: the INVALID index);
- an Alembic migration whose env.py sets lock_timeout in the connection's options (invisible in any SQL text).

And the WAL a table rewrite writes, measured as a production primary writes it (``wal_level = replica``, which the
throwaway server is restarted with for the rehearsal, and restored afterwards).

Real servers, a real long transaction, real lock queues: nothing here is mocked.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rehearse_corpus import LONG_TRANSACTION_S, PAIRS, Pair, alembic_project
from servers import DEBIAN_PG15, require_pg15

from chatbench import loadgen
from chatbench.benchmarks.loadtest.mix import DEFAULT_WEIGHTS
from chatbench.provision import Server, provision
from chatbench.provision.choice import ServerChoice, provision_choice
from chatbench.rehearse import Rehearsal, RehearsalPlan, rehearse
from chatbench.rehearse.appload import AppOperation, app_load
from chatbench.rehearse.budgets import load_budgets
from chatbench.rehearse.longtx import LONG_TX_NAME
from chatbench.rehearse.stage import production_wal, rehearsal_server_settings, smaller_spec, wal_settings
from chatbench.rehearse.statements import read_migration
from chatbench.reports.rehearsal_output import write_rehearsal

pytestmark = pytest.mark.slow  # whole sign-offs, rehearsals or a Citus cluster: not in the fast tier

BUDGET_S = 1.0  # the shipped targets' blocking budget for messages


@pytest.fixture(scope="module")
def pg15() -> Iterator[Server]:
    require_pg15()
    with provision("local", pg_bin=str(DEBIAN_PG15)) as server:
        yield server


def plan_for(pair: Pair, folder: Path, *, safe: bool, lock_retries: int = 5) -> RehearsalPlan:
    """The pair's rehearsal at ci (200k and 20k messages) for the WAL rule, whose batches of 5,000 must be a small part
    of the smaller size; at smoke (20k and 4k) for the others: a queue behind a lock and an index left INVALID are
    the same at any size."""
    spec = loadgen.load_spec("ci" if pair.rule == "wal" else "smoke")
    if pair.alembic:
        migration, source, command = None, "alembic", alembic_project(folder, lock_timeout="500ms" if safe else None)
    else:
        path = pair.migration(folder, safe)
        migration, source, command = read_migration(path), f"--migration {path.name}", None
    return RehearsalPlan(
        migration=migration, migration_source=source, migration_cmd=command, before_file=None, before_cmd=None,
        spec=spec, small_spec=smaller_spec(spec), seed=1, production_messages=1_000_000_000, clients=2,
        rate_per_s=100.0, weights=DEFAULT_WEIGHTS, baseline_s=0.3, budgets=load_budgets(), timeout_s=120.0,
        long_transaction_s=pair.long_transaction_s, lock_retries=lock_retries, verify=pair.verify)


def reports(result: Rehearsal, folder: Path) -> dict[str, str]:
    written = write_rehearsal(result, folder / "out")
    return {name: path.read_text(encoding="utf-8") for name, path in written.items()}


def strings(data: object) -> Iterator[str]:
    """Every string value of a JSON document."""
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from strings(value)


def in_every_format(text: str, result: Rehearsal, folder: Path) -> dict[str, str]:
    """``text`` (a finding's evidence or a measurement) shows in the Markdown, HTML, JSON and JUnit reports."""
    out = reports(result, folder)
    assert text in out["rehearsal.md"], text
    assert html.escape(text) in out["rehearsal.html"] or text in out["rehearsal.html"], text
    assert any(text in value for value in strings(json.loads(out["rehearsal.json"]))), text
    assert html.escape(text, quote=True) in out["rehearsal.junit.xml"] or text in out["rehearsal.junit.xml"], text
    return out


def check_unsafe(pair: Pair, result: Rehearsal, folder: Path) -> None:
    assert result.verdict == "FAIL", result.headline()
    found = [f for f in result.findings if f.rule == pair.rule and f.severity == "FAIL"]
    assert found, [f.line() for f in result.findings]
    finding = found[0]
    if pair.statement is not None:
        assert finding.statement == pair.statement, finding.line()
    if pair.rule == "lock_timeout":
        assert finding.table == "messages" and finding.measured_s is not None and finding.budget_s == BUDGET_S
        # the app queued behind the waiting ALTER for about as long as the long transaction ran
        assert BUDGET_S < finding.measured_s <= pair.long_transaction_s + 0.5, finding.line()
        # (a long evidence line is elided in its middle: the long transaction is named on the statement's tries)
        assert "its waiting lock" in finding.evidence
        assert LONG_TX_NAME in finding.evidence or any(
            LONG_TX_NAME in (a.waited_for or "") for size in result.sizes for s in size.statements for a in s.attempts)
        assert "lock_timeout" in finding.rewrite and "retry" in finding.rewrite
        assert not [f for f in result.findings if f.rule == "blocking"], "the wait is the queue's, not the hold's"
    elif pair.rule == "wal":
        assert finding.extrapolated_s is not None and finding.budget_s is not None
        assert finding.extrapolated_s > finding.budget_s and "GB" in finding.evidence
        assert "batches" in finding.rewrite and "LIMIT" in finding.rewrite
        assert all(e.scales for e in result.wal_estimates if e.statement == pair.statement)
    elif pair.rule == "residue":
        assert "ix_messages_user_id" in finding.evidence and "INVALID" in finding.evidence
        assert "CREATE UNIQUE INDEX CONCURRENTLY" in finding.sql
        assert "DROP INDEX CONCURRENTLY ix_messages_user_id" in finding.rewrite
        assert any(f.rule == "failed" for f in result.findings)  # the build failed on the duplicate
    in_every_format(finding.evidence, result, folder)


def check_safe(pair: Pair, result: Rehearsal, folder: Path) -> None:
    assert result.findings == (), [f.line() for f in result.findings]
    if pair.verify:
        assert result.verification is not None and result.verification.passed, result.failing_lines()
    assert result.verdict == "PASS" and all(s.outcome == "completed" for s in result.sizes)
    assert all(not s.residue for s in result.sizes)
    if pair.long_transaction_s and not pair.alembic:
        for size in result.sizes:  # the ALTER gave up on its 500 ms, was retried, got its lock once the tx ended
            run = size.statements[1]
            assert len(run.attempts) >= 2, run.attempts
            assert [a.outcome for a in run.attempts[:-1]] == ["lock timeout"] * (len(run.attempts) - 1)
            assert run.attempts[-1].outcome == "completed"
            assert all(0.4 <= a.duration_s <= 0.8 for a in run.attempts[:-1]), run.attempts
            assert any(a.waited_for and LONG_TX_NAME in a.waited_for for a in run.attempts)
            assert all(q.longest_s < BUDGET_S for q in run.queue), run.queue
            if pair.safe.startswith("BEGIN"):  # each try was the whole block, rolled back at the ALTER, run again
                assert all(a.block_stopped_at == run.index for a in run.attempts[:-1]), run.attempts
                assert run.lock_timeout == "500ms", run.lock_timeout  # its SET LOCAL ran again on the last try
        # The 5 ms lock sampler can miss one try's wait on a loaded machine (seen under a profiler): the first try
        # it saw names the long transaction, and that evidence is in every format.
        seen = [a.waited_for for a in result.measured.statements[1].attempts if a.waited_for]
        assert seen and LONG_TX_NAME in seen[0], result.measured.statements[1].attempts
        in_every_format(seen[0], result, folder)  # each try, and whom it waited for
    if pair.alembic:  # the command gave up on env.py's lock_timeout, was run again, and succeeded
        tries = result.measured.command_tries
        assert len(tries) >= 2 and tries[0].outcome == "lock timeout" and tries[-1].outcome == "completed", tries
        # The statement a command's run gave up on is attributed from the lock sampler's view of its wait, which
        # a busy machine can miss (seen once in CI under load); when it is attributed, its timeout is inferred.
        gave_up = [s for s in result.measured.statements if s.attempts]
        assert all(s.lock_timeout and s.lock_timeout.startswith("about ") for s in gave_up), gave_up
        timeouts = [float(s.lock_timeout.split()[1].removesuffix("ms")) for s in gave_up if s.lock_timeout]
        assert all(400 <= t <= 800 for t in timeouts), timeouts  # inferred from the waits: env.py's 500ms
        assert tries[0].waited_for is not None and LONG_TX_NAME in tries[0].waited_for, tries
        in_every_format(tries[0].waited_for, result, folder)
    if pair.rule == "wal":
        batches = [e for e in result.wal_estimates if e.statement in (2, 3)]
        assert batches and all(not e.scales for e in batches), batches
        out = reports(result, folder)
        assert "WAL per statement" in out["rehearsal.md"] and "WAL: " in out["rehearsal.junit.xml"]


@pytest.mark.parametrize("safe", [False, True], ids=["unsafe", "safe"])
@pytest.mark.parametrize("pair", PAIRS, ids=[p.name for p in PAIRS])
def test_pairs_pg18(pg: Server, pair: Pair, safe: bool, tmp_path: Path) -> None:
    result = rehearse(pg, plan_for(pair, tmp_path, safe=safe))
    check_safe(pair, result, tmp_path) if safe else check_unsafe(pair, result, tmp_path)


ON_PG15 = ("add_column_long_transaction", "backfill", "concurrent_unique_index")
"""One pair of each rule on PostgreSQL 15 too (the queue behind a long transaction, WAL, residue): the locks, queue
and WAL are the server's. The transaction block retried whole and the Alembic command retried are the harness's
own, the same on either version, and each of the two pairs costs about 25 s a version (the long transaction runs
at both sizes)."""


@pytest.mark.pg15
@pytest.mark.parametrize("safe", [False, True], ids=["unsafe", "safe"])
@pytest.mark.parametrize("pair", [p for p in PAIRS if p.name in ON_PG15],
                         ids=[p.name for p in PAIRS if p.name in ON_PG15])
def test_pairs_pg15(pg15: Server, pair: Pair, safe: bool, tmp_path: Path) -> None:
    result = rehearse(pg15, plan_for(pair, tmp_path, safe=safe))
    check_safe(pair, result, tmp_path) if safe else check_unsafe(pair, result, tmp_path)


@pytest.mark.parametrize("block", [False, True], ids=["statement", "transaction-block"])
def test_a_statement_that_never_gets_its_lock_fails_naming_the_transaction(pg: Server, tmp_path: Path,
                                                                          block: bool) -> None:
    """200 ms and one retry cannot outlast a 2 s transaction: FAIL, naming the session it waited for; in a
    transaction block, both tries are the block's, each rolled back at the ALTER."""
    safe = (f"BEGIN;\nSET LOCAL lock_timeout = '200ms';\n{PAIRS[0].unsafe}\nCOMMIT;" if block
            else f"SET lock_timeout = '200ms';\n{PAIRS[0].unsafe}")
    statement = 3 if block else 2
    pair = Pair("add_column_retries_exhausted", PAIRS[0].unsafe, safe, "lock_retries", statement, LONG_TRANSACTION_S)
    result = rehearse(pg, plan_for(pair, tmp_path, safe=True, lock_retries=1))
    (finding,) = [f for f in result.findings if f.rule == "lock_retries"]
    assert finding.severity == "FAIL" and finding.statement == statement, finding.line()
    assert "on all 2 attempt(s)" in finding.evidence and LONG_TX_NAME in finding.evidence, finding.evidence
    assert "idle in transaction" in finding.evidence
    assert len(result.sizes) == 1  # it failed at the smaller size: the larger one is not run
    if block:
        assert "of its transaction block (from line 1)" in finding.evidence, finding.evidence
        assert "at statement 3, its transaction block rolled back" in finding.evidence, finding.evidence
        attempts = result.sizes[0].statements[-1].attempts
        assert [(a.outcome, a.block_stopped_at) for a in attempts] == [("lock timeout", 3)] * 2, attempts
    in_every_format(finding.evidence, result, tmp_path)


def test_a_table_rewrite_is_judged_by_the_wal_a_primary_writes(pg: Server, tmp_path: Path) -> None:
    """VACUUM FULL rewrites messages and its indexes. With wal_level = minimal (the session's throwaway server, as
    every benchmark server) the new files skip the WAL: under 2 % of what a primary with replicas writes, and
    a rewrite of 10^9 messages would pass the WAL budget. The rehearsal runs it with replica (and full-page writes),
    so it FAILs with a rewrite's advice, and the server is back at minimal afterwards."""
    before = wal_settings(pg)
    assert before == {"wal_level": "minimal", "full_page_writes": "off"}, before  # the benchmark settings
    pair = Pair("vacuum_full", "VACUUM FULL messages;", "", "wal", 1)
    result = rehearse(pg, plan_for(pair, tmp_path, safe=False))
    assert wal_settings(pg) == before  # restored: the benchmarks after a rehearsal run as before it
    assert {k: result.server["settings"][k] for k in before} == {"wal_level": "replica", "full_page_writes": "on"}
    assert all(s.wal_level == "replica" for s in result.sizes)
    (finding,) = [f for f in result.findings if f.rule == "wal"]
    assert finding.statement == 1 and finding.extrapolated_s is not None and finding.budget_s is not None
    assert finding.extrapolated_s > finding.budget_s, finding.line()
    assert "pg_repack" in finding.rewrite, finding.rewrite  # a rewrite's advice, not a backfill's
    run = result.measured.statements[0]
    assert run.rewrites == ("messages",) and run.wal_bytes is not None
    # the new heap and indexes logged whole: 259 MB at 200k messages on PostgreSQL 18 (about 3 MB with minimal)
    assert run.wal_bytes > 100e6, run.wal_bytes
    note = next(n for n in result.notes if "WAL per statement" in n)
    assert "restarted" in note and "wal_level = replica" in note
    in_every_format(finding.evidence, result, tmp_path)



@pytest.mark.container
def test_a_container_for_a_rehearsal_starts_with_the_wal_a_primary_writes() -> None:
    """A container's settings are its command line: it cannot be restarted with other WAL settings as a local
    cluster is, so one started for a rehearsal (``chatbench rehearse``, ``signoff --migration``) starts with them,
    and the rehearsal measures it as it is, with no restart."""
    assert rehearsal_server_settings("local") is None and rehearsal_server_settings("dsn") is None
    with provision_choice(ServerChoice("container"), use_dsn_database=False, allow_destructive=False,
                          start_timeout=120, announce=lambda _said: None,
                          server_settings=rehearsal_server_settings("container")) as server:
        assert wal_settings(server) == {"wal_level": "replica", "full_page_writes": "on"}
        with production_wal(server, lambda _said: None) as live:
            assert live.like_production and not live.restarted
            assert "as a production primary with replicas writes it" in live.note()


def test_requests_due_when_the_load_stops_are_kept_as_not_served(pg: Server) -> None:
    """One client asked for 40 requests/s of a query that takes 50 ms can send 20: the rest pile up behind it.
    They are kept (latency from when they were due to the stop: a lower bound) and counted as not served,
    so that a saturated load reads as saturated, not as an empty window."""
    slow = AppOperation("slow", "SELECT pg_sleep(0.05)", True, "reads", 1.0, ({},))
    with app_load(pg.conninfo(), (slow,), clients=1, rate_per_s=40, seed=1) as load:
        started = time.monotonic()
        time.sleep(1.5)
        stopped = time.monotonic()
        requests = load.stop()
    served = [r for r in requests.requests if r.served]
    unserved = [r for r in requests.requests if not r.served]
    assert served and unserved, (len(served), len(unserved))
    assert all(r.ok and r.intended <= r.done for r in unserved)
    window = requests.window(started, stopped + 5)
    assert window.unserved == len([r for r in unserved if r.intended >= started]) > 0
