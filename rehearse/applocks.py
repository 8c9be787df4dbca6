"""The locks the app's own queries take, measured rather than assumed.

Each operation of the load mix runs once inside a transaction on the before-schema, the backend's
relation locks are read, and the transaction is rolled back (the append leaves nothing). This
catches what reading the SQL would miss: an append also locks ``conversations`` (the trigger that
moves ``updated_at``) and ``users`` (the foreign key checks), and a read locks every index it uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from chatbench.rehearse.appload import AppOperation
from chatbench.rehearse.result import AppLocks

_OWN_LOCKS = """
SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND c.relnamespace = current_schema()::regnamespace
"""


def measure_app_locks(conninfo: str, operations: Sequence[AppOperation]) -> AppLocks:
    found: dict[str, dict[str, set[str]]] = {"reads": {}, "appends": {}}
    with psycopg.connect(conninfo) as conn:
        for op in operations:
            if not op.params:
                continue
            cursor = conn.execute(op.sql, op.params[0])
            if op.returns_rows:
                cursor.fetchall()
            for relation, mode in conn.execute(_OWN_LOCKS).fetchall():
                found[op.access].setdefault(relation, set()).add(mode)
            conn.rollback()
    return AppLocks(*({r: tuple(sorted(m)) for r, m in sorted(found[a].items())} for a in ("reads", "appends")))
