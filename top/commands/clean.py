"""Remove what crashed runs left behind: local clusters, containers, and (with --dsn) run databases.

Only what a dead run owned: each run holds a lock on its owner record for its whole life, so a
``clean`` beside live runs (in a loop, even) removes none of theirs.
"""

from __future__ import annotations

NAME = "clean"
HELP = "remove leftover clusters, containers and (with --dsn) run databases of dead runs"
SETTINGS = ("dsn",)
