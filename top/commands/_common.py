"""What the commands' implementations share: the output people read, and provisioning from the settings."""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from chatbench import output
from chatbench.errors import ConfigError
from chatbench.provision import Server
from chatbench.provision.choice import provision_from
from chatbench.settings import Settings, where

out = output.stderr()
"""Progress, findings and verdicts (stderr): a terminal gets rich tables, a log whole lines."""


def command_line() -> str:
    """The command as run, quoted so it can be pasted back into a shell (what reports record)."""
    return "chatbench " + shlex.join(sys.argv[1:])


def announce(message: str) -> None:
    out.note(message)


@contextlib.contextmanager
def server_from(settings: Settings, run_dir: Path | None = None,
                server_settings: Mapping[str, str] | None = None) -> Iterator[Server]:
    """Provision the one server the settings ask for, announcing on the console.

    ``run_dir``: where a local cluster goes, when a size check chose (e.g. disk for a big seed);
    ``server_settings``: the server's settings when not the benchmarks' (``provision_from``).
    """
    with provision_from(settings, announce=announce, run_dir=run_dir, server_settings=server_settings) as server:
        yield server


def require_writable(settings: Settings, why: str) -> None:
    """Before any server starts: a command that writes may use the DSN's own database only if allowed.

    chatbench never writes to a database it did not create unless told so (``--allow-destructive``);
    ``Server.require_destructive`` enforces it again at the write itself.
    """
    if settings.use_dsn_database and not settings.allow_destructive:
        raise ConfigError(
            f"{where(settings, 'use_dsn_database')}: {why} in a database chatbench did not create; "
            "add --allow-destructive if that database is yours to overwrite, or drop --use-dsn-database"
        )


def judged_scenarios(settings: Settings) -> set[str]:
    """The scenarios the targets file (``--targets`` or the packaged one) budgets for ``--profile``.

    Checked before any server starts: a file that does not parse, names an unknown scenario or
    profile, or has no budget for the profile (a run that would judge nothing and PASS) is one line.
    """
    from chatbench.benchmarks.targets import load_targets  # lazy: start-up, every command's run imports this: +1.4 s

    label = where(settings, "targets") if settings.targets is not None else None
    targets = load_targets(settings.targets, label=label)
    judged = {scenario for scenario, profile in targets.budgets if profile == settings.profile}
    if not judged:
        raise ConfigError(
            f"{label or 'targets.toml'}: no budget for profile {settings.profile}, so nothing would be judged; "
            f"add {settings.profile} = {{ p95_ms = ... }} to its scenarios, or pick a profile it has budgets for"
        )
    return judged
