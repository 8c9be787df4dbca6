"""The index a reviewer reads off an application query: the columns it fixes by equality, then its ORDER BY
(with its directions), then its cursor columns; for a joined table read whole, its join column.

Two stages ask for it: ``proposals`` builds and proves it on a copy when a query lacks it, and the plan
judgement (``appplans.judge_app``) asks whether the table already has it, to tell a missing index from a
planner that chose another path on this data (``index_not_chosen``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chatbench.schema.appqueries import AppQuery, ColumnUse
from chatbench.schema.rolemap import RoleMap
from chatbench.verify.catalog import CatalogFacts, IndexFact


def big_tables(roles: RoleMap) -> frozenset[str]:
    return frozenset({roles.table("messages"), roles.table("conversations")})


def driving_table(query: AppQuery, big: frozenset[str]) -> str | None:
    """The table the query pages through: the one its ORDER BY or cursor names, else the first big table it reads."""
    for use in (*query.shape.order_by, *query.shape.cursor):
        if use.table in big:
            return use.table
    return next((t for t in query.shape.tables if t in big), None)


@dataclass(frozen=True)
class Candidate:
    table: str
    keys: tuple[ColumnUse, ...]

    @property
    def name(self) -> str:
        return "ix_cb_" + "_".join([self.table.lower(), *(k.column.lower() for k in self.keys)])[:57]

    @property
    def columns(self) -> str:
        return ", ".join(identifier(k.column) + (" DESC" if k.direction == "DESC" else "") for k in self.keys)

    def definition(self, concurrently: bool = True) -> str:
        return (f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}{identifier(self.name)} "
                f"ON {identifier(self.table)} ({self.columns})")

    def build_statements(self, leaves: Sequence[str]) -> tuple[str, ...]:
        """How a release builds it without blocking writes: CONCURRENTLY, or for a partitioned table (which
        PostgreSQL cannot index concurrently) the parent's index ON ONLY, each leaf's CONCURRENTLY, attached."""
        if not leaves:
            return (self.definition(),)
        out = [f"CREATE INDEX {identifier(self.name)} ON ONLY {identifier(self.table)} ({self.columns})"]
        for i, leaf in enumerate(leaves, start=1):
            part = identifier(f"{self.name[:55]}_p{i}")
            out.append(f"CREATE INDEX CONCURRENTLY {part} ON {identifier(leaf)} ({self.columns})")
            out.append(f"ALTER INDEX {identifier(self.name)} ATTACH PARTITION {part}")
        return tuple(out)


def identifier(name: str) -> str:
    """A name as SQL writes it: bare when lower-case and plain, else double-quoted (``"chatId"``)."""
    return name if name.islower() and name.replace("_", "").isalnum() else '"' + name.replace('"', '""') + '"'


def candidate(query: AppQuery, defects: Sequence[str], objects: Sequence[str], roles: RoleMap) -> Candidate | None:
    """The index read off the query: equality columns, then ORDER BY, then the cursor (module docstring)."""
    shape = query.shape
    big = big_tables(roles)
    if "join_without_index" in defects:
        table = next((o for o in objects if o in shape.tables and o != driving_table(query, big)), None)
        if table is not None:
            joined = [u for u in shape.columns_of(shape.joins, table)]
            uses = [*shape.columns_of(shape.equality, table), *joined[:1]]
            return Candidate(table, tuple(dict.fromkeys(ColumnUse(table, k.column) for k in uses))) if uses else None
    table = driving_table(query, big)
    if table is None:
        return None
    keys: list[ColumnUse] = []
    for use in (*shape.columns_of(shape.equality, table), *shape.columns_of(shape.order_by, table),
                *shape.columns_of(shape.cursor, table)):
        if use.column not in {k.column for k in keys}:
            keys.append(ColumnUse(table, use.column, use.direction))
    return Candidate(table, tuple(keys)) if keys else None




def existing_index(cand: Candidate, live: CatalogFacts) -> IndexFact | None:
    """A valid index of the table that leads with the candidate's keys, in order and direction."""
    wanted = tuple(k.key() for k in cand.keys)
    return next((i for i in live.indexes_of(cand.table) if i.keys[:len(wanted)] == wanted and i.valid), None)
