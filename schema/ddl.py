"""Rendering, fingerprinting and applying the canonical schema.

``ddl()`` is the single source of the schema's text: ``fingerprint()`` hashes it, so reports and the
seeded-snapshot cache can say exactly which schema they ran on. ``load_phases()`` splits the same
DDL into what must exist before a bulk load and what is cheaper to build after it (primary keys,
indexes, foreign keys, triggers): the loader uses it so that the loaded schema is the canonical one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from chatbench.schema.models import TRIGGER_FUNCTIONS, TRIGGERS, metadata
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL
from sqlalchemy.schema import AddConstraint, CreateIndex, CreateTable, DropConstraint

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


@dataclass(frozen=True)
class LoadPhases:
    """The canonical schema split around a bulk load; ``before`` + ``after`` = the canonical schema."""

    before: tuple[DdlStep, ...]
    after: tuple[DdlStep, ...]


# Tables whose primary key is dropped for the load and rebuilt after it (the big ones).
_BULK_TABLES = ("conversations", "messages")


def load_phases() -> LoadPhases:
    """Bare tables first; primary keys of big tables, indexes, foreign keys and triggers after the load."""
    # AddConstraint/DropConstraint detach the constraint from its table's CREATE TABLE as a side
    # effect: work on a private copy so the canonical metadata (and ddl(), fingerprint()) stay intact.
    private = sa.MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(private)
    before: list[DdlStep] = [DdlStep(name, "", body.strip()) for name, body in TRIGGER_FUNCTIONS.items()]
    after: list[DdlStep] = []
    for table in private.sorted_tables:
        before.append(DdlStep(table.name, table.name, _compile(CreateTable(table, include_foreign_key_constraints=[]))))
        if table.name in _BULK_TABLES:
            pk = table.primary_key
            before.append(DdlStep(str(pk.name), table.name, _compile(DropConstraint(pk))))
            after.append(DdlStep(str(pk.name), table.name, _compile(AddConstraint(pk))))
    for table in private.sorted_tables:
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            after.append(DdlStep(str(index.name), table.name, _compile(CreateIndex(index))))
    for table in private.sorted_tables:
        for fk in sorted(table.foreign_key_constraints, key=lambda c: str(c.name)):
            after.append(DdlStep(str(fk.name), table.name, _compile(AddConstraint(fk))))
    for name, (table_name, create) in TRIGGERS.items():
        after.append(DdlStep(name, table_name, create))
    return LoadPhases(tuple(before), tuple(after))
