"""The scenario parameters later stages need, read off the plan (the integrity check confirms them)."""

from __future__ import annotations

import numpy as np
from chatbench.loadgen.plan import Plan, from_pg_us
from chatbench.loadgen.result import ConversationRef, SeedParameters, TieCursor, UserRef

SMALL_MAX = 5  # "a handful of messages"
PER_KIND = 10


def _conv_ref(plan: Plan, conv_id: int) -> ConversationRef:
    return ConversationRef(conv_id, int(plan.conv_user[conv_id - 1]), int(plan.conv_messages[conv_id - 1]))


def tie_blocks(plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """(first index, length) of each run of messages of one conversation sharing one created_at."""
    same = (plan.msg_time[1:] == plan.msg_time[:-1]) & (plan.msg_conv[1:] == plan.msg_conv[:-1])
    edges = np.diff(np.concatenate([[0], same.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)  # run of equal pairs starting at pair i = messages i, i+1, ...
    ends = np.flatnonzero(edges == -1)
    return starts, ends - starts + 1


def _tie_cursors(plan: Plan) -> tuple[TieCursor, ...]:
    starts, lengths = tie_blocks(plan)
    if len(starts) == 0:
        return ()
    conv = plan.msg_conv[starts].astype(np.int64) + 1
    picked: list[int] = []
    for whale in plan.whale_ids[:5]:
        mine = np.flatnonzero(conv == whale)
        if len(mine):
            picked.append(int(mine[len(mine) // 2]))  # a block deep inside the whale
    others = np.flatnonzero(~np.isin(conv, plan.whale_ids))
    picked += [int(i) for i in others[:: max(1, len(others) // 5)][:5]]
    cursors = []
    for block in picked:
        inside = int(starts[block] + lengths[block] // 2)  # neither first nor last of the block
        conv_id = int(plan.msg_conv[inside]) + 1
        cursors.append(TieCursor(
            conversation_id=conv_id, user_id=int(plan.conv_user[conv_id - 1]),
            created_at=from_pg_us(int(plan.msg_time[inside])), id=inside + 1, tie_size=int(lengths[block]),
        ))
    return tuple(cursors)


def seed_parameters(plan: Plan) -> SeedParameters:
    n = plan.conv_messages
    # Two of each size from 1 to SMALL_MAX messages (lowest ids first).
    small = np.concatenate([np.flatnonzero(n == size)[:2] for size in range(1, SMALL_MAX + 1)])
    owned = np.bincount(plan.conv_user, minlength=len(plan.user_created) + 1)[1:]
    heavy = np.argsort(-owned, kind="stable")[:PER_KIND]
    light = np.flatnonzero((owned >= 1) & (owned <= 2))[:PER_KIND]
    return SeedParameters(
        whales=tuple(_conv_ref(plan, w) for w in plan.whale_ids),
        small_conversations=tuple(_conv_ref(plan, int(c) + 1) for c in small[:PER_KIND]),
        heavy_users=tuple(UserRef(int(u) + 1, int(owned[u])) for u in heavy),
        light_users=tuple(UserRef(int(u) + 1, int(owned[u])) for u in light),
        tie_cursors=_tie_cursors(plan),
    )
