"""The work behind chatbench's fixtures: one server per pytest run, templates made once, clones per test.

``FixtureSession.open`` starts the run's server (``provision_from``: the same backends and settings as
the CLI, working as root) or, in a pytest-xdist worker that is not the first, connects to the one
another worker started (``chatbench.testing.sharing``). Templates are databases on that server, each
made once per run by whichever process needs it first:

- a schema template: the package's schema (the canonical models, or the application's ``models``),
  or the application's own built its way (``schema_from`` SQL file or ``schema_from_cmd`` migration
  command, ``chatbench.schema.migrations``);
- a seeded template per profile (and seed): ``chatbench.loadgen.seed`` of the package into a fresh
  database, or, for a schema built the application's way, straight into a copy of the schema template
  (``prebuilt``: the seeder reads the schema it finds; what ``chatbench verify --schema-from`` does).

Each test gets ``CREATE DATABASE ... TEMPLATE``, dropped after it: about 20 ms for the smoke profile
on a throwaway server. The seed is not put in chatbench's seed cache: on a throwaway server a cached
template dies with it, and a dsn server would keep a template nobody asked for.

This module imports the database stack; the plugin imports it only inside fixtures.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from chatbench import loadgen
from chatbench.commands.appqueries import role_map
from chatbench.commands.schema_choice import schema_choice
from chatbench.errors import ChatbenchError
from chatbench.loadgen.result import SeedResult, seed_result_from_json, seed_result_to_json
from chatbench.provision.choice import provision_from
from chatbench.provision.databases import create_database, drop_database
from chatbench.provision.dsn import RUN_DATABASE_PREFIX
from chatbench.provision.server import Server
from chatbench.schema.migrations import build_from_cmd, build_from_sql
from chatbench.schema.package import SchemaPackage
from chatbench.settings import Settings, pytest_option
from chatbench.testing.databases import ChatDatabase, ChatServer, DeepCursor, SeededChatDatabase
from chatbench.testing.sharing import Lease, entries, locked, made_once, read_json, write_json
from chatbench.verify.scenarios import build_scenarios

TEMPLATE_PREFIX = "cbfx_tpl"
CLONE_PREFIX = "cbfx_db"


@dataclass(frozen=True)
class Made:
    """One template made by this process (for the run's summary line)."""

    kind: str  # "schema" | "seed"
    label: str
    seconds: float
    worker: str


@dataclass
class Tally:
    """What this process did for the summary: templates made, clones and their times. Collects as it goes."""

    made: list[Made] = field(default_factory=list)
    clones: dict[str, list[float]] = field(default_factory=dict)  # template label -> seconds per clone
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"made": [vars(m) for m in self.made], "clones": self.clones, "notes": self.notes}


def server_to_json(server: Server) -> dict[str, Any]:
    """The shared server entry. A dsn server's password stays out: every worker has it from its settings."""
    def render(url: Any) -> str:
        return str(url._replace(password=None).render_as_string(hide_password=False) if server.backend == "dsn"
                   else url.render_as_string(hide_password=False))

    return {
        "backend": server.backend, "url": render(server.url), "admin_url": render(server.admin_url),
        "version": server.version, "version_num": server.version_num, "settings": dict(server.settings),
        "database": server.database, "owns_database": server.owns_database, "run_id": server.run_id,
        "allow_destructive": server.allow_destructive, "details": dict(server.details),
    }


def server_from_json(data: dict[str, Any], settings: Settings) -> Server:
    url, admin = make_url(data["url"]), make_url(data["admin_url"])
    if data["backend"] == "dsn" and settings.dsn is not None:
        password = make_url(settings.dsn).password
        url, admin = url.set(password=password), admin.set(password=password)
    return Server(
        backend=data["backend"], url=url, admin_url=admin, version=data["version"], version_num=data["version_num"],
        settings=data["settings"], database=data["database"], owns_database=data["owns_database"],
        run_id=data["run_id"], allow_destructive=data["allow_destructive"], details=data["details"],
    )


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


class FixtureSession:
    """One process's view of the run's server and templates (see the module docstring)."""

    def __init__(self, settings: Settings, folder: Path, worker: str, server: Server, owner: bool, lease: Lease,
                 stack: contextlib.ExitStack) -> None:
        self.settings = settings
        self.folder = folder
        self.worker = worker
        self.server = server
        self.owner = owner
        self._lease = lease
        self._stack = stack
        self.tally = Tally()
        self.package: SchemaPackage = schema_choice(settings, spelling=pytest_option).package

    @classmethod
    def open(cls, settings: Settings, folder: Path, worker: str) -> FixtureSession:
        """Start the run's server, or join the one another worker of this run started."""
        stack = contextlib.ExitStack()
        notes: list[str] = []
        try:
            with locked(folder / "server.lock"):
                known = read_json(folder / "server.json")
                if known is not None:
                    server, owner = server_from_json(known, settings), False
                else:
                    server = stack.enter_context(provision_from(settings, announce=notes.append))
                    write_json(folder / "server.json", server_to_json(server))
                    owner = True
                lease = Lease(folder)
        except BaseException:
            stack.close()
            raise
        session = cls(settings, folder, worker, server, owner, lease, stack)
        session.tally.notes.extend(notes)
        return session

    def close(self) -> None:
        """Give the server back; the process that started it waits for the others, then stops it."""
        try:
            if self.owner:
                with locked(self.folder / "server.lock"):
                    (self.folder / "server.json").unlink(missing_ok=True)  # nobody joins a server about to stop
                self._lease.wait_for_the_others()
                if self.server.backend == "dsn":  # a throwaway server takes its templates with it
                    for entry in entries(self.templates):
                        drop_database(self.server.with_database(entry["database"], owns_database=True))
        finally:
            self._lease.release()
            self._stack.close()

    # -- the objects tests get -------------------------------------------------------------------------

    def chat_server(self) -> ChatServer:
        return ChatServer(self.server.backend, self.server.version, self.server.display_url, self.server.conninfo(),
                          _sqlalchemy_url(self.server), self.server)

    @contextlib.contextmanager
    def chat_db(self) -> Iterator[ChatDatabase]:
        template = self.schema_template()
        with self._clone(template) as db:
            yield ChatDatabase(db.database, template["schema"], template["database"], db.display_url,
                               db.conninfo(), _sqlalchemy_url(db), db)

    @contextlib.contextmanager
    def seeded_chat_db(self, profile: str | None) -> Iterator[SeededChatDatabase]:
        template = self.seeded_template(profile)
        result = seed_result_from_json(template["seed"])
        cursors = tuple(DeepCursor(**{**c, "created_at": datetime.fromisoformat(c["created_at"])})
                        for c in template["deep_cursors"])
        with self._clone(template) as db:
            yield SeededChatDatabase(
                db.database, template["schema"], template["database"], db.display_url, db.conninfo(),
                _sqlalchemy_url(db), db, profile=result.profile, seed=result.seed, counts=result.counts,
                checksum=result.checksum, params=result.params, deep_cursors=cursors,
            )

    # -- templates -------------------------------------------------------------------------------------

    @property
    def templates(self) -> Path:
        """Where this server's template entries live (a later server of the same run gets its own)."""
        return self.folder / self.server.run_id

    def schema_source(self) -> str:
        if self.settings.schema_from is not None:
            return f"{pytest_option('schema_from')} {self.settings.schema_from}"
        if self.settings.schema_from_cmd is not None:
            return f"{pytest_option('schema_from_cmd')} {self.settings.schema_from_cmd!r}"
        return "canonical" if self.package.canonical else f"{pytest_option('models')} {self.package.name}"

    @property
    def builds_from_package(self) -> bool:
        """The seeder builds the schema from the package (no schema built the application's way)."""
        return self.settings.schema_from is None and self.settings.schema_from_cmd is None

    def schema_template(self) -> dict[str, Any]:
        """The database holding the schema (canonical or the application's), made once per run."""
        source = self.schema_source()

        def make() -> dict[str, Any]:
            started = time.perf_counter()
            with self._new_template() as db:
                self._build_schema(db)
            return {"database": db.database, "schema": source, "label": f"schema {source}",
                    "seconds": time.perf_counter() - started, "worker": self.worker}

        return self._once("schema", _key("schema", source), make)

    def seeded_template(self, profile: str | None) -> dict[str, Any]:
        """The database holding a profile's seeded history in the schema, made once per run."""
        spec_file = self.settings.spec if profile is None else None
        name = self.settings.profile if profile is None else profile
        source = self.schema_source()
        what = f"spec {spec_file}" if spec_file is not None else name
        label = f"{what} (seed {self.settings.seed})" + ("" if source == "canonical" else f" into {source}")

        def make() -> dict[str, Any]:
            spec = loadgen.load_spec(name, spec_file)
            started = time.perf_counter()
            if self.builds_from_package:
                with self._new_template() as db:
                    result = loadgen.seed(db, spec, seed=self.settings.seed, use_cache=False, progress=False,
                                          package=self.package, roles=role_map())
            else:
                with self._new_template(self.schema_template()["database"]) as db:
                    result = self._seed_into_app_schema(db, spec)
            return {"database": db.database, "schema": source, "label": label,
                    "seconds": time.perf_counter() - started, "worker": self.worker,
                    "seed": seed_result_to_json(result), "deep_cursors": _deep_cursors(db, result)}

        return self._once("seed", _key("seed", what, spec_file and _file_digest(spec_file), self.settings.seed,
                                       source), make)

    def _once(self, kind: str, key: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        entry, made_here = made_once(self.templates, key, make)
        if made_here:
            self.tally.made.append(Made(kind, entry["label"], entry["seconds"], self.worker))
        return entry

    def _build_schema(self, db: Server) -> None:
        if self.settings.schema_from is not None:
            build_from_sql(db, Path(self.settings.schema_from))
        elif self.settings.schema_from_cmd is not None:
            build_from_cmd(db, self.settings.schema_from_cmd, timeout=self.settings.command_timeout)
        else:
            self.package.apply(db.url)

    def _seed_into_app_schema(self, db: Server, spec: Any) -> SeedResult:
        return loadgen.seed(db, spec, seed=self.settings.seed, use_cache=False, progress=False, package=self.package,
                            prebuilt=True, roles=role_map())

    @contextlib.contextmanager
    def _new_template(self, source: str | None = None) -> Iterator[Server]:
        """A new template database (a copy of ``source`` if given), dropped again if building it fails."""
        db = self._create(TEMPLATE_PREFIX, source)
        try:
            yield db
        except BaseException:
            with contextlib.suppress(psycopg.Error):
                drop_database(db)
            raise

    @contextlib.contextmanager
    def _clone(self, template: dict[str, Any]) -> Iterator[Server]:
        started = time.perf_counter()
        db = self._create(CLONE_PREFIX, template["database"])
        self.tally.clones.setdefault(template["label"], []).append(time.perf_counter() - started)
        try:
            yield db
        finally:
            drop_database(db)

    def _create(self, prefix: str, template: str | None) -> Server:
        """A database of this run. On a dsn server it is named like a run database (and, as every
        database chatbench creates, tagged with the run's owner record), so ``chatbench clean --dsn``
        drops it if the run is killed."""
        dsn = self.server.backend == "dsn"
        try:
            return create_database(self.server, f"{RUN_DATABASE_PREFIX}{prefix}" if dsn else prefix,
                                   template=template, file_copy=not dsn)
        except psycopg.Error as exc:
            raise ChatbenchError(f"cannot create a database on {self.server.display_url} "
                                 f"({str(exc).strip().splitlines()[0]}); the server's user needs CREATEDB") from None


def _sqlalchemy_url(server: Server) -> str:
    return str(server.url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))


def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _deep_cursors(db: Server, result: SeedResult) -> list[dict[str, Any]]:
    """Cursors into the largest conversation at the verifier's depths (its keyset scenarios)."""
    with psycopg.connect(db.conninfo()) as conn:
        scenarios = build_scenarios(conn, result.params)
    return [
        {"conversation_id": s.params["conversation_id"], "user_id": s.params["user_id"],
         "created_at": s.params["cursor_created_at"].isoformat(), "id": s.params["cursor_id"], "depth": s.depth}
        for s in scenarios if s.curve == "keyset" and s.depth is not None
    ]
