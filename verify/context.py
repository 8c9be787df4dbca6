"""The one object every check reads: the live connection, the server, both catalogs, the scenarios.

The expected catalog (``canonical``) comes from applying the expected ``SchemaPackage`` (the canonical
models by default, the application's with ``--models``) into a scratch database and reading it back with
the same reader as the live one (see ``catalog.py`` for why). Where it is applied:

* the live server is ours (``read_only=False``): a scratch database on the same server, so both
  sides are deparsed by the same PostgreSQL version (exact equality, no cross-version noise);
* ``read_only=True`` (a ``--url`` chatbench does not own, e.g. staging): nothing is created there at
  all, not even a scratch database; the canonical schema is applied on a throwaway local server
  (embedded PostgreSQL, or ``--pg-bin``) instead, the same one that holds the schema-only copy the
  behaviour probes run on (see ``sites.py``). Deparsed text is stable across the supported versions
  for the constructs the canonical schema uses.

The live connection of a read-only run has ``default_transaction_read_only=on``: every statement
(EXPLAIN ANALYZE of the canonical SELECTs, PREPARE/EXECUTE) runs in a READ ONLY transaction, so a
write would be refused by the server itself rather than merely avoided by us.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, get_args

import psycopg

from chatbench.loadgen.result import SeedParameters
from chatbench.provision import Server
from chatbench.provision.databases import temporary_database
from chatbench.schema.package import CANONICAL_NAME, SchemaPackage
from chatbench.schema.package import canonical as canonical_package
from chatbench.schema.rolemap import CANONICAL, ROLE_TABLES, RoleMap
from chatbench.settings import DriftMode
from chatbench.verify.catalog import CatalogFacts, read_catalog
from chatbench.verify.mapped import mapped_roles
from chatbench.verify.sites import LocalScratch

DRIFT_MODES: tuple[DriftMode, ...] = get_args(DriftMode)  # what ``verify`` takes (the setting adds "auto")

_CANONICAL_CACHE: dict[tuple[str, int, str, str], tuple[CatalogFacts, str]] = {}


@dataclass(frozen=True)
class VerificationContext:
    """What checks may look at; nothing in it changes while checks run."""

    server: Server
    conn: psycopg.Connection[Any]
    live: CatalogFacts
    canonical: CatalogFacts
    canonical_source: str
    params: SeedParameters | None
    params_source: str  # "seed" | "discovered" | "none"
    read_only: bool
    schema_name: str = "public"
    # ``exact``: the database equals ``expected``; ``contract``: it serves the canonical queries and behaviours.
    mode: DriftMode = "exact"
    expected: str = "canonical"  # the SchemaPackage's name the expected catalog was built from
    # The application's names for the roles ([tool.chatbench.map]): contract mode judges the role tables
    # through it (``drift_roles.py``), and the canonical queries do not run on tables it renames (``mapped.py``).
    roles: RoleMap = CANONICAL
    # What a check opens (a scratch server, a schema-only copy) is closed with the verification.
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, compare=False, repr=False)
    scratch: LocalScratch | None = field(default=None, compare=False, repr=False)
    # Measurements shared by several checks (the plan run, the probe run), computed once on first use.
    memo: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def mapped(self) -> frozenset[str]:
        """The roles drift judges through the map (``drift_roles.py``): all three once the map renames any, in
        contract mode against the canonical schema. Why all: a role the map leaves on its canonical name is
        still the application's table, read by its own queries, not the canonical ones (those reading a
        renamed role are not run); judging it by the canonical catalog made its lacking owner column an
        error while the same column missing from a renamed role was a warning. Exact mode compares the
        canonical names (``drift.roles`` says so in one line when there is a map); an application's own
        models (``--models``) are already on its names."""
        canonical = self.expected == CANONICAL_NAME
        if self.mode != "contract" or not canonical or not mapped_roles(self.roles):
            return frozenset()
        return frozenset(ROLE_TABLES)

    def scratch_server(self) -> Server:
        """The throwaway local server of this verification (started on first use)."""
        if self.scratch is None:
            raise RuntimeError("this verification context has no scratch server")
        return self.scratch.server()


def connect(server: Server, *, read_only: bool) -> psycopg.Connection[Any]:
    """An autocommit connection to the live database; read-only at the server level when asked."""
    options = "-c statement_timeout=300000 -c lock_timeout=5000"
    if read_only:
        options += " -c default_transaction_read_only=on"
    return psycopg.connect(server.conninfo(), autocommit=True, options=options, application_name="chatbench-verify")


def _apply_and_read(server: Server, expected: SchemaPackage, schema_name: str) -> CatalogFacts:
    with temporary_database(server, "cbv_canon", template="template0") as scratch:
        expected.apply(scratch.url)
        with psycopg.connect(scratch.conninfo()) as conn:
            return read_catalog(conn, schema_name)


def canonical_facts(
    server: Server,
    *,
    read_only: bool,
    schema_name: str = "public",
    scratch: LocalScratch | None = None,
    expected: SchemaPackage | None = None,
) -> tuple[CatalogFacts, str]:
    """The expected schema's catalog facts and where they were read (cached per server, schema and package).

    ``expected`` defaults to the canonical models. Read-only: applied on ``scratch``'s local server when
    given (it also holds the probes' schema-only copy), else on a local server started and stopped for
    this alone. The cache key is the package's fingerprint (its DDL), so two packages with the same DDL
    share one read and an edited models module is read afresh.
    """
    package = expected if expected is not None else canonical_package()
    key = (
        f"{server.url.host}:{server.url.port}" if not read_only else "local",
        server.version_num,
        package.fingerprint(),
        schema_name,
    )
    if key in _CANONICAL_CACHE:
        return _CANONICAL_CACHE[key]
    if not read_only:
        result = (
            _apply_and_read(server, package, schema_name),
            f"{_applied(package)} into a scratch database on the same server ({server.version})",
        )
    else:
        with contextlib.ExitStack() as own:
            local = (scratch or LocalScratch(own)).server()
            result = (
                _apply_and_read(local, package, schema_name),
                f"{_applied(package)} on a throwaway local server ({local.version}); "
                "nothing created on the live server",
            )
    _CANONICAL_CACHE[key] = result
    return result


def _applied(package: SchemaPackage) -> str:
    return "schema.apply" if package.canonical else f"the models {package.name} applied"


def build_context(
    server: Server,
    conn: psycopg.Connection[Any],
    *,
    params: SeedParameters | None,
    params_source: str,
    read_only: bool,
    canonical: tuple[CatalogFacts, str] | None = None,
    schema_name: str = "public",
    stack: contextlib.ExitStack | None = None,
    scratch: LocalScratch | None = None,
    expected: SchemaPackage | None = None,
    mode: DriftMode = "exact",
    roles: RoleMap = CANONICAL,
) -> VerificationContext:
    """The context of one verification; ``canonical`` (already-read facts) wins over ``expected``."""
    package = expected if expected is not None else canonical_package()
    facts, source = (
        canonical
        if canonical is not None
        else canonical_facts(server, read_only=read_only, schema_name=schema_name, scratch=scratch, expected=package)
    )
    return VerificationContext(
        server=server,
        conn=conn,
        live=read_catalog(conn, schema_name),
        canonical=facts,
        canonical_source=source,
        params=params,
        params_source=params_source,
        read_only=read_only,
        schema_name=schema_name,
        mode=mode,
        expected=package.name,
        roles=roles,
        stack=stack if stack is not None else contextlib.ExitStack(),
        scratch=scratch,
    )
