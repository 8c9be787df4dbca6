"""Verify a database against the schema package: drift, static index health, plan contracts.

The expected schema is the canonical models, or the application's own (``--models MODULE:ATTR``);
``--drift-mode`` says how drift judges it: ``exact`` (the database equals the models; the default for the
schema chatbench builds from them, and against ``--models``) or ``contract`` (it gives everything the
canonical queries and behaviours rely on, extras judged by what they do; the default when the application
builds the schema: ``--schema-from``, ``--schema-from-cmd``, ``--url``).
Without ``--url``: provisions a throwaway server, seeds it with ``--profile`` (building the schema from
the models, or the application's way first: ``--schema-from`` / ``--schema-from-cmd``) and verifies it.
With ``--url``: verifies an existing database read-only (scenarios discovered from its data; the
behaviour probes run on a schema-only copy on a throwaway local server; nothing is written to, or
created on, that server).
Exit 0 when every check passes, 1 when any error-severity finding fails the verdict.
"""

from __future__ import annotations

from chatbench.settings import SERVER_SETTINGS

NAME = "verify"
HELP = "check drift, index health and plan contracts (exit 1 on FAIL)"
SETTINGS = (*SERVER_SETTINGS, "url", "profile", "seed", "json", "schema_from", "schema_from_cmd", "models",
            "drift_mode", "command_timeout", "format", "queries", "targets", "production_messages")
