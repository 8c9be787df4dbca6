"""The application's queries of a run (``--queries``) and the role map, read before any server starts.

``verify`` calls ``app_queries`` first (the pytest helpers read ``role_map`` alone): a file that does
not parse, a parameter or scenario that is no role, a ``[queries.NAME]`` override naming no query or a
map key that is no role is one line and exit 2 before anything is provisioned. Against a database chatbench did not
create (``--url``), every write of the file is refused here in one line each; the reads run READ ONLY.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

from chatbench.commands._common import out
from chatbench.schema.appqueries import AppQueries, load_queries
from chatbench.schema.rolemap import RoleMap, read_map
from chatbench.settings import Settings, read_file, where
from chatbench.verify.appcheck import merged_result, verify_app_queries
from chatbench.verify.context import connect
from chatbench.verify.discover import discover

if TYPE_CHECKING:
    from chatbench.loadgen.result import SeedParameters
    from chatbench.provision import Server
    from chatbench.verify.result import VerificationResult


@dataclass(frozen=True)
class AppQueryChoice:
    """The queries to judge and the role map that names the application's tables."""

    queries: AppQueries
    roles: RoleMap


def role_map() -> RoleMap:
    """``[tool.chatbench.map]`` (or ``[map]`` of chatbench.toml) of the working directory."""
    file = read_file()
    return read_map(file.tables.get("map"))


def app_queries(settings: Settings, *, read_only: bool = False) -> AppQueryChoice | None:
    """The ``--queries`` file, parsed and checked (None when not given)."""
    if settings.queries is None:
        return None
    queries = load_queries(settings.queries, settings.targets, setting=where(settings, "queries"))
    if read_only:
        for query in queries.writes:
            out.note(f"{query.name}: refused (a {query.shape.statement[:-4].upper()}; the database is not "
                     "chatbench's, so only reads run, in read-only transactions)")
    return AppQueryChoice(queries, role_map())


def judge_app_queries(server: Server, params: SeedParameters | None, app: AppQueryChoice | None,
                      result: VerificationResult, settings: Settings, *, read_only: bool = False,
                      progress: Callable[[str], None] | None = None) -> VerificationResult:
    """``result`` with the application's queries judged on the same database (unchanged without ``--queries``).
    Without seed parameters (``--url``), they are discovered from the data as the canonical scenarios are."""
    if app is None:
        return result

    if params is None:
        params = _discovered(server, app.roles)
    judged = verify_app_queries(server, params, app.queries, roles=app.roles, read_only=read_only,
                                production_messages=settings.production_messages, progress=progress)
    return merged_result(result, judged)


def _discovered(server: Server, roles: RoleMap) -> SeedParameters | None:
    try:
        with connect(server, read_only=True) as conn:
            return discover(conn, roles)
    except psycopg.Error:
        return None
