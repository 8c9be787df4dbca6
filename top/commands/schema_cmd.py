"""The canonical schema: print its DDL and fingerprint, or create it in a database."""

from __future__ import annotations

import argparse

NAME = "schema"
HELP = "print the canonical DDL (ddl) or create it in a database (apply --url)"
SETTINGS = ("url", "allow_destructive")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("ddl", "fingerprint", "apply"),
                        help="ddl: print the canonical DDL; fingerprint: print its fingerprint; "
                        "apply: create it in the empty database --url names")
