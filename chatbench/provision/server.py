"""The ``Server`` every stage receives, whatever backend provided it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import URL

from chatbench.errors import UnsafeOperationError

if TYPE_CHECKING:
    from chatbench.provision.local import LocalCluster

# Throwaway servers trade durability for speed and steadiness: nothing here must survive a crash.
BENCHMARK_SETTINGS: dict[str, str] = {
    "fsync": "off",
    # No replication or archiving from a throwaway server: index builds and bulk loads skip WAL.
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "shared_buffers": "512MB",
    "maintenance_work_mem": "512MB",
    "max_parallel_maintenance_workers": "2",
    "jit": "off",
    "autovacuum": "off",
    "track_io_timing": "on",
    "max_connections": "100",
}


@dataclass(frozen=True)
class Server:
    """A PostgreSQL server with one database this run may use.

    ``url`` points at that database; ``admin_url`` at a maintenance database on the same server
    (for CREATE/DROP DATABASE). ``owns_database`` is True only when this run created the database:
    destructive work anywhere else needs the user's explicit permission (``allow_destructive``).
    """

    backend: str
    url: URL
    admin_url: URL
    version: str
    version_num: int
    settings: Mapping[str, str]
    database: str
    owns_database: bool
    run_id: str
    allow_destructive: bool = False
    details: Mapping[str, str] = field(default_factory=dict)
    cluster: LocalCluster | None = field(default=None, compare=False, repr=False)

    @property
    def display_url(self) -> str:
        """The URL with the password masked: the only form that goes into logs and reports. In libpq's
        form (``postgresql://``), the one a reader pastes into psql; the driver suffix is ours."""
        return self.url.set(drivername="postgresql").render_as_string(hide_password=True)

    def conninfo(self, database: str | None = None) -> str:
        """A libpq URL for psycopg (password included: never print it)."""
        url = self.url if database is None else self.url.set(database=database)
        return url.set(drivername="postgresql").render_as_string(hide_password=False)

    def admin_conninfo(self) -> str:
        return self.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)

    def with_database(self, database: str, *, owns_database: bool) -> Server:
        """The same server pointed at another database (e.g. one cloned from a template)."""
        return replace(self, url=self.url.set(database=database), database=database, owns_database=owns_database)

    def require_destructive(self, what: str) -> None:
        """Raise unless this run created the database or the user allowed destructive work."""
        if not (self.owns_database or self.allow_destructive):
            raise UnsafeOperationError(
                f"refusing to {what} in database {self.database!r}, which chatbench did not create; "
                "pass --allow-destructive if this database is yours to overwrite"
            )

    def describe(self) -> dict[str, Any]:
        """What reports record about the server (no password)."""
        return {
            "backend": self.backend,
            "url": self.display_url,
            "version": self.version,
            "version_num": self.version_num,
            "database": self.database,
            "settings": dict(self.settings),
            **({"details": dict(self.details)} if self.details else {}),
        }
