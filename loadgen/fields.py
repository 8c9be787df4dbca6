"""Binary COPY fields, assembled into rows, and the codecs of key columns.

A COPY row is a field count followed by (length, value) per field. A *fixed* field has one width for
every row (integers, timestamps, uuids that are never NULL): a chunk of them is one numpy structured
array with big-endian members, written at once. A *variable* field (text, json, anything that may
be NULL) is a list with one pre-encoded ``length + value`` per row. ``assemble`` writes the fixed
fields first, then the variable ones, so the COPY column list must follow ``columns_in_copy_order``.

Key columns are rendered by a ``KeyCodec`` from the plan's dense row numbers (1..N, in load order):
``int8``/``int4``/``int2`` as the number itself; ``uuid`` as a version-7 layout whose timestamp field
is the data set's start and whose low bits are the row number, so ordering by the key is ordering by
the row number (keyset pages and ties behave as with integer keys); ``text`` as a 26-character
ULID-like string of the same bits (Crockford base32, fixed width: its order is the number's order
under every collation of digits and capital letters).
"""

from __future__ import annotations

import operator
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

NULL_FIELD = struct.pack(">i", -1)
KeyKind = Literal["int8", "int4", "int2", "uuid", "text"]
KEY_KINDS: dict[str, KeyKind] = {
    "int8": "int8", "int4": "int4", "int2": "int2", "uuid": "uuid", "text": "text", "varchar": "text",
    "bpchar": "text",
}
_INT_DTYPES = {"int8": ">i8", "int4": ">i4", "int2": ">i2"}
_UUID_DTYPE = np.dtype([("hi", ">u8"), ("lo", ">u8")])
_CROCKFORD = np.frombuffer(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", dtype=np.uint8)
TEXT_KEY_CHARS = 26
MIN_TEXT_KEY_CHARS = 8
"""The shortest text key the row numbers fit: the last 8 base32 digits hold 40 bits, past any table's rows."""


@dataclass(frozen=True)
class FixedField:
    """One fixed-width field for every row of a chunk: ``values`` in a big-endian numpy dtype."""

    dtype: np.dtype
    values: np.ndarray


@dataclass(frozen=True)
class VarField:
    """Pre-encoded ``length + value`` bytes per row; ``count`` fields per entry (a pool may pre-join two)."""

    rows: Sequence[bytes]
    count: int = 1


Field = FixedField | VarField


def text_field(value: str) -> bytes:
    data = value.encode()
    return struct.pack(">i", len(data)) + data


def pick(pool: Sequence[bytes], idx: np.ndarray) -> Sequence[bytes]:
    """Pool entries by index, fast (one C-level gather)."""
    if len(idx) == 0:
        return []
    if len(idx) == 1:
        return [pool[int(idx[0])]]
    return operator.itemgetter(*idx.tolist())(pool)


def with_nulls(rows: Sequence[bytes], null: np.ndarray) -> list[bytes]:
    """``rows`` with NULL where ``null`` is set."""
    return [NULL_FIELD if n else r for r, n in zip(rows, null.tolist(), strict=True)]


def assemble(rows: int, fields: Sequence[Field]) -> bytes:
    """Binary COPY rows (no signature or trailer): fixed fields first, then variable ones, in the order given."""
    fixed = [f for f in fields if isinstance(f, FixedField)]
    var = [f for f in fields if isinstance(f, VarField)]
    layout: list[tuple[str, object]] = [("nf", ">i2")]
    for k, f in enumerate(fixed):
        layout += [(f"l{k}", ">i4"), (f"v{k}", f.dtype)]
    block = np.empty(rows, dtype=np.dtype(layout))
    block["nf"] = len(fixed) + sum(f.count for f in var)
    for k, f in enumerate(fixed):
        block[f"l{k}"] = f.dtype.itemsize
        block[f"v{k}"] = f.values
    if not var:
        return block.tobytes()
    tails: Sequence[bytes] = (
        var[0].rows if len(var) == 1 else list(map(b"".join, zip(*(f.rows for f in var), strict=True)))
    )
    width = block.dtype.itemsize
    raw = block.tobytes()
    pieces: list[bytes] = [b""] * (2 * rows)
    pieces[0::2] = [raw[i : i + width] for i in range(0, len(raw), width)]
    pieces[1::2] = tails
    return b"".join(pieces)


def cut(field: Field, lo: int, hi: int) -> Field:
    """Rows ``lo .. hi`` of a field."""
    if isinstance(field, FixedField):
        return FixedField(field.dtype, field.values[lo:hi])
    return VarField(field.rows[lo:hi], field.count)


@dataclass(frozen=True)
class KeyCodec:
    """How a key column (and every foreign key to it) spells row number ``n``."""

    kind: KeyKind
    tag: int = 0  # 12 bits: tells tables apart in uuid/text keys
    epoch_ms: int = 0  # the uuid's timestamp field: the data set's start
    width: int = TEXT_KEY_CHARS  # a text key's characters: the last ``width`` of its 26 (a ``varchar(21)`` key)

    def field(self, numbers: np.ndarray) -> Field:
        numbers = np.asarray(numbers, dtype=np.int64)
        if self.kind in _INT_DTYPES:
            return FixedField(np.dtype(_INT_DTYPES[self.kind]), numbers)
        hi, lo = self._bits(numbers)
        if self.kind == "uuid":
            values = np.empty(len(numbers), dtype=_UUID_DTYPE)
            values["hi"], values["lo"] = hi, lo
            return FixedField(_UUID_DTYPE, values)
        prefix = struct.pack(">i", self.width)
        return VarField([prefix + s[-self.width:] for s in self._text(hi, lo)])

    def value(self, number: int) -> int | str:
        """The key of row ``number`` as a query parameter (psycopg sends a str untyped: the server casts it)."""
        if self.kind in _INT_DTYPES:
            return int(number)
        hi, lo = self._bits(np.array([number], dtype=np.int64))
        if self.kind == "uuid":
            return str(uuid.UUID(int=(int(hi[0]) << 64) | int(lo[0])))
        return self._text(hi, lo)[0].decode()[-self.width:]

    def _bits(self, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hi = np.full(len(numbers), ((self.epoch_ms & 0xFFFF_FFFF_FFFF) << 16) | 0x7000 | (self.tag & 0xFFF), np.uint64)
        lo = numbers.astype(np.uint64) | np.uint64(0x8000_0000_0000_0000)
        return hi, lo

    @staticmethod
    def _text(hi: np.ndarray, lo: np.ndarray) -> list[bytes]:
        """128 bits as 26 Crockford base32 digits, most significant first (two leading bits padded)."""
        digits = np.empty((len(hi), TEXT_KEY_CHARS), dtype=np.uint8)
        for position in range(TEXT_KEY_CHARS):
            shift = 5 * (TEXT_KEY_CHARS - 1 - position)  # bit offset of this digit in the 130-bit number
            if shift >= 64:
                part = hi >> np.uint64(shift - 64)
            elif shift > 59:  # the digit straddles the two words
                part = (lo >> np.uint64(shift)) | (hi << np.uint64(64 - shift))
            else:
                part = lo >> np.uint64(shift)
            digits[:, position] = _CROCKFORD[(part & np.uint64(31)).astype(np.intp)]
        raw = digits.tobytes()
        return [raw[i : i + TEXT_KEY_CHARS] for i in range(0, len(raw), TEXT_KEY_CHARS)]


INT8 = KeyCodec("int8")
