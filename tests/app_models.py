"""A tiny application package for the ``--models`` tests: its models extend the canonical chat tables, with
or without the ``messages.edited_at`` column a release adds (``ALTER TABLE messages ADD COLUMN edited_at``)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

APP_MODELS = '''
"""The application's models: the canonical chat tables it extends, as a release declares them."""
import sqlalchemy as sa
from sqlalchemy import DDL, event
from sqlalchemy.orm import DeclarativeBase

from chatbench.schema.models import TRIGGER_FUNCTIONS, TRIGGERS, metadata as canonical


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=canonical.naming_convention)


for table in canonical.sorted_tables:
    table.to_metadata(Base.metadata)
for body in TRIGGER_FUNCTIONS.values():
    event.listen(Base.metadata, "before_create", DDL(body.strip()))
for table_name, create in TRIGGERS.values():
    event.listen(Base.metadata.tables[table_name], "after_create", DDL(create))
'''
EDITED_AT = 'Base.metadata.tables["messages"].append_column(sa.Column("edited_at", sa.DateTime(timezone=True)))\n'
ADD_COLUMN = "SET lock_timeout = '500ms';\nALTER TABLE messages ADD COLUMN edited_at timestamptz;\n"
"""The release's migration: lock-safe (a nullable column without a default is a catalog change)."""
REFERENCE = "app.models:Base"


def write_app(project: Path, *, declares_edited_at: bool) -> None:
    """``app/models.py`` in ``project`` (the working directory the models are imported from)."""
    package = project / "app"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(textwrap.dedent(APP_MODELS) + (EDITED_AT if declares_edited_at else ""))


def forget_app() -> None:
    """Drop the imported ``app`` so the next test's (other) models are imported afresh."""
    for name in [n for n in sys.modules if n == "app" or n.startswith("app.")]:
        del sys.modules[name]
