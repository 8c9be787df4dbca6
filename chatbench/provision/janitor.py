"""``chatbench clean``: find and remove what crashed runs left behind.

Each backend labels what it creates with the owning process: local clusters carry ``meta.json``,
containers ``org.chatbench.*`` labels, DSN run databases a JSON comment. Anything whose owner is
still alive is left alone; every removal is best-effort and reported.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql
from sqlalchemy.engine import URL

from chatbench.provision import owner
from chatbench.provision.container import LABEL_MANAGED, LABEL_OWNER, docker_client
from chatbench.provision.local import CLUSTER_PREFIX
from chatbench.provision.paths import cache_root, disk_run_root_path, run_root
from chatbench.provision.process import pid_alive


@dataclass(frozen=True)
class Removed:
    kind: str  # "cluster" | "container" | "database" | "partial"
    name: str
    ok: bool
    detail: str = ""


def clean_local(root: Path | None = None, cache: Path | None = None) -> list[Removed]:
    """Dead runs' clusters (in ``root``, else the run root and the on-disk run root) and scratch."""
    removed: list[Removed] = []
    bases = [root] if root is not None else [run_root(), *[p for p in (disk_run_root_path(),) if p.is_dir()]]
    for base in bases:
        removed += _clean_clusters(base)
    return removed + clean_scratch(bases, cache or cache_root())


def _clean_clusters(base: Path) -> list[Removed]:
    removed: list[Removed] = []
    for cluster in sorted(base.glob(f"{CLUSTER_PREFIX}*")):
        try:
            meta = json.loads((cluster / "meta.json").read_text())
        except (OSError, json.JSONDecodeError):
            meta = {}
        owner_pid = int(meta.get("owner_pid", 0))
        if meta.get("owner_host") == socket.gethostname() and pid_alive(owner_pid):
            continue
        try:
            _kill_postmaster(cluster / "data")
            shutil.rmtree(cluster)
            removed.append(Removed("cluster", cluster.name, True))
        except OSError as exc:
            removed.append(Removed("cluster", cluster.name, False, str(exc)))
    return removed


def clean_scratch(runs: list[Path], cache: Path) -> list[Removed]:
    """What dead runs left half-made: seed-snapshot partials, spilled skeletons (``owner`` records).

    Looks in the run directories and in each folder of the cache; a live run's scratch is left alone.
    """
    folders = dict.fromkeys([*runs, *sorted(p for p in cache.iterdir() if p.is_dir() and not p.name.startswith("."))])
    return [
        Removed("partial", f"{folder.name}/{path.name}", not path.exists())
        for folder in folders
        for path in owner.remove_dead(folder)
    ]


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
    client = docker_client()
    removed: list[Removed] = []
    try:
        for container in client.containers.list(all=True, filters={"label": f"{LABEL_MANAGED}=true"}):
            host, _, pid = str(container.labels.get(LABEL_OWNER, ":0")).rpartition(":")
            if host == socket.gethostname() and pid_alive(int(pid or 0)):
                continue
            try:
                container.remove(force=True, v=True)
                removed.append(Removed("container", container.name, True))
            except Exception as exc:
                removed.append(Removed("container", container.name, False, str(exc)))
    finally:
        client.close()
    return removed


def partial_templates(url: URL) -> list[str]:
    """Seed-cache templates a crash left half-made (``cbtpl_<key>_p<token>``): never served, only in the way.

    A run saving one at this very moment loses only its cache entry (saving is best-effort).
    """
    import psycopg

    from chatbench.provision.dsn import libpq

    with psycopg.connect(libpq(url), autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname ~ '^cbtpl_[0-9a-f]+_p[0-9a-f]+$'").fetchall()
        for (name,) in rows:
            conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(name)))
    return [str(name) for (name,) in rows]


def clean_dsn(dsn: str) -> list[Removed]:
    from chatbench.provision.dsn import drop_database, leftover_run_databases, parse_dsn

    url = parse_dsn(dsn)
    removed: list[Removed] = []
    for name in leftover_run_databases(url) + partial_templates(url):
        try:
            drop_database(url, name)
            removed.append(Removed("database", name, True))
        except Exception as exc:
            removed.append(Removed("database", name, False, str(exc).splitlines()[0]))
    return removed
