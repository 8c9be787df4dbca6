"""The benchmark scenarios: one per canonical query x data situation, with rotated parameters.

A scenario names a canonical query and how to derive its parameter sets from a seeded database
(``SeedResult.params`` plus cursors read once from the database). Parameter sets are rotated
round by round, so a benchmark is never one cached row.

Pages are ``PAGE`` (50) messages. "Depth d" means d pages are already on screen: the keyset
scenario fetches the page after the d*50-th newest message by cursor, the OFFSET scenario the same
page by ``OFFSET d*50`` (the contrast: its cost grows with d). "last" is the oldest page of each
whale.

Writes are measured as the app runs them: one statement in autocommit, i.e. *committed*
(``synchronous_commit = off`` on throwaway servers, recorded in the fingerprint). They run last in
the suite, on a database restored from the seed cache (snapshot or template), so the rows they add
never leak into another run. The append includes the trigger that moves ``conversations.updated_at``;
its buffers are measured afterwards by EXPLAIN ANALYZE in a rolled-back transaction.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import psycopg
from psycopg.rows import TupleRow

from chatbench.benchmarks.results import BufferUsage, Target
from chatbench.benchmarks.shard_buffers import execution_usage
from chatbench.benchmarks.targets import Targets
from chatbench.loadgen.result import Key, SeedParameters
from chatbench.schema.queries import QUERIES_BY_NAME, CanonicalQuery
from chatbench.settings import Driver
from chatbench.verify.citus import is_citus
from chatbench.verify.keys import as_key
from chatbench.verify.serialize import client_explain, explain_options

PAGE = 50
LIST_PAGE = 20
DEPTHS: tuple[int | str, ...] = (1, 5, 20, "last")
MAX_PARAM_SETS = 8
"""Parameter sets rotated per scenario: enough that no single row stays hot, few enough that every
one is a realistic instance of the scenario (the biggest whales, the heaviest users)."""

Params = dict[str, Any]


class Statement(Protocol):
    """What a benchmark executes: a canonical query, or an application's (``benchmarks.app_scenarios``).

    ``name`` also names its prepared statements (an identifier); ``sql`` has psycopg ``%(name)s``
    placeholders, ``sql_positional`` the ``$n`` text PREPARE takes and the parameter behind each ``$n``."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def returns_rows(self) -> bool: ...

    @property
    def tags(self) -> frozenset[str]: ...

    def sql(self) -> str: ...

    def sql_positional(self) -> tuple[str, tuple[str, ...]]: ...


@dataclass(frozen=True)
class Scenario:
    """One benchmark: a canonical query in one data situation.

    The session measures every scenario through ``statement``, ``bind``, ``runner`` and ``target_in``, so an
    application's query (``benchmarks.app_scenarios.AppScenario``) is measured by the same code."""

    name: str
    query: str  # canonical query name
    doc: str
    depth: int | str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def canonical(self) -> CanonicalQuery:
        return QUERIES_BY_NAME[self.query]

    @property
    def statement(self) -> Statement:
        """What the scenario executes (its canonical query)."""
        return self.canonical

    @property
    def kind(self) -> str:
        return self.statement.kind

    def bind(self, conn: psycopg.Connection[TupleRow], seed: SeedParameters) -> list[Params]:
        """The parameter sets rotated through (``build_params``; empty: the data has no instance of it)."""
        return build_params(self, conn, seed)

    def runner(self, conn: psycopg.Connection[TupleRow], driver: Driver = "psycopg") -> Callable[[Params], int]:
        """One execution per call, as the application runs it (``runner``)."""
        return runner(conn, self.statement, driver)

    def target_in(self, targets: Targets, profile: str) -> Target | None:
        """The budget this scenario is judged against: its table of the targets file for the profile."""
        return targets.get(self.name, profile)


def _depth_scenarios(prefix: str, query: str, doc: str) -> list[Scenario]:
    return [Scenario(f"{prefix}_{d}", query, f"{doc} at depth {d}", depth=d) for d in DEPTHS]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("latest_page", "latest_messages", "open a whale conversation: its latest 50 messages"),
    *_depth_scenarios("keyset_page", "messages_before", "scroll up by keyset cursor"),
    *_depth_scenarios("offset_page", "messages_offset", "scroll up by OFFSET (contrast)"),
    Scenario("newer_than", "messages_after", "sync after reconnect: the 50 messages after a cursor 100 deep"),
    Scenario("conversation_list_first", "list_conversations_first", "a heavy user's sidebar, first page"),
    Scenario("conversation_list_next", "list_conversations_next", "a heavy user's sidebar, next page"),
    Scenario("message_count", "count_messages", "a whale conversation's message count"),
    Scenario("append_message", "append_message", "append to a whale conversation (trigger included, committed)",
             extra={"transaction": "autocommit (committed)"}),
    Scenario("create_conversation", "create_conversation", "create a conversation for a user (committed)",
             extra={"transaction": "autocommit (committed)"}),
)
SCENARIOS_BY_NAME = {s.name: s for s in SCENARIOS}


# --- parameter sets ----------------------------------------------------------------------------

def _cursor(conn: psycopg.Connection[TupleRow], conversation_id: Key, position: int) -> tuple[datetime, Key]:
    """(created_at, id) of the ``position``-th newest message (1-based) of a conversation."""
    row = conn.execute(
        "SELECT created_at, id FROM messages WHERE conversation_id = %s "
        "ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1", (conversation_id, position - 1)).fetchone()
    if row is None:
        raise LookupError(f"conversation {conversation_id} has fewer than {position} messages")
    return row[0], as_key(row[1])


def _list_cursor(conn: psycopg.Connection[TupleRow], user_id: Key) -> tuple[datetime, Key] | None:
    row = conn.execute(
        "SELECT updated_at, id FROM conversations WHERE user_id = %s "
        "ORDER BY updated_at DESC, id DESC OFFSET %s LIMIT 1", (user_id, LIST_PAGE - 1)).fetchone()
    return (row[0], as_key(row[1])) if row else None


def _depth_of(depth: int | str | None, messages: int) -> int | None:
    """Pages already shown for this whale, or None when the whale is too small for that depth."""
    if depth == "last":
        return (messages - 1) // PAGE if messages > PAGE else None
    assert isinstance(depth, int)
    return depth if messages > depth * PAGE else None


def build_params(scenario: Scenario, conn: psycopg.Connection[TupleRow], seed: SeedParameters) -> list[Params]:
    """The parameter sets of a scenario (possibly empty: the data has no instance of it)."""
    whales = seed.whales[:MAX_PARAM_SETS]
    heavy = seed.heavy_users[:MAX_PARAM_SETS]
    q = scenario.query
    out: list[Params] = []
    if q in ("latest_messages", "count_messages"):
        out = [{"user_id": w.user_id, "conversation_id": w.conversation_id, "limit": PAGE} for w in whales]
        if q == "count_messages":
            for p in out:
                del p["limit"]
    elif q in ("messages_before", "messages_offset"):
        for w in whales:
            shown = _depth_of(scenario.depth, w.messages)
            if shown is None:
                continue
            base = {"user_id": w.user_id, "conversation_id": w.conversation_id, "limit": PAGE}
            if q == "messages_offset":
                out.append({**base, "offset": shown * PAGE})
            else:
                created_at, mid = _cursor(conn, w.conversation_id, shown * PAGE)
                out.append({**base, "cursor_created_at": created_at, "cursor_id": mid})
    elif q == "messages_after":
        for w in whales:
            if w.messages > 2 * PAGE:
                created_at, mid = _cursor(conn, w.conversation_id, 2 * PAGE + 1)
                out.append({"user_id": w.user_id, "conversation_id": w.conversation_id,
                            "cursor_created_at": created_at, "cursor_id": mid, "limit": PAGE})
    elif q == "list_conversations_first":
        out = [{"user_id": u.user_id, "limit": LIST_PAGE} for u in heavy]
    elif q == "list_conversations_next":
        for u in heavy:
            cursor = _list_cursor(conn, u.user_id)
            if cursor is not None and u.conversations > LIST_PAGE:
                out.append({"user_id": u.user_id, "cursor_updated_at": cursor[0], "cursor_id": cursor[1],
                            "limit": LIST_PAGE})
    elif q == "append_message":
        out = [{"user_id": w.user_id, "conversation_id": w.conversation_id, "role": "user",
                "content": f"benchmark message {i}: how does the history query scale?"}
               for i, w in enumerate(whales)]
    elif q == "create_conversation":
        users = list(heavy[:4]) + list(seed.light_users[:4])
        out = [{"user_id": u.user_id, "title": f"benchmark conversation {i}"} for i, u in enumerate(users)]
    else:
        raise KeyError(f"no parameter builder for query {q}")
    return out


def describe_params(params: Sequence[Params]) -> list[dict[str, Any]]:
    """JSON-plain parameter sets for the params version hash and the result's extra info."""
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in p.items()} for p in params]


# --- execution -------------------------------------------------------------------------------

DRIVERS: tuple[str, ...] = ("psycopg", "libpq")


def runner(conn: psycopg.Connection[TupleRow], query: Statement,
           driver: Driver = "psycopg") -> Callable[[Params], int]:
    """A function executing ``query`` as a server-side prepared statement; returns the row count.

    ``psycopg`` (default) is what the app pays: psycopg prepares the statement on first use
    (``prepare=True``), binds the parameters and decodes every row into Python objects.
    ``libpq`` is what the database costs: PREPARE once, then libpq's PQexecPrepared with text
    parameters, rows left undecoded, as pgbench -M prepared does (the fidelity check shows the
    timer and Python loop add ~1 µs on top of pgbench this way, psycopg 20-60 µs).
    """
    if driver == "libpq":
        return _libpq_runner(conn, query)
    sql = query.sql()
    cursor = conn.cursor()
    execute = cursor.execute
    fetchall = cursor.fetchall
    returns_rows = query.returns_rows

    def run(params: Params) -> int:
        execute(sql, params, prepare=True)
        return len(fetchall()) if returns_rows else 0

    return run


def _text(value: Any) -> bytes:
    return (value.isoformat() if isinstance(value, datetime) else str(value)).encode()


def _libpq_runner(conn: psycopg.Connection[TupleRow], query: Statement) -> Callable[[Params], int]:
    text, order = query.sql_positional()
    name = f"cb_libpq_{query.name}".encode()
    pgconn = conn.pgconn
    if conn.execute("SELECT 1 FROM pg_prepared_statements WHERE name = %s", (name.decode(),)).fetchone() is None:
        prepared = pgconn.prepare(name, text.encode())
        if prepared.status != psycopg.pq.ExecStatus.COMMAND_OK:
            raise RuntimeError(f"PREPARE {query.name} failed: {prepared.get_error_message()}")
    ok = (psycopg.pq.ExecStatus.TUPLES_OK, psycopg.pq.ExecStatus.COMMAND_OK)
    exec_prepared = pgconn.exec_prepared

    def run(params: Params) -> int:
        result = exec_prepared(name, [_text(params[p]) for p in order])
        if result.status not in ok:
            raise RuntimeError(f"{query.name}: {result.get_error_message()}")
        return result.ntuples

    return run


def rotate(params: Sequence[Params]) -> Iterator[Params]:
    return itertools.cycle(params)


def explain_buffers(conn: psycopg.Connection[TupleRow], query: Statement,
                    params: Sequence[Params]) -> BufferUsage:
    """Worst shared-buffer usage over the parameter sets, measured as the app runs it: EXECUTE of a
    prepared statement (after enough executions for the planner to settle on a generic plan).

    Writes run inside a transaction that is rolled back, so measuring them changes nothing.
    Planning buffers are excluded (a prepared statement is not re-planned per call). On a Citus cluster
    every shard's buffers are counted, from the statement itself (``benchmarks.shard_buffers``).
    """
    if is_citus(conn):
        return max((execution_usage(conn, query.sql(), values) for values in params), key=lambda u: u.total)
    text, order = query.sql_positional()
    name = f"cb_explain_{query.name}"
    worst: BufferUsage | None = None
    cur = psycopg.ClientCursor(conn)
    with conn.transaction(force_rollback=True):
        cur.execute(f"PREPARE {name} AS {text}")
        placeholders = ", ".join(["%s"] * len(order))
        for values in params:
            args = [values[p] for p in order]
            for _ in range(6):  # the planner may switch to a generic plan after five executions
                cur.execute(f"EXECUTE {name}({placeholders})", args)
            cur.execute(f"{explain_options(conn)}EXECUTE {name}({placeholders})", args)
            row = cur.fetchone()
            assert row is not None
            # what the client receives: detoasting counted (SERIALIZE on 17+, the whole-row probe on 15/16)
            counted, _ = client_explain(conn, row[0], query.sql(), values)
            plan = counted[0]["Plan"]
            usage = BufferUsage(int(plan.get("Shared Hit Blocks", 0)), int(plan.get("Shared Read Blocks", 0)),
                                int(plan.get("Shared Dirtied Blocks", 0)), int(plan.get("Shared Written Blocks", 0)))
            if worst is None or usage.total > worst.total:
                worst = usage
    # Whether the rollback discarded the PREPARE differs by version and path: clean up if it is there.
    if cur.execute("SELECT 1 FROM pg_prepared_statements WHERE name = %s", (name,)).fetchone():
        cur.execute(f"DEALLOCATE {name}")
    assert worst is not None, "explain_buffers needs at least one parameter set"
    return worst
