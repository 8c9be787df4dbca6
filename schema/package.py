"""The schema package every stage reads: the canonical models, or the application's own (``--models``).

A ``SchemaPackage`` is a SQLAlchemy ``MetaData`` with a name and a way to create it. Seeding builds
the database from it, drift compares the database with it, the rehearsal judges a release against it.
The canonical package is ``chatbench.schema.models``; an application names its own as
``MODULE:ATTR`` (a ``MetaData``, a declarative base, or anything with a ``.metadata``), imported from
the working directory the way pytest and alembic find an application's modules.

Creating the schema runs ``metadata.create_all``, so DDL attached as events (trigger functions,
triggers, partitions, extensions) is created with it, exactly as the application creates it.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from chatbench.errors import ConfigError
from chatbench.schema.ddl import apply as apply_canonical
from chatbench.schema.ddl import ddl_statements as canonical_ddl_statements
from chatbench.schema.ddl import fingerprint as canonical_fingerprint
from chatbench.schema.models import metadata as canonical_metadata

CANONICAL_NAME = "canonical"
TOOL_TABLES = frozenset({"alembic_version", "flyway_schema_history", "schema_migrations", "django_migrations"})
"""Tables migration tools keep beside the application's: never seeded, never drift."""


@dataclass(frozen=True, eq=False)
class SchemaPackage:
    """A schema the database must equal (``exact``) or serve (``contract``), read by every stage."""

    name: str  # "canonical" or the MODULE:ATTR it was loaded from
    metadata: sa.MetaData = field(repr=False)

    @property
    def canonical(self) -> bool:
        return self.name == CANONICAL_NAME

    def ddl_statements(self) -> tuple[str, ...]:
        """Every statement ``create_all`` runs, events included, in its order."""
        return _captured_ddl(self)

    def fingerprint(self) -> str:
        """A stable short hash of the DDL: equal fingerprints mean the same schema."""
        if self.canonical:
            return canonical_fingerprint()
        normalised = " ".join(" ".join(self.ddl_statements()).split())
        return hashlib.sha256(normalised.encode()).hexdigest()[:16]

    def apply(self, url: str | URL) -> None:
        """Create the schema in the (empty) database at ``url``."""
        if self.canonical:
            apply_canonical(url)
            return
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                self.metadata.create_all(conn)
        finally:
            engine.dispose()


@cache
def _captured_ddl(package: SchemaPackage) -> tuple[str, ...]:
    if package.canonical:
        return tuple(canonical_ddl_statements())
    captured: list[str] = []

    def record(sql: Any, *args: Any, **kwargs: Any) -> None:
        captured.append(str(sql.compile(dialect=engine.dialect)).strip())

    engine = sa.create_mock_engine("postgresql+psycopg://", record)
    package.metadata.create_all(engine, checkfirst=False)
    return tuple(captured)


def canonical() -> SchemaPackage:
    """The canonical chat-history models (``chatbench.schema.models``)."""
    return _canonical()


@cache
def _canonical() -> SchemaPackage:
    return SchemaPackage(CANONICAL_NAME, canonical_metadata)


def load_models(reference: str, *, setting: str = "--models") -> SchemaPackage:
    """``MODULE:ATTR`` -> its ``MetaData``; a bad reference is one ``ConfigError`` line naming ``setting``."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"{setting} {reference!r}: give MODULE:ATTR, e.g. {setting} app.models:Base")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # the application's modules, as pytest and alembic find them
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an application's module may raise anything while importing
        raise ConfigError(
            f"{setting} {reference!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc}); run from the "
            "application's project directory or install it"
        ) from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"{setting} {reference!r}: {module_name!r} has no attribute {attribute!r}; name the "
                              "MetaData or the declarative Base class the module defines")
        target = getattr(target, part)
    metadata = target if isinstance(target, sa.MetaData) else getattr(target, "metadata", None)
    if not isinstance(metadata, sa.MetaData):
        raise ConfigError(
            f"{setting} {reference!r}: {attribute!r} is not a SQLAlchemy MetaData or declarative base; "
            "name the MetaData or the Base class"
        )
    if not metadata.tables:
        raise ConfigError(f"{setting} {reference!r}: its MetaData declares no table")
    return SchemaPackage(reference, metadata)
