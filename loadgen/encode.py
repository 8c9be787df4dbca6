"""Render plan rows as PostgreSQL binary COPY data, vectorised.

Fixed-width columns (ids, timestamps) of a chunk are written at once into a numpy structured array
with big-endian fields laid out exactly as binary COPY wants them (field count, then length + value
per field); variable-width text comes pre-encoded from the pools. A row is then two byte strings
(fixed part + text part) and a chunk one ``b"".join``: about 0.3 µs per row instead of the several
µs of ``write_row``. The COPY column lists put the fixed-width columns first for that reason.

Per-chunk choices (roles, texts) use an RNG derived from (seed, chunk index) only, so a chunk's
bytes do not depend on which worker renders it or when.
"""

from __future__ import annotations

import itertools
import json
import re
import struct
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from chatbench.loadgen.columns import Chunk, ColumnFill, is_fixed, render
from chatbench.loadgen.fields import (
    INT8,
    NULL_FIELD,
    Field,
    FixedField,
    KeyCodec,
    VarField,
    assemble,
    cut,
    pick,
    text_field,
)
from chatbench.loadgen.plan import MessageRows, Plan, RenderInputs
from chatbench.loadgen.pools import ROLES, Pools
from chatbench.schema.rolemap import ROLE_COLUMNS, ROLE_KEYS

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_CHUNK_STREAM = 0x4348554E  # "CHUN"
_EXTRA_STREAM = 0x45585452  # "EXTR": columns beyond the plan's, one stream per (table, column, chunk)

ROLE_USER, ROLE_ASSISTANT, ROLE_SYSTEM, ROLE_TOOL = range(4)


@dataclass(frozen=True)
class TableLayout:
    """What one COPY of a table carries: the plan's columns present, their key codecs, the other columns.

    Picklable (render workers get the messages' layout with their job: plain dicts, no mapping proxies).
    The plan's columns go by their canonical names (``created_at``) and are written into the columns
    ``names`` gives them (``createdAt``). ``copy_statement`` lists the columns in the order
    ``fields.assemble`` writes them: fixed-width fields first.
    """

    table: str
    role: str  # users | conversations | messages | child
    planned: tuple[str, ...]  # the plan's columns, in ROLE_COLUMNS order (child: its parent column)
    keys: Mapping[str, KeyCodec]  # planned key column -> codec
    extras: tuple[ColumnFill, ...]
    tag: int = 0  # the table's stream tag (extras' random streams)
    limits: Mapping[str, int] = field(default_factory=dict)  # planned text column -> its length limit
    names: Mapping[str, str] = field(default_factory=dict)  # planned column -> the table's column, where they differ
    documents: Mapping[str, str] = field(default_factory=dict)  # planned column filled as json/jsonb -> that type
    required: frozenset[str] = frozenset()  # planned columns that are NOT NULL (a title is then never NULL)
    # the value written for each of the plan's roles, in ``ROLES`` order: the canonical names, or the ones the
    # column allows when its enum or CHECK has fewer or other labels (``layout.role_values``)
    role_values: tuple[str, ...] = ROLES
    time_digits: Mapping[str, int] = field(default_factory=dict)  # planned time column -> digits (< 6) it keeps

    def times(self, column: str, values: np.ndarray) -> FixedField:
        """A planned time column's field: the plan's µs, rounded as the server rounds a ``timestamp(p)``."""
        digits = self.time_digits.get(column)
        return FixedField(np.dtype(">i8"), values if digits is None else rounded_us(values, digits))

    def planned_fixed(self, column: str) -> bool:
        codec = self.keys.get(column)
        if codec is not None:
            return codec.kind != "text"
        return column in ("created_at", "updated_at")

    def column_name(self, planned: str) -> str:
        """The table's column that a planned column is written into."""
        return self.names.get(planned, planned)

    def copy_columns(self) -> tuple[str, ...]:
        """The COPY column list in field order (fixed-width first, as ``assemble`` writes them)."""
        planned = [(self.column_name(c), self.planned_fixed(c)) for c in self.planned]
        # role and content are one pre-joined pool entry: keep them adjacent, in that order
        extras = [(f.column.name, is_fixed(f)) for f in self.extras]
        both = planned + extras
        return tuple(c for c, fixed in both if fixed) + tuple(c for c, fixed in both if not fixed)

    def copy_statement(self, *, freeze: bool = False) -> str:
        columns = ", ".join('"' + c.replace('"', '""') + '"' for c in self.copy_columns())
        options = "FORMAT BINARY, FREEZE" if freeze else "FORMAT BINARY"
        return f'COPY "{self.table}" ({columns}) FROM STDIN ({options})'


def canonical_layout(role: str) -> TableLayout:
    """A canonical table's layout: bigint keys, no other column (what the canonical models declare)."""
    return TableLayout(role, role, ROLE_COLUMNS[role], {c: INT8 for c in ROLE_KEYS[role]}, ())


MESSAGES_COPY = canonical_layout("messages").copy_statement()
CONVERSATIONS_COPY = canonical_layout("conversations").copy_statement()
USERS_COPY = canonical_layout("users").copy_statement()


def _extras(layout: TableLayout, seed: int, chunk: int, rows: int, numbers: np.ndarray, times: np.ndarray | None,
            texts: tuple[str, ...], span: tuple[int, int], lo: int = 0, hi: int | None = None,
            message_times: np.ndarray | None = None) -> list[Field]:
    """The layout's other columns for a whole chunk of ``rows`` rows, cut to rows ``lo .. hi`` of it."""
    out: list[Field] = []
    for index, fill in enumerate(layout.extras):
        stream = index if fill.stream is None else fill.stream  # a composite foreign key's columns share one
        rng = np.random.default_rng([seed, _EXTRA_STREAM, layout.tag, stream, chunk])
        field = render(fill, Chunk(rows, numbers, times, rng, texts, span, message_times))
        out.append(cut(field, lo, rows if hi is None else hi))
    return out


def _key(layout: TableLayout, column: str, numbers: np.ndarray) -> Field:
    return layout.keys.get(column, INT8).field(numbers)


def _planned(
    layout: TableLayout, named: Mapping[str, Field], pair: tuple[str, str], joined: Field | None
) -> list[Field]:
    """The planned columns' fields in the layout's order; ``joined`` is ``pair``'s two fields pre-joined
    (one pool pick), used when both columns are planned next to each other and neither is cut."""
    fields: list[Field] = []
    use_joined = joined is not None and all(c in layout.planned for c in pair) and not any(
        c in layout.limits for c in pair)
    for column in layout.planned:
        if use_joined and column == pair[1]:
            continue
        fields.append(joined if use_joined and column == pair[0] else named[column])  # type: ignore[arg-type]
    return fields


@lru_cache(maxsize=16)
def _text_fields(texts: tuple[str, ...], limit: int | None) -> tuple[bytes, ...]:
    """Texts as binary COPY fields, cut to a column's length limit (characters, as varchar(n) counts)."""
    return tuple(text_field(t[:limit] if limit else t) for t in texts)


@lru_cache(maxsize=4)
def _document_fields(texts: tuple[str, ...], kind: str) -> tuple[bytes, ...]:
    """Texts as binary COPY fields of a json (or jsonb: version byte 1 first) content column, each the message
    as the AI SDK's parts: ``[{"type": "text", "text": ...}]``. Encoded once per pool, picked per row as the
    plain texts are."""
    version = b"\x01" if kind == "jsonb" else b""
    out = []
    for text in texts:
        data = version + json.dumps([{"type": "text", "text": text}], ensure_ascii=False).encode()
        out.append(struct.pack(">i", len(data)) + data)
    return tuple(out)


_ROLE_FIELDS = tuple(text_field(r) for r in ROLES)


def rounded_us(values: np.ndarray, digits: int) -> np.ndarray:
    """µs rounded to ``digits`` fractional digits, half away from zero: PostgreSQL's ``timestamp(p)`` input."""
    step = 10 ** (6 - digits)
    values = np.asarray(values, dtype=np.int64)
    return np.sign(values) * ((np.abs(values) + step // 2) // step * step)


@lru_cache(maxsize=4)
def _role_and_document(texts: tuple[str, ...], offsets: tuple[int, ...], sizes: tuple[int, ...],
                       kind: str) -> tuple[bytes, ...]:
    """``Pools.message_fields`` with the content as a json document: the role field and the document field of each
    pool entry pre-joined, so a json content costs one pick per row, as a text content does (measured: two picks
    and a join cost 1.2 µs more per row)."""
    documents = _document_fields(texts, kind)
    pairs: list[bytes] = []
    for role, first, size in zip(_ROLE_FIELDS, offsets, sizes, strict=True):  # the pool's blocks, in ROLES order
        pairs.extend(role + document for document in documents[first : first + size])
    return tuple(pairs)


def message_roles(inputs: RenderInputs, conv: np.ndarray, seq: np.ndarray, tool_draw: np.ndarray) -> np.ndarray:
    """Alternating user/assistant turns; optional opening system message; some tool turns."""
    seq = seq.astype(np.int64)
    system = inputs.conv_system[conv]
    turn = seq - system  # the system message shifts the alternation by one
    roles = np.where(turn % 2 == 0, ROLE_USER, ROLE_ASSISTANT)
    tool = (roles == ROLE_ASSISTANT) & (tool_draw < inputs.tool_share)
    roles = np.where(tool, ROLE_TOOL, roles)
    return np.where(system & (seq == 0), ROLE_SYSTEM, roles)


def message_rows(inputs: RenderInputs, pools: Pools, rows: MessageRows, lo: int, hi: int, chunk_rows: int,
                 layout: TableLayout | None = None) -> bytes:
    """Binary COPY rows (no signature/trailer) of messages with ids ``lo + 1 .. hi``, all in one chunk.

    ``rows`` is a skeleton slice holding them. A row's random choices depend on its chunk (row
    index // ``chunk_rows``) and its place in it only, so any split of a chunk renders the same bytes.
    """
    layout = layout or canonical_layout("messages")
    chunk = lo // chunk_rows
    first = chunk * chunk_rows
    if hi > first + chunk_rows or not rows.lo <= lo <= hi <= rows.hi:
        raise ValueError(f"rows {lo}..{hi} are not inside one chunk of {chunk_rows} and the given skeleton slice")
    size = min(chunk_rows, inputs.total - first)
    rng = np.random.default_rng([inputs.seed, _CHUNK_STREAM, chunk])
    tool_draw = rng.random(size)[lo - first : hi - first]
    text_draw = rng.random(size)[lo - first : hi - first]
    conv = rows.conv[lo - rows.lo : hi - rows.lo]
    roles = message_roles(inputs, conv, rows.seq[lo - rows.lo : hi - rows.lo], tool_draw)
    sizes = np.asarray(pools.role_sizes)[roles]
    entry = np.asarray(pools.role_offsets)[roles] + (text_draw * sizes).astype(np.int64)
    times = rows.time[lo - rows.lo : hi - rows.lo]
    named: dict[str, Field] = {
        "id": _key(layout, "id", np.arange(lo + 1, hi + 1, dtype=np.int64)),
        "conversation_id": _key(layout, "conversation_id", conv.astype(np.int64) + 1),
        "user_id": _key(layout, "user_id", np.asarray(inputs.conv_user[conv], dtype=np.int64)),
        "created_at": layout.times("created_at", times),
    }
    document = layout.documents.get("content")  # a json content: [{"type": "text", "text": ...}]
    respelled = layout.role_values != ROLES  # the pre-joined pool entries spell the canonical roles
    if respelled or "content" in layout.limits or not {"role", "content"} <= set(layout.planned):
        role_fields = _ROLE_FIELDS if not respelled else tuple(text_field(r) for r in layout.role_values)
        named["role"] = VarField(pick(role_fields, roles.astype(np.int64)))
        contents = _document_fields(pools.contents, document) if document else \
            _text_fields(pools.contents, layout.limits.get("content"))
        named["content"] = VarField(pick(contents, entry))
    joined: Field | None = None
    if not respelled:
        pairs = _role_and_document(pools.contents, pools.role_offsets, pools.role_sizes, document) if document \
            else pools.message_fields
        joined = VarField(pick(pairs, entry), count=2)
    fields = _planned(layout, named, ("role", "content"), joined)
    if layout.extras:
        full_times = np.zeros(size, dtype=np.int64)
        full_times[lo - first : hi - first] = times
        numbers = np.arange(first + 1, first + size + 1, dtype=np.int64)
        fields += _extras(layout, inputs.seed, chunk, size, numbers, full_times, pools.contents, (0, 0),
                          lo - first, hi - first)
    return assemble(hi - lo, fields)


def message_pieces(total: int, lo: int, hi: int, chunk_rows: int) -> list[tuple[int, int]]:
    """Rows ``lo .. hi`` cut at chunk boundaries: the pieces ``message_rows`` renders."""
    cuts = [lo, *range((lo // chunk_rows + 1) * chunk_rows, min(hi, total), chunk_rows), hi]
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


SMALL_ROWS = 200_000  # users and conversations are rendered in blocks of this many rows (bounded memory)


def conversation_rows(plan: Plan, pools: Pools, lo: int = 0, hi: int | None = None,
                      layout: TableLayout | None = None) -> bytes:
    """Binary COPY rows of conversations with ids ``lo + 1 .. hi`` (all by default)."""
    layout = layout or canonical_layout("conversations")
    hi = len(plan.conv_user) if hi is None else hi
    limit = layout.limits.get("title")
    cut_titles = _text_fields(tuple(t[4:].decode() for t in pools.title_fields), limit) if limit else pools.title_fields
    titles = (*cut_titles, NULL_FIELD)  # index -1 -> NULL
    numbers = np.arange(lo + 1, hi + 1, dtype=np.int64)
    chosen = plan.conv_title[lo:hi].astype(np.int64)
    if "title" in layout.required:  # a NOT NULL title: the conversations without one get a short title
        chosen = np.where(chosen < 0, numbers % pools.short_titles, chosen)
    named: dict[str, Field] = {
        "id": _key(layout, "id", numbers),
        "user_id": _key(layout, "user_id", np.asarray(plan.conv_user[lo:hi], dtype=np.int64)),
        "created_at": layout.times("created_at", plan.conv_created[lo:hi]),
        "updated_at": layout.times("updated_at", plan.conv_updated[lo:hi]),
        "title": VarField(pick(titles, chosen)),
    }
    fields = _planned(layout, named, ("title", "title"), None)
    fields += _extras(layout, plan.seed, lo // SMALL_ROWS, hi - lo, numbers, plan.conv_created[lo:hi],
                      pools.contents, (0, 0))
    return assemble(hi - lo, fields)


_NON_WORD = re.compile(r"[^a-z0-9]+")


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return _NON_WORD.sub(".", ascii_name).strip(".") or "user"


def user_rows(plan: Plan, pools: Pools, lo: int = 0, hi: int | None = None, layout: TableLayout | None = None) -> bytes:
    """Binary COPY rows of users with ids ``lo + 1 .. hi`` (all by default)."""
    layout = layout or canonical_layout("users")
    hi = len(plan.user_created) if hi is None else hi
    names = (plan.user_name[lo:hi] % len(pools.names)).tolist()
    domains = (plan.user_domain[lo:hi] % len(pools.email_domains)).tolist()
    slugs = [_slug(n) for n in pools.names]
    email_limit, name_limit = layout.limits.get("email"), layout.limits.get("display_name")
    emails = [f"{slugs[n]}.{uid}@{pools.email_domains[d]}"[-email_limit if email_limit else None:]
              for uid, (n, d) in enumerate(zip(names, domains, strict=True), start=lo + 1)]
    display = [pools.names[n][:name_limit] for n in names]
    numbers = np.arange(lo + 1, hi + 1, dtype=np.int64)
    named: dict[str, Field] = {
        "id": _key(layout, "id", numbers), "created_at": layout.times("created_at", plan.user_created[lo:hi]),
        "email": VarField([text_field(e) for e in emails]), "display_name": VarField([text_field(n) for n in display]),
    }
    joined = VarField([text_field(e) + text_field(n) for e, n in zip(emails, display, strict=True)], count=2)
    fields = _planned(layout, named, ("email", "display_name"), joined)
    fields += _extras(layout, plan.seed, lo // SMALL_ROWS, hi - lo, numbers, plan.user_created[lo:hi],
                      pools.contents, (0, 0))
    return assemble(hi - lo, fields)


def child_rows(layout: TableLayout, seed: int, parents: np.ndarray, first: int, texts: tuple[str, ...],
               span: tuple[int, int], message_times: np.ndarray | None = None) -> bytes:
    """Binary COPY rows of a child table: row ``first + k + 1`` hangs from parent row ``parents[k]``;
    ``message_times`` (every message's created_at) when a foreign key names a message by (id, created_at)."""
    rows = len(parents)
    numbers = np.arange(first + 1, first + rows + 1, dtype=np.int64)
    fields: list[Field] = []
    if layout.planned:
        fields.append(layout.keys[layout.planned[0]].field(parents))
    fields += _extras(layout, seed, first // SMALL_ROWS, rows, numbers, None, texts, span,
                      message_times=message_times)
    return assemble(rows, fields)
