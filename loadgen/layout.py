"""From the schema's catalog to what each COPY carries: one ``TableLayout`` per table, in load order.

The three history tables (the tables playing the roles, through the role map) take the plan's columns
(``rolemap.ROLE_COLUMNS``) in the columns playing them, and their keys in the type the schema gave them
(``KeyCodec``: bigint, integer, uuid or text); a role column the table lacks is not filled, and a
``json``/``jsonb`` content column gets each message's text as ``[{"type": "text", "text": ...}]``. Their
other columns are filled by ``columns.plan_fill``. Every other table is a child: its rows hang from the
rows of the table its first foreign key references (``Spec.rows_per_parent``), its own key numbers its
rows, and its other foreign keys reference random rows of their tables (a foreign key of several columns,
the key and others, references whole existing rows: see ``columns.row_value``; beside a message's id,
its ``created_at`` is the plan's own, ``Chunk.message_times``). Keys are never repeated: a
child whose parent column is a key of its own (a 1:1 table, ``user_settings.user_id``) gets at most one row
per parent, and a foreign key that is, or is part of, a primary key or UNIQUE constraint references distinct
rows (``columns.distinct_rows``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from chatbench.errors import ConfigError
from chatbench.loadgen.columns import NULL_SHARE, ROW_VALUE_BASES, ColumnFill, plan_fill
from chatbench.loadgen.encode import TableLayout
from chatbench.loadgen.fields import KEY_KINDS, MIN_TEXT_KEY_CHARS, TEXT_KEY_CHARS, KeyCodec
from chatbench.loadgen.plan import DAY_US, PG_EPOCH, to_pg_us
from chatbench.loadgen.pools import ROLES
from chatbench.loadgen.spec import Spec
from chatbench.loadgen.target import TargetColumn, TargetSchema, TargetTable
from chatbench.schema.rolemap import ROLE_COLUMNS, ROLE_KEYS, ROLE_TABLES

_TIMESTAMPS = frozenset({"timestamptz", "timestamp"})
_INTEGER_KEYS = frozenset({"int8", "int4", "int2"})
_STRINGS = frozenset({"text", "varchar", "bpchar", "citext"})
_DOCUMENTS = frozenset({"json", "jsonb"})
# What a history column must be for the plan's values to fit it (a timestamp without time zone gets the
# same instants: its binary value is the UTC wall clock of the instant).
_ROLE_TYPES = {"created_at": _TIMESTAMPS, "updated_at": _TIMESTAMPS, "email": _STRINGS, "display_name": _STRINGS,
               "title": _STRINGS, "content": _STRINGS | _DOCUMENTS, "role": _STRINGS | {"enum"}}
_CUT = frozenset({"email", "display_name", "title", "content"})  # free texts, cut to the column's length limit
# What a history cannot be without (any other role column the table lacks is left out).
_NEEDED = {"users": ("id",), "conversations": ("id",), "messages": ("id", "conversation_id", "created_at")}
_NEEDED_WHY = {"id": "the key chatbench's history numbers its rows by",
               "conversation_id": "the conversation each message belongs to",
               "created_at": "the time a history is ordered and paged by"}


@dataclass(frozen=True)
class ChildLoad:
    """A table beyond the history's: its layout and which rows of its parent each of its rows hangs from."""

    layout: TableLayout
    rows: int
    parent_rows: int  # rows of the parent table (the parent column numbers them)
    distinct_parents: bool = False  # the parent column is a key of its own (one row per parent at most: 1:1)


@dataclass(frozen=True)
class Layouts:
    users: TableLayout
    conversations: TableLayout
    messages: TableLayout
    children: tuple[ChildLoad, ...]
    codecs: dict[str, KeyCodec]  # table -> how its key spells a row number
    partitioned: frozenset[str]  # tables loaded through their partitioned parent

    def role(self, role: str) -> TableLayout:
        return {"users": self.users, "conversations": self.conversations, "messages": self.messages}[role]

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.users.table, self.conversations.table, self.messages.table,
                *(c.layout.table for c in self.children))


_COMPOSITE_STREAMS = 1 << 20  # random streams of composite foreign keys: past any column's index


@dataclass(frozen=True)
class _Tables:
    """What every table's layout is built from: the schema, each table's key codec and rows, the time range."""

    target: TargetSchema
    codecs: dict[str, KeyCodec]  # table -> how its key spells a row number
    rows: dict[str, int]  # table -> rows loaded
    span: tuple[int, int]  # the data set's time range (µs since 2000-01-01)

    def tag(self, table: TargetTable) -> int:
        return next(i for i, t in enumerate(self.target.tables, start=1) if t.name == table.name)


def _key_column(table: TargetTable) -> TargetColumn | None:
    """The column that numbers the table's rows: a one-column primary key, else ``id``."""
    if len(table.primary_key) == 1:
        return table.column(table.primary_key[0])
    return table.column("id") if "id" in table.primary_key else None


def _codec(table: TargetTable, tag: int, epoch_ms: int) -> KeyCodec | None:
    key = _key_column(table)
    if key is None:
        return None
    kind = KEY_KINDS.get(key.base)
    if kind is None:
        raise ConfigError(
            f"{table.name}.{key.name} is a {key.type_name} key; chatbench seeds bigint, integer, smallint, uuid "
            "and text keys"
        )
    if kind != "text" or key.max_length is None or key.max_length >= TEXT_KEY_CHARS:
        return KeyCodec(kind, tag, epoch_ms)
    if key.max_length < MIN_TEXT_KEY_CHARS:
        raise ConfigError(f"{table.name}.{key.name} is {key.type_name}: too short for chatbench's text keys; give it "
                          f"at least {MIN_TEXT_KEY_CHARS} characters")
    return KeyCodec(kind, tag, epoch_ms, width=key.max_length)  # a nanoid-sized key: the row number's digits


def build_layouts(target: TargetSchema, spec: Spec, counts: dict[str, int]) -> Layouts:
    """Every table's layout; ``counts`` are the plan's rows of users, conversations and messages."""
    epoch_ms = to_pg_us(spec.start_datetime) // 1000 + int(PG_EPOCH.timestamp() * 1000)
    codecs: dict[str, KeyCodec] = {}
    for tag, table in enumerate(target.tables, start=1):
        codec = _codec(table, tag, epoch_ms)
        if codec is not None:
            codecs[table.name] = codec
    rows = {target.role(r).name: counts[r] for r in ROLE_TABLES}
    for table in target.children:  # in dependency order: a parent's rows are known before its children's
        parent_rows = rows.get(table.parent, 0) if table.parent else 0
        ratio = spec.rows_per_parent(table.name, table.parent and _role_of(target, table.parent))
        rows[table.name] = round(parent_rows * ratio) if table.parent else round(ratio * 100)
        if _distinct_parents(table):  # a 1:1 table (``user_settings.user_id`` its key): no more rows than parents
            rows[table.name] = min(rows[table.name], parent_rows)
    t0 = to_pg_us(spec.start_datetime)
    tables = _Tables(target, codecs, rows, (t0, t0 + spec.time.days * DAY_US))  # every table's rows known
    children = tuple(ChildLoad(_child_layout(table, tables), rows[table.name],
                               rows.get(table.parent, 0) if table.parent else 0, _distinct_parents(table))
                     for table in target.children)
    roles = {r: _role_layout(target.role(r), r, tables) for r in ROLE_TABLES}
    return Layouts(roles["users"], roles["conversations"], roles["messages"], children, codecs,
                   frozenset(t.name for t in target.tables if t.partitioned))


def _distinct_parents(table: TargetTable) -> bool:
    """The child's parent column is unique on its own: each parent has at most one row."""
    column = table.column(table.parent_column) if table.parent and table.parent_column else None
    return column is not None and column.unique


def _role_of(target: TargetSchema, name: str) -> str:
    table = target.table(name)
    return table.role or name if table is not None else name


def _role_layout(table: TargetTable, role: str, tables: _Tables) -> TableLayout:
    """The plan's columns the table has, in the columns playing them (one it lacks is left out: verify names
    the contract it breaks), each key in the column's own type, each text cut to the column's length limit,
    a json content as a document of one text part."""
    for name in _NEEDED[role]:
        if table.role_column(name) is None:
            raise ConfigError(f"{table.name} has no column {name!r}, {_NEEDED_WHY[name]}; add it, or name yours in "
                              f"[tool.chatbench.map] (\"{role}.{name}\" = \"yourColumn\")")
    planned = tuple(name for name in ROLE_COLUMNS[role] if name in table.role_columns)
    limits: dict[str, int] = {}
    documents: dict[str, str] = {}
    for name in planned:
        column = table.role_column(name)
        assert column is not None
        wanted = _ROLE_TYPES.get(name)
        base = "enum" if column.enum_labels else column.base
        if wanted is not None and base not in wanted:
            fills = "a timestamp" if wanted is _TIMESTAMPS else "text or a json document" if wanted >= _DOCUMENTS \
                else "text"
            raise ConfigError(f"{table.name}.{column.name} is {column.type_name}; chatbench's history fills it "
                              f"({role}.{name}) with {fills}: name a column of that type in [map] "
                              f"(\"{role}.{name}\" = \"yourColumn\"), or change the column's type")
        if base in _DOCUMENTS:
            documents[name] = base
        elif column.max_length is not None and name in _CUT:
            limits[name] = column.max_length
    keys: dict[str, KeyCodec] = {}
    for name, owner in ROLE_KEYS[role].items():
        found = table.role_column(name)
        if found is None:
            continue
        codec = _held_by(found, tables.codecs.get(tables.target.role(owner).name, KeyCodec("int8")))
        if KEY_KINDS.get(found.base) != codec.kind:
            raise ConfigError(f"{table.name}.{found.name} is {found.type_name} but the key it holds is {codec.kind}")
        keys[name] = codec
    extras = _extras(table, set(table.role_columns.values()), tables)
    names = {name: table.role_columns[name] for name in planned if table.role_columns[name] != name}
    required = frozenset(name for name in planned if (c := table.role_column(name)) is not None and c.not_null)
    playing_role = table.role_column("role") if role == "messages" else None
    return TableLayout(table.name, role, planned, keys, extras, tables.tag(table), limits, names, documents,
                       required, role_values(playing_role) if playing_role is not None else ROLES,
                       _time_digits(table, role, tables.target))


_TIME_DIGITS = re.compile(r"^timestamp\((\d)\)")


def _digits(column: TargetColumn | None) -> int:
    """The fractional digits a timestamp column keeps: 6 unless declared ``timestamp(p)``."""
    found = _TIME_DIGITS.match(column.type_name) if column is not None else None
    return int(found.group(1)) if found else 6


def _time_digits(table: TargetTable, role: str, target: TargetSchema) -> dict[str, int]:
    """Planned time column -> the digits to round it to, where fewer than 6 (``timestamp(3)``).

    Why: the server rounds such a column on input, and a conversation's ``updated_at`` is its last message's
    ``created_at``; rounded apart, they differ (the seed's integrity check, and the canonical contract). So a
    conversation's ``updated_at`` is rounded as its messages' ``created_at`` is, then as its own column."""
    out = {name: _digits(table.role_column(name)) for name in ("created_at", "updated_at")}
    if role == "conversations":
        messages = target.role("messages")
        out["updated_at"] = min(out["updated_at"], _digits(messages.role_column("created_at")))
    return {name: digits for name, digits in out.items() if digits < 6}


# The labels an application may use for each of the plan's roles (lower-cased), in order of preference.
_ROLE_SPELLINGS = {"user": ("user", "human"), "assistant": ("assistant", "ai", "bot", "model"),
                   "system": ("system", "assistant", "ai", "bot", "model"),
                   "tool": ("tool", "function", "assistant", "ai", "bot", "model")}


def role_values(column: TargetColumn) -> tuple[str, ...]:
    """The value written for each of the plan's roles (``ROLES`` order) into a role column whose enum or CHECK
    allows other labels (``('user', 'assistant')``: system and tool turns are written as the assistant's; an
    enum ``('HUMAN', 'AI')``: its own spelling). Why: the plan's four roles would break the column's
    constraint on the first system or tool turn; a label the plan cannot match takes the allowed label of
    the same rank."""
    allowed = column.enum_labels or column.choices
    if not allowed:
        return ROLES
    by_lower = {label.lower(): label for label in allowed}
    return tuple(next((by_lower[c] for c in _ROLE_SPELLINGS[role] if c in by_lower), allowed[min(k, len(allowed) - 1)])
                 for k, role in enumerate(ROLES))


def _child_layout(table: TargetTable, tables: _Tables) -> TableLayout:
    planned: tuple[str, ...] = ()
    keys: dict[str, KeyCodec] = {}
    if table.parent_column and table.parent in tables.codecs:
        parent = table.column(table.parent_column)
        assert parent is not None
        planned, keys = (table.parent_column,), {table.parent_column: _held_by(parent, tables.codecs[table.parent])}
    return TableLayout(table.name, "child", planned, keys, _extras(table, set(planned), tables), tables.tag(table))


def _extras(table: TargetTable, planned: set[str], tables: _Tables) -> tuple[ColumnFill, ...]:
    own_key = _key_column(table)
    codecs, rows = tables.codecs, tables.rows
    composite = _composite_fills(table, tables)
    spelt = _spelt_columns(table, tables)
    fills = []
    for column in table.columns:
        if column.name in planned:
            continue
        fill: ColumnFill | None
        if column.name in composite:
            fill = composite[column.name]
        elif own_key is not None and column.name == own_key.name and table.name in codecs and table.role is None:
            fill = plan_fill(column, key=codecs[table.name], reference=None)
        elif column.name in spelt:
            fill = ColumnFill(column, "row", row_tag=tables.tag(table), row_span=tables.span)
        else:
            ref = column.references
            reference = (_held_by(column, codecs[ref[0]]), rows.get(ref[0], 0)) if ref and ref[0] in codecs else None
            if table.in_unique_key(column.name):  # part of a key of several columns: keep it unique (a
                column = _unique(column)           # reference: distinct rows, ``columns.render``)
            fill = plan_fill(column, key=None, reference=reference)
        if fill is not None:
            fills.append(fill)
    return tuple(fills)


def _composite_target(ref_table: str, ref_columns: tuple[str, ...], tables: _Tables) -> TargetTable | None:
    """The table a composite foreign key references, when the loader can point it at whole rows: the referenced
    columns are the table's key and columns ``row_value`` spells (no history column, no foreign key)."""
    referenced = tables.target.table(ref_table)
    if referenced is None or ref_table not in tables.codecs:
        return None
    key = _key_column(referenced)
    if key is None or key.name not in ref_columns:
        return None
    for name in ref_columns:
        column = referenced.column(name)
        if column is None or (name != key.name and not _spellable(referenced, column)
                              and not _is_message_time(referenced, column)):
            return None
    return referenced


def _is_message_time(table: TargetTable, column: TargetColumn) -> bool:
    """The messages' ``created_at``: the plan's own time of each message, which a foreign key into a
    messages table partitioned by time must name beside the id (``(message_id, message_created_at)``)."""
    playing = table.role_column("created_at") if table.role == "messages" else None
    return playing is not None and playing.name == column.name and column.base in _TIMESTAMPS


def _spellable(table: TargetTable, column: TargetColumn) -> bool:
    return (column.base in ROW_VALUE_BASES and not column.enum_labels and not column.generated
            and column.references is None and column.name not in table.role_columns.values())


def _composite_fills(table: TargetTable, tables: _Tables) -> dict[str, ColumnFill]:
    """The columns of ``table``'s composite foreign keys: one draw of referenced rows (a stream the key's columns
    share), the key column as that row's key, the others as ``row_value`` of it."""
    out: dict[str, ColumnFill] = {}
    for k, (columns, ref_table, ref_columns) in enumerate(table.composite_references):
        referenced = _composite_target(ref_table, ref_columns, tables)
        own = [table.column(name) for name in columns]
        if referenced is None or any(c is None or c.name in out for c in own):
            continue
        key = _key_column(referenced)
        assert key is not None
        share = 0.0 if any(c is not None and c.not_null for c in own) else NULL_SHARE  # NULL in the same rows
        if any(c is not None and table.in_unique_key(c.name) for c in own):  # a key: distinct referenced rows
            own = [_unique(c) if c is not None else None for c in own]
        stream, rows = _COMPOSITE_STREAMS + k, tables.rows.get(ref_table, 0)
        for column, ref_name in zip(own, ref_columns, strict=True):
            assert column is not None
            referenced_column = referenced.column(ref_name)
            assert referenced_column is not None
            if ref_name == key.name:
                out[column.name] = ColumnFill(column, "reference", _held_by(column, tables.codecs[ref_table]), rows,
                                              share, stream)
            elif _is_message_time(referenced, referenced_column):
                out[column.name] = ColumnFill(column, "message_time", None, rows, share, stream)
            else:
                out[column.name] = ColumnFill(column, "row_reference", None, rows, share, stream,
                                              tables.tag(referenced), tables.span)
    return out


def _spelt_columns(table: TargetTable, tables: _Tables) -> set[str]:
    """``table``'s columns that another table's composite foreign key references beside the key: filled with
    ``row_value`` of each row, so the referencing rows can name them."""
    out: set[str] = set()
    for other in tables.target.tables:
        for _, ref_table, ref_columns in other.composite_references:
            if ref_table == table.name and _composite_target(ref_table, ref_columns, tables) is not None:
                key = _key_column(table)
                out.update(name for name in ref_columns if key is None or name != key.name)
    return out


def _held_by(column: TargetColumn, codec: KeyCodec) -> KeyCodec:
    """``codec``'s keys as ``column`` stores them: an integer column may hold another integer type's keys (an
    ``integer`` foreign key to a ``bigint`` key, left behind when an application widened its ids)."""
    kind = KEY_KINDS.get(column.base)
    if kind is not None and kind != codec.kind and {kind, codec.kind} <= _INTEGER_KEYS:
        return replace(codec, kind=kind)
    return codec


def _unique(column: TargetColumn) -> TargetColumn:
    return replace(column, unique=True)


def child_parents(load: ChildLoad, seed: int) -> np.ndarray:
    """Parent row numbers of a child's rows, in order: random parents, sorted (rows of one parent together);
    each parent at most once when the parent column is a key of its own (``distinct_parents``)."""
    rng = np.random.default_rng([seed, 0x43484C44, load.layout.tag])  # "CHLD"
    if load.parent_rows == 0:
        return np.arange(1, load.rows + 1, dtype=np.int64)
    if load.distinct_parents:
        return np.sort(rng.choice(load.parent_rows, load.rows, replace=False).astype(np.int64) + 1)
    return np.sort(rng.integers(1, load.parent_rows + 1, load.rows))
