"""Remove what crashed runs left behind: local clusters, containers, and (with --dsn) run databases; and the
cached copies (relocated binaries, pristine data dirs) of PostgreSQL builds that no longer exist.

Only what a dead run owned: each run holds a lock on its owner record for its whole life, so a
``clean`` beside live runs (in a loop, even) removes none of theirs.
"""

from __future__ import annotations

NAME = "clean"
HELP = "remove leftover clusters, containers, (with --dsn) run databases of dead runs, copies of gone builds"
SETTINGS = ("dsn",)
