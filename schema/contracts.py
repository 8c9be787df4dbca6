"""Plan contracts of the canonical read queries, as data, next to the queries they judge.

A contract states *properties* that hold whatever the physical order or the statistics sample, so
the same database gives the same verdict run after run:

* ``access``: each listed relation is read through an index whose **leading column** is the given
  one (any index name, any scan type: Index Scan, Index Only Scan, or Bitmap Heap Scan over such an
  index); a Seq Scan or an index with another leading column breaks it;
* ``no_seq_scan``: these relations are never Seq Scanned;
* ``max_sort_rows``: a Sort may take at most this many input rows of a big table (the planner may
  legitimately prefer Bitmap Heap Scan + top-N sort for a few dozen rows, even with the right index;
  sorting a whale conversation means the index no longer delivers the order). The deterministic
  guard of the order is ``IndexAccess.order_by``; this bound catches what slips past it;
* ``buffer_budgets``: shared buffers (hit + read) the whole statement may touch, per scenario kind;
  a page of 50 messages written in time order touches about one heap page per row, plus a few index
  and ``conversations`` pages;
* ``growth``: ``flat`` for keyset pages (buffers must not grow with depth: a failure), ``grows`` for the
  OFFSET contrast (expected to grow: measured and reported, never failed; ``contrast=True`` also turns
  the OFFSET query's other breaches into info findings).

Scenario kinds (see ``chatbench.verify.scenarios``): ``page`` (a page of messages: latest, keyset at a
depth, a cursor inside a tie block), ``small_page`` (the latest page of a tiny conversation),
``count`` (count of a whale conversation), ``list`` (a user's conversation list page).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

PAGE_SIZE = 50
BIG_TABLES: frozenset[str] = frozenset({"messages", "conversations"})


@dataclass(frozen=True)
class IndexAccess:
    """``relation`` must be read through an index whose first key column is ``leading_column``.

    ``order_by`` (the query's ORDER BY keys, e.g. ``("updated_at DESC", "id DESC")``) additionally
    requires that index's next key columns to deliver that order (forwards or backwards): then a
    plan may still choose a Bitmap Heap Scan + top-N sort for a handful of rows, but an index that
    can never deliver the order (``user_id`` alone) is caught whatever the statistics say.
    """

    relation: str
    leading_column: str
    order_by: tuple[str, ...] = ()
    # Other leading columns that serve the access just as well (see the ownership check below).
    alternatives: tuple[str, ...] = ()

    @property
    def leading_columns(self) -> tuple[str, ...]:
        return (self.leading_column, *self.alternatives)

    def describe(self) -> str:
        keys = (self.leading_column, *self.order_by)
        text = f"{self.relation} read via an index on ({', '.join(keys)}{', ...' if not self.order_by else ''})"
        return text + "".join(f" or ({alt}, ...)" for alt in self.alternatives)


@dataclass(frozen=True)
class PlanContract:
    query: str
    access: tuple[IndexAccess, ...]
    buffer_budgets: Mapping[str, int]
    no_seq_scan: frozenset[str] = BIG_TABLES
    max_sort_rows: int | None = 500
    growth: Literal["flat", "grows"] | None = None
    contrast: bool = False
    doc: str = ""

    def budget(self, scenario_kind: str) -> int | None:
        return self.buffer_budgets.get(scenario_kind)


# The ownership check (EXISTS conversations WHERE id = :conversation_id AND user_id = :user_id) is
# served by the primary key or, equally well and chosen by some statistics samples for the generic
# plan, by an Index Only Scan of the user's range of (user_id, updated_at, id): both are accepted.
_OWNERSHIP = IndexAccess("conversations", "id", alternatives=("user_id",))
_MESSAGES_ACCESS = (IndexAccess("messages", "conversation_id", ("created_at", "id")), _OWNERSHIP)
_MESSAGES_COUNT_ACCESS = (IndexAccess("messages", "conversation_id"), _OWNERSHIP)
_LIST_ACCESS = (IndexAccess("conversations", "user_id", ("updated_at DESC", "id DESC")),)
_PAGE_BUDGETS = MappingProxyType({"page": 200, "small_page": 40})
_LIST_BUDGETS = MappingProxyType({"list": 120})


def _contracts(*items: PlanContract) -> Mapping[str, PlanContract]:
    return MappingProxyType({c.query: c for c in items})


CONTRACTS: Mapping[str, PlanContract] = _contracts(
    PlanContract(
        "list_conversations_first",
        _LIST_ACCESS,
        _LIST_BUDGETS,
        doc="user_id leads the index; (updated_at DESC, id DESC) delivers the order, so no Sort of a heavy user's list",
    ),
    PlanContract(
        "list_conversations_next",
        _LIST_ACCESS,
        _LIST_BUDGETS,
        doc="the keyset cursor continues inside the user's range of the same index",
    ),
    PlanContract(
        "latest_messages",
        _MESSAGES_ACCESS,
        _PAGE_BUDGETS,
        doc="a backward scan of the conversation's range of (conversation_id, created_at, id), stopping at LIMIT",
    ),
    PlanContract(
        "messages_before",
        _MESSAGES_ACCESS,
        _PAGE_BUDGETS,
        growth="flat",
        doc="the keyset page costs the same at any depth: the cursor is an index bound, not rows skipped",
    ),
    PlanContract(
        "messages_after",
        _MESSAGES_ACCESS,
        _PAGE_BUDGETS,
        doc="sync after reconnect: a forward scan from the cursor",
    ),
    PlanContract(
        "messages_offset",
        _MESSAGES_ACCESS,
        _PAGE_BUDGETS,
        growth="grows",
        contrast=True,
        doc="the contrast: OFFSET reads and discards every skipped row, so its cost grows with depth",
    ),
    PlanContract(
        "count_messages",
        _MESSAGES_COUNT_ACCESS,
        MappingProxyType({}),
        max_sort_rows=None,
        doc="counts the conversation's index range; its cost is proportional to the conversation, no budget",
    ),
)
