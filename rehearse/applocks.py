"""The locks the app's own queries take, measured rather than assumed.

Each operation of the load mix runs once inside a transaction on the before-schema, the backend's
relation locks are read, and the transaction is rolled back (the append leaves nothing). This
catches what reading the SQL would miss: an append also locks ``conversations`` (the trigger that
moves ``updated_at``) and ``users`` (the foreign key checks), and a read locks every index it uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from chatbench.benchmarks.loadtest.mix import OPERATIONS
from chatbench.rehearse.appload import access_of
from chatbench.rehearse.result import AppLocks
from chatbench.schema.queries import QUERIES_BY_NAME

_OWN_LOCKS = """
SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND c.relnamespace = current_schema()::regnamespace
"""


def measure_app_locks(conninfo: str, pools: Mapping[str, list[dict[str, Any]]]) -> AppLocks:
    found: dict[str, dict[str, set[str]]] = {"reads": {}, "appends": {}}
    with psycopg.connect(conninfo) as conn:
        for name, pool in pools.items():
            query = QUERIES_BY_NAME[OPERATIONS[name].query]
            conn.execute(query.sql(), pool[0]).fetchall() if query.returns_rows else conn.execute(query.sql(), pool[0])
            for relation, mode in conn.execute(_OWN_LOCKS).fetchall():
                found[access_of(name)].setdefault(relation, set()).add(mode)
            conn.rollback()
    return AppLocks(*({r: tuple(sorted(m)) for r, m in sorted(found[a].items())} for a in ("reads", "appends")))
