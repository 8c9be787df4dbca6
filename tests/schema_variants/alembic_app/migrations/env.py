"""Alembic environment: online migrations against ``$DATABASE_URL`` through psycopg 3.

chatbench sets ``DATABASE_URL`` (a libpq ``postgresql://`` URL) for ``--schema-from-cmd``; SQLAlchemy's
default driver for that scheme is psycopg2, which a chatbench install does not have, hence the driver.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

engine = create_engine(make_url(os.environ["DATABASE_URL"]).set(drivername="postgresql+psycopg"))
try:
    with engine.connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
finally:
    engine.dispose()
