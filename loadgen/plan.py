"""The history's skeleton, drawn with numpy from (spec, seed, order): who, when, how many.

The plan fixes every row's key facts: users and their creation times, conversations (owner, size,
start, title, last activity) and, for every message, its conversation, its position in it and its
created_at. Message ids are assigned in load order: in ``time`` order (the default, as a live product
writes them) ids increase with created_at across conversations; in ``conversation`` order each
conversation's messages are contiguous. Either way, within a conversation, ordering by
``(created_at, id)`` equals ordering by ``id``.

Message times follow a monotone curve per conversation: sessions of ``session_length`` messages
burst within a short window, then a long gap; jitter keeps times increasing; in ``tie_share`` of
blocks of ``tie_size`` messages all messages take the block's first created_at (ties).

Memory is bounded whatever the size: conversation-level arrays stay in memory (about 40 bytes per
conversation), but the message skeleton (16 bytes per message: 1.6 GB at 10^8) is never held whole.
It is drawn in blocks of conversations and spilled to ``Skeleton`` bucket files: in time order one
bucket per time window (windows cut at quantiles of the expected message density, about
``BUCKET_ROWS`` messages each), so sorting one bucket by time gives a contiguous run of message
ids; in conversation order one bucket per block, already in id order. The random streams are
consumed in the same order as when the whole skeleton was drawn at once, so the data (and the
checksum) does not depend on block or bucket sizes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from chatbench.errors import ConfigError
from chatbench.loadgen.pools import LONG_TITLES, TITLES
from chatbench.loadgen.spec import ConversationsSpec, Spec
from chatbench.provision.owner import STAGING_PREFIX, Lease
from chatbench.provision.paths import run_root

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
US = 1_000_000
DAY_US = 86_400 * US
ORDERS = ("time", "conversation")
BURST = 0.15  # share of a session's slot in which its messages arrive
_PLAN_STREAM = 0x504C414E  # "PLAN"
_BLOCK_MESSAGES = 500_000  # messages per vectorised block when drawing times (bounds temporaries)
_TIE_DRAW = 4_000_000  # tie decisions drawn per call (same stream, bounded temporaries)
BUCKET_ROWS = 250_000  # target messages per time bucket: what one render worker sorts at a time (and waits
# for before its first piece: small buckets start the COPY sooner)
_DENSITY_GRID = 1 << 16  # time bins used to place bucket edges at quantiles of the message density
SKELETON_DTYPE = np.dtype([("time", "<i8"), ("conv", "<i4"), ("seq", "<i4")])


def to_pg_us(value: datetime) -> int:
    """Microseconds since 2000-01-01 UTC: the binary timestamptz representation."""
    delta = value - PG_EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def from_pg_us(value: int) -> datetime:
    return PG_EPOCH + timedelta(microseconds=int(value))


@dataclass(frozen=True)
class MessageRows:
    """Skeleton rows ``lo .. hi - 1`` (message ids ``lo + 1 .. hi``) in load order."""

    lo: int
    conv: np.ndarray  # int32 conversation id - 1
    seq: np.ndarray  # int32 position in the conversation
    time: np.ndarray  # int64 µs since 2000-01-01

    @property
    def hi(self) -> int:
        return self.lo + len(self.conv)


@dataclass(frozen=True)
class Skeleton:
    """The message skeleton, spilled to one file per bucket; bucket ``b`` holds rows ``offsets[b] ..``.

    Plain data (picklable): render processes read the same files.
    """

    directory: Path
    offsets: tuple[int, ...]  # len(buckets) + 1 cumulative row counts
    sort: bool  # time order: files hold (conversation, position) order; sort by time on reading

    @property
    def buckets(self) -> int:
        return len(self.offsets) - 1

    def raw(self, bucket: int) -> np.ndarray:
        return _raw(self.directory, bucket)

    def bucket(self, bucket: int) -> MessageRows:
        """One bucket's rows in load order (a stable sort by time keeps ties in (conversation, position))."""
        return read_bucket(self.directory, bucket, self.offsets[bucket], self.sort)

    def __iter__(self) -> Iterator[MessageRows]:
        for b in range(self.buckets):
            yield self.bucket(b)

    def load_all(self) -> MessageRows:
        """Every row at once (tests and small specs only: 16 bytes per message)."""
        parts = list(self)
        return MessageRows(
            0,
            np.concatenate([p.conv for p in parts]) if parts else np.zeros(0, np.int32),
            np.concatenate([p.seq for p in parts]) if parts else np.zeros(0, np.int32),
            np.concatenate([p.time for p in parts]) if parts else np.zeros(0, np.int64),
        )

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _raw(directory: Path, bucket: int) -> np.ndarray:
    path = directory / f"bucket-{bucket:06d}.bin"
    return np.fromfile(path, dtype=SKELETON_DTYPE) if path.exists() else np.zeros(0, SKELETON_DTYPE)


def read_bucket(directory: Path, bucket: int, first: int, sort: bool) -> MessageRows:
    """A complete bucket's rows in load order, its first row being row ``first``."""
    rows = _raw(directory, bucket)
    if sort and len(rows):
        rows = rows[np.argsort(rows["time"], kind="stable")]
    return MessageRows(first, rows["conv"].copy(), rows["seq"].copy(), rows["time"].copy())


@dataclass(frozen=True)
class TiePick:
    """A message inside a block of messages sharing one created_at (a keyset cursor for the benchmarks)."""

    conv: int  # conversation id - 1
    time: int  # µs
    id: int  # message id
    size: int  # messages in the block


@dataclass(frozen=True)
class RenderInputs:
    """What rendering message rows needs beyond the skeleton: render processes get it from files."""

    seed: int
    total: int  # messages
    tool_share: float
    conv_user: np.ndarray  # int32 user id per conversation
    conv_system: np.ndarray  # bool: opens with a system message

    def save(self, directory: Path) -> tuple[int, int, float, Path]:
        """Write the arrays beside the skeleton; what ``load`` needs to map them again."""
        np.save(directory / "conv_user.npy", self.conv_user)
        np.save(directory / "conv_system.npy", self.conv_system)
        return self.seed, self.total, self.tool_share, directory

    @classmethod
    def load(cls, seed: int, total: int, tool_share: float, directory: Path) -> RenderInputs:
        """Memory-mapped: a render process holds only the pages it reads."""
        return cls(seed, total, tool_share, np.load(directory / "conv_user.npy", mmap_mode="r"),
                   np.load(directory / "conv_system.npy", mmap_mode="r"))


@dataclass(frozen=True, eq=False)
class Plan:
    """Arrays indexed by id - 1 (users, conversations); messages in ``skeleton``.

    A plan owns its skeleton's folder through an owner record (``chatbench.provision.owner.Lease``, the
    folder named as the record's staging folder) locked while the plan is open, so ``chatbench clean``
    removes it if the run dies and never while it lives: ``close()`` (or leaving ``with plan:``)
    removes it.
    """

    spec: Spec
    seed: int
    order: str
    user_created: np.ndarray  # int64 µs since 2000-01-01
    user_name: np.ndarray  # int32 index into Pools.names
    user_domain: np.ndarray  # int32 index into Pools.email_domains
    conv_user: np.ndarray  # int32 user id
    conv_created: np.ndarray  # int64 µs
    conv_updated: np.ndarray  # int64 µs: the conversation's last message
    conv_title: np.ndarray  # int32 index into Pools.title_fields, -1 = NULL
    conv_messages: np.ndarray  # int32
    conv_system: np.ndarray  # bool: opens with a system message
    whale_ids: tuple[int, ...]  # conversation ids, largest first
    skeleton: Skeleton
    tie_picks: tuple[TiePick, ...]
    lease: Lease = field(repr=False)

    @property
    def render_inputs(self) -> RenderInputs:
        return RenderInputs(self.seed, self.counts["messages"], self.spec.messages.tool_share, self.conv_user,
                            self.conv_system)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "users": len(self.user_created),
            "conversations": len(self.conv_user),
            "messages": self.skeleton.offsets[-1],
        }

    def close(self) -> None:
        self.skeleton.remove()
        self.lease.release()

    def __enter__(self) -> Plan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def chunk_slices(total: int, chunk_rows: int) -> list[tuple[int, int]]:
    """Deterministic message chunks (row ranges); the rendering RNG is keyed by the chunk index."""
    return [(start, min(start + chunk_rows, total)) for start in range(0, total, chunk_rows)]


def _allocate(rng: np.random.Generator, total: int, count: int, median: float, sigma: float, cap: int) -> np.ndarray:
    """Split ``total`` messages over ``count`` conversations, 1 to ``cap`` each, lognormal weights."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    weights = rng.lognormal(np.log(median), sigma, count)
    alloc = np.ones(count, dtype=np.int64)
    remaining = total - count
    while remaining > 0:
        room = alloc < cap
        if remaining < np.count_nonzero(room):
            # Fewer messages left than open conversations: one more each for the heaviest ones.
            open_idx = np.flatnonzero(room)
            heaviest = open_idx[np.argsort(-weights[open_idx], kind="stable")[:remaining]]
            alloc[heaviest] += 1
            break
        # share = weights[room] / weights[room].sum() * remaining, computed in place (same rounding).
        share = weights[room]
        share /= share.sum()
        share *= remaining
        np.floor(share, out=share)
        add = share.astype(np.int64)
        del share
        limit = alloc[room]
        np.subtract(cap, limit, out=limit)
        np.minimum(add, limit, out=add)
        del limit
        alloc[room] += add
        remaining -= int(add.sum())
        del add, room
    return alloc


def _owners(rng: np.random.Generator, users: int, conversations: int, heavy: int, heavy_share: float) -> np.ndarray:
    """Owner (user index) of each conversation: ``heavy`` users own ``heavy_share``, the rest a Pareto tail."""
    heavy_idx = rng.choice(users, heavy, replace=False) if heavy else np.zeros(0, dtype=np.int64)
    light_idx = np.setdiff1d(np.arange(users), heavy_idx)
    n_heavy = round(heavy_share * conversations) if heavy else 0
    if len(light_idx) == 0:
        n_heavy = conversations
    parts = []
    if n_heavy:
        w = rng.pareto(1.0, heavy) + 1.0
        parts.append(heavy_idx[rng.choice(heavy, n_heavy, p=w / w.sum())])
    if conversations - n_heavy:
        w = rng.pareto(1.2, len(light_idx)) + 0.05
        parts.append(light_idx[rng.choice(len(light_idx), conversations - n_heavy, p=w / w.sum())])
    return rng.permutation(np.concatenate(parts)).astype(np.int64)


def _bucket_edges(
    start: np.ndarray, duration: np.ndarray, n: np.ndarray, t0: int, span: int, buckets: int
) -> np.ndarray:
    """Time edges splitting the messages into ``buckets`` windows of about equal expected counts.

    Each conversation's messages are taken as spread evenly over its life; the real counts differ
    a little (bursts), which only makes buckets somewhat unequal, never wrong.
    """
    if buckets <= 1:
        return np.zeros(0, dtype=np.int64)
    grid = _DENSITY_GRID
    diff = np.zeros(grid + 1)
    for lo in range(0, len(n), _BLOCK_MESSAGES):  # in slices: bounded temporaries
        hi = lo + _BLOCK_MESSAGES
        first = np.clip((start[lo:hi] - t0) * grid // span, 0, grid - 1)
        last = np.clip((start[lo:hi] + duration[lo:hi] - t0) * grid // span, 0, grid - 1)
        rate = n[lo:hi] / (last - first + 1)
        diff += np.bincount(first, weights=rate, minlength=grid + 1)
        diff -= np.bincount(last + 1, weights=rate, minlength=grid + 1)
    cumulative = np.cumsum(np.cumsum(diff[:grid]))
    targets = cumulative[-1] * np.arange(1, buckets) / buckets
    cells = np.searchsorted(cumulative, targets)
    return np.unique(t0 + (cells + 1) * span // grid).astype(np.int64)


class _TieRuns:
    """Runs of messages of one conversation sharing one created_at, gathered block by block.

    A run may cross a block boundary (blocks may cut a big conversation): the previous block's last
    message is carried over, so the runs found do not depend on where blocks end.
    """

    def __init__(self) -> None:
        self.time: list[np.ndarray] = []
        self.conv: list[np.ndarray] = []
        self.seq: list[np.ndarray] = []
        self.size: list[np.ndarray] = []
        self._tail: tuple[int, int, int] | None = None  # (time, conv, seq) of the last message seen
        self._tail_in_run = False  # the last recorded run ends at that message

    def add(self, time: np.ndarray, conv: np.ndarray, seq: np.ndarray) -> None:
        if not len(time):
            return
        carried = self._tail is not None
        if self._tail is not None:
            t0, c0, s0 = self._tail
            time = np.concatenate([[t0], time])
            conv = np.concatenate([[c0], conv])
            seq = np.concatenate([[s0], seq])
        same = (time[1:] == time[:-1]) & (conv[1:] == conv[:-1])
        edges = np.diff(np.concatenate([[0], same.astype(np.int8), [0]]))
        starts = np.flatnonzero(edges == 1)
        sizes = np.flatnonzero(edges == -1) - starts + 1
        if carried and len(starts) and starts[0] == 0 and self._tail_in_run:
            self.size[-1][-1] += sizes[0] - 1  # the previous block's last run goes on
            starts, sizes = starts[1:], sizes[1:]
        self.time.append(time[starts])
        self.conv.append(conv[starts].astype(np.int32))
        self.seq.append(seq[starts].astype(np.int32))
        self.size.append(sizes.astype(np.int32))
        self._tail = (int(time[-1]), int(conv[-1]), int(seq[-1]))
        self._tail_in_run = bool(len(same)) and bool(same[-1])  # its run was just recorded or extended


BucketReady = Callable[[int, int, int], None]  # (bucket, its first row, its rows): the bucket is complete


class _Spill:
    """Appends skeleton rows to bucket files; counts rows per bucket; announces complete buckets in order."""

    def __init__(self, directory: Path, buckets: int, ready: BucketReady | None) -> None:
        self.directory = directory
        self.counts = np.zeros(buckets, dtype=np.int64)
        self._ready = ready
        self._announced = 0
        self._first_row = 0

    def write(self, bucket: int, rows: np.ndarray) -> None:
        if len(rows):
            with open(self.directory / f"bucket-{bucket:06d}.bin", "ab") as file:
                rows.tofile(file)
            self.counts[bucket] += len(rows)

    def complete(self, below: int) -> None:
        """Buckets ``< below`` will get no more rows: announce those not announced yet."""
        while self._announced < min(below, len(self.counts)):
            rows = int(self.counts[self._announced])
            if self._ready is not None:
                self._ready(self._announced, self._first_row, rows)
            self._first_row += rows
            self._announced += 1


def _blocks(offsets: np.ndarray, tie_size: int) -> list[tuple[int, int]]:
    """Message ranges of about ``_BLOCK_MESSAGES``, cut at a conversation start or a tie-block start."""
    total = int(offsets[-1])
    out: list[tuple[int, int]] = []
    a = 0
    while a < total:
        b = min(a + _BLOCK_MESSAGES, total)
        if b < total:
            conv = int(np.searchsorted(offsets, b, side="right")) - 1
            aligned = int(offsets[conv]) + (b - int(offsets[conv])) // tie_size * tie_size
            b = aligned if aligned > a else min(total, a + tie_size)
        out.append((a, b))
        a = b
    return out


def _message_times(
    rng: np.random.Generator,
    spec: Spec,
    n: np.ndarray,
    start: np.ndarray,
    duration: np.ndarray,
    emit: _Spill,
    edges: np.ndarray | None,
    ties: _TieRuns,
) -> np.ndarray:
    """Draw every message's created_at in (conversation, position) order, block by block, and spill it.

    Times are monotone within a conversation. Returns each conversation's last message time.
    """
    m = spec.messages
    offsets = np.concatenate([[0], np.cumsum(n)])
    total_blocks = int((-(-n // m.tie_size)).sum())
    tied_block = np.empty(total_blocks, dtype=bool)
    for lo in range(0, total_blocks, _TIE_DRAW):
        hi = min(lo + _TIE_DRAW, total_blocks)
        tied_block[lo:hi] = rng.random(hi - lo) < m.tie_share
    updated = np.empty(len(n), dtype=np.int64)
    tie_conv, tie_base = 0, 0  # tie blocks of the conversations before ``tie_conv``
    for block_index, (a, b) in enumerate(_blocks(offsets, m.tie_size)):
        first = int(np.searchsorted(offsets, a, side="right")) - 1
        last = int(np.searchsorted(offsets, b - 1, side="right"))  # conversations first .. last - 1
        tie_base += int((-(-n[tie_conv:first] // m.tie_size)).sum())
        tie_conv = first
        local_ties = -(-n[first:last] // m.tie_size)
        tie_first = tie_base + np.concatenate([[0], np.cumsum(local_ties)[:-1]])  # first tie block per conversation
        ids = np.arange(first, last)
        counts = np.minimum(offsets[first + 1 : last + 1], b) - np.maximum(offsets[first:last], a)
        conv = np.repeat(ids, counts)
        del ids, counts, local_ties
        seq = np.arange(a, b) - offsets[conv]
        jitter = rng.random(b - a)
        tie = seq // m.tie_size
        tied = tied_block[tie_first[conv - first] + tie]
        anchor = np.where(tied, tie * m.tie_size, seq)  # a tied message takes its block's first time
        local = np.arange(b - a) - (seq - anchor)  # blocks start at tie boundaries: local >= 0
        size = n[conv]
        x = (anchor + 0.5 * jitter[local]) / size
        del jitter, tie, tied, anchor, local
        sessions = np.maximum(1, -(-size // m.session_length)).astype(np.float64)
        del size
        x *= sessions
        session = np.floor(x)
        x = (session + BURST * (x - session)) / sessions
        del session, sessions
        times = start[conv] + (x * duration[conv]).astype(np.int64)
        del x
        ends = offsets[first + 1 : last + 1]
        done = ends <= b  # conversations whose last message is in this block
        updated[first:last][done] = times[ends[done] - a - 1]
        ties.add(times, conv, seq)
        rows = np.empty(b - a, dtype=SKELETON_DTYPE)
        rows["time"], rows["conv"], rows["seq"] = times, conv, seq
        del times, conv, seq
        if edges is None:  # conversation order: one bucket per block, rows already in id order
            emit.write(block_index, rows)
            emit.complete(block_index + 1)
        else:
            where = np.searchsorted(edges, rows["time"], side="right")
            by_bucket = np.argsort(where, kind="stable")  # keeps (conversation, position) order per bucket
            rows, where = rows[by_bucket], where[by_bucket]
            del by_bucket
            cuts = np.flatnonzero(np.diff(where)) + 1
            for part, bucket_rows in zip(
                np.concatenate([[0], cuts]).tolist(), np.split(rows, cuts), strict=True
            ):
                emit.write(int(where[part]), bucket_rows)
            if b < int(offsets[-1]):
                # Every message still to draw is no earlier than the start of the conversation it
                # belongs to (conversations go in start order): buckets ending before that are complete.
                nxt = int(np.searchsorted(offsets, b, side="right")) - 1
                emit.complete(int(np.searchsorted(edges, start[nxt], side="right")))
    emit.complete(len(emit.counts))
    return updated


def _tie_picks(
    ties: _TieRuns, order: str, whale_ids: tuple[int, ...], skeleton: Skeleton, conv_offsets: np.ndarray
) -> tuple[TiePick, ...]:
    """Cursors inside tie blocks: one deep inside each of the five largest whales, five spread over the rest."""
    if not ties.time:
        return ()
    time, conv = np.concatenate(ties.time), np.concatenate(ties.conv)
    seq, size = np.concatenate(ties.seq), np.concatenate(ties.size)
    if order == "time":  # load order of the blocks: by (created_at, conversation, position)
        by_load = np.lexsort((seq, conv, time))
        time, conv, seq, size = time[by_load], conv[by_load], seq[by_load], size[by_load]
    conv_ids = conv.astype(np.int64) + 1
    picked: list[int] = []
    for whale in whale_ids[:5]:
        mine = np.flatnonzero(conv_ids == whale)
        if len(mine):
            picked.append(int(mine[len(mine) // 2]))  # a block deep inside the whale
    others = np.flatnonzero(~np.isin(conv_ids, whale_ids))
    picked += [int(i) for i in others[:: max(1, len(others) // 5)][:5]]
    runs = [(int(conv[r]), int(seq[r]) + int(size[r]) // 2, int(time[r]), int(size[r])) for r in picked]
    ids = _message_ids(order, skeleton, conv_offsets, [(c, inside, t) for c, inside, t, _ in runs])
    # ``inside``: neither the first nor the last message of its block.
    return tuple(TiePick(conv=c, time=t, id=i, size=n) for (c, _, t, n), i in zip(runs, ids, strict=True))


def _message_ids(
    order: str, skeleton: Skeleton, conv_offsets: np.ndarray, messages: list[tuple[int, int, int]]
) -> list[int]:
    """Ids of messages given as (conversation, position, created_at): their rank in load order, plus one."""
    if order == "conversation":
        return [int(conv_offsets[c]) + s + 1 for c, s, _ in messages]
    ids = [0] * len(messages)
    for bucket in range(skeleton.buckets):
        todo = [k for k, (_, _, t) in enumerate(messages) if not ids[k]]
        if not todo:
            break
        rows = skeleton.raw(bucket)
        if not len(rows):
            continue
        t, c, s = rows["time"], rows["conv"], rows["seq"]
        low, high = int(t.min()), int(t.max())
        for k in todo:
            conv, seq, time = messages[k]
            if low <= time <= high:  # buckets are disjoint time windows
                before = (t < time) | ((t == time) & ((c < conv) | ((c == conv) & (s < seq))))
                ids[k] = skeleton.offsets[bucket] + int(np.count_nonzero(before)) + 1
    assert all(ids), "a tie cursor's message is in no bucket"
    return ids


def build_plan(
    spec: Spec,
    seed: int,
    order: str = "time",
    scratch: Path | None = None,
    *,
    on_inputs: Callable[[RenderInputs, Path], None] | None = None,
    on_bucket: BucketReady | None = None,
) -> Plan:
    """Draw the skeleton; same (spec, seed, order) -> same data, on any machine with this numpy.

    The message skeleton is spilled under ``scratch`` (a new directory of its own is made there; the
    run directory by default). Close the plan to remove it. While it is drawn, ``on_inputs`` gets what
    rendering needs (and the skeleton's directory) as soon as it exists, and ``on_bucket`` each bucket
    as soon as it is complete, in load order: a COPY can start long before the plan is done.
    """
    if order not in ORDERS:
        raise ConfigError(f"--order {order!r} is not an order; use one of {', '.join(ORDERS)}")
    token = secrets.token_hex(4)
    directory = (scratch or run_root()) / f"{STAGING_PREFIX}skeleton-{token}"
    held = Lease(f"skeleton-{token}", staging=directory).acquire()
    try:
        directory.mkdir()
        plan = _build(spec, seed, order, directory, held, on_inputs, on_bucket)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        held.release()
        raise
    _return_freed_memory()
    return plan


def _return_freed_memory() -> None:
    """Give the drawing's temporaries back to the OS (glibc keeps freed heap otherwise): the process
    that then feeds the COPY for minutes should hold only the plan itself."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the memory is reused by the process instead


def _build(
    spec: Spec,
    seed: int,
    order: str,
    directory: Path,
    held: Lease,
    on_inputs: Callable[[RenderInputs, Path], None] | None,
    on_bucket: BucketReady | None,
) -> Plan:
    """Draw the plan in steps; every step draws from one stream in a fixed order (the order is the data:
    moving a draw changes every row after it). Temporaries are deleted as soon as they are used: at
    ``release`` scale they are the process's peak memory."""
    rng = np.random.default_rng([seed, _PLAN_STREAM])
    n_conv, n_users = spec.conversations.count, spec.users.count
    n, is_whale = _conversation_sizes(rng, spec)
    owner = _owners(rng, n_users, n_conv, spec.users.heavy, spec.users.heavy_share)
    t0, span = to_pg_us(spec.start_datetime), spec.time.days * DAY_US
    start, duration = _conversation_spans(rng, spec, n, is_whale, t0, span)

    by_start = np.argsort(start, kind="stable")  # conversation ids in creation order
    n, owner, start = n[by_start], owner[by_start], start[by_start]
    duration, is_whale = duration[by_start], is_whale[by_start]
    del by_start

    user_created, conv_user = _users(rng, n_users, owner, start, t0, span)
    del owner
    title = _titles(rng, spec.conversations, n_conv)
    system = rng.random(n_conv) < spec.messages.system_share

    total = int(n.sum())
    if order == "time":
        edges: np.ndarray | None = _bucket_edges(start, duration, n, t0, span, -(-total // BUCKET_ROWS))
        buckets = len(edges) + 1 if edges is not None else 1
    else:
        edges, buckets = None, len(_blocks(np.concatenate([[0], np.cumsum(n)]), spec.messages.tie_size))
    if on_inputs is not None:
        on_inputs(RenderInputs(seed, total, spec.messages.tool_share, conv_user, system), directory)
    spill = _Spill(directory, buckets, on_bucket)
    ties = _TieRuns()
    updated = _message_times(rng, spec, n, start, duration, spill, edges, ties)
    del duration
    offsets = tuple(int(x) for x in np.concatenate([[0], np.cumsum(spill.counts)]))
    skeleton = Skeleton(directory, offsets, sort=order == "time")

    whales = _whales_largest_first(n, is_whale)
    picks = _tie_picks(ties, order, whales, skeleton, np.concatenate([[0], np.cumsum(n)]))
    del ties
    return Plan(
        spec=spec, seed=seed, order=order,
        user_created=user_created,
        user_name=rng.integers(0, 1 << 30, n_users).astype(np.int32),
        user_domain=rng.integers(0, 1 << 30, n_users).astype(np.int32),
        conv_user=conv_user,
        conv_created=start, conv_updated=updated, conv_title=title, conv_messages=n.astype(np.int32),
        conv_system=system, whale_ids=whales, skeleton=skeleton, tie_picks=picks, lease=held,
    )


def _conversation_sizes(rng: np.random.Generator, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """Messages per conversation (heavy-tailed, the whales' sizes fixed by the spec) and which are whales."""
    c_spec, w_spec = spec.conversations, spec.whales
    whale_sizes = np.array(spec.whale_sizes(), dtype=np.int64)
    others = _allocate(
        rng, spec.messages.count - int(whale_sizes.sum()), c_spec.count - w_spec.count,
        c_spec.messages_median, c_spec.messages_sigma, c_spec.messages_max,
    )
    whale_pos = rng.choice(c_spec.count, w_spec.count, replace=False)
    is_whale = np.zeros(c_spec.count, dtype=bool)
    is_whale[whale_pos] = True
    n = np.empty(c_spec.count, dtype=np.int64)
    n[whale_pos] = whale_sizes
    n[~is_whale] = others
    return n, is_whale


def _conversation_spans(rng: np.random.Generator, spec: Spec, n: np.ndarray, is_whale: np.ndarray, t0: int,
                        span: int) -> tuple[np.ndarray, np.ndarray]:
    """Each conversation's start and duration (µs): more start late in the period than early (growth);
    longer conversations last longer; whales span a large part of the period."""
    n_conv = len(n)
    start = t0 + (np.sqrt(rng.random(n_conv)) * span).astype(np.int64)
    duration = (np.exp(rng.normal(np.log(1800.0), 1.3, n_conv)) * np.sqrt(n) * US).astype(np.int64)
    duration = np.clip(duration, 60 * US, span // 4)
    duration[is_whale] = (rng.uniform(0.3, 0.9, spec.whales.count) * span).astype(np.int64)
    return np.minimum(start, t0 + span - duration), duration


def _users(rng: np.random.Generator, n_users: int, owner: np.ndarray, start: np.ndarray, t0: int,
           span: int) -> tuple[np.ndarray, np.ndarray]:
    """Users' creation times in creation order, and each conversation's user id (users are numbered in
    creation order). A user joins a while before their first conversation; one without any joins at a
    random time."""
    first_conv = np.full(n_users, t0 + span, dtype=np.int64)
    np.minimum.at(first_conv, owner, start)
    lead = (rng.exponential(20.0, n_users) * DAY_US).astype(np.int64)
    idle = first_conv == t0 + span
    user_created = np.where(idle, t0 + (rng.random(n_users) * span).astype(np.int64), first_conv - lead - US)
    del first_conv, lead, idle
    by_created = np.argsort(user_created, kind="stable")
    user_rank = np.empty(n_users, dtype=np.int64)
    user_rank[by_created] = np.arange(n_users)
    return user_created[by_created], (user_rank[owner] + 1).astype(np.int32)


def _titles(rng: np.random.Generator, c_spec: ConversationsSpec, n_conv: int) -> np.ndarray:
    """Each conversation's title index: -1 untitled, a long title, or a short one, in the spec's shares."""
    draws = rng.random(n_conv)
    return np.where(
        draws < c_spec.untitled_share, -1,
        np.where(
            draws < c_spec.untitled_share + c_spec.long_title_share,
            TITLES + rng.integers(0, LONG_TITLES, n_conv),
            rng.integers(0, TITLES, n_conv),
        ),
    ).astype(np.int32)


def _whales_largest_first(n: np.ndarray, is_whale: np.ndarray) -> tuple[int, ...]:
    """The whales' conversation ids (1-based, creation order), largest first."""
    whale_ids = np.flatnonzero(is_whale)
    return tuple(int(w) for w in whale_ids[np.argsort(-n[whale_ids], kind="stable")] + 1)
