"""The history's skeleton, drawn once with numpy from (spec, seed, order): who, when, how many.

The plan fixes every row's key facts: users and their creation times, conversations (owner, size,
start, title, last activity) and, for every message, its conversation, its position in it and its
created_at. Message ids are assigned in load order: in ``time`` order (the default, as a live product
writes them) ids increase with created_at across conversations; in ``conversation`` order each
conversation's messages are contiguous. Either way, within a conversation, ordering by
``(created_at, id)`` equals ordering by ``id``.

Message times follow a monotone curve per conversation: sessions of ``session_length`` messages
burst within a short window, then a long gap; jitter keeps times increasing; in ``tie_share`` of
blocks of ``tie_size`` messages all messages take the block's first created_at (ties). The plan
costs about 16 bytes per message; chunks (``chunk_slices``) are then rendered independently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from chatbench.loadgen.pools import LONG_TITLES, TITLES
from chatbench.loadgen.spec import Spec

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
US = 1_000_000
DAY_US = 86_400 * US
ORDERS = ("time", "conversation")
BURST = 0.15  # share of a session's slot in which its messages arrive
_PLAN_STREAM = 0x504C414E  # "PLAN"
_BLOCK_MESSAGES = 2_000_000  # messages per vectorised block when drawing times (bounds temporaries)


def to_pg_us(value: datetime) -> int:
    """Microseconds since 2000-01-01 UTC: the binary timestamptz representation."""
    delta = value - PG_EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def from_pg_us(value: int) -> datetime:
    from datetime import timedelta

    return PG_EPOCH + timedelta(microseconds=int(value))


@dataclass(frozen=True, eq=False)
class Plan:
    """Arrays indexed by id - 1 (users, conversations) or by message id - 1 (messages)."""

    spec: Spec
    seed: int
    order: str
    user_created: np.ndarray  # int64 µs since 2000-01-01
    user_name: np.ndarray  # int32 index into Pools.names
    user_domain: np.ndarray  # int32 index into Pools.email_domains
    conv_user: np.ndarray  # int64 user id
    conv_created: np.ndarray  # int64 µs
    conv_updated: np.ndarray  # int64 µs: the conversation's last message
    conv_title: np.ndarray  # int32 index into Pools.title_fields, -1 = NULL
    conv_messages: np.ndarray  # int64
    conv_system: np.ndarray  # bool: opens with a system message
    msg_conv: np.ndarray  # int32 conversation id - 1
    msg_seq: np.ndarray  # int32 position in the conversation
    msg_time: np.ndarray  # int64 µs
    whale_ids: tuple[int, ...]  # conversation ids, largest first

    @property
    def counts(self) -> dict[str, int]:
        return {
            "users": len(self.user_created),
            "conversations": len(self.conv_user),
            "messages": len(self.msg_conv),
        }


def chunk_slices(total: int, chunk_rows: int) -> list[tuple[int, int]]:
    """Deterministic message chunks (row ranges); in time order each one is a time slice."""
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
        open_idx = np.flatnonzero(room)
        if remaining < len(open_idx):
            # Fewer messages left than open conversations: one more each for the heaviest ones.
            heaviest = open_idx[np.argsort(-weights[open_idx], kind="stable")[:remaining]]
            alloc[heaviest] += 1
            break
        share = weights[room] / weights[room].sum() * remaining
        add = np.minimum(np.floor(share).astype(np.int64), cap - alloc[room])
        alloc[room] += add
        remaining -= int(add.sum())
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


def _message_times(
    rng: np.random.Generator, spec: Spec, n: np.ndarray, start: np.ndarray, duration: np.ndarray
) -> np.ndarray:
    """created_at of every message in (conversation, position) order; monotone within a conversation."""
    m = spec.messages
    total = int(n.sum())
    offsets = np.concatenate([[0], np.cumsum(n)])
    tie_blocks = -(-n // m.tie_size)
    tie_offsets = np.concatenate([[0], np.cumsum(tie_blocks)])
    tied_block = rng.random(int(tie_offsets[-1])) < m.tie_share
    sessions = np.maximum(1, -(-n // m.session_length)).astype(np.float64)
    times = np.empty(total, dtype=np.int64)
    first = 0
    while first < len(n):
        last = int(np.searchsorted(offsets, offsets[first] + _BLOCK_MESSAGES, side="right")) - 1
        last = max(last, first + 1)
        a, b = int(offsets[first]), int(offsets[last])
        conv = np.repeat(np.arange(first, last), n[first:last])
        seq = np.arange(a, b) - offsets[conv]
        jitter = rng.random(b - a)
        block = seq // m.tie_size
        tied = tied_block[tie_offsets[conv] + block]
        anchor = np.where(tied, block * m.tie_size, seq)  # a tied message takes its block's first time
        local = np.arange(b - a) - (seq - anchor)
        x = (anchor + 0.5 * jitter[local]) / n[conv]
        xk = x * sessions[conv]
        session = np.floor(xk)
        f = (session + BURST * (xk - session)) / sessions[conv]
        times[a:b] = start[conv] + (f * duration[conv]).astype(np.int64)
        first = last
    return times


def build_plan(spec: Spec, seed: int, order: str = "time") -> Plan:
    """Draw the skeleton; same (spec, seed, order) -> same arrays, on any machine with this numpy."""
    if order not in ORDERS:
        from chatbench.errors import ConfigError

        raise ConfigError(f"--order {order!r} is not an order; use one of {', '.join(ORDERS)}")
    rng = np.random.default_rng([seed, _PLAN_STREAM])
    c_spec, w_spec = spec.conversations, spec.whales
    n_conv, n_users = c_spec.count, spec.users.count
    whale_sizes = np.array(spec.whale_sizes(), dtype=np.int64)
    others = _allocate(
        rng, spec.messages.count - int(whale_sizes.sum()), n_conv - w_spec.count,
        c_spec.messages_median, c_spec.messages_sigma, c_spec.messages_max,
    )
    whale_pos = rng.choice(n_conv, w_spec.count, replace=False)
    is_whale = np.zeros(n_conv, dtype=bool)
    is_whale[whale_pos] = True
    n = np.empty(n_conv, dtype=np.int64)
    n[whale_pos] = whale_sizes
    n[~is_whale] = others
    owner = _owners(rng, n_users, n_conv, spec.users.heavy, spec.users.heavy_share)

    t0 = to_pg_us(spec.start_datetime)
    span = spec.time.days * DAY_US
    # Growth: more conversations start late in the period than early.
    start = t0 + (np.sqrt(rng.random(n_conv)) * span).astype(np.int64)
    duration = (np.exp(rng.normal(np.log(1800.0), 1.3, n_conv)) * np.sqrt(n) * US).astype(np.int64)
    duration = np.clip(duration, 60 * US, span // 4)
    duration[is_whale] = (rng.uniform(0.3, 0.9, w_spec.count) * span).astype(np.int64)
    start = np.minimum(start, t0 + span - duration)

    by_start = np.argsort(start, kind="stable")  # conversation ids in creation order
    n, owner, start = n[by_start], owner[by_start], start[by_start]
    duration, is_whale = duration[by_start], is_whale[by_start]

    first_conv = np.full(n_users, t0 + span, dtype=np.int64)
    np.minimum.at(first_conv, owner, start)
    lead = (rng.exponential(20.0, n_users) * DAY_US).astype(np.int64)
    idle = first_conv == t0 + span
    user_created = np.where(idle, t0 + (rng.random(n_users) * span).astype(np.int64), first_conv - lead - US)
    by_created = np.argsort(user_created, kind="stable")
    user_rank = np.empty(n_users, dtype=np.int64)
    user_rank[by_created] = np.arange(n_users)

    titles = rng.random(n_conv)
    title = np.where(
        titles < c_spec.untitled_share, -1,
        np.where(
            titles < c_spec.untitled_share + c_spec.long_title_share,
            TITLES + rng.integers(0, LONG_TITLES, n_conv),
            rng.integers(0, TITLES, n_conv),
        ),
    ).astype(np.int32)
    system = rng.random(n_conv) < spec.messages.system_share

    times = _message_times(rng, spec, n, start, duration)
    offsets = np.concatenate([[0], np.cumsum(n)])
    updated = times[offsets[1:] - 1]
    msg_conv = np.repeat(np.arange(n_conv, dtype=np.int32), n)
    msg_seq = (np.arange(len(times), dtype=np.int64) - np.repeat(offsets[:-1], n)).astype(np.int32)
    if order == "time":
        perm = np.argsort(times, kind="stable")  # stable: ties keep (conversation, position) order
        msg_conv, msg_seq, times = msg_conv[perm], msg_seq[perm], times[perm]
        del perm

    whale_ids = np.flatnonzero(is_whale)
    whale_ids = whale_ids[np.argsort(-n[whale_ids], kind="stable")] + 1
    return Plan(
        spec=spec, seed=seed, order=order,
        user_created=user_created[by_created],
        user_name=rng.integers(0, 1 << 30, n_users).astype(np.int32),
        user_domain=rng.integers(0, 1 << 30, n_users).astype(np.int32),
        conv_user=user_rank[owner] + 1,
        conv_created=start, conv_updated=updated, conv_title=title, conv_messages=n, conv_system=system,
        msg_conv=msg_conv, msg_seq=msg_seq, msg_time=times,
        whale_ids=tuple(int(w) for w in whale_ids),
    )
