"""The seeded-snapshot cache: a verified seed is kept and served again for the same key.

The key hashes everything the contents depend on: schema fingerprint, role map, spec, seed, order, the
server's version, the generator's version, the generator's own source (every module of
``chatbench.loadgen``: a change to how rows are made or how the recorded checksum is computed must
never be served a snapshot made by the code before it, and a version number bumped by hand is
forgotten) and the versions of Faker and numpy (their streams define the text and the numbers).

Two stores, one contract (``fetch`` returns a ``SeedResult`` with ``from_cache=True`` or None;
``save`` publishes only a verified seed, atomically):

- ``SnapshotStore`` (local backend, the cluster's own run database): the stopped data dir is copied
  into ``<cache_root>/seeds/<key>.partial-*`` with a ``meta.json``, then renamed to ``<key>``; a hit
  replaces the throwaway cluster's data dir by the copy. Each partial is named by its run
  (``<key>.partial-<run_id>-*``, the run's owner record locked for its life); a crash leaves only a
  ``.partial`` dir, which is never read, and which ``chatbench clean`` removes once its run is dead.
  A reader holds a shared lock on the entry's ``meta.json``: eviction skips entries being restored.
- ``TemplateStore`` (container, dsn, or another database of a local server): the seeded database is
  cloned to ``cbtpl_<key>_p<token>``, described (a JSON comment with the run's owner tag) and marked
  ``datistemplate``, then renamed to ``cbtpl_<key>``; a hit re-creates the run database with
  ``CREATE DATABASE ... TEMPLATE``. At most ``seed_snapshots`` templates stay (least recently used go).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import faker
import numpy
import psycopg
from psycopg import sql

from chatbench.convert import to_plain
from chatbench.faults import checkpoint
from chatbench.loadgen.result import SeedResult, seed_result_from_json, seed_result_to_json
from chatbench.loadgen.spec import Spec
from chatbench.provision import cache_names
from chatbench.provision.local import DATABASE
from chatbench.provision.owner import current_tag
from chatbench.provision.paths import seed_snapshot_root
from chatbench.provision.server import Server
from chatbench.schema.ddl import fingerprint as canonical_fingerprint
from chatbench.schema.rolemap import CANONICAL, RoleMap
from chatbench.settings import current

GENERATOR_VERSION = 6  # bump whenever the generated contents (or their physical state) change


def source_digest(package: Path) -> str:
    """A digest of every module in ``package`` (names and bytes)."""
    digest = hashlib.sha256()
    for module in sorted(package.glob("*.py")):
        digest.update(module.name.encode() + b"\0" + module.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def generator_source_digest() -> str:
    """This package's digest: the code that makes the rows and records their checksum."""
    return source_digest(Path(__file__).parent)


def cache_key(server: Server, spec: Spec, seed: int, order: str, *, schema: str | None = None,
              roles: RoleMap = CANONICAL) -> str:
    """``schema`` names the schema seeded (default: the canonical models' fingerprint); ``roles`` the map that
    said which of its tables and columns took the history (the same schema mapped otherwise is another seed)."""
    material = {
        "schema": schema if schema is not None else canonical_fingerprint(),
        "map": [list(entry) for entry in roles.entries()],
        "spec": to_plain(spec), "seed": seed, "order": order,
        "server_version_num": server.version_num, "generator": GENERATOR_VERSION,
        "generator_source": generator_source_digest(),
        "faker": faker.VERSION, "numpy": numpy.__version__,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


class SeedCache(Protocol):
    kind: str

    def fetch(self, server: Server, key: str) -> SeedResult | None: ...

    def save(self, server: Server, key: str, result: SeedResult) -> None: ...


def _hit(result: SeedResult, server: Server, seconds: float, kind: str) -> SeedResult:
    return replace(result, database=server.database, from_cache=True, timings={"cache_restore": seconds},
                   extra={**result.extra, "cache": kind})


def snapshot_root() -> Path:
    """Where seeded snapshots live: ``<cache_root>/seeds``."""
    return seed_snapshot_root()


class SnapshotStore:
    """Whole-cluster snapshots for throwaway local servers."""

    kind = "snapshot"

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or snapshot_root()

    def path(self, key: str) -> Path:
        return self.root / key

    def fetch(self, server: Server, key: str) -> SeedResult | None:
        entry = self.path(key)
        meta = entry / "meta.json"
        if server.cluster is None or not meta.is_file() or not (entry / "data").is_dir():
            return None
        started = time.perf_counter()
        try:
            with _shared_lock(meta):  # eviction skips an entry being read
                result = seed_result_from_json(json.loads(meta.read_text()))
                server.cluster.restore_snapshot(entry / "data")
        except FileNotFoundError:
            return None  # evicted between the check and the lock
        with contextlib.suppress(OSError):
            os.utime(entry)  # recently used: evicted last
        return _hit(result, server, time.perf_counter() - started, self.kind)

    def save(self, server: Server, key: str, result: SeedResult) -> None:
        """Publish the stopped cluster's data dir as ``<key>``; only this run's partial is ever touched.

        The partial is named by the run's id, whose owner record (``chatbench.provision.owner``) is
        locked for the run's life: a concurrent run never touches it and ``chatbench clean`` removes it
        only once its run is dead. When two runs seed the same key at once, the first rename publishes
        and the other drops its copy.
        """
        assert server.cluster is not None
        self.root.mkdir(parents=True, exist_ok=True)
        partial = self.root / cache_names.snapshot_partial(key, server.run_id)  # its run's: for the janitor
        final = self.path(key)
        partial.mkdir()
        try:
            server.cluster.save_snapshot(partial / "data")
            (partial / "meta.json").write_text(json.dumps(seed_result_to_json(result), indent=1))
            try:
                partial.rename(final)
            except OSError:
                if not (final / "meta.json").is_file():
                    raise
                shutil.rmtree(partial)  # another run published the same key meanwhile
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        self.evict(keep=key)

    def evict(self, keep: str) -> None:
        """Keep the ``seed_snapshots`` setting's most recently used snapshots (1M messages take ~0.6 GB)."""
        limit = int(current("seed_snapshots"))
        entries = sorted((p for p in self.root.iterdir() if p.is_dir() and "." not in p.name),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for old in [p for p in entries if p.name != keep][limit - 1:]:
            with _exclusive_lock_or_skip(old / "meta.json") as mine:
                if mine:
                    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _shared_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _exclusive_lock_or_skip(path: Path) -> Iterator[bool]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


class TemplateStore:
    """Template databases on the server itself (any backend), at most ``seed_snapshots`` of them.

    The comment of a template holds the seed result, when it was last used (the least recently used
    go first once there are more than the ``seed_snapshots`` setting allows) and, while it is still a
    half-made ``cbtpl_<key>_p<token>``, its run's owner tag, so ``chatbench clean --dsn`` drops it if
    that run was killed.
    """

    kind = "template"

    name = staticmethod(cache_names.template_database)

    def _admin(self, server: Server) -> psycopg.Connection:
        return psycopg.connect(server.admin_conninfo(), autocommit=True)

    def fetch(self, server: Server, key: str) -> SeedResult | None:
        started = time.perf_counter()
        with self._admin(server) as conn:
            row = conn.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s AND datistemplate",
                (self.name(key),),
            ).fetchone()
            if row is None or row[0] is None:
                return None
            try:
                described = json.loads(row[0])
                stored = described["seed"] if isinstance(described.get("seed"), dict) else described  # or older
                result = seed_result_from_json(stored)
            except (ValueError, KeyError, TypeError, AttributeError):
                return None
            comment = conn.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                (server.database,),
            ).fetchone()
            _drop(conn, server.database, server.version_num)
            try:
                conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
                    sql.Identifier(server.database), sql.Identifier(self.name(key)), _strategy(server.version_num)))
                hit = True
            except (psycopg.errors.InvalidCatalogName, psycopg.errors.ObjectInUse):
                # Evicted (or being evicted) by another run since we read it: a miss, on a fresh database.
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(server.database)))
                hit = False
            if comment is not None and comment[0] is not None:
                conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(server.database), sql.Literal(comment[0])))
            if not hit:
                return None
            with contextlib.suppress(psycopg.Error):  # recently used: evicted last (best-effort)
                conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(self.name(key)),
                             sql.Literal(json.dumps({**described, "used": time.time()}))))
        return _hit(result, server, time.perf_counter() - started, self.kind)

    def save(self, server: Server, key: str, result: SeedResult) -> None:
        partial = cache_names.template_partial(key)
        described = {**current_tag(server.run_id).to_json(), "seed": seed_result_to_json(result), "used": time.time()}
        with self._admin(server) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
                sql.Identifier(partial), sql.Identifier(server.database), _strategy(server.version_num)))
            try:
                conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(partial), sql.Literal(json.dumps(described))))
                checkpoint("seed.cache_save")  # the crash tests stop here: a half-made template exists
                conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE true").format(sql.Identifier(partial)))
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(partial), sql.Identifier(self.name(key))))
            except BaseException as exc:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(partial)))
                    _drop(conn, partial, server.version_num)
                if not isinstance(exc, psycopg.errors.DuplicateDatabase):
                    raise
            self.evict(conn, keep=self.name(key))

    def evict(self, conn: psycopg.Connection, keep: str) -> list[str]:
        """Drop the least recently used complete templates beyond the ``seed_snapshots`` setting."""
        limit = int(current("seed_snapshots"))
        rows = conn.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE datistemplate AND datname ~ %s", (cache_names.TEMPLATE.pattern,)).fetchall()

        def used(comment: str | None) -> float:
            try:
                return float(json.loads(comment or "{}").get("used", 0.0))
            except (ValueError, TypeError, AttributeError):
                return 0.0

        ranked = sorted(rows, key=lambda row: (row[0] == keep, used(row[1])), reverse=True)
        dropped = []
        for name, _ in ranked[limit:]:
            try:
                conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(name)))
                conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))  # not FORCE: a clone waits
                dropped.append(str(name))
            except psycopg.Error:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE true").format(sql.Identifier(name)))
        return dropped

    @staticmethod
    def drop(server: Server, key: str) -> None:
        """Remove one cached template (tests, ``--no-cache`` refresh)."""
        with psycopg.connect(server.admin_conninfo(), autocommit=True) as conn:
            name = TemplateStore.name(key)
            with contextlib.suppress(psycopg.errors.UndefinedObject, psycopg.errors.InvalidCatalogName):
                conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(name)))
            _drop(conn, name, server.version_num)


def _strategy(version_num: int) -> sql.Composable:
    # FILE_COPY (PG 15+) copies files instead of WAL-logging every block: much faster for big databases.
    return sql.SQL(" STRATEGY = FILE_COPY") if version_num >= 150000 else sql.SQL("")


def _drop(conn: psycopg.Connection, database: str, version_num: int) -> None:
    force = sql.SQL(" WITH (FORCE)") if version_num >= 130000 else sql.SQL("")
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(database), force))


def store_for(server: Server) -> SeedCache | None:
    """Snapshots for a local server's own run database, templates otherwise.

    None for a database chatbench did not create (seeded with --allow-destructive): a template hit
    drops and re-creates the whole database, which is more than seeding its tables.
    """
    if not server.owns_database:
        return None
    if server.cluster is not None and server.database == DATABASE:
        return SnapshotStore()
    return TemplateStore()
