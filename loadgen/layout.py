"""From the schema's catalog to what each COPY carries: one ``TableLayout`` per table, in load order.

The three history tables take the plan's columns (``target.ROLE_COLUMNS``) and their keys in the
type the schema gave them (``KeyCodec``: bigint, integer, uuid or text); every other column is filled
by ``columns.plan_fill``. Every other table is a child: its rows hang from the rows of the table its
first foreign key references (``Spec.rows_per_parent``), its own key numbers its rows, and its other
foreign keys reference random rows of their tables.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from chatbench.errors import ConfigError
from chatbench.loadgen.columns import ColumnFill, plan_fill
from chatbench.loadgen.encode import TableLayout
from chatbench.loadgen.fields import KEY_KINDS, KeyCodec
from chatbench.loadgen.plan import PG_EPOCH, to_pg_us
from chatbench.loadgen.spec import Spec
from chatbench.loadgen.target import ROLE_COLUMNS, ROLE_KEYS, ROLES, TargetColumn, TargetSchema, TargetTable

_TIMESTAMPS = frozenset({"timestamptz", "timestamp"})
_INTEGER_KEYS = frozenset({"int8", "int4", "int2"})
_STRINGS = frozenset({"text", "varchar", "bpchar", "citext"})
# What a history column must be for the plan's values to fit it.
_ROLE_TYPES = {"created_at": _TIMESTAMPS, "updated_at": _TIMESTAMPS, "email": _STRINGS, "display_name": _STRINGS,
               "title": _STRINGS, "content": _STRINGS, "role": _STRINGS | {"enum"}}


@dataclass(frozen=True)
class ChildLoad:
    """A table beyond the history's: its layout and which rows of its parent each of its rows hangs from."""

    layout: TableLayout
    rows: int
    parent_rows: int  # rows of the parent table (the parent column numbers them)


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
    return KeyCodec(kind, tag, epoch_ms)


def build_layouts(target: TargetSchema, spec: Spec, counts: dict[str, int]) -> Layouts:
    """Every table's layout; ``counts`` are the plan's rows of users, conversations and messages."""
    epoch_ms = to_pg_us(spec.start_datetime) // 1000 + int(PG_EPOCH.timestamp() * 1000)
    codecs: dict[str, KeyCodec] = {}
    for tag, table in enumerate(target.tables, start=1):
        codec = _codec(table, tag, epoch_ms)
        if codec is not None:
            codecs[table.name] = codec
    rows = {target.role(r).name: counts[r] for r in ROLES}
    children: list[ChildLoad] = []
    for table in target.children:  # in dependency order: a parent's rows are known before its children's
        parent_rows = rows.get(table.parent, 0) if table.parent else 0
        ratio = spec.rows_per_parent(table.name, table.parent and _role_of(target, table.parent))
        count = round(parent_rows * ratio) if table.parent else round(ratio * 100)
        rows[table.name] = count
        layout = _child_layout(table, codecs, rows, target)
        children.append(ChildLoad(layout, count, parent_rows))
    roles = {r: _role_layout(target.role(r), r, codecs, rows, target) for r in ROLES}
    return Layouts(roles["users"], roles["conversations"], roles["messages"], tuple(children), codecs,
                   frozenset(t.name for t in target.tables if t.partitioned))


def _role_of(target: TargetSchema, name: str) -> str:
    table = target.table(name)
    return table.role or name if table is not None else name


def _tag(target: TargetSchema, table: TargetTable) -> int:
    return next(i for i, t in enumerate(target.tables, start=1) if t.name == table.name)


def _role_layout(table: TargetTable, role: str, codecs: dict[str, KeyCodec], rows: dict[str, int],
                 target: TargetSchema) -> TableLayout:
    """The plan's columns the table has (one it lacks is left out: verify names the contract it breaks),
    each key in the column's own type, each text cut to the column's length limit."""
    if table.column("id") is None:
        raise ConfigError(f"{table.name} has no column 'id', the key chatbench's history numbers its rows by; "
                          "add it, or map your key column in [tool.chatbench.map]")
    planned = tuple(name for name in ROLE_COLUMNS[role] if table.column(name) is not None)
    limits: dict[str, int] = {}
    for name in planned:
        column = table.column(name)
        assert column is not None
        wanted = _ROLE_TYPES.get(name)
        base = "enum" if column.enum_labels else column.base
        if wanted is not None and base not in wanted:
            raise ConfigError(f"{table.name}.{name} is {column.type_name}; chatbench's history fills it with "
                              f"{'a timestamp' if wanted is _TIMESTAMPS else 'text'}")
        if column.max_length is not None and wanted is _STRINGS:
            limits[name] = column.max_length
    keys: dict[str, KeyCodec] = {}
    for name, owner in ROLE_KEYS[role].items():
        found = table.column(name)
        if found is None:
            continue
        codec = codecs.get(target.role(owner).name, KeyCodec("int8"))
        kind = KEY_KINDS.get(found.base)
        if kind is not None and kind != codec.kind and {kind, codec.kind} <= _INTEGER_KEYS:
            codec = replace(codec, kind=kind)  # an integer column holding another integer type's keys
        elif kind != codec.kind:
            raise ConfigError(f"{table.name}.{name} is {found.type_name} but the key it holds is {codec.kind}")
        keys[name] = codec
    extras = _extras(table, set(ROLE_COLUMNS[role]), codecs, rows)
    return TableLayout(table.name, role, planned, keys, extras, _tag(target, table), limits)


def _child_layout(table: TargetTable, codecs: dict[str, KeyCodec], rows: dict[str, int],
                  target: TargetSchema) -> TableLayout:
    planned: tuple[str, ...] = ()
    keys: dict[str, KeyCodec] = {}
    if table.parent_column and table.parent in codecs:
        planned, keys = (table.parent_column,), {table.parent_column: codecs[table.parent]}
    return TableLayout(table.name, "child", planned, keys, _extras(table, set(planned), codecs, rows),
                       _tag(target, table))


def _extras(table: TargetTable, planned: set[str], codecs: dict[str, KeyCodec],
            rows: dict[str, int]) -> tuple[ColumnFill, ...]:
    own_key = _key_column(table)
    fills = []
    for column in table.columns:
        if column.name in planned:
            continue
        if own_key is not None and column.name == own_key.name and table.name in codecs and table.role is None:
            fill = plan_fill(column, key=codecs[table.name], reference=None)
        else:
            ref = column.references
            reference = (codecs[ref[0]], rows.get(ref[0], 0)) if ref and ref[0] in codecs else None
            if column.name in table.primary_key and reference is None:  # part of a composite key: keep it unique
                column = _unique(column)
            fill = plan_fill(column, key=None, reference=reference)
        if fill is not None:
            fills.append(fill)
    return tuple(fills)


def _unique(column: TargetColumn) -> TargetColumn:
    return replace(column, unique=True)


def child_parents(load: ChildLoad, seed: int) -> np.ndarray:
    """Parent row numbers of a child's rows, in order: random parents, sorted (rows of one parent together)."""
    rng = np.random.default_rng([seed, 0x43484C44, load.layout.tag])  # "CHLD"
    if load.parent_rows == 0:
        return np.arange(1, load.rows + 1, dtype=np.int64)
    return np.sort(rng.integers(1, load.parent_rows + 1, load.rows))
