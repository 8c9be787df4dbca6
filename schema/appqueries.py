"""The application's own history queries (``--queries FILE.sql``): parsed, their parameters bound to roles.

chatbench judges six canonical queries; an application runs its own (a soft-delete filter, a tenant, a
``json`` content column, a cursor on another column, its own names). The queries file holds them as
the application runs them, one block per query, named the way sqlc, yesql and aiosql name them::

    -- name: history_page
    -- The chat screen scrolled up: the 50 messages before the oldest shown.
    SELECT id, created_at, content FROM messages
     WHERE conversation_id = :conversation_id AND deleted_at IS NULL
       AND (created_at, id) < (:before_created_at, :before_id)
     ORDER BY created_at DESC, id DESC LIMIT :limit;

Parameters are named (``:name``; ``::type`` stays a cast) and each name is a *role* chatbench binds to
the seeded data (``PARAM_ROLES``): the conversation of a scenario (whale, small, deep), its owner, a
cursor read at a depth, a page size. An optional ``-- scenarios: whale, deep`` line restricts the
scenarios. An unknown parameter or scenario, a block without a name, two blocks with one name or a
statement PostgreSQL cannot parse is one line and exit 2, before any server starts.

Each query is also taken apart (PostgreSQL's own parser, pglast) into what a reviewer reads first:
which columns it fixes by equality, its ORDER BY, its cursor, its LIMIT/OFFSET (``QueryShape``). The
plan contracts, the page walk and the index proposal work from that shape.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pglast import ast, enums, parse_sql
from pglast.parser import ParseError

from chatbench.errors import ConfigError

# -- the roles a parameter can play -------------------------------------------------------------

MESSAGE_CURSORS = ("before_created_at", "before_id", "after_created_at", "after_id", "cursor_created_at",
                   "cursor_id")
LIST_CURSORS = ("before_updated_at", "after_updated_at", "cursor_updated_at")
PARAM_ROLES: Mapping[str, str] = MappingProxyType({
    "conversation_id": "the scenario's conversation (whale: the largest, small: a tiny one, deep: the whale paged "
                       "to its oldest rows)",
    "user_id": "the owner of the scenario's conversation; without :conversation_id, a heavy or a light user",
    "limit": "the page size (50)",
    "offset": "rows skipped before the page (the scenario's depth)",
    "before_created_at": "cursor: created_at of the row the page continues from (pages go back in time)",
    "before_id": "cursor: id of that row (the tie-breaker; alone, a one-column id cursor)",
    "after_created_at": "cursor: created_at of the newest row the client holds (pages go forward)",
    "after_id": "cursor: id of that row",
    "cursor_created_at": "same as before_created_at",
    "cursor_id": "same as before_id",
    "before_updated_at": "conversation-list cursor: updated_at of the last conversation shown",
    "after_updated_at": "conversation-list cursor going forward",
    "cursor_updated_at": "same as before_updated_at",
    "message_id": "a message of the scenario's conversation (the row at the scenario's depth)",
    "since": "a time: created_at of the row at the scenario's depth (messages since then)",
    "role": "write: a message role ('user')",
    "content": "write: a message's text",
    "title": "write: a conversation's title",
})
SCENARIO_ROLES: Mapping[str, str] = MappingProxyType({
    "whale": "the largest conversation, its newest page (or a cursor one page deep)",
    "deep": "the largest conversation at its oldest page (the deepest cursor or OFFSET)",
    "small": "a conversation of a handful of messages",
    "tie": "a cursor inside a block of messages sharing one created_at",
    "heavy": "the user with the most conversations",
    "light": "a user with one or two conversations",
})
CURSOR_PARAMS = frozenset((*MESSAGE_CURSORS, *LIST_CURSORS))
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ANNOTATION = re.compile(r"^--\s*(name|scenarios)\s*:\s*(.*?)\s*$", re.IGNORECASE)


# -- the query and its shape ------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnUse:
    """A column of a table the query names (``table`` resolved from its alias; None when unqualified in a
    query of several tables)."""

    table: str | None
    column: str
    direction: Literal["ASC", "DESC"] = "ASC"

    def key(self) -> str:
        return f"{self.column} DESC" if self.direction == "DESC" else self.column


@dataclass(frozen=True)
class QueryShape:
    """What the query does, read from PostgreSQL's own parse tree."""

    statement: str  # SelectStmt, InsertStmt, UpdateStmt, DeleteStmt
    tables: tuple[str, ...]  # every table it reads or writes, first FROM table first
    equality: tuple[ColumnUse, ...]  # column = :param (a bare column: an index can serve it)
    wrapped: tuple[ColumnUse, ...]  # a function or cast around a column compared with a parameter
    order_by: tuple[ColumnUse, ...]
    cursor: tuple[ColumnUse, ...]  # columns compared with <, >, <=, >= to a cursor parameter
    joins: tuple[ColumnUse, ...]  # columns of column = column (a join's condition)
    has_limit: bool
    has_offset: bool
    or_across_columns: bool
    aggregate: bool  # count(*), sum(...) over the rows
    # the columns an INSERT lists or an UPDATE sets, of the table it writes: in the tree they are only target
    # names (no column reference), so what reads a write's columns asks for these
    written: tuple[ColumnUse, ...] = ()

    def columns_of(self, uses: tuple[ColumnUse, ...], table: str) -> tuple[ColumnUse, ...]:
        return tuple(u for u in uses if u.table == table or (u.table is None and len(self.tables) == 1))


@dataclass(frozen=True)
class AppQuery:
    """One named query of the application's file."""

    name: str
    text: str  # as written, ``:name`` parameters
    sql: str  # psycopg ``%(name)s`` placeholders
    positional: str  # ``$1..$n`` placeholders, for PREPARE (the generic plan)
    order: tuple[str, ...]  # the parameter behind each ``$n``
    kind: Literal["read", "write"]
    doc: str
    line: int
    shape: QueryShape
    scenarios: frozenset[str] = frozenset()  # empty: every scenario the parameters allow

    @property
    def params(self) -> tuple[str, ...]:
        return self.order

    @property
    def cursor_params(self) -> tuple[str, ...]:
        return tuple(p for p in self.order if p in CURSOR_PARAMS)

    @property
    def pages(self) -> bool:
        """A page of a longer list: a cursor or an OFFSET (the page walk walks it)."""
        return bool(self.cursor_params) or "offset" in self.order

    def allows(self, scenario: str) -> bool:
        return not self.scenarios or scenario in self.scenarios


@dataclass(frozen=True)
class ContractOverride:
    """``[queries.NAME]`` of a targets file: what this query's plan contract allows beyond the defaults."""

    buffers: int | None = None
    rows: int | None = None
    sort_rows: int | None = None
    seq_scan_ok: tuple[str, ...] = ()
    p95_ms: float | None = None
    why: str = ""


@dataclass(frozen=True)
class AppQueries:
    """The file's queries, in file order, and where they came from."""

    source: str
    queries: tuple[AppQuery, ...]
    overrides: Mapping[str, ContractOverride] = field(default_factory=lambda: MappingProxyType({}))

    def __iter__(self) -> Iterator[AppQuery]:
        return iter(self.queries)

    def __len__(self) -> int:
        return len(self.queries)

    def named(self, name: str) -> AppQuery:
        for q in self.queries:
            if q.name == name:
                return q
        raise ConfigError(f"{self.source}: no query named {name!r}; the file has {', '.join(self.names)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(q.name for q in self.queries)

    @property
    def writes(self) -> tuple[AppQuery, ...]:
        return tuple(q for q in self.queries if q.kind == "write")

    def override(self, name: str) -> ContractOverride:
        return self.overrides.get(name, ContractOverride())


# -- parsing ------------------------------------------------------------------------------------


def placeholders(text: str, where: str) -> tuple[str, str, tuple[str, ...]]:
    """``text`` with ``:name`` turned into ``%(name)s`` (psycopg) and ``$n`` (PREPARE), and the name of
    each ``$n``. Strings, quoted names, comments, dollar quotes and ``::`` casts are left as they are;
    a literal ``%`` is doubled for psycopg."""
    out_named: list[str] = []
    out_positional: list[str] = []
    order: list[str] = []
    i, n = 0, len(text)

    def emit(chunk: str) -> None:
        out_named.append(chunk.replace("%", "%%"))
        out_positional.append(chunk)

    while i < n:
        ch = text[i]
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if text[end] == ch:
                    if end + 1 < n and text[end + 1] == ch:
                        end += 2
                        continue
                    break
                end += 1
            emit(text[i:end + 1])
            i = end + 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            emit(text[i:end])
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            emit(text[i:end])
            i = end
        elif ch == "$" and (m := re.match(r"\$([A-Za-z_]\w*)?\$", text[i:])):
            tag = m.group(0)
            end = text.find(tag, i + len(tag))
            end = n if end < 0 else end + len(tag)
            emit(text[i:end])
            i = end
        elif text.startswith("::", i):
            emit("::")
            i += 2
        elif ch == ":" and (m := re.match(r":([A-Za-z_]\w*)", text[i:])):
            name = m.group(1)
            if name not in order:
                order.append(name)
            out_named.append(f"%({name})s")
            out_positional.append(f"${order.index(name) + 1}")
            i += len(m.group(0))
        elif ch == "$" and re.match(r"\$\d", text[i:]):
            raise ConfigError(f"{where}: uses a positional parameter ${text[i + 1]}; name it instead "
                              "(e.g. :conversation_id)")
        else:
            emit(ch)
            i += 1
    return "".join(out_named), "".join(out_positional), tuple(order)


def _blocks(text: str, source: str) -> Iterator[tuple[str, int, list[str], frozenset[str], list[str]]]:
    """(name, line, doc lines, scenarios, SQL lines) per ``-- name:`` block."""
    name: str | None = None
    line = 0
    doc: list[str] = []
    body: list[str] = []
    scenarios: frozenset[str] = frozenset()
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        match = _ANNOTATION.match(stripped)
        if match and match.group(1).lower() == "name":
            if name is not None:
                yield name, line, doc, scenarios, body
            name, line, doc, body, scenarios = match.group(2), number, [], [], frozenset()
            if not _NAME.match(name):
                raise ConfigError(f"{source}:{number}: -- name: {name!r} is not a name; use letters, digits "
                                  "and _ (e.g. -- name: history_page)")
            continue
        if name is None:
            if stripped and not stripped.startswith("--"):
                raise ConfigError(f"{source}:{number}: SQL before the first '-- name: ...' line; name every "
                                  "query (e.g. -- name: history_page)")
            continue
        if match:  # -- scenarios: ...
            wanted = frozenset(w.strip() for w in match.group(2).split(",") if w.strip())
            unknown = sorted(wanted - set(SCENARIO_ROLES))
            if unknown:
                raise ConfigError(f"{source}:{number}: query {name}: scenario {unknown[0]!r} is not a role; use "
                                  f"{', '.join(SCENARIO_ROLES)}")
            scenarios = wanted
        elif stripped.startswith("--") and not body:
            doc.append(stripped.lstrip("-").strip())
        else:
            body.append(raw)
    if name is not None:
        yield name, line, doc, scenarios, body


def parse_queries(text: str, source: str = "queries.sql") -> AppQueries:
    """Every query of a queries file, checked (module docstring); ``source`` names the file in errors."""
    queries: list[AppQuery] = []
    for name, line, doc, scenarios, body in _blocks(text, source):
        where = f"{source}:{line}: query {name}"
        if name in {q.name for q in queries}:
            raise ConfigError(f"{where}: the name is given twice; name each query once")
        sql_text = "\n".join(body).strip().rstrip(";").strip()
        if not sql_text:
            raise ConfigError(f"{where}: has no SQL; write the statement under its -- name: line")
        named, positional, order = placeholders(sql_text, where)
        unknown = [p for p in order if p not in PARAM_ROLES]
        if unknown:
            raise ConfigError(f"{where}: parameter :{unknown[0]} is not a role chatbench can bind; use "
                              f"{', '.join(':' + r for r in PARAM_ROLES)}")
        shape = analyse(positional, order, where)
        kind: Literal["read", "write"] = "read" if shape.statement == "SelectStmt" else "write"
        queries.append(AppQuery(name, sql_text, named, positional, order, kind, " ".join(doc), line, shape,
                                scenarios))
    if not queries:
        raise ConfigError(f"{source}: no query found; start each with a line '-- name: NAME'")
    return AppQueries(source, tuple(queries))


def load_queries(path: str | Path, targets: str | Path | None = None, setting: str | None = None) -> AppQueries:
    """The queries file at ``path`` (``setting``: how the user gave it, for errors), with the
    ``[queries.NAME]`` overrides of ``targets`` (a targets TOML) when given."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"{setting or f'--queries {path}'}: cannot be read ({exc.strerror}); give an existing "
                          ".sql file") from None
    queries = parse_queries(text, str(path))
    if targets is None:
        return queries
    overrides = read_overrides(Path(targets), queries)
    return AppQueries(queries.source, queries.queries, overrides)


_OVERRIDE_KEYS = {"buffers": int, "rows": int, "sort_rows": int, "seq_scan_ok": list, "p95_ms": float, "why": str}


def read_overrides(path: Path, queries: AppQueries) -> Mapping[str, ContractOverride]:
    """``[queries.NAME]`` tables of a targets file: per-query contract limits (every key checked)."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"targets file {path}: cannot be read as TOML ({exc}); fix the file") from None
    table = data.get("queries", {})
    out: dict[str, ContractOverride] = {}
    for name, values in table.items():
        where = f"{path} [queries.{name}]"
        if name not in queries.names:
            raise ConfigError(f"{where}: no query {name!r} in {queries.source}; queries are {', '.join(queries.names)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: must be a table, e.g. buffers = 400")
        unknown = sorted(set(values) - set(_OVERRIDE_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(_OVERRIDE_KEYS)}")
        for key, value in values.items():
            kind = _OVERRIDE_KEYS[key]
            good = (isinstance(value, kind) and not isinstance(value, bool)) or (kind is float and isinstance(
                value, int) and not isinstance(value, bool))
            if not good or (kind in (int, float) and value <= 0):
                raise ConfigError(f"{where} {key} = {value!r}: expected a {kind.__name__} greater than 0"
                                  if kind in (int, float) else f"{where} {key} = {value!r}: expected a {kind.__name__}")
        out[name] = ContractOverride(values.get("buffers"), values.get("rows"), values.get("sort_rows"),
                                     tuple(values.get("seq_scan_ok", ())),
                                     float(values["p95_ms"]) if "p95_ms" in values else None, values.get("why", ""))
    return MappingProxyType(out)


# -- the shape of a statement -------------------------------------------------------------------


def analyse(positional: str, order: tuple[str, ...], where: str) -> QueryShape:
    """The ``QueryShape`` of one statement with ``$n`` parameters (``order[n-1]`` names ``$n``)."""
    try:
        statements = parse_sql(positional)
    except ParseError as exc:
        raise ConfigError(f"{where}: PostgreSQL cannot parse it ({exc}); fix the SQL") from None
    if len(statements) != 1:
        raise ConfigError(f"{where}: holds {len(statements)} statements; give each its own -- name: block")
    stmt = statements[0].stmt
    kind = type(stmt).__name__
    if kind not in ("SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt"):
        raise ConfigError(f"{where}: is a {kind}; a queries file holds SELECT, INSERT, UPDATE and DELETE")
    aliases: dict[str, str] = {}
    tables: list[str] = []
    for node in _walk(stmt):
        if isinstance(node, ast.RangeVar) and node.relname:
            relname = str(node.relname)
            if relname not in tables:
                tables.append(relname)
            aliases[str(node.alias.aliasname) if node.alias else relname] = relname
    if isinstance(stmt, ast.SelectStmt) and stmt.withClause is not None:
        for cte in stmt.withClause.ctes or ():
            tables = [t for t in tables if t != cte.ctename]

    def column(ref: Any) -> ColumnUse | None:
        if not isinstance(ref, ast.ColumnRef):
            return None
        names = [str(f.sval) for f in ref.fields or () if isinstance(f, ast.String)]
        if not names:
            return None
        if len(names) == 1:
            return ColumnUse(tables[0] if len(tables) == 1 else None, names[0])
        return ColumnUse(aliases.get(names[-2], names[-2]), names[-1])

    def param(node: Any) -> str | None:
        while isinstance(node, ast.TypeCast):
            node = node.arg
        number = int(node.number or 0) if isinstance(node, ast.ParamRef) else 0
        return order[number - 1] if 1 <= number <= len(order) else None

    def inner_column(node: Any) -> ColumnUse | None:
        for sub in _walk(node):
            found = column(sub)
            if found is not None:
                return found
        return None

    equality: list[ColumnUse] = []
    wrapped: list[ColumnUse] = []
    cursor: list[ColumnUse] = []
    joins: list[ColumnUse] = []
    or_across = False
    for node in _walk(stmt):
        if isinstance(node, ast.BoolExpr) and node.boolop == enums.BoolExprType.OR_EXPR:
            cols = {(c.table, c.column) for a in node.args or () for c in [inner_column(a)] if c is not None}
            or_across = or_across or len(cols) > 1
        if not isinstance(node, ast.A_Expr) or node.kind != enums.A_Expr_Kind.AEXPR_OP or not node.name:
            continue
        op = node.name[-1].sval
        if op == "=" and (a := column(node.lexpr)) is not None and (b := column(node.rexpr)) is not None:
            joins.extend((a, b))
            continue
        for left, right in ((node.lexpr, node.rexpr), (node.rexpr, node.lexpr)):
            if isinstance(left, ast.RowExpr) and isinstance(right, ast.RowExpr) and op in ("<", ">", "<=", ">="):
                for lhs, rhs in zip(left.args or (), right.args or (), strict=False):
                    if (c := column(lhs)) is not None and param(rhs) in CURSOR_PARAMS:
                        cursor.append(c)
                break
            name = param(right)
            if name is None:
                if isinstance(right, ast.A_Const) and column(left) is None and (inner := inner_column(left)):
                    wrapped.append(inner)  # lower(role) = 'assistant': a function on the column, a constant
                    break
                continue
            direct = column(left)
            if direct is None:
                inner = inner_column(left)
                if inner is not None:
                    wrapped.append(inner)
                continue
            if op == "=" and name not in CURSOR_PARAMS:
                equality.append(direct)
            elif op in ("<", ">", "<=", ">=") and (name in CURSOR_PARAMS or name == "since"):
                cursor.append(direct)
            break
    order_by: list[ColumnUse] = []
    has_limit = has_offset = aggregate = False
    if isinstance(stmt, ast.SelectStmt):
        for sort in stmt.sortClause or ():
            c = column(sort.node)
            if c is None and (inner := inner_column(sort.node)) is not None:
                wrapped.append(inner)  # ORDER BY lower(role): no index on the column delivers it
            if c is not None:
                direction: Literal["ASC", "DESC"] = "DESC" if sort.sortby_dir == enums.SortByDir.SORTBY_DESC else "ASC"
                order_by.append(ColumnUse(c.table, c.column, direction))
        has_limit = stmt.limitCount is not None
        has_offset = stmt.limitOffset is not None
        aggregate = any(isinstance(t, ast.ResTarget) and isinstance(t.val, ast.FuncCall) and t.val.funcname
                        and t.val.funcname[-1].sval in ("count", "sum", "avg", "max", "min")
                        for t in stmt.targetList or ())
    written: list[ColumnUse] = []
    if isinstance(stmt, ast.InsertStmt | ast.UpdateStmt) and stmt.relation is not None:
        target, targets = str(stmt.relation.relname), stmt.cols if isinstance(stmt, ast.InsertStmt) else stmt.targetList
        written = [ColumnUse(target, str(t.name)) for t in targets or () if isinstance(t, ast.ResTarget) and t.name]
    return QueryShape(kind, tuple(tables), _unique(equality), _unique(wrapped), tuple(order_by), _unique(cursor),
                      _unique(joins), has_limit, has_offset, or_across, aggregate, _unique(written))


def _unique(items: list[ColumnUse]) -> tuple[ColumnUse, ...]:
    return tuple(dict.fromkeys(items))


def _walk(node: Any) -> Iterator[Any]:
    """Every node of a pglast tree, depth first."""
    if isinstance(node, tuple | list):
        for item in node:
            yield from _walk(item)
        return
    if not isinstance(node, ast.Node):
        return
    yield node
    for name in node:
        yield from _walk(getattr(node, name))
