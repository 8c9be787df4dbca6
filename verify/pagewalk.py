"""Page-walk correctness: walk every page of the largest conversation (and of the heaviest user's list)
with the application's own pagination query, and check that every row comes exactly once, ties included.

A cursor on ``created_at`` alone loses the rows that share the last row's timestamp (``<``) or repeats
them (``<=``); an OFFSET without a unique tie-breaker in its ORDER BY may hand one row to two pages. The
seed writes blocks of messages with one ``created_at`` on purpose, so a walk of a whale crosses some.

The reference is the query itself with a page size no conversation reaches (``BIG_LIMIT``) from the start
(timestamps ``±infinity``, ids past the last): whatever the query filters (soft-deleted rows, a tenant)
it filters in both, so only the paging is judged. A query whose LIMIT is not ``:limit`` is compared
with the subject's rows in the table instead. Each page continues from the last row of the previous one:
``before_created_at``/``before_id`` take that row's ``created_at``/``id`` (the application's column
names through the role map), ``:offset`` grows by the page size. Read-only: SELECTs only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from chatbench.loadgen.result import SeedParameters
from chatbench.schema.appqueries import AppQuery
from chatbench.schema.contracts import PAGE_SIZE
from chatbench.schema.rolemap import RoleMap
from chatbench.verify.appplans import CHECK, run_query
from chatbench.verify.findings import Finding
from chatbench.verify.scenarios import BIG_LIMIT, Subject, list_subject, message_subject

MAX_SHOWN = 5
_ID_EXTREMES = {"int8": ("-9223372036854775808", "9223372036854775807"), "int4": ("-2147483648", "2147483647"),
                "int2": ("-32768", "32767"), "uuid": ("00000000-0000-0000-0000-000000000000",
                                                       "ffffffff-ffff-ffff-ffff-ffffffffffff")}


@dataclass(frozen=True)
class Walk:
    """One walk of one query over one subject: pages read, rows lost and repeated (with the page of each)."""

    query: str
    subject: str  # "conversation 42 (2431 messages)"
    page_size: int  # chosen so that a page ends inside a tie when the subject has one
    pages: int
    rows: int  # rows the walk returned
    expected: int  # rows the reference returned
    lost: tuple[tuple[Any, int, Any], ...]  # (id, the page it should have come in, its time column's value)
    repeated: tuple[tuple[Any, int, int], ...]  # (id, times, the first page that repeated it)
    reference: str  # what the expected rows came from
    stopped: str = ""  # why the walk stopped early (a page that does not move on)
    skipped: str = ""  # why the query could not be walked at all

    @property
    def correct(self) -> bool:
        return not self.lost and not self.repeated and not self.stopped and not self.skipped


def _row_value(row: Mapping[str, Any], role: str, column: str, roles: RoleMap) -> Any:
    for name in (column, roles.column(role, column)):
        if name in row:
            return row[name]
    raise KeyError(column)


def _time_of(row: Mapping[str, Any], role: str, column: str, roles: RoleMap) -> Any:
    try:
        return _row_value(row, role, column, roles)
    except KeyError:
        return None


def _start(query: AppQuery, id_type: str) -> dict[str, Any] | None:
    """Cursor values before the first row (None: a lone id cursor of a type without a known extreme, text)."""
    out: dict[str, Any] = {}
    paired = any(not name.endswith("_id") for name in query.cursor_params)
    for name in query.cursor_params:
        forward = name.startswith("after_")
        if name.endswith("_id"):
            extremes = _ID_EXTREMES.get(id_type)
            if extremes is None and not paired and not forward:
                return None
            # beside a ±infinity time the id decides nothing: any value of its type will do ('' for text)
            out[name] = "" if extremes is None else extremes[0] if forward else extremes[1]
        else:
            out[name] = "-infinity" if forward else "infinity"
    return out


def _next(query: AppQuery, last: Mapping[str, Any], role: str, roles: RoleMap) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in query.cursor_params:
        column = name.split("_", 1)[1]  # before_created_at -> created_at, before_id -> id
        out[name] = _row_value(last, role, column, roles)
    return out


def page_size(conn: psycopg.Connection[Any], subject: Subject, forward: bool) -> int:
    """A page size near ``PAGE_SIZE`` that ends a page inside a block of rows sharing one time value, when the
    subject has such a block: the walk then crosses a tie at a page boundary, where a cursor without a
    tie-breaker loses or repeats rows (deterministic: the same data gives the same size)."""
    time_col, id_col = subject.order_columns
    direction = sql.SQL("ASC" if forward else "DESC")
    times = [r[0] for r in conn.execute(
        sql.SQL("SELECT {t} FROM {table} WHERE {k} = %s ORDER BY {t} {d}, {i} {d}").format(
            t=sql.Identifier(time_col), i=sql.Identifier(id_col), table=sql.Identifier(subject.table),
            k=sql.Identifier(subject.key_column), d=direction), (subject.key,))]
    ties = {i for i in range(len(times) - 1) if times[i] == times[i + 1]}
    for size in sorted(range(PAGE_SIZE // 2, 2 * PAGE_SIZE), key=lambda n: (abs(n - PAGE_SIZE), n)):
        if any(k * size - 1 in ties for k in range(1, len(times) // size + 1)):
            return size
    return PAGE_SIZE


def _column_type(conn: psycopg.Connection[Any], table: str, column: str) -> str:
    row = conn.execute("SELECT t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                       "WHERE a.attrelid = to_regclass(quote_ident(%s)) AND a.attname = %s", (table, column)).fetchone()
    return str(row[0]) if row else ""


def walk(conn: psycopg.Connection[Any], query: AppQuery, base: Mapping[str, Any], subject: Subject, role: str,
         roles: RoleMap, describe: str) -> Walk:
    """Walk ``subject`` page by page with ``query`` (``skipped`` says why when it cannot be walked)."""
    id_col = roles.column(role, "id")
    id_type = _column_type(conn, subject.table, id_col)
    start = _start(query, id_type)
    size = page_size(conn, subject, forward=any(p.startswith("after_") for p in query.cursor_params))
    values = {**base, "limit": size, "offset": 0}
    if start is None:
        return Walk(query.name, describe, size, 0, 0, 0, (), (), "", skipped=f"a lone {id_type} id cursor has no "
                    "value before the first row; pair it with a time cursor")
    values.update(start)
    if "limit" in query.params:
        reference_rows = run_query(conn, query, {**values, "limit": BIG_LIMIT})
        reference = "the query itself as one page from the start"
    else:
        reference_rows = _table_ids(conn, subject, id_col)
        reference = f"every row of {subject.table} with {subject.key_column} = {subject.key}"
    if reference_rows and not ({"id", id_col} & set(reference_rows[0])):
        return Walk(query.name, describe, size, 0, 0, 0, (), (), reference,
                    skipped=f"the query returns no {id_col!r} column to tell its rows apart")
    expected_ids = [_row_value(r, role, "id", roles) for r in reference_rows]
    time_column = "created_at" if role == "messages" else "updated_at"
    times = {k: _time_of(r, role, time_column, roles) for k, r in zip(expected_ids, reference_rows, strict=True)}
    position = {k: i for i, k in enumerate(expected_ids)}
    seen: Counter[Any] = Counter()
    first_repeat: dict[Any, int] = {}
    page_last_position: list[int] = []
    pages = 0
    stopped = ""
    limit_pages = len(expected_ids) // size + 5
    while True:
        rows = run_query(conn, query, values)
        if not rows:
            break
        pages += 1
        for r in rows:
            key = _row_value(r, role, "id", roles)
            seen[key] += 1
            if seen[key] == 2:
                first_repeat[key] = pages
        page_last_position.append(max((position.get(_row_value(r, role, "id", roles), -1) for r in rows), default=-1))
        if len(rows) < values["limit"] and "limit" in query.params:
            break
        if pages >= limit_pages:
            stopped = f"still returning rows after {pages} pages of {size} (the walk does not move on)"
            break
        if "offset" in query.params:
            values["offset"] += size
        if query.cursor_params:
            try:
                values.update(_next(query, rows[-1], role, roles))
            except KeyError as exc:
                stopped = f"the page has no column {exc.args[0]!r} to continue from"
                break
        if not query.cursor_params and "offset" not in query.params:
            break
    lost = []
    for key in expected_ids:
        if key not in seen:
            p = position[key]
            page = 1 + sum(1 for last in page_last_position if last < p)
            lost.append((key, page, times.get(key)))
    repeated = [(key, n, first_repeat[key]) for key, n in seen.items() if n > 1]
    return Walk(query.name, describe, size, pages, sum(seen.values()), len(expected_ids), tuple(lost),
                tuple(sorted(repeated, key=lambda r: r[2])), reference, stopped)


def _table_ids(conn: psycopg.Connection[Any], subject: Subject, id_col: str) -> list[dict[str, Any]]:
    query = sql.SQL("SELECT {i} AS id FROM {t} WHERE {k} = %s").format(
        i=sql.Identifier(id_col), t=sql.Identifier(subject.table), k=sql.Identifier(subject.key_column))
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(query, (subject.key,)).fetchall()


def walks(conn: psycopg.Connection[Any], queries: tuple[AppQuery, ...], params: SeedParameters,
          roles: RoleMap) -> tuple[Walk, ...]:
    """The walk of every pagination read: the largest conversation, or the heaviest user's list."""
    out: list[Walk] = []
    for query in queries:
        if query.kind != "read" or not query.pages:
            continue
        if "conversation_id" in query.params and params.whales:
            whale = params.whales[0]
            found = walk(conn, query, {"conversation_id": whale.conversation_id, "user_id": whale.user_id},
                         message_subject(whale, roles), "messages", roles,
                         f"conversation {whale.conversation_id} ({whale.messages} messages)")
        elif "user_id" in query.params and params.heavy_users:
            heavy = params.heavy_users[0]
            found = walk(conn, query, {"user_id": heavy.user_id}, list_subject(heavy, roles), "conversations", roles,
                         f"the conversation list of user {heavy.user_id} ({heavy.conversations} conversations)")
        else:
            continue
        out.append(found)
    return tuple(out)


def findings(found: tuple[Walk, ...], queries: Mapping[str, AppQuery]) -> list[Finding]:
    """An error per walk that lost or repeated rows, naming the rows and the page; info for a correct walk."""
    out: list[Finding] = []
    for w in found:
        query = queries[w.query]
        offset_ties = query.shape.has_offset and len(query.shape.order_by) < 2
        tiebreak = len(query.shape.cursor) == 1 or offset_ties
        # an OFFSET page has no cursor: rows of equal ORDER BY value come in any order from one execution to the
        # next, so a page boundary inside a tie loses one and repeats another
        lost_why, repeated_why = (
            ("order_without_tiebreaker: rows sharing the ORDER BY value come in another order on the next page",
             "order_without_tiebreaker: rows sharing the ORDER BY value come in another order on the next page")
            if offset_ties else
            ("cursor_without_tiebreaker: rows sharing the cursor's value fall between pages",
             "cursor_without_tiebreaker: rows sharing the cursor's value come again"))
        what = f"{w.pages} pages of {w.page_size} over {w.subject}"
        if w.lost:
            shown = ", ".join(f"id {k}" + (f" at {t.isoformat() if hasattr(t, 'isoformat') else t}" if t else "")
                              + f" (page {p})" for k, p, t in w.lost[:MAX_SHOWN])
            out.append(Finding(CHECK, "lost_rows", w.query, f"every one of {w.expected} rows exactly once",
                               f"{len(w.lost)} rows never returned", "error", query=w.query, scenario="page-walk",
                               detail=f"{what}: {shown}{', ...' if len(w.lost) > MAX_SHOWN else ''}"
                               + (f"; {lost_why}" if tiebreak else "")))
        if w.repeated:
            shown = ", ".join(f"id {k} x{n} (page {p})" for k, n, p in w.repeated[:MAX_SHOWN])
            out.append(Finding(CHECK, "repeated_rows", w.query, f"every one of {w.expected} rows exactly once",
                               f"{len(w.repeated)} rows returned more than once", "error", query=w.query,
                               scenario="page-walk",
                               detail=f"{what}: {shown}{', ...' if len(w.repeated) > MAX_SHOWN else ''}"
                               + (f"; {repeated_why}" if tiebreak else "")))
        if w.skipped:
            out.append(Finding(CHECK, "page_walk_skipped", w.query, "every page walked", w.skipped, "warning",
                               query=w.query, scenario="page-walk", detail=w.subject))
        if w.stopped:
            out.append(Finding(CHECK, "walk_stuck", w.query, "each page continues from the last row", w.stopped,
                               "error", query=w.query, scenario="page-walk", detail=what))
        if w.correct:
            out.append(Finding(CHECK, "page_walk", w.query, "every row exactly once",
                               f"{w.rows} of {w.expected} rows, each once", "info", query=w.query,
                               scenario="page-walk", detail=f"{what}; reference: {w.reference}"))
    return out
