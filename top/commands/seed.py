"""``chatbench seed``: fill a throwaway (or --dsn) database with a profile's chat history.

The schema is the canonical models', or the application's own (``--models MODULE:ATTR``): the seeder
builds it from the package and fills every table the models declare."""

from __future__ import annotations

from chatbench.settings import SERVER_SETTINGS

NAME = "seed"
HELP = "seed a database with deterministic chat history (profile or TOML spec) by binary COPY"
SETTINGS = (*SERVER_SETTINGS, "profile", "spec", "set", "seed", "workers", "order", "cache", "models")
