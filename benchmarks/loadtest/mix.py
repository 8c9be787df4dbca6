"""The operation mix of a load run: which canonical query, from which scenarios' parameters, how often.

A chat is read-heavy but never read-only: opening conversations and the sidebar dominate, scrolling
back is less frequent, and every exchange appends messages (a user message and the reply).
Parameter pools are built once in the parent from the seeded data (the benchmark scenarios'
parameter sets) and shipped to the clients: plain, picklable dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from chatbench.benchmarks import scenarios as sc
from chatbench.benchmarks.session import CITUS_REFUSALS
from chatbench.errors import ConfigError
from chatbench.loadgen.result import SeedParameters
from chatbench.schema.queries import QUERIES_BY_NAME
from chatbench.verify.citus import is_citus


@dataclass(frozen=True)
class Operation:
    name: str
    query: str  # canonical query name
    scenarios: tuple[str, ...]  # benchmark scenarios whose parameter sets form the pool


OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    Operation("latest_page", "latest_messages", ("latest_page",)),
    Operation("scroll_back", "messages_before", ("keyset_page_1", "keyset_page_5", "keyset_page_20",
                                                 "keyset_page_last")),
    Operation("sync_newer", "messages_after", ("newer_than",)),
    Operation("message_count", "count_messages", ("message_count",)),
    Operation("sidebar_first", "list_conversations_first", ("conversation_list_first",)),
    Operation("sidebar_next", "list_conversations_next", ("conversation_list_next",)),
    Operation("append_message", "append_message", ("append_message",)),
)}

DEFAULT_WEIGHTS: dict[str, float] = {
    "latest_page": 30, "scroll_back": 20, "sync_newer": 5, "message_count": 5,
    "sidebar_first": 15, "sidebar_next": 5, "append_message": 20,
}


def parse_weights(text: str | None) -> dict[str, float]:
    """``"latest_page=30,append_message=20"`` -> weights; unnamed operations get weight 0."""
    if text is None:
        return dict(DEFAULT_WEIGHTS)
    weights: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or name not in OPERATIONS:
            raise ConfigError(f"--mix {item!r}: expected NAME=WEIGHT with NAME one of {', '.join(OPERATIONS)}")
        try:
            weights[name] = float(value)
        except ValueError:
            raise ConfigError(f"--mix {item!r}: weight {value!r} is not a number") from None
        if weights[name] < 0:
            raise ConfigError(f"--mix {item!r}: weight must be >= 0")
    if not any(weights.values()):
        raise ConfigError("--mix: at least one operation needs a weight > 0")
    return weights


def not_measurable(conninfo: str, operations: Mapping[str, str],
                   pools: Mapping[str, list[dict[str, Any]]]) -> dict[str, str]:
    """The operations a Citus cluster refuses as the clients send them (bound parameters, prepared), each with
    Citus's reason: they cannot be measured there, and left in the mix they would count as the application's
    errors on every try. Citus cannot plan the canonical ``append_message`` (``INSERT ... SELECT`` with bound
    parameters; the readiness check reports it with its rewrite). Each is tried once with its first parameter
    set, in a transaction rolled back; on any other server nothing is tried (its errors are the load's)."""
    refused: dict[str, str] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if not is_citus(conn):
            return refused
        for name, query in operations.items():
            try:
                with conn.transaction(force_rollback=True):
                    conn.execute(QUERIES_BY_NAME[query].sql(), pools[name][0], prepare=True)
            except CITUS_REFUSALS as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                refused[name] = f"not measurable on this cluster: {first}"
    return refused


def parameter_pools(conn: psycopg.Connection[TupleRow], seed: SeedParameters,
                    weights: Mapping[str, float]) -> dict[str, list[dict[str, Any]]]:
    """Parameter sets per weighted operation; an operation without any instance in the data is an error."""
    pools: dict[str, list[dict[str, Any]]] = {}
    for name, weight in weights.items():
        if weight <= 0:
            continue
        pool: list[dict[str, Any]] = []
        for scenario in OPERATIONS[name].scenarios:
            pool += sc.build_params(sc.SCENARIOS_BY_NAME[scenario], conn, seed)
        if not pool:
            raise ConfigError(f"--mix {name}: the seeded data has no instance of it; give it weight 0")
        pools[name] = pool
    return pools
