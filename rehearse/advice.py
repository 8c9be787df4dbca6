"""The safe way to write a statement that blocked the app: one suggestion per kind of danger.

Chosen from the statement's parse tree (pglast) and from what the rehearsal saw it do (rewrite, rows
read), in the spirit of squawk and strong_migrations, whose rules these are.
"""

from __future__ import annotations

import re

from chatbench.rehearse.result import StatementRun

LOCK_TIMEOUT = ("SET lock_timeout below the blocking budget (e.g. '500ms' for a 1 s budget) before it, and retry "
                "the statement with backoff when it gives up (deploy tools do; --lock-retries here), so that waiting "
                "for its lock behind a long transaction never queues the app's queries longer than that")
LOWER_TIMEOUT = ("lower lock_timeout below the blocking budget (each try queues the app for up to lock_timeout), "
                 "and retry the statement with backoff when it gives up")
LOCK_RETRIES = ("the transaction it waited for (named) outlived every try: end it, or run the migration when no long "
                "transaction is open (idle_in_transaction_session_timeout ends a forgotten session), or retry longer "
                "(--lock-retries, the deploy tool's retries); keep lock_timeout short either way")
BATCHED_BACKFILL = ("backfill in batches, each in its own transaction: UPDATE ... WHERE id IN (SELECT id FROM ... "
                    "WHERE <column> IS NULL ORDER BY id LIMIT 5000), repeated by the deploy tool until it updates no "
                    "row, with a pause between batches that lets the replicas keep up (pg_stat_replication.replay_lag)")
WAL_INDEX = ("build it with CREATE INDEX CONCURRENTLY at a quiet hour: its WAL is the index's size, so watch the "
             "replicas' replay_lag, or build it on a replica-free window")
INDEX = ("CREATE INDEX CONCURRENTLY (outside a transaction block; if it fails, DROP INDEX CONCURRENTLY the "
         "invalid index and retry): reads and appends go on while it builds")
CONSTRAINT = ("ADD CONSTRAINT ... NOT VALID (a moment's lock, no scan), then ALTER TABLE ... VALIDATE CONSTRAINT "
              "in its own transaction (SHARE UPDATE EXCLUSIVE: reads and appends go on)")
NOT_NULL = ("ADD CONSTRAINT ... CHECK (column IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT; then SET NOT NULL "
            "(PostgreSQL 12+ skips the scan when a valid CHECK proves it) and DROP the CHECK")
VOLATILE_DEFAULT = ("add the column without a default or with a constant one (no rewrite since PostgreSQL 11), "
                    "backfill it in batches of a few thousand rows, then SET DEFAULT for new rows")
TYPE_CHANGE = ("avoid the rewrite: add a column of the new type, backfill it in batches, switch the app to it, "
               "drop the old one (varchar(n) -> text or a longer varchar rewrites nothing when no CHECK uses the "
               "column, but it still changes the result type under the app's prepared statements)")
EXPAND_CONTRACT = ("expand and contract: keep every table and column the running app uses, add the new ones beside "
                   "them, backfill, switch the app, and drop the old ones in a later release")
PREPARED_RESULT_TYPE = ("the statement changed a column's result type under the app's prepared statements "
                        "(psycopg's prepare_threshold, asyncpg's statement cache and pgjdbc's prepareThreshold keep "
                        "them), which fail until re-prepared: add a column of the new type, backfill it and switch the "
                        "app to it, or recycle the app's connections right after the migration")
PREPARED_ERROR = "cached plan must not change result type"
REWRITE = "split it so the table is not rewritten under an exclusive lock: new column or table, batched backfill"
REWRITE_WAL = ("do not rewrite the table in one statement: a rewrite logs the whole new table and its indexes at "
               "once (with wal_level replica or logical). Add a column or table and fill it by a batched backfill "
               "paced by the replicas' replay_lag; for VACUUM FULL or CLUSTER, pg_repack or pg_squeeze rebuild it "
               "online at a pace you set")
GENERIC = "keep the lock short: split the statement, do the heavy part with a weaker lock, and " + LOCK_TIMEOUT


def suggest_wal(run: StatementRun | None) -> str:
    """The rewrite for a statement that writes more WAL than the replicas can apply within the lag allowed."""
    if run is None:
        return BATCHED_BACKFILL
    sql = " ".join(run.sql.upper().split())
    if run.kind in ("IndexStmt", "ReindexStmt") or re.search(r"\bCREATE (UNIQUE )?INDEX\b", sql):
        return WAL_INDEX
    if run.rewrites:
        return REWRITE_WAL
    return BATCHED_BACKFILL


def suggest(run: StatementRun, table: str) -> str:
    """The safe rewrite for a statement that blocked the app on ``table``."""
    sql = " ".join(run.sql.upper().split())
    if run.kind in ("IndexStmt", "ReindexStmt") or re.search(r"\bCREATE (UNIQUE )?INDEX\b", sql):
        return INDEX if "CONCURRENTLY" not in sql else GENERIC
    if "SET NOT NULL" in sql:
        return NOT_NULL
    if re.search(r"\bADD (CONSTRAINT\b.*)?(CHECK|FOREIGN KEY|REFERENCES)\b", sql) or "VALIDATE CONSTRAINT" in sql:
        return CONSTRAINT if "NOT VALID" not in sql else GENERIC
    if "ADD COLUMN" in sql and table in run.rewrites:
        return VOLATILE_DEFAULT
    if re.search(r"\bTYPE\b", sql) and "ALTER COLUMN" in sql:
        return TYPE_CHANGE
    if table in run.rewrites:
        return REWRITE
    return GENERIC
