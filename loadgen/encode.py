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
import operator
import re
import unicodedata

import numpy as np
from chatbench.loadgen.plan import MessageRows, Plan, RenderInputs
from chatbench.loadgen.pools import Pools, text_field

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_CHUNK_STREAM = 0x4348554E  # "CHUN"

MESSAGES_COPY = "COPY messages (id, conversation_id, user_id, created_at, role, content) FROM STDIN (FORMAT BINARY)"
CONVERSATIONS_COPY = "COPY conversations (id, user_id, created_at, updated_at, title) FROM STDIN (FORMAT BINARY)"
USERS_COPY = "COPY users (id, created_at, email, display_name) FROM STDIN (FORMAT BINARY)"

ROLE_USER, ROLE_ASSISTANT, ROLE_SYSTEM, ROLE_TOOL = range(4)


def _fixed_dtype(words: int) -> np.dtype:
    """Field count, then ``words`` (int32 length 8, int64 value) pairs."""
    layout: list[tuple[str, str]] = [("nf", ">i2")]
    for k in range(words):
        layout += [(f"l{k}", ">i4"), (f"v{k}", ">i8")]
    return np.dtype(layout)


_MSG_DT = _fixed_dtype(4)
_CONV_DT = _fixed_dtype(4)
_USER_DT = _fixed_dtype(2)


def _fixed(dtype: np.dtype, nfields: int, columns: list[np.ndarray]) -> np.ndarray:
    rows = np.empty(len(columns[0]), dtype=dtype)
    rows["nf"] = nfields
    for k, values in enumerate(columns):
        rows[f"l{k}"] = 8
        rows[f"v{k}"] = values
    return rows


def _interleave(fixed: np.ndarray, tails: list[bytes] | tuple[bytes, ...]) -> bytes:
    width = fixed.dtype.itemsize
    raw = fixed.tobytes()
    pieces: list[bytes] = [b""] * (2 * len(fixed))
    pieces[0::2] = [raw[i : i + width] for i in range(0, len(raw), width)]
    pieces[1::2] = tails
    return b"".join(pieces)


def _pick(pool: tuple[bytes, ...], idx: np.ndarray) -> tuple[bytes, ...] | list[bytes]:
    if len(idx) == 0:
        return []
    if len(idx) == 1:
        return [pool[int(idx[0])]]
    return operator.itemgetter(*idx.tolist())(pool)


def message_roles(inputs: RenderInputs, conv: np.ndarray, seq: np.ndarray, tool_draw: np.ndarray) -> np.ndarray:
    """Alternating user/assistant turns; optional opening system message; some tool turns."""
    seq = seq.astype(np.int64)
    system = inputs.conv_system[conv]
    turn = seq - system  # the system message shifts the alternation by one
    roles = np.where(turn % 2 == 0, ROLE_USER, ROLE_ASSISTANT)
    tool = (roles == ROLE_ASSISTANT) & (tool_draw < inputs.tool_share)
    roles = np.where(tool, ROLE_TOOL, roles)
    return np.where(system & (seq == 0), ROLE_SYSTEM, roles)


def message_rows(inputs: RenderInputs, pools: Pools, rows: MessageRows, lo: int, hi: int, chunk_rows: int) -> bytes:
    """Binary COPY rows (no signature/trailer) of messages with ids ``lo + 1 .. hi``, all in one chunk.

    ``rows`` is a skeleton slice holding them. A row's random choices depend on its chunk (row
    index // ``chunk_rows``) and its place in it only, so any split of a chunk renders the same bytes.
    """
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
    fixed = _fixed(_MSG_DT, 6, [
        np.arange(lo + 1, hi + 1, dtype=np.int64), conv.astype(np.int64) + 1, inputs.conv_user[conv],
        rows.time[lo - rows.lo : hi - rows.lo],
    ])
    return _interleave(fixed, _pick(pools.message_fields, entry))


def message_pieces(total: int, lo: int, hi: int, chunk_rows: int) -> list[tuple[int, int]]:
    """Rows ``lo .. hi`` cut at chunk boundaries: the pieces ``message_rows`` renders."""
    cuts = [lo, *range((lo // chunk_rows + 1) * chunk_rows, min(hi, total), chunk_rows), hi]
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


SMALL_ROWS = 200_000  # users and conversations are rendered in blocks of this many rows (bounded memory)


def conversation_rows(plan: Plan, pools: Pools, lo: int = 0, hi: int | None = None) -> bytes:
    """Binary COPY rows of conversations with ids ``lo + 1 .. hi`` (all by default)."""
    hi = len(plan.conv_user) if hi is None else hi
    fixed = _fixed(_CONV_DT, 5, [
        np.arange(lo + 1, hi + 1, dtype=np.int64), plan.conv_user[lo:hi], plan.conv_created[lo:hi],
        plan.conv_updated[lo:hi],
    ])
    titles = (*pools.title_fields, b"\xff\xff\xff\xff")  # index -1 -> NULL
    return _interleave(fixed, _pick(titles, plan.conv_title[lo:hi].astype(np.int64)))


_NON_WORD = re.compile(r"[^a-z0-9]+")


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return _NON_WORD.sub(".", ascii_name).strip(".") or "user"


def user_rows(plan: Plan, pools: Pools, lo: int = 0, hi: int | None = None) -> bytes:
    """Binary COPY rows of users with ids ``lo + 1 .. hi`` (all by default)."""
    hi = len(plan.user_created) if hi is None else hi
    fixed = _fixed(_USER_DT, 4, [np.arange(lo + 1, hi + 1, dtype=np.int64), plan.user_created[lo:hi]])
    names = (plan.user_name[lo:hi] % len(pools.names)).tolist()
    domains = (plan.user_domain[lo:hi] % len(pools.email_domains)).tolist()
    slugs = [_slug(n) for n in pools.names]
    tails = [
        text_field(f"{slugs[n]}.{uid}@{pools.email_domains[d]}") + text_field(pools.names[n])
        for uid, (n, d) in enumerate(zip(names, domains, strict=True), start=lo + 1)
    ]
    return _interleave(fixed, tails)

