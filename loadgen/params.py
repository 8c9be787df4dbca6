"""The scenario parameters later stages need, read off the plan (the integrity check confirms them)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from chatbench.loadgen.fields import KeyCodec
from chatbench.loadgen.plan import Plan, from_pg_us
from chatbench.loadgen.result import ConversationRef, SeedParameters, TieCursor, UserRef

SMALL_MAX = 5  # "a handful of messages"
PER_KIND = 10


def _conv_ref(plan: Plan, conv_id: int) -> ConversationRef:
    return ConversationRef(conv_id, int(plan.conv_user[conv_id - 1]), int(plan.conv_messages[conv_id - 1]))


def _tie_cursors(plan: Plan) -> tuple[TieCursor, ...]:
    return tuple(
        TieCursor(conversation_id=p.conv + 1, user_id=int(plan.conv_user[p.conv]), created_at=from_pg_us(p.time),
                  id=p.id, tie_size=p.size)
        for p in plan.tie_picks
    )


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


def keyed(params: SeedParameters, users: KeyCodec, conversations: KeyCodec, messages: KeyCodec) -> SeedParameters:
    """The parameters with each row number spelled as its table's key (unchanged for bigint keys)."""

    def conv(ref: ConversationRef) -> ConversationRef:
        return replace(ref, conversation_id=conversations.value(int(ref.conversation_id)),
                       user_id=users.value(int(ref.user_id)))

    return SeedParameters(
        whales=tuple(map(conv, params.whales)),
        small_conversations=tuple(map(conv, params.small_conversations)),
        heavy_users=tuple(replace(u, user_id=users.value(int(u.user_id))) for u in params.heavy_users),
        light_users=tuple(replace(u, user_id=users.value(int(u.user_id))) for u in params.light_users),
        tie_cursors=tuple(replace(t, conversation_id=conversations.value(int(t.conversation_id)),
                                  user_id=users.value(int(t.user_id)), id=messages.value(int(t.id)))
                          for t in params.tie_cursors),
    )
