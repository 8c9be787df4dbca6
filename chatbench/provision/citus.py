"""The ``citus`` backend: the ``local`` backend grown to a Citus cluster (a coordinator plus N workers) on loopback.

Every node is a ``LocalCluster`` started from the pristine data dir of the Citus build
(``chatbench.provision.citus_build``) with ``shared_preload_libraries = citus``. All nodes live in one
directory ``cluster-<run_id>`` (the coordinator in ``data/``, worker ``i`` in ``worker-<i>/data``), made
only after the run's owner record exists, so ``chatbench clean`` stops and removes a dead run's whole
cluster exactly as it does a single node's, and ``stop()`` (teardown, Ctrl-C, SIGTERM) stops the
workers, then the coordinator, then removes the directory.

Citus metadata is per database: ``enable_citus`` makes a database distributed (the same database on
every worker, ``CREATE EXTENSION citus`` on every node, the workers added to the coordinator). The
distribution step calls it after the seed (see there why not at start).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from chatbench import external
from chatbench.errors import ConfigError, ProvisionError
from chatbench.faults import checkpoint
from chatbench.files import write_atomically
from chatbench.provision.binaries import runnable_binaries
from chatbench.provision.citus_build import CitusBuild, CitusSource, check_source, ensure_build
from chatbench.provision.databases import drop_database
from chatbench.provision.dsn import check_citus_coordinator, enable_run_database
from chatbench.provision.local import CLUSTER_PREFIX, DATABASE, SUPERUSER, LocalCluster, free_port, pristine_data_dir
from chatbench.provision.osuser import server_os_user
from chatbench.provision.owner import current_tag
from chatbench.provision.paths import run_root
from chatbench.provision.probe import read_version_and_settings
from chatbench.provision.server import Server
from chatbench.settings import Settings, option, where

WORKER_PREFIX = "worker-"
"""Worker ``i`` lives in ``cluster-<run_id>/worker-<i>`` (the janitor stops every ``*/data`` postmaster there)."""
PRELOAD = {"shared_preload_libraries": "citus"}
HOST = "127.0.0.1"
START_ATTEMPTS = 3

Announce = Callable[[str], None]


@dataclass(frozen=True)
class CitusRequest:
    """What ``--backend citus`` asked for, checked before anything starts (``citus_request``)."""

    source: CitusSource
    workers: int


@dataclass
class CitusCluster:
    """A running coordinator and its workers; ``stop()`` is idempotent and removes every node's files."""

    coordinator: LocalCluster
    workers: list[LocalCluster]
    build: CitusBuild
    stopped: bool = field(default=False)

    @property
    def root(self) -> Path:
        return self.coordinator.root

    @property
    def nodes(self) -> list[LocalCluster]:
        return [self.coordinator, *self.workers]

    def stop(self) -> None:
        try:
            for worker in self.workers:
                with contextlib.suppress(Exception):
                    worker.shutdown(fast=False)
        finally:
            self.coordinator.stop()  # stops the coordinator, then removes cluster-<run_id> with every worker
            self.stopped = True


def start_citus_cluster(
    run_id: str, request: CitusRequest, settings: dict[str, str], *, announce: Announce, timeout: float = 60.0,
) -> CitusCluster:
    """Build Citus if the cache lacks it, start a coordinator and ``request.workers`` workers, enable ``chatbench``."""
    build = ensure_build(request.source, announce=announce)
    user = server_os_user()
    binaries = runnable_binaries(build.binaries, user)
    pristine = pristine_data_dir(binaries, user)
    root = run_root() / f"{CLUSTER_PREFIX}{run_id}"
    root.mkdir(mode=0o755)  # after the run's owner record (provision() holds it): never unowned
    wanted = {**settings, **PRELOAD}
    coordinator = LocalCluster(root, binaries, user, 0, dict(wanted))
    cluster = CitusCluster(coordinator, [], build)
    try:
        user.chown(root)
        meta = {**current_tag(run_id).to_json(), "bin_dir": str(binaries.bin_dir), "os_user": user.name,
                "citus": build.citus_version, "workers": request.workers}
        write_atomically(root / "meta.json", json.dumps(meta))
        for i in range(1, request.workers + 1):
            node_root = root / f"{WORKER_PREFIX}{i}"
            node_root.mkdir(mode=0o755)
            user.chown(node_root)
            cluster.workers.append(LocalCluster(node_root, binaries, user, 0, dict(wanted)))
        for node in cluster.nodes:
            external.checked(external.run(["cp", "-a", str(pristine), str(node.data)], what="cp"), "cp")
            node.socket_dir.mkdir(mode=0o755)
            user.chown(node.socket_dir)
        for node in cluster.nodes:
            _start(node, timeout)
        checkpoint("citus.start")  # the crash tests stop here: every node up, Citus not yet enabled
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start(node: LocalCluster, timeout: float) -> None:
    for attempt in range(START_ATTEMPTS):
        node.port = free_port()
        try:
            node.start(timeout)
            return
        except ProvisionError as exc:
            if ("could not bind" not in str(exc) and "Address already in use" not in str(exc)) \
                    or attempt == START_ATTEMPTS - 1:
                raise
            node.shutdown(fast=False)


def _node_conninfo(port: int, database: str) -> str:
    return f"host={HOST} port={port} user={SUPERUSER} dbname={database}"


def enable_citus(server: Server) -> None:
    """Make the server's database distributed: present on every worker, the extension on every node, the
    workers added to the coordinator. Idempotent.

    Not done at start, on purpose: Citus keeps two views in ``public`` and a seeder that starts with
    ``DROP SCHEMA public CASCADE`` would drop the extension with them; the distribution step
    (``chatbench.schema.distributed.distribute``) enables Citus before it distributes.
    On a ``dsn`` coordinator chatbench's own database (created on every worker) is enabled as the DSN's
    database names the workers (``chatbench.provision.dsn.enable_run_database``).
    """
    database = server.database
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        enabled = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone() is not None
        nodes = conn.execute("SELECT count(*) FROM pg_dist_node").fetchone() if enabled else (0,)
    if enabled and nodes and nodes[0]:
        return
    if server.backend == "dsn" and server.owns_database:
        found = check_citus_coordinator(server.admin_url)
        if found is not None:
            enable_run_database(server.admin_url, server.url, found)
            return
    ports = _worker_ports(server)
    if server.backend != "citus" or not ports:
        raise ProvisionError(
            f"database {database!r} has no Citus cluster: CREATE EXTENSION citus and add the workers "
            "(citus_add_node) on the coordinator, or use --backend citus"
        )
    for port in ports:
        with psycopg.connect(_node_conninfo(port, "postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    coordinator = int(server.url.port or 0)
    for port in (coordinator, *ports):
        with psycopg.connect(_node_conninfo(port, database), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute("SELECT citus_set_coordinator_host(%s, %s)", (HOST, coordinator))
        for port in ports:
            conn.execute("SELECT citus_add_node(%s, %s)", (HOST, port))


def worker_ports(cluster: CitusCluster) -> str:
    return ",".join(str(w.port) for w in cluster.workers)


def _worker_ports(server: Server) -> list[int]:
    """The workers' ports ``provision_citus`` recorded on the server (none on a ``dsn`` coordinator)."""
    return [int(p) for p in str(server.details.get("worker_ports", "")).split(",") if p]


def citus_request(settings: Settings) -> CitusRequest:
    """``--backend citus`` checked before any server starts: the tarball, one ``--pg-bin`` with ``pg_config``."""
    if len(settings.pg_bin) > 1:
        raise ConfigError(f"{where(settings, 'pg_bin')}: --backend citus builds against one PostgreSQL; give one "
                          f"{option('pg_bin')}")
    if settings.image:
        raise ConfigError(f"{where(settings, 'image')}: --image is for --backend container, not --backend citus")
    tarball = settings.citus_tarball
    source = check_source(
        Path(tarball) if tarball is not None else None,
        settings.pg_bin[0] if settings.pg_bin else None,
        tarball_where=where(settings, "citus_tarball") if tarball is not None else option("citus_tarball"),
        pg_bin_where=where(settings, "pg_bin") if settings.pg_bin else "the embedded PostgreSQL",
    )
    return CitusRequest(source, settings.citus_workers)


def provision_citus(
    run_id: str, request: CitusRequest | None, settings: dict[str, str], stack: contextlib.ExitStack,
    announce: Announce, timeout: float,
) -> Server:
    """The ``citus`` branch of ``provision()``: the coordinator is the run's server; teardown on ``stack``."""
    if request is None:
        raise ConfigError("--backend citus: no build asked for; choose the server with chatbench.provision.choice")
    cluster = start_citus_cluster(run_id, request, settings, announce=announce, timeout=timeout)
    stack.callback(cluster.stop)
    coordinator = cluster.coordinator
    if coordinator.user.switched:
        announce(f"running PostgreSQL as OS user {coordinator.user.name!r}: postgres refuses to run as root")
    if cluster.build.built:
        announce(f"built Citus {cluster.build.citus_version} (cached as {cluster.build.key})")
    version, version_num, live = read_version_and_settings(coordinator.conninfo())
    return Server(
        backend="citus",
        url=coordinator.url(),
        admin_url=coordinator.url("postgres"),
        version=version,
        version_num=version_num,
        settings=live,
        database=DATABASE,
        owns_database=True,
        run_id=run_id,
        details={
            "bin_dir": str(coordinator.binaries.bin_dir),
            "os_user": coordinator.user.name,
            "data_dir": str(coordinator.data),
            "citus": cluster.build.citus_version,
            "citus_build": cluster.build.key,
            "workers": str(len(cluster.workers)),
            "worker_ports": worker_ports(cluster),
        },
    )


def drop_citus_database(server: Server) -> None:
    """Drop the server's database on the coordinator and on every worker it was created on."""
    drop_database(server)
    for port in _worker_ports(server):
        with psycopg.connect(_node_conninfo(port, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(server.database)))
