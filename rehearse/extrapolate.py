"""Blocking time at the production size: a linear extrapolation from the two measured sizes.

A statement whose blocking work grows with the table (it rewrote the table, or read its rows under
the lock: an index build, a constraint validation, a NOT NULL check) is fitted as ``a + b * n``
through the two measurements (n = messages) and extended to ``--production-messages``. When the two
measurements differ by no more than the noise (``NOISE_S``), the fitted slope is the noise's (a
rewrite of a small table measured at 3.0 ms and 3.1 ms would extrapolate to half a second), so the
larger measurement is scaled proportionally instead (an overestimate: the fixed part scales too). A
statement that read no rows and rewrote nothing is metadata-only and costs the same at every size:
its estimate is the larger measurement. Where the rows read cannot be observed (a migration
command; a statement run outside a transaction block) the measurements decide: growth of at least
the square root of the size ratio (the geometric middle between "constant" and "linear") and of
more than 10 ms counts as growing. This is an extrapolation, and the reports say so.

WAL (``extrapolate_wal``) the same way, from each statement's bytes at both sizes: growth of at least
the square root of the size ratio and of more than ``WAL_NOISE_BYTES`` (the app's own appends write
WAL beside it) is fitted linearly; anything else (a metadata change, one batch of a batched backfill)
costs the same at any size. A command's WAL is known for its whole migration only.
"""

from __future__ import annotations

import math

from chatbench.rehearse.budgets import WalBudget
from chatbench.rehearse.result import ACCESSES, Estimate, SizeRun, StatementRun, WalEstimate

NOISE_S = 0.010
WAL_NOISE_BYTES = 1 << 20


def _pairs(small: SizeRun, large: SizeRun) -> list[tuple[StatementRun | None, StatementRun]]:
    by_index = {s.index: s for s in small.statements}
    by_text = {s.sql: s for s in small.statements}
    return [(by_index.get(run.index) if by_index.get(run.index) and by_index[run.index].sql == run.sql
             else by_text.get(run.sql), run) for run in large.statements]


def _basis(small_run: StatementRun | None, run: StatementRun, table: str, b1: float, b2: float,
           n1: int, n2: int) -> tuple[bool, str]:
    rewrote = table in run.rewrites or (small_run is not None and table in small_run.rewrites)
    if rewrote:
        return True, f"rewrote {table}: work grows with the table"
    if table in run.scanned or (small_run is not None and table in small_run.scanned):
        return True, f"read the rows of {table} under the lock: work grows with the table"
    observable = run.lock_timeout is not None and run.kind != "" and small_run is not None
    growth = b2 / b1 if b1 > 0 else math.inf
    if not observable and growth >= math.sqrt(n2 / n1) and b2 - b1 > NOISE_S:
        return True, f"grew x{growth:.1f} for x{n2 / n1:.0f} rows (rows read not observable)"
    return False, f"no rewrite, no rows read under the lock: about the same at any size ({b1:.3f} s, {b2:.3f} s)"


def extrapolate(small: SizeRun, large: SizeRun, production_messages: int) -> tuple[Estimate, ...]:
    """One estimate per statement, table and access that the migration blocked at either size."""
    n1, n2 = small.messages, large.messages
    out = []
    for small_run, run in _pairs(small, large):
        tables = set(run.tables_blocked()) | (set(small_run.tables_blocked()) if small_run else set())
        for table in sorted(tables):
            for access in ACCESSES:
                b2 = run.blocking_s(table, access)
                b1 = small_run.blocking_s(table, access) if small_run is not None else b2
                if b1 <= 0 and b2 <= 0:
                    continue
                lock = run.blocking_lock(table, access) or (
                    small_run.blocking_lock(table, access) if small_run else None)
                scales, basis = _basis(small_run, run, table, b1, b2, n1, n2)
                if scales and n2 > n1:
                    slope = (b2 - b1) / (n2 - n1)
                    if b2 - b1 <= NOISE_S:  # a slope this small is the noise's, not the statement's
                        slope = b2 / n2
                        basis += "; slope from the larger size alone (the two sizes were too noisy to fit)"
                    estimate = max(0.0, b2 + slope * (production_messages - n2))
                else:
                    estimate = max(b1, b2)
                out.append(Estimate(run.index, table, access, lock.mode if lock else "", n1, b1, n2, b2,
                                    production_messages, scales, basis, estimate))
    return tuple(out)


def _wal_estimate(index: int | None, w1: int, w2: int, n1: int, n2: int, production: int,
                  budget: WalBudget) -> WalEstimate:
    growth = w2 / w1 if w1 > 0 else math.inf
    if n2 > n1 and w2 - w1 > WAL_NOISE_BYTES and growth >= math.sqrt(n2 / n1):
        estimate = w2 + (w2 - w1) / (n2 - n1) * (production - n2)
        basis = f"grew x{growth:.1f} for x{n2 / n1:.0f} rows: linear in the table's size"
        scales = True
    else:
        estimate = float(max(w1, w2))
        basis = "about the same at both sizes: constant"
        scales = False
    return WalEstimate(index, n1, w1, n2, w2, production, scales, basis, estimate, budget.lag_s(estimate))


def extrapolate_wal(small: SizeRun, large: SizeRun, production_messages: int,
                    budget: WalBudget) -> tuple[WalEstimate, ...]:
    """Each statement's WAL extrapolated to ``production_messages`` (a command's: the whole migration's)."""
    n1, n2 = small.messages, large.messages
    out = []
    for small_run, run in _pairs(small, large):
        if run.wal_bytes is None:
            continue
        w1 = small_run.wal_bytes if small_run is not None and small_run.wal_bytes is not None else run.wal_bytes
        out.append(_wal_estimate(run.index, w1, run.wal_bytes, n1, n2, production_messages, budget))
    if not out and small.migration_wal_bytes is not None and large.migration_wal_bytes is not None:
        out.append(_wal_estimate(None, small.migration_wal_bytes, large.migration_wal_bytes, n1, n2,
                                 production_messages, budget))
    return tuple(out)
