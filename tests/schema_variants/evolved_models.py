"""The canonical models after a release: three new columns on ``messages`` and a new table ``attachments``.

What an application's next release does to its models: ``messages`` gains ``edited_at`` (a nullable
``timestamptz``), ``token_count`` (a nullable ``integer``) and ``meta`` (``jsonb``, NOT NULL with a server
default); ``attachments`` is new, with a foreign key to ``messages`` (ON DELETE CASCADE), an index on it,
NOT NULL columns without defaults and CHECKs on its own columns. Everything canonical is copied from
``chatbench.schema.models`` (tables, names, trigger functions and triggers), so this module follows the
canonical schema instead of restating it.

Two uses:

- ``--models schema_variants.evolved_models:Base`` (``tests/`` on ``PYTHONPATH``): the schema the
  database must equal (exact drift), and the schema the harness builds and seeds;
- ``python evolved_models.py`` as a ``--schema-from-cmd``: creates the schema in ``$DATABASE_URL``.
"""

from __future__ import annotations

import os
from datetime import datetime

from sqlalchemy import (
    DDL,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    MetaData,
    String,
    Text,
    create_engine,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chatbench.schema import models as canonical

ATTACHMENT_MIME_TYPES: tuple[str, ...] = ("image/png", "image/jpeg", "application/pdf", "text/plain")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=canonical.NAMING_CONVENTION)


# The canonical tables with their constraints and indexes. Table.to_metadata does not carry DDL event
# listeners, so the trigger functions and triggers are registered again from the canonical declarations.
for _table in canonical.metadata.sorted_tables:
    _table.to_metadata(Base.metadata)
for _body in canonical.TRIGGER_FUNCTIONS.values():
    event.listen(Base.metadata, "before_create", DDL(_body.strip()))
for _table_name, _create in canonical.TRIGGERS.values():
    event.listen(Base.metadata.tables[_table_name], "after_create", DDL(_create))

messages = Base.metadata.tables["messages"]
messages.append_column(Column("edited_at", DateTime(timezone=True), nullable=True))
messages.append_column(Column("token_count", Integer, nullable=True))
messages.append_column(Column("meta", JSONB, nullable=False, server_default=text("'{}'::jsonb")))


class Attachment(Base):
    """A file attached to a message; deleted with it."""

    __tablename__ = "attachments"
    __table_args__ = (
        CheckConstraint("size_bytes >= 0", name="size_non_negative"),
        CheckConstraint(
            "mime_type IN (" + ", ".join(f"'{m}'" for m in ATTACHMENT_MIME_TYPES) + ")", name="mime_type_allowed"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mime_type: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


metadata = Base.metadata


def create_schema(database_url: str) -> None:
    """``metadata.create_all`` in the database a libpq URL (``postgresql://``) names, through psycopg 3."""
    engine = create_engine(make_url(database_url).set(drivername="postgresql+psycopg"))
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()


if __name__ == "__main__":
    create_schema(os.environ["DATABASE_URL"])
