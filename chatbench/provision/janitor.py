"""``chatbench clean``: find and remove what dead runs left behind, and nothing a live run still uses.

Every resource names its run's owner record (``chatbench.provision.owner``): a local cluster by its
directory name ``cluster-<run_id>`` beside ``run-<run_id>.owner``, a container in its labels, a
database on a DSN server in its comment. A resource is removed only when

- its record exists and nobody holds its lock (the owner died: SIGKILL, power loss), or
- it has no record and is older than a grace period (``owner.GRACE_SECONDS`` for directories; for a
  database, still unrecorded at a second look ``DATABASE_GRACE_SECONDS`` later: a live run comments
  its databases within milliseconds of creating them).

Every removal is best-effort and reported; dead records go last, after what they describe.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker.errors
import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from chatbench.provision import cache_names
from chatbench.provision.binaries import recorded_sources
from chatbench.provision.container import LABEL_LEASE, LABEL_MANAGED, LABEL_OWNER, LABEL_RUN, docker_client
from chatbench.provision.dsn import check_reachable, drop_database, libpq, parse_dsn
from chatbench.provision.local import CLUSTER_PREFIX
from chatbench.provision.owner import (
    GRACE_SECONDS,
    LEASE_PREFIX,
    LEASE_SUFFIX,
    STAGING_PREFIX,
    OwnerTag,
    lease_path,
    lease_state,
    owner_alive,
    staging_of,
)
from chatbench.provision.paths import cache_root_path, disk_run_root_path, run_root, seed_snapshot_root
from chatbench.provision.process import pid_alive

DATABASE_GRACE_SECONDS = 2.0

RUN_DATABASE = re.compile(
    r"^(chatbench_run_(cbfx_(tpl|db)_)?[0-9a-f]{8}|cb[rsv]_[a-z_]+_[0-9a-f]{8}|"
    f"{cache_names.TEMPLATE_PARTIAL_PATTERN})$")
"""The names chatbench gives the databases a run owns (run, scratch and half-made template databases):
``cbv_*`` verification's, ``cbs_*`` the sign-off's, ``cbr_*`` a migration rehearsal's,
``chatbench_run_cbfx_*`` the pytest fixtures' templates and clones on a DSN server."""


@dataclass(frozen=True)
class Removed:
    kind: str  # "cluster" | "container" | "database" | "snapshot" | "staging" | "record" | "build"
    name: str
    ok: bool
    detail: str = ""


def _dead_or_stale(path: Path, run_id: str, root: Path) -> bool:
    state = lease_state(lease_path(run_id, root))
    if state != "missing":
        return state == "dead"
    return _stale(path)


def _stale(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime > GRACE_SECONDS
    except FileNotFoundError:
        return False


def clean_local(root: Path | None = None) -> list[Removed]:
    """Clusters of dead runs (server stopped, directory removed), then the dead runs' records.

    Clusters live in the run root or, when a size check put a large one on disk, in the disk run root
    beside the cache; their runs' owner records are in the run root either way (``root`` replaces both).
    """
    removed: list[Removed] = []
    leases = root or run_root()
    disk = disk_run_root_path()
    bases = [leases] if root is not None else [leases, *([disk] if disk.is_dir() else [])]
    for base in bases:
        for cluster in sorted(base.glob(f"{CLUSTER_PREFIX}*")):
            if not cluster.is_dir() or not _dead_or_stale(cluster, cluster.name[len(CLUSTER_PREFIX):], leases):
                continue
            try:
                for data in (cluster / "data", *cluster.glob("worker-*/data")):  # a citus cluster's workers too
                    _kill_postmaster(data)
                shutil.rmtree(cluster)
                removed.append(Removed("cluster", cluster.name, True))
            except OSError as exc:
                removed.append(Removed("cluster", cluster.name, False, str(exc)))
    for temporary in leases.glob(f".{LEASE_PREFIX}*{LEASE_SUFFIX}.*.tmp"):
        if lease_state(temporary) == "dead":  # an owner record its run never got to publish
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
    return removed


def clean_snapshot_partials(root: Path | None = None) -> list[Removed]:
    """Half-made seeded snapshots (``<key>.partial-<run_id>-*``) of dead runs, or stale ones without a run id."""
    removed: list[Removed] = []
    base, leases = root or seed_snapshot_root(), run_root()
    for partial in sorted(base.glob(cache_names.PARTIAL_GLOB)) if base.is_dir() else []:
        run_id = cache_names.snapshot_partial_run(partial.name)  # "": no record, only the grace period tells
        if not _dead_or_stale(partial, run_id, leases):
            continue
        shutil.rmtree(partial, ignore_errors=True)
        removed.append(Removed("snapshot", partial.name, not partial.exists()))
    return removed


BUILD_PARTIAL = re.compile(r"^(?:.+\.(?:partial|stale)-(\d+)(?:-[0-9a-f]+)?|\..+\.(\d+))$")
"""A copy of a build its process was still making: ``<key>.partial-<pid>-<hex>`` and ``<key>.stale-<pid>-<hex>``
(relocated binaries), ``.<key>-<user>.<pid>`` (a pristine data dir), ``<key>.partial-<pid>`` (a Citus build)."""


def clean_builds(root: Path | None = None) -> list[Removed]:
    """Cached copies of PostgreSQL builds that are gone: the relocated binaries, pristine data dirs and Citus
    builds none of whose recorded builds exists any more (deleted virtualenvs: a build outside a wheel is keyed by
    its path, and its copies would stay forever), and the half-made copies of dead processes. A copy whose
    binaries a process still runs stays.
    """
    removed: list[Removed] = []
    base = root or cache_root_path()
    # Relocated binaries first: a pristine data dir or Citus build made from a relocated build goes with it, in the
    # same pass.
    running: list[Path] | None = None  # read once, and only when a copy is gone
    for folder in (base / "pg-install", base / "pristine", base / "citus"):
        for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
            if not entry.is_dir() or not _gone(entry):
                continue
            running = _running_executables() if running is None else running
            if any(exe.is_relative_to(entry) for exe in running):
                continue
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(Removed("build", f"{folder.name}/{entry.name}", not entry.exists()))
    return removed


def _gone(entry: Path) -> bool:
    """Whether ``entry`` is the copy of a build that no longer exists, or a dead process's half-made copy."""
    partial = BUILD_PARTIAL.match(entry.name)
    if partial:
        return not pid_alive(int(partial.group(1) or partial.group(2)))
    sources = recorded_sources(entry)
    if sources is None:
        return False  # made by an older chatbench, which did not record its build: nothing tells
    return not any(source.exists() for source in sources)


def _running_executables() -> list[Path]:
    """The programs processes run now (``/proc/*/exe``), those this user may read."""
    running = []
    for exe in Path("/proc").glob("[0-9]*/exe"):
        with contextlib.suppress(OSError):
            running.append(Path(os.readlink(exe)))
    return running


def clean_records(root: Path | None = None) -> list[Removed]:
    """Owner records of dead runs whose resources are gone (call after every resource was cleaned)."""
    removed: list[Removed] = []
    base = root or run_root()
    for record in sorted(base.glob(f"{LEASE_PREFIX}*{LEASE_SUFFIX}")):
        run_id = record.name[len(LEASE_PREFIX):-len(LEASE_SUFFIX)]
        clusters = (base / f"{CLUSTER_PREFIX}{run_id}", disk_run_root_path() / f"{CLUSTER_PREFIX}{run_id}")
        if any(c.exists() for c in clusters) or lease_state(record) != "dead":
            continue
        staging = staging_of(record)
        if staging is not None and staging.name.startswith(STAGING_PREFIX):  # a report set a killed run staged
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(Removed("staging", str(staging), not staging.exists()))
        with contextlib.suppress(FileNotFoundError):
            record.unlink()
            removed.append(Removed("record", record.name, True))
    return removed


def _kill_postmaster(data: Path) -> None:
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if not pid_alive(pid):
        return
    os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def clean_containers() -> list[Removed]:
    """Containers of dead runs. Listed sparsely (no per-container inspect): a container that goes away
    between the list and its inspection (a run tearing down) is not an error."""
    client = docker_client()
    removed: list[Removed] = []
    try:
        for container in client.api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=true"}):
            labels = container.get("Labels") or {}
            name = str((container.get("Names") or [container["Id"][:12]])[0]).lstrip("/")
            host, _, pid = str(labels.get(LABEL_OWNER, ":0")).rpartition(":")
            tag = OwnerTag(str(labels.get(LABEL_RUN, "")), host, int(pid or 0), str(labels.get(LABEL_LEASE, "")), 0.0)
            if owner_alive(tag):
                continue
            try:
                client.api.remove_container(container["Id"], force=True, v=True)
                removed.append(Removed("container", name, True))
            except docker.errors.NotFound:
                continue  # gone already (its run's teardown, Ryuk, another clean)
            except docker.errors.APIError as exc:
                if exc.status_code == 409 and "already in progress" in str(exc):
                    continue  # being removed right now (Ryuk reaps a dead run's container too)
                removed.append(Removed("container", name, False, str(exc)))
            except Exception as exc:
                removed.append(Removed("container", name, False, str(exc)))
    finally:
        client.close()
    return removed


def _owned_databases(url: URL) -> dict[str, OwnerTag | None]:
    """Databases named like a run's, with the owner tag of their comment (None: no tag)."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        rows = conn.execute("SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database").fetchall()
    return {str(name): OwnerTag.parse(comment) for name, comment in rows if RUN_DATABASE.match(str(name))}


def dead_databases(url: URL, *, grace: float = DATABASE_GRACE_SECONDS,
                   sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Run, scratch and half-made template databases whose owner is dead (or that stay unrecorded)."""
    found = _owned_databases(url)
    dead = [name for name, tag in found.items() if tag is not None and not owner_alive(tag)]
    unrecorded = {name for name, tag in found.items() if tag is None}
    if unrecorded:
        sleep(grace)
        again = _owned_databases(url)
        dead += sorted(name for name in unrecorded if name in again and again[name] is None)
    return dead


def clean_dsn(dsn: str) -> list[Removed]:
    url = parse_dsn(dsn)
    check_reachable(url)  # a wrong password or host is one line, not a traceback
    removed: list[Removed] = []
    for name in dead_databases(url):
        try:
            if name.startswith(cache_names.TEMPLATE_PREFIX):
                with psycopg.connect(libpq(url), autocommit=True) as conn:
                    conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(name)))
            drop_database(url, name)
            removed.append(Removed("database", name, True))
        except Exception as exc:
            removed.append(Removed("database", name, False, str(exc).splitlines()[0] if str(exc) else ""))
    return removed
