"""Values for the columns the history's plan does not fill: one generator per column type.

The loader fills a column by what the schema says about it, deterministically (a chunk's values
depend on its seed, table and row numbers only):

* a generated column is skipped, and so is a column with a default that is not a key: the server
  fills it as the application's inserts would;
* a key (primary key, or a foreign key to a seeded table) is a ``KeyCodec`` of a row number;
* a column that another table's composite foreign key references beside the key (``"Document"
  ("id", "createdAt")``) is a function of the row number (``row_value``), and the referencing columns
  are the same function of the referenced row: one draw of row numbers (a random stream the foreign
  key's columns share) gives the key and the other columns of one existing row;
* a nullable column is NULL in most rows when its name says it marks a rare event (``deleted_at``,
  ``archived_at``...), and in a fifth of the rows otherwise;
* otherwise a value of the column's type: ``GENERATORS`` maps a type to the function that draws it
  (text within its length, a CHECK's allowed values, integers within a CHECK's bounds, json
  documents, timestamps within the row's own time, booleans, uuids, enum labels). A type without an
  entry that must be filled is a ``ConfigError`` naming the column, before any row is written.

A new type is one entry in ``GENERATORS``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from chatbench.errors import ConfigError
from chatbench.loadgen.fields import NULL_FIELD, Field, FixedField, KeyCodec, VarField, pick, text_field, with_nulls
from chatbench.loadgen.target import TargetColumn

RARE_EVENT_SUFFIXES = ("deleted_at", "archived_at", "removed_at", "edited_at", "deleted", "archived")
RARE_SHARE = 0.03  # rows where a rare-event column is set
NULL_SHARE = 0.2  # rows where another nullable column is NULL
_US_PER_DAY = 86_400 * 1_000_000
_TIMES = frozenset({"timestamptz", "timestamp", "date"})


@dataclass(frozen=True)
class ColumnFill:
    """How one column is filled (picklable: render workers get it with their job)."""

    column: TargetColumn
    kind: str  # "key" | "reference" | "value" | "row" (row_value of the row) | "row_reference" (of a referenced row)
    # | "message_time" (the created_at of a referenced message, from the plan)
    codec: KeyCodec | None = None  # keys and references
    reference_rows: int = 0  # rows of the referenced table (references)
    null_share: float = 0.0
    stream: int | None = None  # the random stream, shared by the columns of one composite foreign key
    row_tag: int = 0  # "row"/"row_reference": the tag of the table whose row it spells
    row_span: tuple[int, int] = (0, 0)  # "row"/"row_reference": the time range a time is spread over


ROW_VALUE_BASES = frozenset({"timestamptz", "timestamp", "date", "int8", "int4", "int2", "text", "varchar", "bpchar",
                             "citext", "uuid"})
"""Types ``row_value`` spells a row number in (what a composite foreign key can reference beside the key)."""


@dataclass(frozen=True)
class Chunk:
    """What a generator may look at for one block of rows."""

    rows: int
    numbers: np.ndarray  # int64 row numbers (1-based): unique per row of the table
    times: np.ndarray | None  # int64 µs since 2000-01-01: the row's own time, when it has one
    rng: np.random.Generator
    texts: tuple[str, ...]  # plain texts to draw strings from
    span_us: tuple[int, int] = (0, 0)  # the data set's time range, for rows without a time of their own
    message_times: np.ndarray | None = None  # int64 µs: every message's created_at by row number - 1 ("message_time")


def plan_fill(
    column: TargetColumn, *, key: KeyCodec | None, reference: tuple[KeyCodec, int] | None
) -> ColumnFill | None:
    """How to fill ``column``; None when the server fills it (generated, or a default that is not a key)."""
    if column.generated:
        return None
    if key is not None:
        return ColumnFill(column, "key", key)
    if reference is not None:
        return ColumnFill(column, "reference", reference[0], reference[1], _null_share(column))
    if column.identity or (column.has_default and column.base not in _TIMES):
        return None  # the server's default, as the application's inserts get it; but a time defaulting to
        # now() would put every row at the moment of the seed: times are drawn within the history instead
    base = column.base if not column.enum_labels else "enum"
    if base not in GENERATORS:
        if not column.not_null:
            return ColumnFill(column, "value", null_share=1.0)
        raise ConfigError(
            f"column {column.name} ({column.type_name}) is NOT NULL without a default and chatbench has no "
            "generator for its type; give it a DEFAULT, allow NULL, or use a supported type"
        )
    return ColumnFill(column, "value", null_share=_null_share(column))


FIXED_BASES = frozenset({"int8", "int4", "int2", "float8", "float4", "bool", "timestamptz", "timestamp", "date",
                         "uuid"})


def is_fixed(fill: ColumnFill) -> bool:
    """Whether ``render`` gives this column a fixed-width field in every chunk (never NULL, fixed type)."""
    if fill.null_share > 0:
        return False
    if fill.kind in ("key", "reference"):
        return fill.codec is not None and fill.codec.kind != "text"
    return not fill.column.enum_labels and fill.column.base in FIXED_BASES


def row_value(column: TargetColumn, tag: int, span: tuple[int, int], numbers: np.ndarray) -> Field:
    """Row ``numbers`` of the table tagged ``tag`` spelt in ``column``'s type, the same on the table's side and on
    the side of a composite foreign key referencing it: a time spread over ``span`` by a hash of the row
    number, the number itself, a text or a uuid of it."""
    numbers = np.asarray(numbers, dtype=np.int64)
    base = column.base
    if base in _TIMES:
        width = max(1, span[1] - span[0])
        mixed = (numbers.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(tag)) >> np.uint64(11)
        times = span[0] + (mixed % np.uint64(width)).astype(np.int64)
        return FixedField(np.dtype(">i4"), times // _US_PER_DAY) if base == "date" else FixedField(np.dtype(">i8"),
                                                                                                    times)
    if base in ("int8", "int4", "int2"):
        return FixedField(np.dtype({"int8": ">i8", "int4": ">i4", "int2": ">i2"}[base]), numbers)
    if base == "uuid":
        return KeyCodec("uuid", tag).field(numbers)
    width = column.max_length or 64
    return VarField([text_field(f"r{tag}-{n}"[-width:]) for n in numbers.tolist()])


def _null_share(column: TargetColumn) -> float:
    if column.not_null:
        return 0.0
    return 1 - RARE_SHARE if column.name.endswith(RARE_EVENT_SUFFIXES) else NULL_SHARE


def render(fill: ColumnFill, chunk: Chunk) -> Field:
    """The column's field for every row of ``chunk``."""
    if fill.kind == "key":
        assert fill.codec is not None
        return fill.codec.field(chunk.numbers)
    if fill.kind == "row":
        return row_value(fill.column, fill.row_tag, fill.row_span, chunk.numbers)
    null = chunk.rng.random(chunk.rows) < fill.null_share if fill.null_share else None
    if fill.kind in ("reference", "row_reference", "message_time"):  # the same draws for every column of one
        # foreign key; a key (or part of one) references no row twice
        referenced = distinct_rows(chunk.numbers, fill.reference_rows) if fill.column.unique else \
            chunk.rng.integers(1, max(1, fill.reference_rows) + 1, chunk.rows)
        if fill.codec is not None:
            values = fill.codec.field(referenced)
        elif fill.kind == "message_time":
            if chunk.message_times is None:
                raise ValueError(f"{fill.column.name} references messages' created_at: the chunk needs message_times")
            values = FixedField(np.dtype(">i8"), chunk.message_times[referenced - 1])
        else:
            values = row_value(fill.column, fill.row_tag, fill.row_span, referenced)
    elif fill.null_share >= 1.0:
        return VarField([NULL_FIELD] * chunk.rows)
    else:
        base = fill.column.base if not fill.column.enum_labels else "enum"
        values = GENERATORS[base](fill.column, chunk)
    if null is None:
        return values
    return VarField(with_nulls(_as_rows(values), null))  # always variable: see ``is_fixed``


_SPREAD = 2_654_435_761
"""A prime above any table's rows: multiplying row numbers by it modulo the rows permutes them."""


def distinct_rows(numbers: np.ndarray, rows: int) -> np.ndarray:
    """Referenced row numbers (1-based), a different one for each of the table's row numbers while there are
    no more of them than ``rows``, spread over the referenced table rather than in its order."""
    n = max(1, rows)
    return ((numbers.astype(np.int64) - 1) * (_SPREAD % n) % n) + 1


def _as_rows(values: Field) -> list[bytes]:
    if isinstance(values, VarField):
        return list(values.rows)
    width = 4 + values.dtype.itemsize
    block = np.empty(len(values.values), dtype=np.dtype([("l", ">i4"), ("v", values.dtype)]))
    block["l"], block["v"] = values.dtype.itemsize, values.values
    raw = block.tobytes()
    return [raw[i : i + width] for i in range(0, len(raw), width)]


# --- generators by type ------------------------------------------------------------------------------------


def _integer(dtype: str, limit: int) -> Callable[[TargetColumn, Chunk], Field]:
    def draw(column: TargetColumn, chunk: Chunk) -> Field:
        if column.unique:
            return FixedField(np.dtype(dtype), chunk.numbers)
        if column.choices:  # CHECK (rating IN (-1, 1))
            allowed = np.array([int(c) for c in column.choices], dtype=np.int64)
            return FixedField(np.dtype(dtype), allowed[chunk.rng.integers(0, len(allowed), chunk.rows)])
        low = column.minimum if column.minimum is not None else 0
        high = column.maximum if column.maximum is not None else min(limit, low + 4096)
        return FixedField(np.dtype(dtype), chunk.rng.integers(low, max(low, high) + 1, chunk.rows))

    return draw


def _float(dtype: str) -> Callable[[TargetColumn, Chunk], Field]:
    def draw(column: TargetColumn, chunk: Chunk) -> Field:
        low = column.minimum if column.minimum is not None else 0
        high = column.maximum if column.maximum is not None else low + 1000
        return FixedField(np.dtype(dtype), chunk.rng.uniform(low, high, chunk.rows))

    return draw


def _numeric(column: TargetColumn, chunk: Chunk) -> Field:
    """Whole numbers below 10,000 in numeric's binary form: one base-10000 digit (none for zero)."""
    low = max(0, column.minimum if column.minimum is not None else 0)
    high = min(9999, column.maximum if column.maximum is not None else 9999)
    values = chunk.numbers % 10_000 if column.unique else chunk.rng.integers(low, max(low, high) + 1, chunk.rows)
    zero, digit = struct.pack(">ihhHH", 8, 0, 0, 0, 0), struct.Struct(">ihhHHh")
    return VarField([zero if v == 0 else digit.pack(10, 1, 0, 0, 0, v) for v in values.tolist()])


def _boolean(column: TargetColumn, chunk: Chunk) -> Field:
    return FixedField(np.dtype("u1"), (chunk.rng.random(chunk.rows) < 0.5).astype(np.uint8))


@lru_cache(maxsize=64)
def _text_pool(texts: tuple[str, ...], limit: int | None) -> tuple[bytes, ...]:
    return tuple(text_field(t[:limit] if limit else t) for t in texts)


def _text(column: TargetColumn, chunk: Chunk) -> Field:
    if column.choices:
        choices = tuple(text_field(c) for c in column.choices)
        return VarField(pick(choices, chunk.rng.integers(0, len(choices), chunk.rows)))
    if column.unique:  # a value no other row has, within the column's length
        width = column.max_length or 64
        return VarField([text_field(f"{column.name}-{n}"[-width:]) for n in chunk.numbers.tolist()])
    pool = _text_pool(chunk.texts, column.max_length)
    return VarField(pick(pool, chunk.rng.integers(0, len(pool), chunk.rows)))


def _enum(column: TargetColumn, chunk: Chunk) -> Field:
    labels = tuple(text_field(label) for label in column.enum_labels)
    return VarField(pick(labels, chunk.rng.integers(0, len(labels), chunk.rows)))


def _timestamp(column: TargetColumn, chunk: Chunk) -> Field:
    """The row's own time plus up to a day (an edit, a deletion comes after the row); else within the data."""
    if chunk.times is not None:
        values = chunk.times + chunk.rng.integers(0, _US_PER_DAY, chunk.rows)
    else:
        values = chunk.rng.integers(chunk.span_us[0], max(chunk.span_us) + 1, chunk.rows)
    return FixedField(np.dtype(">i8"), values)


def _date(column: TargetColumn, chunk: Chunk) -> Field:
    times = chunk.times if chunk.times is not None else chunk.rng.integers(chunk.span_us[0], max(chunk.span_us) + 1,
                                                                           chunk.rows)
    return FixedField(np.dtype(">i4"), times // _US_PER_DAY)


_JSON_KEYS = ("source", "model", "lang", "tool", "label")


@lru_cache(maxsize=8)
def _documents(texts: tuple[str, ...], jsonb: bool) -> tuple[bytes, ...]:
    """Small JSON documents of the kind applications keep beside a row (metadata, tool arguments)."""
    docs = []
    for k, text in enumerate(texts[:1024]):
        doc = {"v": k % 7, _JSON_KEYS[k % len(_JSON_KEYS)]: text[:40], "ok": k % 3 == 0}
        data = json.dumps(doc, ensure_ascii=False).encode()
        docs.append(struct.pack(">i", len(data) + jsonb) + (b"\x01" if jsonb else b"") + data)
    return tuple(docs)


def _json(jsonb: bool) -> Callable[[TargetColumn, Chunk], Field]:
    def draw(column: TargetColumn, chunk: Chunk) -> Field:
        docs = _documents(chunk.texts, jsonb)
        return VarField(pick(docs, chunk.rng.integers(0, len(docs), chunk.rows)))

    return draw


def _uuid(column: TargetColumn, chunk: Chunk) -> Field:
    """Random (version 4) uuids from the chunk's stream: deterministic, never colliding in practice."""
    values = np.empty(chunk.rows, dtype=np.dtype([("hi", ">u8"), ("lo", ">u8")]))
    values["hi"] = (chunk.rng.integers(0, 2**63, chunk.rows, dtype=np.uint64) & np.uint64(0xFFFF_FFFF_FFFF_0FFF)) | \
        np.uint64(0x4000)
    values["lo"] = (chunk.rng.integers(0, 2**63, chunk.rows, dtype=np.uint64) & np.uint64(0x3FFF_FFFF_FFFF_FFFF)) | \
        np.uint64(0x8000_0000_0000_0000)
    return FixedField(values.dtype, values)


def _bytea(column: TargetColumn, chunk: Chunk) -> Field:
    data = chunk.rng.integers(0, 256, (chunk.rows, 16), dtype=np.uint8).tobytes()
    return VarField([b"\x00\x00\x00\x10" + data[i : i + 16] for i in range(0, len(data), 16)])


GENERATORS: dict[str, Callable[[TargetColumn, Chunk], Field]] = {
    "int8": _integer(">i8", 2**63 - 1), "int4": _integer(">i4", 2**31 - 1), "int2": _integer(">i2", 2**15 - 1),
    "float8": _float(">f8"), "float4": _float(">f4"), "numeric": _numeric, "bool": _boolean,
    "text": _text, "varchar": _text, "bpchar": _text, "citext": _text, "name": _text,
    "enum": _enum, "timestamptz": _timestamp, "timestamp": _timestamp, "date": _date,
    "json": _json(False), "jsonb": _json(True), "uuid": _uuid, "bytea": _bytea,
}
