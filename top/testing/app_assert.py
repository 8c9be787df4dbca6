"""``assert_plan(db, "history_page")``: an application query of the ``--queries`` file judged by name.

The query's own contract (``chatbench.verify.appplans``: index used, no Seq Scan on the big tables, buffer
budget, rows returned, Sort bounded; ``[queries.NAME]`` of ``--targets`` widens it) over the scenarios its
parameters allow, bound from the database's data (whales, tiny conversations, heavy and light users, cursors
inside ties), in both plan modes. The file is ``queries=`` or the ``queries`` setting (``--chatbench-queries``,
``CHATBENCH_QUERIES``, ``[tool.chatbench] queries``). A write runs in a rolled-back transaction.
"""

from __future__ import annotations

from pathlib import Path

from chatbench.commands.appqueries import role_map
from chatbench.errors import ConfigError
from chatbench.provision import Server
from chatbench.schema.appqueries import AppQueries, load_queries
from chatbench.settings import resolve, where
from chatbench.verify.appcheck import AppVerification, verify_app_queries
from chatbench.verify.context import connect
from chatbench.verify.discover import discover


def queries_file(queries: str | Path | None) -> AppQueries:
    """The queries named by ``queries``, else by the ``queries`` setting (environment or settings file)."""
    if queries is not None:
        return load_queries(queries)
    settings = resolve("fixtures", names=("queries", "targets"))
    if settings.queries is None:
        raise ConfigError("assert_plan(db, NAME): no queries file; pass queries='app.sql' or set "
                          "CHATBENCH_QUERIES / [tool.chatbench] queries")
    return load_queries(settings.queries, settings.targets, setting=where(settings, "queries"))


def judge_by_name(server: object, name: str, queries: str | Path | None) -> AppVerification:
    """The named query judged on ``server``'s database (plans and its page walk; no index proof)."""
    assert isinstance(server, Server)
    found = queries_file(queries)
    one = AppQueries(found.source, (found.named(name),), found.overrides)
    roles = role_map()
    with connect(server, read_only=True) as conn:
        params = discover(conn, roles)
    return verify_app_queries(server, params, one, roles=roles, prove=False)
