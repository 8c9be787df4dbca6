"""What ``chatbench schema`` does when it runs.

Its interface (options, help, description) is ``chatbench.commands.schema_cmd``, which ``--help`` reads
without importing this module and the stack it needs (``chatbench.commands.impl``)."""

from __future__ import annotations

import argparse

import psycopg

from chatbench import schema
from chatbench.commands._common import out
from chatbench.errors import ConfigError, ProvisionError, redact
from chatbench.provision.dsn import check_reachable, parse_dsn
from chatbench.settings import Settings


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "ddl":
        print(f"-- chatbench canonical schema, fingerprint {schema.fingerprint()}")
        print(schema.ddl(), end="")
    elif args.action == "fingerprint":
        print(schema.fingerprint())
    else:
        if settings.url is None:
            raise ConfigError("schema apply needs --url postgresql://user:password@host:port/db (an empty database)")
        url = parse_dsn(settings.url, field="--url")
        if not settings.allow_destructive:
            raise ConfigError(
                f"--url {url.render_as_string(hide_password=True)}: chatbench did not create that database; "
                "creating tables there needs --allow-destructive"
            )
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
        out.line(f"applied schema {schema.fingerprint()} to {url.render_as_string(hide_password=True)}")
    return 0
