"""The results store: append-only rows per run, scenario and metric, in SQLite or PostgreSQL (SQLAlchemy).

One schema for both (``TABLES``), so a team can move from a cached SQLite file to a shared PostgreSQL
database without a second code path. Rows are only ever inserted: a run is added in one transaction
(its record, every measurement and its result document, or nothing), so a writer killed half-way
leaves no trace, and adding the same run again changes nothing (``run_key`` is unique).

Why the whole run is kept too (``chatbench_history_documents``, zlib-compressed JSON, about 100 KB
for a smoke bench): ``signoff --baseline history:BRANCH`` compares with a stored run through the same
comparison as ``compare``, which works on the raw samples and the noise probes, not on the summary
values the series hold.

Concurrent writers: SQLite in WAL mode, every write transaction ``BEGIN IMMEDIATE`` with a busy
timeout (writers queue instead of failing with "database is locked"); PostgreSQL serialises the
creation of the schema with an advisory lock and relies on its transactions for the rest.

A store announces itself in ``chatbench_history_meta`` (``kind``, ``format_version``). A file that is
not SQLite, a database holding other tables but not ours, or a format this chatbench does not read
is refused with one line naming the fix; nothing is written to it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, IntegrityError, OperationalError

from chatbench.errors import ChatbenchError, register_secret
from chatbench.history.records import Measurement, RunRecord

KIND = "chatbench-history"
FORMAT_VERSION = 2
"""Format history (bump on any change a reader must know about, and add the step to ``MIGRATIONS``):

- 1 (2026-12-06): ``chatbench_history_runs`` (one row per run and server) and
  ``chatbench_history_values`` (one row per run, scenario and metric: value, interval, plan hash).
- 2 (2026-12-06): ``chatbench_history_documents`` (one row per run: its result document, for
  ``--baseline history:BRANCH``). Runs added by version 1 have none and are never a baseline.
"""
SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 60.0
ADVISORY_LOCK = 0x63686272  # "chbr": serialises schema creation between PostgreSQL writers

metadata = MetaData()
meta_table = Table(
    "chatbench_history_meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)
runs_table = Table(
    "chatbench_history_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_key", String(64), nullable=False, unique=True),
    Column("run_id", String(64), nullable=False),
    Column("label", String(256), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("commit", String(64), nullable=False),
    Column("branch", String(256), nullable=False),
    Column("recorded_at", String(40), nullable=False),
    Column("machine", String(64), nullable=False),
    Column("pg_version", String(64), nullable=False),
    Column("profile", String(64), nullable=False),
    Column("data_checksum", String(128), nullable=False),
    Column("schema_fingerprint", String(128), nullable=False),
    Column("load_per_cpu", Float, nullable=True),
    Index("ix_chatbench_history_runs_branch_time", "branch", "recorded_at"),
)
values_table = Table(
    "chatbench_history_values", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run", Integer, ForeignKey("chatbench_history_runs.id"), nullable=False),
    Column("query", String(128), nullable=False),
    Column("scenario", String(128), nullable=False),
    Column("metric", String(32), nullable=False),
    Column("value", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("plan_hash", String(64), nullable=False),
    Index("ix_chatbench_history_values_series", "scenario", "metric", "run"),
)
documents_table = Table(
    "chatbench_history_documents", metadata,
    Column("run", Integer, ForeignKey("chatbench_history_runs.id"), primary_key=True, autoincrement=False),
    Column("encoding", String(32), nullable=False),
    Column("document", LargeBinary, nullable=False),
)
TABLES = (meta_table.name, runs_table.name, values_table.name, documents_table.name)
DOCUMENT_ENCODING = "json+zlib"
"""How a stored document is encoded (``chatbench.history.records.encode_run``)."""


def _add_documents(conn: Connection) -> None:
    documents_table.create(conn)


MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _add_documents}
"""Version -> the step bringing a store of that version to the next, in the transaction that opened it
(SQLAlchemy DDL, so one step serves SQLite and PostgreSQL)."""


@dataclass(frozen=True)
class StoredValue:
    """One row of a series as read back: the run's record joined with one measurement."""

    run: RunRecord
    measurement: Measurement
    position: int  # the store's insertion order (ties in time keep the order they were added in)


def store_url(location: str) -> URL:
    """A SQLAlchemy URL for ``--history``: a ``postgresql://`` URL, or a path to a SQLite file."""
    if "://" in location:
        try:
            url = make_url(location)
        except ArgumentError:
            raise ChatbenchError(f"--history {location}: not a database URL; give a file path or "
                                 "postgresql://user@host/db") from None
        register_secret(url.password)
        if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
            return url.set(drivername="postgresql+psycopg")
        if url.drivername == "sqlite":
            return url
        raise ChatbenchError(f"--history {url.render_as_string(hide_password=True)}: {url.drivername!r} is not a "
                             "store chatbench keeps; give a SQLite file path or a postgresql:// URL")
    return URL.create("sqlite", database=str(Path(location).expanduser().absolute()))


def shown(url: URL) -> str:
    return url.database or "" if url.drivername == "sqlite" else url.render_as_string(hide_password=True)


class Store:
    """An open results store; ``open_store`` checks it (and creates an empty one) before any write."""

    def __init__(self, engine: Engine, url: URL) -> None:
        self.engine = engine
        self.url = url

    @property
    def name(self) -> str:
        return shown(self.url)

    def close(self) -> None:
        self.engine.dispose()

    def add(self, record: RunRecord, values: Sequence[Measurement], document: bytes | None = None) -> bool:
        """Append one run, its values and its encoded result document in one transaction; False when the run
        was already there."""
        row = {f.name: getattr(record, f.name) for f in fields(record)}
        try:
            with self.engine.begin() as conn:
                if conn.execute(select(runs_table.c.id).where(runs_table.c.run_key == record.run_key)).first():
                    return False
                key = conn.execute(insert(runs_table).values(**row)).inserted_primary_key
                assert key is not None
                run_id = key[0]
                if values:
                    conn.execute(insert(values_table), [
                        {"run": run_id, **{f.name: getattr(v, f.name) for f in fields(v)}} for v in values])
                if document is not None:
                    conn.execute(insert(documents_table).values(run=run_id, encoding=DOCUMENT_ENCODING,
                                                                document=document))
        except IntegrityError:
            return False  # another writer added the same run between our check and our insert
        except OperationalError as exc:
            raise ChatbenchError(f"history store {self.name}: cannot write ({_reason(exc)}); "
                                 "check the file's folder and that no process holds it locked for long") from None
        return True

    def values(self, *, branch: str | None = None, scenarios: Sequence[str] = (),
               metrics: Sequence[str] = ()) -> list[StoredValue]:
        """Rows in the order they happened (run time, then insertion), optionally narrowed."""
        query = select(runs_table, values_table).join(values_table, values_table.c.run == runs_table.c.id)
        if branch is not None:
            query = query.where(runs_table.c.branch == branch)
        if scenarios:
            query = query.where(values_table.c.scenario.in_(list(scenarios)))
        if metrics:
            query = query.where(values_table.c.metric.in_(list(metrics)))
        query = query.order_by(runs_table.c.recorded_at, runs_table.c.id, values_table.c.id)
        record_names = [f.name for f in fields(RunRecord)]
        value_names = [f.name for f in fields(Measurement)]
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [StoredValue(RunRecord(**{n: row[runs_table.c[n]] for n in record_names}),
                            Measurement(**{n: row[values_table.c[n]] for n in value_names}),
                            int(row[runs_table.c.id])) for row in rows]

    def documents(self, run_keys: Sequence[str]) -> dict[str, bytes]:
        """``run_key`` -> the run's encoded result document, for the runs that have one (added by format 2+)."""
        if not run_keys:
            return {}
        query = (select(runs_table.c.run_key, documents_table.c.document)
                 .join(documents_table, documents_table.c.run == runs_table.c.id)
                 .where(runs_table.c.run_key.in_(list(run_keys)), documents_table.c.encoding == DOCUMENT_ENCODING))
        with self.engine.connect() as conn:
            return {str(key): bytes(document) for key, document in conn.execute(query).all()}

    def run_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(runs_table)).scalar_one())


def _reason(exc: Exception) -> str:
    return " ".join(str(getattr(exc, "orig", exc)).split())[:200]


def _sqlite_engine(url: URL) -> Engine:
    path = Path(url.database or "")
    if path.exists():
        if not path.is_file():
            raise ChatbenchError(f"--history {path}: is a folder; give a file path (created if missing)")
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
        if head and head != SQLITE_HEADER:
            raise ChatbenchError(f"--history {path}: not a SQLite file (corrupt, or another kind of file); "
                                 "move it aside or give another path")
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ChatbenchError(f"--history {path}: cannot create its folder ({exc.strerror}); give a writable "
                                 "path") from None
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we say BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlock

    return engine


def open_store(location: str, *, create: bool = True) -> Store:
    """The store at ``location`` (a path or a URL), created when empty, refused in one line when foreign.

    ``create=False`` is for readers (show, detect, export, a baseline): a SQLite file that is not there is
    refused in one line instead of being left behind, empty, by a command that then fails."""
    url = store_url(location)
    if not create and url.drivername == "sqlite" and url.database and not Path(url.database).exists():
        raise ChatbenchError(f"--history {shown(url)}: no store there yet; record runs into it first (--history "
                             "on bench, signoff or rehearse, or `chatbench history add RESULT.json`)")
    engine = _sqlite_engine(url) if url.drivername == "sqlite" else create_engine(url, pool_pre_ping=True)
    store = Store(engine, url)
    try:
        with engine.begin() as conn:
            if url.drivername != "sqlite":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
            _check_or_create(conn, store.name)
    except DatabaseError as exc:
        engine.dispose()
        reason = _reason(exc)
        if "file is not a database" in reason or "malformed" in reason:
            raise ChatbenchError(f"--history {store.name}: not a readable SQLite database ({reason}); move it aside "
                                 "or give another path") from None
        raise ChatbenchError(f"--history {store.name}: cannot open the store ({reason}); check the path or URL, "
                             "and that the server is up") from None
    except BaseException:
        engine.dispose()
        raise
    return store


def _check_or_create(conn: Connection, name: str) -> None:
    present = set(inspect(conn).get_table_names())
    ours = present & set(TABLES)
    if meta_table.name not in present:
        if ours:
            raise ChatbenchError(f"--history {name}: has chatbench_history tables but no format record (an "
                                 "incomplete or hand-made store); move it aside or give another store")
        if present and conn.dialect.name == "sqlite":
            raise ChatbenchError(f"--history {name}: a SQLite file of another application ({len(present)} "
                                 f"tables, e.g. {sorted(present)[0]}); give another path")
        metadata.create_all(conn)
        conn.execute(insert(meta_table), [{"key": "kind", "value": KIND},
                                          {"key": "format_version", "value": str(FORMAT_VERSION)}])
        return
    meta = {str(k): str(v) for k, v in conn.execute(select(meta_table.c.key, meta_table.c.value)).all()}
    if meta.get("kind") != KIND:
        raise ChatbenchError(f"--history {name}: its meta table says kind {meta.get('kind')!r}, not {KIND}; "
                             "give another store")
    version_text = meta.get("format_version", "")
    version = int(version_text) if version_text.isdigit() else -1
    if version > FORMAT_VERSION:
        raise ChatbenchError(f"--history {name}: format {version} is newer than this chatbench reads "
                             f"({FORMAT_VERSION}); upgrade chatbench")
    if version < FORMAT_VERSION:
        _migrate(conn, name, version)


def _migrate(conn: Connection, name: str, version: int) -> None:
    """Bring an older store up to ``FORMAT_VERSION`` in the transaction that opened it, or refuse it."""
    while version < FORMAT_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise ChatbenchError(f"--history {name}: format {version} is older than this chatbench reads "
                                 f"({FORMAT_VERSION}) and has no migration; move it aside and re-add the result "
                                 "files with `chatbench history add`")
        step(conn)
        version += 1
    conn.execute(meta_table.update().where(meta_table.c.key == "format_version").values(value=str(version)))


def default_location(cache_dir: Path) -> str:
    return str(cache_dir / "history.sqlite")


@contextlib.contextmanager
def opened(location: str, *, create: bool = True) -> Iterator[Store]:
    store = open_store(location, create=create)
    try:
        yield store
    finally:
        store.close()

