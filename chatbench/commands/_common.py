"""What every server-using command shares: its settings, the console, and provisioning from them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console

from chatbench.provision import Server
from chatbench.provision.choice import provision_from
from chatbench.settings import SERVER_SETTINGS, Settings

console = Console(stderr=True, highlight=False)

__all__ = ["SERVER_SETTINGS", "announce", "console", "server_from"]


def announce(message: str) -> None:
    console.print(f"[dim]{message}[/dim]")


@contextlib.contextmanager
def server_from(settings: Settings) -> Iterator[Server]:
    """Provision the one server the settings ask for, announcing on the console."""
    with provision_from(settings, announce=announce) as server:
        yield server
