"""One command for the pre-release sign-off: provision, schema, drift, seed, integrity, health, plan
contracts, benchmarks vs targets, optional load and baseline comparison; writes signoff.md (PR comment
and $GITHUB_STEP_SUMMARY), signoff.html (self-contained, with plots), signoff.json and JUnit XML.

With the release's migration (--migration FILE.sql or --migration-cmd CMD) the schema judged is the one
the migration produces: the schema before the release (--from / --from-cmd, default canonical) is seeded
at --profile and the next smaller profile, the migration runs under live load as in `chatbench rehearse`
(locks, blocked app queries, the queue behind a --long-transaction, a statement that gives up on its
lock_timeout retried --lock-retries times, extrapolation to --production-messages), and drift, health,
plan contracts and benchmarks judge the migrated database: one sign-off, one verdict (a migration FAIL
fails it).

Several servers side by side (a PostgreSQL upgrade is a release too): --pg-versions 15,18, or
repeated --pg-bin DIR / --image IMAGE. Exit 0 PASS, 1 FAIL, 2 could not run (ERROR), 3 INCONCLUSIVE
(nothing failed, but the noise measured on this machine left a latency target or a regression
undecided; each such line names the noise).
"""

from __future__ import annotations

from chatbench.settings import SERVER_SETTINGS

NAME = "signoff"
HELP = ("run the whole pre-release sign-off and write signoff.md/.html/.json + JUnit "
        "(exit 0 PASS / 1 FAIL / 2 error / 3 INCONCLUSIVE)")
SETTINGS = (
    *SERVER_SETTINGS, "pg_versions", "profile", "seed", "out", "baseline", "load", "clients", "duration", "rounds",
    "warmup", "budget", "targets", "pin", "scaling", "cache", "schema_from", "schema_from_cmd", "command_timeout",
    "retries", "retry_budget", "allow_different_sizes", "migration", "migration_cmd", "from_file", "from_cmd",
    "production_messages", "baseline_seconds", "format", "models", "drift_mode", "long_transaction", "lock_retries",
    "history", "commit", "branch", "queries", "citus_distribution",
)
