"""What a statement's result costs to send: the buffers read to detoast it, and its bytes.

``EXPLAIN (ANALYZE, BUFFERS)`` runs the plan but never converts the result rows for a client, so a
value stored out of line (TOAST: a message of more than ~2 kB) is never fetched: a history page of
long assistant answers reports 39 buffers while the client's query reads 134. Plan contracts,
buffer budgets, ``assert_plan`` and the benchmarks count what the client receives instead:

* PostgreSQL 17+: ``EXPLAIN (..., SERIALIZE)`` converts every row as the wire protocol would and
  reports the buffers that took and the bytes it produced (``Serialization`` in the JSON output);
* PostgreSQL 15 and 16 (no ``SERIALIZE``): the statement runs once more, wrapped as
  ``WITH r AS (statement) SELECT sum(octet_length(r::text)) FROM r``; forming the whole-row value
  detoasts every column as output conversion does, in the subquery scan that forms it, so the
  wrapper's buffers less the statement's own top node's are the detoasting (on PostgreSQL 18 the
  probe and ``SERIALIZE`` count the same buffers for the same page). The bytes are the text
  form of the rows (what the text protocol carries, without the per-message framing).

``client_explain`` returns the EXPLAIN JSON with those buffers added to the root node's counters, so
every reader of ``Plan.buffers`` (contracts, budgets, reports) gets the client's count unchanged.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

SERIALIZE_VERSION_NUM = 170000
_WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE)
# The probe's own nodes above the statement: the aggregate and the subquery scan that forms the whole-row
# value (where the detoasting happens and is counted).
_WRAPPER_NODES = frozenset({"Aggregate", "Subquery Scan", "CTE Scan"})
Params = Mapping[str, Any] | Sequence[Any] | None


@dataclass(frozen=True)
class Serialization:
    """Buffers touched and bytes produced converting a statement's result rows for the client."""

    shared_hit: int
    shared_read: int
    bytes: int
    method: str  # "serialize" (EXPLAIN SERIALIZE, 17+) | "detoast" (the whole-row probe, 15/16) | "none"

    @property
    def buffers(self) -> int:
        return self.shared_hit + self.shared_read


NONE = Serialization(0, 0, 0, "none")


def has_serialize(conn: psycopg.Connection[Any]) -> bool:
    return conn.info.server_version >= SERIALIZE_VERSION_NUM


def explain_options(conn: psycopg.Connection[Any]) -> str:
    """The EXPLAIN prefix every plan measurement uses: ``SERIALIZE`` where the server has it."""
    serialize = ", SERIALIZE" if has_serialize(conn) else ""
    return f"EXPLAIN (ANALYZE, BUFFERS{serialize}, FORMAT JSON) "


def _document(explain: Any) -> dict[str, Any]:
    doc = explain[0] if isinstance(explain, list) else explain
    if not isinstance(doc, dict):
        raise TypeError(f"not an EXPLAIN (FORMAT JSON) document: {type(doc).__name__}")
    return doc


def from_explain(explain: Any) -> Serialization | None:
    """The ``Serialization`` block of an ``EXPLAIN (..., SERIALIZE, FORMAT JSON)`` result (None without one)."""
    block = _document(explain).get("Serialization")
    if not isinstance(block, Mapping):
        return None
    kilobytes = float(block.get("Output Volume", 0))
    return Serialization(int(block.get("Shared Hit Blocks", 0)), int(block.get("Shared Read Blocks", 0)),
                         math.ceil(kilobytes * 1024), "serialize")


def is_read_only(statement: str) -> bool:
    """A statement the 15/16 probe may run again: no data-modifying keyword anywhere in it."""
    return _WRITES.search(statement) is None


def detoast_probe(conn: psycopg.Connection[Any], statement: str, params: Params) -> Serialization:
    """PostgreSQL 15/16: the buffers and bytes of converting ``statement``'s rows (run twice more, read-only)."""
    cur = psycopg.ClientCursor(conn)
    wrapped = f"WITH cb_client AS ({statement}) SELECT sum(octet_length(cb_client::text)) FROM cb_client"
    row = cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + wrapped, params or None).fetchone()
    assert row is not None
    root = _document(row[0])["Plan"]
    inner = root
    while inner.get("Node Type") in _WRAPPER_NODES and inner.get("Plans"):
        inner = inner["Plans"][0]  # down to the statement's own top node
    hit = int(root.get("Shared Hit Blocks", 0)) - int(inner.get("Shared Hit Blocks", 0))
    read = int(root.get("Shared Read Blocks", 0)) - int(inner.get("Shared Read Blocks", 0))
    total = cur.execute(wrapped, params or None).fetchone()
    size = int(total[0]) if total is not None and total[0] is not None else 0
    return Serialization(max(hit, 0), max(read, 0), size, "detoast")


def client_explain(conn: psycopg.Connection[Any], explain: Any, statement: str, params: Params
                   ) -> tuple[Any, Serialization]:
    """``explain`` (run with ``explain_options``) with the client's conversion buffers added to its root node.

    ``statement`` and ``params`` are the statement as the custom plan ran it (psycopg placeholders):
    on 15/16 the probe runs it again. A data-modifying statement is not run again: its RETURNING rows
    are what it just wrote, counted as they are (``method`` "none").
    """
    serialization = from_explain(explain)
    if serialization is None:
        serialization = detoast_probe(conn, statement, params) if is_read_only(statement) else NONE
    if not serialization.buffers:
        return explain, serialization
    counted = copy.deepcopy(explain)
    root = _document(counted)["Plan"]
    root["Shared Hit Blocks"] = int(root.get("Shared Hit Blocks", 0)) + serialization.shared_hit
    root["Shared Read Blocks"] = int(root.get("Shared Read Blocks", 0)) + serialization.shared_read
    return counted, serialization
