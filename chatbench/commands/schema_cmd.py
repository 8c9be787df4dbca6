"""The canonical schema: print its DDL and fingerprint, or create it in a database."""

from __future__ import annotations

import argparse

import psycopg

from chatbench import schema
from chatbench.commands._common import console
from chatbench.errors import ConfigError, ProvisionError, redact

NAME = "schema"
HELP = "print the canonical DDL (ddl) or create it in a database (apply --url)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(parser))
    actions.add_parser("ddl", help="print the canonical DDL")
    actions.add_parser("fingerprint", help="print the schema fingerprint")
    apply = actions.add_parser("apply", help="create the canonical schema in an empty database")
    apply.add_argument("--url", required=True, help="postgresql://user:password@host:port/db")


def run(args: argparse.Namespace) -> int:
    if args.action == "ddl":
        print(f"-- chatbench canonical schema, fingerprint {schema.fingerprint()}")
        print(schema.ddl(), end="")
    elif args.action == "fingerprint":
        print(schema.fingerprint())
    else:
        from chatbench.provision.dsn import check_reachable, parse_dsn

        url = parse_dsn(args.url, field="--url")
        check_reachable(url, field="--url")
        try:
            schema.apply(url)
        except Exception as exc:
            cause = getattr(exc, "orig", exc)
            if isinstance(
                cause, psycopg.errors.DuplicateTable | psycopg.errors.DuplicateFunction | psycopg.errors.DuplicateObject
            ):
                raise ConfigError(
                    f"--url {url.render_as_string(hide_password=True)}: the schema already exists there "
                    "(apply needs an empty database)"
                ) from None
            if isinstance(cause, psycopg.Error):
                raise ProvisionError(f"schema apply failed: {redact(str(cause).splitlines()[0])}") from None
            raise
        console.print(f"applied schema {schema.fingerprint()} to {url.render_as_string(hide_password=True)}")
    return 0
