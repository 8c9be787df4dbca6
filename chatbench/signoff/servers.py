"""Which servers a sign-off runs on: --pg-bin / --image / --pg-versions / --dsn become ``ServerChoice``s.

Resolved up front, before anything starts, so a bad combination or a missing version is a usage
error (exit 2) rather than a half-run pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from chatbench.errors import ChatbenchError, ConfigError
from chatbench.provision import resolve_backend
from chatbench.signoff.options import ServerChoice


def choose_servers(
    backend: str,
    *,
    pg_bins: Sequence[str] = (),
    images: Sequence[str] = (),
    pg_versions: Sequence[str] = (),
    dsn: str | None = None,
    announce: Callable[[str], None] = lambda _m: None,
) -> tuple[ServerChoice, ...]:
    """The servers to run on: one per --pg-bin / --image / --pg-versions entry, or the default one."""
    if pg_versions and (pg_bins or images):
        raise ConfigError(
            "--pg-versions picks the binaries or images itself; give it alone, "
            "or list servers with repeated --pg-bin / --image instead"
        )
    if dsn is not None and (pg_versions or len(pg_bins) > 0 or len(images) > 0):
        raise ConfigError(
            "--dsn names one existing server; it cannot be combined with --pg-versions, --pg-bin or --image"
        )
    chosen = resolve_backend(backend, dsn=dsn, announce=announce)
    if chosen == "dsn":
        return (ServerChoice("dsn", dsn=dsn),)
    if pg_versions:
        return tuple(_version_choice(chosen, v.strip()) for v in pg_versions if v.strip())
    choices = [ServerChoice("local", pg_bin=b) for b in pg_bins] + [ServerChoice("container", image=i) for i in images]
    if pg_bins and images:
        return tuple(choices)
    if pg_bins:
        return tuple(replace(c, backend="local") for c in choices) if chosen != "container" else tuple(choices)
    if images:
        return tuple(choices)
    return (ServerChoice(chosen),)


def _version_choice(backend: str, version: str) -> ServerChoice:
    if not version.isdigit():
        raise ConfigError(f"--pg-versions {version!r}: give major versions, e.g. --pg-versions 15,18")
    if backend == "container":
        return ServerChoice("container", image=f"postgres:{version}", version_hint=version)
    from chatbench.provision.binaries import embedded_bin_dir, resolve_binaries

    probed = []
    embedded = embedded_bin_dir()
    for candidate in (embedded, Path(f"/usr/lib/postgresql/{version}/bin")):
        probed.append(str(candidate))
        if (candidate / "postgres").is_file():
            try:
                found = resolve_binaries(candidate)
            except ChatbenchError:
                continue
            if str(found.major) == version:
                return ServerChoice(
                    "local", pg_bin=None if candidate == embedded else str(candidate), version_hint=version
                )
    raise ConfigError(
        f"--pg-versions {version}: no PostgreSQL {version} binaries found (probed {', '.join(probed)}); "
        f"install postgresql-{version} or use --backend container"
    )


def choice_text(choice: ServerChoice) -> str:
    what = choice.image or choice.pg_bin or (f"PostgreSQL {choice.version_hint}" if choice.version_hint else "default")
    return f"{choice.backend} {what}"
