"""Which servers a run uses: --backend, --pg-bin, --image, --pg-versions and --dsn become ``ServerChoice``s.

Resolved up front, before anything starts, so a bad combination or a missing version is a usage
error (exit 2) rather than a half-run pipeline. The rules, the same for every command:

- ``--dsn`` with backend ``auto`` or ``dsn`` is the dsn backend; it names one server, alone.
- ``--pg-bin`` belongs to the local backend and ``--image`` to the container backend. Given on the
  command line they must agree with ``--backend`` (or pick the backend under ``auto``); set in the
  environment or a file they are defaults for their backend and are ignored for the other one, so a
  ``pg_bin`` in ``pyproject.toml`` never overrides ``--backend container``.
- Several ``--pg-bin``/``--image`` values or ``--pg-versions`` run servers side by side (signoff).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from chatbench.errors import ChatbenchError, ConfigError
from chatbench.provision import Server, provision, resolve_backend
from chatbench.provision.binaries import embedded_bin_dir, resolve_binaries
from chatbench.provision.citus import CitusRequest, citus_request
from chatbench.settings import Settings, option, where


@dataclass(frozen=True)
class ServerChoice:
    """One server to run on: a backend plus the binaries or image that pick its version."""

    backend: str
    pg_bin: str | None = None
    image: str | None = None
    dsn: str | None = None
    version_hint: str | None = None  # what --pg-versions asked for
    citus: CitusRequest | None = None  # --backend citus: the build and the workers


Announce = Callable[[str], None]


def choose_servers(settings: Settings, *, announce: Announce = lambda _m: None) -> tuple[ServerChoice, ...]:
    """The servers to run on: one per --pg-bin / --image / --pg-versions entry, or the default one."""
    if settings.backend == "citus":
        return (ServerChoice("citus", citus=citus_request(settings)),)
    explicit_backend = settings.source("backend") != "default"
    backend = settings.backend
    pg_bins, images = _for_backend(settings, "pg_bin", "local"), _for_backend(settings, "image", "container")
    versions = settings.pg_versions
    if versions and (pg_bins or images):
        raise ConfigError(
            f"{where(settings, 'pg_versions')}: --pg-versions picks the binaries or images itself; give it alone, "
            "or list servers with repeated --pg-bin / --image instead"
        )
    if settings.dsn is not None and backend in ("auto", "dsn"):
        if versions or pg_bins or images:
            raise ConfigError(
                "--dsn names one existing server; it cannot be combined with --pg-versions, --pg-bin or --image"
            )
        return (ServerChoice("dsn", dsn=settings.dsn),)
    if backend == "auto" and (pg_bins or images):
        return tuple([ServerChoice("local", pg_bin=b) for b in pg_bins] + [ServerChoice("container", image=i)
                                                                           for i in images])
    chosen = resolve_backend(backend, dsn=settings.dsn if backend == "dsn" else None, announce=announce)
    if explicit_backend and chosen != "dsn" and settings.dsn is not None and settings.source("dsn") == "argument":
        raise ConfigError(f"--dsn is for --backend dsn (or auto), not {where(settings, 'backend')}")
    if versions:
        return tuple(_version_choice(chosen, v) for v in versions)
    if chosen == "local" and pg_bins:
        return tuple(ServerChoice("local", pg_bin=b) for b in pg_bins)
    if chosen == "container" and images:
        return tuple(ServerChoice("container", image=i) for i in images)
    return (ServerChoice(chosen),)


def one_server(settings: Settings, *, announce: Announce = lambda _m: None) -> ServerChoice:
    """The one server of a single-server command (all but signoff)."""
    if settings.pg_versions:
        raise ConfigError(f"{where(settings, 'pg_versions')}: only signoff runs several servers side by side")
    choices = choose_servers(settings, announce=announce)
    if len(choices) > 1:
        raise ConfigError(
            f"{len(choices)} servers asked for ({', '.join(choice_text(c) for c in choices)}): only signoff runs "
            f"several side by side; give one {option('pg_bin')} or {option('image')}"
        )
    return choices[0]


def _for_backend(settings: Settings, name: str, backend: str) -> tuple[str, ...]:
    """The values of a backend-specific setting that apply; a conflicting argument is an error."""
    values: tuple[str, ...] = getattr(settings, name)
    if not values:
        return ()
    chosen = settings.backend
    if chosen in ("auto", backend):
        return values
    if settings.source(name) == "argument":
        raise ConfigError(f"{option(name)} is for --backend {backend} (or auto), not {where(settings, 'backend')}")
    return ()  # a default from the environment or a file for the other backend


def _version_choice(backend: str, version: str) -> ServerChoice:
    if backend == "container":
        return ServerChoice("container", image=f"postgres:{version}", version_hint=version)
    if backend == "dsn":
        raise ConfigError("--pg-versions starts servers; it cannot be combined with --backend dsn")

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


@contextlib.contextmanager
def provision_from(settings: Settings, *, announce: Announce, run_dir: Path | None = None,
                   server_settings: Mapping[str, str] | None = None) -> Iterator[Server]:
    """Provision the one server the settings ask for (every single-server command, the benchmark suite);
    ``run_dir``: where a local cluster lives when a size check chose the disk over tmpfs; ``server_settings``:
    the server's settings when not ``BENCHMARK_SETTINGS``."""
    with provision_choice(one_server(settings, announce=announce), use_dsn_database=settings.use_dsn_database,
                          allow_destructive=settings.allow_destructive, start_timeout=settings.start_timeout,
                          announce=announce, run_dir=run_dir, server_settings=server_settings) as server:
        yield server


def provision_choice(
    choice: ServerChoice,
    *,
    use_dsn_database: bool,
    allow_destructive: bool,
    start_timeout: float,
    announce: Announce,
    run_dir: Path | None = None,
    server_settings: Mapping[str, str] | None = None,
) -> contextlib.AbstractContextManager[Server]:
    """Provision one chosen server (the sign-off runs several, one after another); ``server_settings``: its
    settings when not ``BENCHMARK_SETTINGS`` (a container's are its command line, fixed for its life)."""
    return provision(
        choice.backend,
        pg_bin=choice.pg_bin,
        image=choice.image,
        dsn=choice.dsn,
        use_dsn_database=use_dsn_database,
        allow_destructive=allow_destructive,
        start_timeout=start_timeout,
        announce=announce,
        run_dir=run_dir,
        citus=choice.citus,
        settings=None if server_settings is None else dict(server_settings),
    )
