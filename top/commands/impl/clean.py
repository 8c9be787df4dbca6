"""What ``chatbench clean`` does when it runs.

Its interface (options, help, description) is ``chatbench.commands.clean``, which ``--help`` reads
without importing this module and the stack it needs (``chatbench.commands.impl``)."""

from __future__ import annotations

import argparse

from rich.text import Text

from chatbench.commands._common import out
from chatbench.errors import ProvisionError
from chatbench.provision import janitor
from chatbench.provision.dsn import check_reachable, parse_dsn
from chatbench.settings import Settings


def run(settings: Settings, args: argparse.Namespace) -> int:
    if settings.dsn is not None:
        check_reachable(parse_dsn(settings.dsn))  # a wrong password is one line, before anything is touched
    removed = janitor.clean_local() + janitor.clean_snapshot_partials()
    try:
        removed += janitor.clean_containers()
    except ProvisionError:
        out.note("containers: no Docker engine answers, nothing to check")
    if settings.dsn is not None:
        removed += janitor.clean_dsn(settings.dsn)
    removed += janitor.clean_records() + janitor.clean_builds()
    for item in removed:
        status = Text("removed") if item.ok else Text.assemble(("failed", "red"), f" ({item.detail})")
        out.line(Text.assemble(f"{item.kind} {item.name}: ", status))
    if not removed:
        out.line("nothing to clean")
    return 0 if all(item.ok for item in removed) else 2
