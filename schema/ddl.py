"""Rendering, fingerprinting and applying the canonical schema.

``ddl()`` is the single source of the schema's text: ``fingerprint()`` hashes it, so reports and the
seeded-snapshot cache can say exactly which schema they ran on. The loader builds the schema whole and
takes it apart around its bulk load by the catalog's own definitions (``chatbench.loadgen.ddl``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL
from sqlalchemy.schema import CreateIndex, CreateTable

from chatbench.schema.models import TRIGGER_FUNCTIONS, TRIGGERS, metadata

_DIALECT = postgresql.dialect()


def _compile(element: sa.schema.ExecutableDDLElement) -> str:
    return str(element.compile(dialect=_DIALECT)).strip()


def ddl_statements() -> list[str]:
    """The canonical DDL statements in creation order.

    Built element by element rather than through ``create_all``'s event stream, because SQLAlchemy
    keeps a table's indexes in a set: their order would vary between processes, and so would the
    fingerprint.
    """
    statements = [body.strip() for body in TRIGGER_FUNCTIONS.values()]
    for table in metadata.sorted_tables:
        statements.append(_compile(CreateTable(table)))
        statements.extend(_compile(CreateIndex(index)) for index in sorted(table.indexes, key=lambda i: str(i.name)))
        statements.extend(create for name, (table_name, create) in sorted(TRIGGERS.items()) if table_name == table.name)
    return statements


def ddl() -> str:
    """The full canonical DDL, one statement per paragraph, in creation order."""
    return "\n\n".join(s.rstrip(";") + ";" for s in ddl_statements()) + "\n"


def fingerprint() -> str:
    """A stable short hash of ``ddl()``: equal fingerprints mean the same canonical schema."""
    normalised = " ".join(ddl().split())
    return hashlib.sha256(normalised.encode()).hexdigest()[:16]


def apply(url: str | URL) -> None:
    """Create the canonical schema in the (empty) database at ``url``."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in ddl_statements():
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class DdlStep:
    """One DDL statement of a load phase; ``table`` lets a loader run steps of different tables at once."""

    name: str
    table: str
    sql: str
