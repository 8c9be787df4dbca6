"""What every server-using command shares: settings resolution and provisioning from arguments."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from chatbench.provision import Server, provision
from chatbench.settings import Settings, resolve

console = Console(stderr=True, highlight=False)


def settings_from(args: argparse.Namespace) -> Settings:
    return resolve({name: getattr(args, name, None) for name in ("backend", "pg_bin", "image", "dsn", "out")})


@contextlib.contextmanager
def server_from(args: argparse.Namespace, run_dir: Path | None = None) -> Iterator[Server]:
    """Provision the server the arguments (and environment, file, defaults) ask for.

    ``run_dir``: where a local cluster goes, when a size check chose (e.g. disk for a big seed).
    """
    settings = settings_from(args)
    with provision(
        settings.backend,
        pg_bin=settings.pg_bin,
        image=settings.image,
        dsn=settings.dsn,
        use_dsn_database=bool(getattr(args, "use_dsn_database", False)),
        allow_destructive=bool(getattr(args, "allow_destructive", False)),
        announce=lambda message: console.print(f"[dim]{message}[/dim]"),
        run_dir=run_dir,
    ) as server:
        yield server
