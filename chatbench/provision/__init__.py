"""Throwaway PostgreSQL for every run, behind one context manager.

``provision(backend=...)`` yields a ``Server``; teardown (stop and remove the cluster or container,
drop the run database) always runs: on success, on an exception, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from chatbench.errors import ConfigError, register_secret
from chatbench.faults import checkpoint
from chatbench.provision.citus import provision_citus
from chatbench.provision.container import docker_available, start_container
from chatbench.provision.dsn import check_reachable, create_run_database, drop_database, libpq, parse_dsn
from chatbench.provision.local import start_local_cluster
from chatbench.provision.owner import Lease
from chatbench.provision.probe import read_version_and_settings, wait_until_ready
from chatbench.provision.server import BENCHMARK_SETTINGS, Server
from chatbench.settings import BACKENDS, default

if TYPE_CHECKING:
    from chatbench.provision.citus import CitusRequest

Announce = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def new_run_id() -> str:
    return secrets.token_hex(4)


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into SystemExit so ``finally`` blocks (teardown) run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def resolve_backend(backend: str, *, dsn: str | None, announce: Announce) -> str:
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r} is not a backend; use one of {', '.join(BACKENDS)}")
    if dsn is not None and backend in ("auto", "dsn"):
        return "dsn"
    if backend == "dsn":
        raise ConfigError("--backend dsn needs --dsn postgresql://user:password@host:port/db")
    if backend == "auto":
        picked = "container" if docker_available() else "local"
        announce(
            f"backend auto: picked {picked} ({'a' if picked == 'container' else 'no'} Docker engine answered)"
        )
        return picked
    return backend


@contextlib.contextmanager
def provision(
    backend: str = "auto",
    *,
    pg_bin: str | Path | None = None,
    image: str | None = None,
    dsn: str | None = None,
    use_dsn_database: bool = False,
    allow_destructive: bool = False,
    settings: dict[str, str] | None = None,
    start_timeout: float | None = None,
    dsn_field: str = "--dsn",
    announce: Announce = _stderr,
    run_dir: Path | None = None,
    citus: CitusRequest | None = None,
) -> Iterator[Server]:
    """Provide a server for one run and tear it down afterwards, whatever happens.

    ``run_dir``: where a local cluster lives instead of the default run root (a size check chose it).
    """
    chosen = resolve_backend(backend, dsn=dsn, announce=announce)
    run_id = new_run_id()
    wanted = dict(BENCHMARK_SETTINGS if settings is None else settings)
    timeout = float(default("start_timeout")) if start_timeout is None else start_timeout

    with terminate_as_exit(), contextlib.ExitStack() as stack:
        # The owner record exists (locked) before anything it describes, and goes after all of it.
        stack.callback(Lease(run_id).acquire().release)
        if chosen == "local":
            server = _local(run_id, pg_bin, wanted, stack, announce, timeout, run_dir)
        elif chosen == "container":
            server = _container(run_id, image, wanted, stack, timeout)
        elif chosen == "citus":
            server = provision_citus(run_id, citus, wanted, stack, announce, timeout)
        else:
            assert dsn is not None
            server = _dsn(run_id, dsn, use_dsn_database, allow_destructive, stack, dsn_field)
        checkpoint("provision")
        yield server


def _local(
    run_id: str,
    pg_bin: str | Path | None,
    settings: dict[str, str],
    stack: contextlib.ExitStack,
    announce: Announce,
    timeout: float,
    run_dir: Path | None = None,
) -> Server:
    cluster = start_local_cluster(run_id, pg_bin, settings, timeout=timeout, run_dir=run_dir)
    stack.callback(cluster.stop)
    if cluster.user.switched:
        announce(f"running PostgreSQL as OS user {cluster.user.name!r}: postgres refuses to run as root")
    version, version_num, live = read_version_and_settings(cluster.conninfo())
    return Server(
        backend="local",
        url=cluster.url(),
        admin_url=cluster.url("postgres"),
        version=version,
        version_num=version_num,
        settings=live,
        database="chatbench",
        owns_database=True,
        run_id=run_id,
        details={
            "bin_dir": str(cluster.binaries.bin_dir),
            "binaries": cluster.binaries.source,
            "os_user": cluster.user.name,
            "data_dir": str(cluster.data),
        },
        cluster=cluster,
    )


def _container(
    run_id: str, image: str | None, settings: dict[str, str], stack: contextlib.ExitStack, timeout: float
) -> Server:
    container = start_container(run_id, image, settings)
    stack.callback(container.stop)
    url = make_url(container.get_connection_url()).set(host="127.0.0.1")
    register_secret(url.password)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    wait_until_ready(conninfo, timeout=timeout)
    version, version_num, live = read_version_and_settings(conninfo)
    return Server(
        backend="container",
        url=url,
        admin_url=url.set(database="postgres"),
        version=version,
        version_num=version_num,
        settings=live,
        database=str(url.database),
        owns_database=True,
        run_id=run_id,
        details={"image": container.image, "container": container.get_wrapped_container().short_id},
    )


def _dsn(
    run_id: str, dsn: str, use_dsn_database: bool, allow_destructive: bool, stack: contextlib.ExitStack, field: str
) -> Server:
    admin = parse_dsn(dsn, field=field)
    check_reachable(admin, field=field)
    if use_dsn_database:
        database, owns = str(admin.database), False
    else:
        database, owns = create_run_database(admin, run_id), True
        stack.callback(drop_database, admin, database)
    url = admin.set(database=database)
    version, version_num, live = read_version_and_settings(libpq(url))
    return Server(
        backend="dsn",
        url=url,
        admin_url=admin,
        version=version,
        version_num=version_num,
        settings=live,
        database=database,
        owns_database=owns,
        run_id=run_id,
        allow_destructive=allow_destructive,
    )


__all__ = ["BACKENDS", "BENCHMARK_SETTINGS", "Server", "provision", "resolve_backend"]
