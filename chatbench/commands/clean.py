"""Remove what crashed runs left behind: local clusters, containers, and (with --dsn) run databases."""

from __future__ import annotations

import argparse

from chatbench.commands._common import console
from chatbench.errors import ProvisionError
from chatbench.provision import janitor

NAME = "clean"
HELP = "remove leftover clusters, containers and run databases of dead runs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", default=None, help="also drop leftover chatbench run databases on this server")


def run(args: argparse.Namespace) -> int:
    removed = janitor.clean_local()
    try:
        removed += janitor.clean_containers()
    except ProvisionError:
        console.print("[dim]containers: no Docker engine answers, nothing to check[/dim]")
    if args.dsn:
        removed += janitor.clean_dsn(args.dsn)
    for item in removed:
        status = "removed" if item.ok else f"[red]failed[/red] ({item.detail})"
        console.print(f"{item.kind} {item.name}: {status}")
    if not removed:
        console.print("nothing to clean")
    return 0 if all(item.ok for item in removed) else 2
