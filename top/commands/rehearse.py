"""Rehearse a release's migration on seeded volume, under live load, and say how long the chat was blocked.

The schema before the release (the canonical one, ``--from FILE.sql`` or ``--from-cmd CMD``) is seeded with
``--profile`` and with the next smaller profile (``--profile smoke``, 20,000 and 4,000 messages, takes seconds
with ``--migration FILE.sql``: the edit loop's; judge a release at ci, the default, or larger); on each, the
migration (``--migration FILE.sql``, run statement by statement as psql would, or ``--migration-cmd CMD`` such
as 'alembic upgrade head', run with DATABASE_URL set) runs while the app's canonical reads and appends, and
the application's own queries of ``--queries FILE.sql`` (writes rolled back), run open loop at ``--rate`` from
``--clients`` processes and a sampler records every lock the migration holds or waits for and every app query
it blocks, by name. Blocking times are extrapolated linearly to ``--production-messages`` and judged against
the ``[rehearsal]`` budgets of the targets file; the migrated schema is verified (drift, health, plan
contracts) through the role map (``[tool.chatbench.map]``): exactly against the application's models when
``--models MODULE:ATTR`` names them (the schema the release must reach), else against the canonical contracts
in contract mode (a lock-safe release that adds a column passes). Writes rehearsal.md/.html/.json and JUnit
XML.

With --history (a SQLite file or a postgresql:// URL) the rehearsal is added to the results store, as
signoff and bench add theirs: its rehearse:reads, rehearse:appends and rehearse:migration series (blocking
measured and extrapolated, app queries blocked, the app's p99 meanwhile, duration, lock wait, WAL), at
--commit on --branch (default: the CI's variables, else git).

Exit 0 PASS or WARN, 1 FAIL (a budget exceeded, the migration failed or hung, verification failed),
2 could not run, or ERROR: the lock sampler stopped before the migration ended (the reports are written,
with what it saw until then, but they cannot vouch for the migration).
"""

from __future__ import annotations

from chatbench.settings import SERVER_SETTINGS

NAME = "rehearse"
HELP = "rehearse a migration on seeded volume under live load: locks, blocked app queries, extrapolation (exit 1 FAIL)"
SETTINGS = (
    *SERVER_SETTINGS, "profile", "seed", "cache", "from_file", "from_cmd", "migration", "migration_cmd",
    "production_messages", "clients", "rate", "mix", "baseline_seconds", "targets", "command_timeout", "out",
    "format", "models", "drift_mode", "long_transaction", "lock_retries", "queries", "history", "commit", "branch",
)
