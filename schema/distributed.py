"""The chat schema distributed with Citus: where each table's rows live, declared once, in two variants.

Past one server the chat history is sharded by one column per table. Citus refuses a primary key, a
unique constraint or a foreign key between distributed tables that does not include the distribution
column, so a variant is more than a column per table: it names the keys that include it, the foreign
keys that stay within a co-location group (tables whose shards with the same hash range live on the
same node), and the tables that are small and read everywhere (reference tables: a full copy on every
node, so any shard can join them and foreign keys into them are allowed).

- ``by_conversation`` (the default): ``conversations`` by ``id``, ``messages`` by ``conversation_id``,
  co-located; ``users`` a reference table. Every history page (latest, keyset before/after, offset,
  count) names one conversation, so it is a router query (one shard, one round trip to one worker);
  a user's conversation list names no conversation and fans out to every shard.
- ``by_user``: ``conversations`` and ``messages`` by ``user_id``, co-located; ``users`` a reference
  table. The conversation list is a router query; the canonical history queries filter ``messages`` by
  ``conversation_id`` only, so they fan out to every shard unless the application adds the user to
  each of them.

Why ``by_conversation`` is the default: the history pages are the hot path (most reads of a chat
client) and they stay router queries with the canonical queries unchanged; the conversation list is one
query per app open. Its cost is that one whale conversation is one shard's load (the readiness check
reports the hot shard and the skew). The README quotes the measured figures.

``transform_statements`` gives the DDL that turns the canonical single-node schema into a variant (the
fix for every readiness finding the canonical schema gets); ``distribute`` runs it on a Citus
coordinator, over tables that may already hold rows (Citus moves them into the shards).
``seeding_distributed`` runs the same DDL around a seed instead: the empty schema placed before it, the
foreign keys and triggers after it, so the rows go through the coordinator straight into the shards (the
sign-off's way for a variant that keeps a conversation's messages on its shard). The setting
``citus_distribution`` picks the variant (``chatbench.settings.CITUS_DISTRIBUTIONS`` names these).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import psycopg

from chatbench.provision import Server
from chatbench.provision.citus import enable_citus
from chatbench.schema import apply
from chatbench.schema.models import NAMING_CONVENTION, TRIGGERS, metadata
from chatbench.settings import CITUS_DISTRIBUTIONS, default

Placement = Literal["distributed", "reference"]
DEFAULT_VARIANT: str = default("citus_distribution")
SHARD_COUNT = 32
"""Citus's default shard count: a few shards per core of a small cluster, room to rebalance onto more nodes."""


@dataclass(frozen=True)
class TablePlan:
    """Where one table's rows live and the keys that must include its distribution column."""

    table: str
    placement: Placement
    column: str | None = None  # the distribution column (distributed tables only)
    colocate_with: str | None = None  # the group's first table; None: starts a group (or a reference table)
    primary_key: tuple[str, ...] = ()  # the key as distributed (includes ``column``)


@dataclass(frozen=True)
class ForeignKeyPlan:
    """A foreign key as the distributed schema has it (between co-located columns or into a reference table)."""

    name: str
    table: str
    columns: tuple[str, ...]
    referred_table: str
    referred_columns: tuple[str, ...]
    on_delete: str = "CASCADE"


@dataclass(frozen=True)
class DistributionVariant:
    """One way to distribute the chat schema."""

    name: str
    doc: str
    tables: tuple[TablePlan, ...]
    foreign_keys: tuple[ForeignKeyPlan, ...]

    def plan(self, table: str) -> TablePlan | None:
        return next((t for t in self.tables if t.table == table), None)

    def distributed(self) -> tuple[TablePlan, ...]:
        return tuple(t for t in self.tables if t.placement == "distributed")

    @property
    def conversations_colocated(self) -> bool:
        """A conversation's messages on its own shard (messages by ``conversation_id``, co-located with
        conversations by ``id``): joins on the conversation key, such as the seed's integrity check, run shard by
        shard; otherwise Citus refuses them (an outer join across co-location it cannot repartition)."""
        messages, conversations = self.plan("messages"), self.plan("conversations")
        return (messages is not None and conversations is not None and messages.column == "conversation_id"
                and conversations.column == "id" and self.group("messages") == self.group("conversations"))

    def group(self, table: str) -> str | None:
        """The co-location group of a distributed table (named by its first table); None otherwise."""
        plan = self.plan(table)
        if plan is None or plan.placement != "distributed":
            return None
        return plan.colocate_with or plan.table

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tables": [
                {"table": t.table, "placement": t.placement, "column": t.column, "colocate_with": t.colocate_with,
                 "primary_key": list(t.primary_key)} for t in self.tables
            ],
            "foreign_keys": [
                {"name": f.name, "table": f.table, "columns": list(f.columns), "referred_table": f.referred_table,
                 "referred_columns": list(f.referred_columns)} for f in self.foreign_keys
            ],
        }


def _fk_name(table: str, columns: Iterable[str], referred: str) -> str:
    return NAMING_CONVENTION["fk"] % {"table_name": table, "column_0_N_name": "_".join(columns),
                                      "referred_table_name": referred}


BY_CONVERSATION = DistributionVariant(
    name="by_conversation",
    doc="conversations by id, messages by conversation_id (co-located), users a reference table",
    tables=(
        TablePlan("users", "reference", primary_key=("id",)),
        TablePlan("conversations", "distributed", "id", primary_key=("id",)),
        TablePlan("messages", "distributed", "conversation_id", colocate_with="conversations",
                  primary_key=("conversation_id", "id")),
    ),
    foreign_keys=(
        ForeignKeyPlan(_fk_name("conversations", ["user_id"], "users"), "conversations", ("user_id",), "users",
                       ("id",)),
        ForeignKeyPlan(_fk_name("messages", ["conversation_id"], "conversations"), "messages", ("conversation_id",),
                       "conversations", ("id",)),
        ForeignKeyPlan(_fk_name("messages", ["user_id"], "users"), "messages", ("user_id",), "users", ("id",)),
    ),
)

BY_USER = DistributionVariant(
    name="by_user",
    doc="conversations and messages by user_id (co-located), users a reference table",
    tables=(
        TablePlan("users", "reference", primary_key=("id",)),
        TablePlan("conversations", "distributed", "user_id", primary_key=("user_id", "id")),
        TablePlan("messages", "distributed", "user_id", colocate_with="conversations", primary_key=("user_id", "id")),
    ),
    foreign_keys=(
        ForeignKeyPlan(_fk_name("conversations", ["user_id"], "users"), "conversations", ("user_id",), "users",
                       ("id",)),
        ForeignKeyPlan(_fk_name("messages", ["user_id", "conversation_id"], "conversations"), "messages",
                       ("user_id", "conversation_id"), "conversations", ("user_id", "id")),
        ForeignKeyPlan(_fk_name("messages", ["user_id"], "users"), "messages", ("user_id",), "users", ("id",)),
    ),
)

VARIANTS: dict[str, DistributionVariant] = {v.name: v for v in (BY_CONVERSATION, BY_USER)}
if tuple(VARIANTS) != CITUS_DISTRIBUTIONS:  # the setting's choices (the base layer cannot import this module)
    raise RuntimeError(f"chatbench.settings.CITUS_DISTRIBUTIONS {CITUS_DISTRIBUTIONS} must name the variants "
                       f"declared here, {tuple(VARIANTS)}")


def variant(name: str | None = None) -> DistributionVariant:
    """A variant by name (default ``DEFAULT_VARIANT``); an unknown name is a ``KeyError`` naming the known ones."""
    try:
        return VARIANTS[name or DEFAULT_VARIANT]
    except KeyError:
        raise KeyError(f"no distribution variant {name!r}; use one of {', '.join(VARIANTS)}") from None


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _canonical_primary_key(table: str) -> tuple[str, tuple[str, ...]]:
    pk = metadata.tables[table].primary_key
    return str(pk.name), tuple(c.name for c in pk.columns)


def _canonical_foreign_keys(table: str) -> list[str]:
    return sorted(str(fk.name) for fk in metadata.tables[table].foreign_key_constraints)


def prepare_statements(chosen: DistributionVariant) -> list[str]:
    """Before distributing: drop the canonical foreign keys and re-key every table whose primary key lacks
    its distribution column (Citus refuses to distribute it otherwise)."""
    statements: list[str] = [
        f"DROP TRIGGER IF EXISTS {_q(name)} ON {_q(table)}" for name, (table, _create) in sorted(TRIGGERS.items())
    ]  # re-created after: moving the rows into the shards would fire them row by row across the cluster
    for plan in chosen.tables:
        for fk in _canonical_foreign_keys(plan.table):
            statements.append(f"ALTER TABLE {_q(plan.table)} DROP CONSTRAINT IF EXISTS {_q(fk)}")
    for plan in chosen.tables:
        name, columns = _canonical_primary_key(plan.table)
        if plan.primary_key and columns != plan.primary_key:
            statements.append(
                f"ALTER TABLE {_q(plan.table)} DROP CONSTRAINT IF EXISTS {_q(name)}, ADD CONSTRAINT {_q(name)} "
                f"PRIMARY KEY ({', '.join(map(_q, plan.primary_key))})"
            )
    return statements


def placement_statements(chosen: DistributionVariant) -> list[str]:
    """The Citus calls that place every table: reference tables first, then each group's first table."""
    statements = [f"SELECT create_reference_table('{t.table}')" for t in chosen.tables if t.placement == "reference"]
    ordered = sorted(chosen.distributed(), key=lambda t: t.colocate_with is not None)
    for plan in ordered:
        # A co-located table takes its group's shard count (Citus refuses both options at once).
        where = f"colocate_with => '{plan.colocate_with}'" if plan.colocate_with else f"shard_count => {SHARD_COUNT}"
        statements.append(f"SELECT create_distributed_table('{plan.table}', '{plan.column}', {where})")
    return statements


def foreign_key_statements(chosen: DistributionVariant) -> list[str]:
    return [
        f"ALTER TABLE {_q(fk.table)} ADD CONSTRAINT {_q(fk.name)} FOREIGN KEY ({', '.join(map(_q, fk.columns))}) "
        f"REFERENCES {_q(fk.referred_table)} ({', '.join(map(_q, fk.referred_columns))}) ON DELETE {fk.on_delete}"
        for fk in chosen.foreign_keys
    ]


def trigger_statements() -> list[str]:
    return [create for _name, (_table, create) in sorted(TRIGGERS.items())]


def transform_statements(chosen: DistributionVariant) -> list[str]:
    """Canonical single-node schema -> ``chosen``, in order (what ``distribute`` runs)."""
    return [*prepare_statements(chosen), *placement_statements(chosen), *foreign_key_statements(chosen),
            *trigger_statements()]


SESSION_SETTINGS = ("SET citus.enable_unsafe_triggers = on",)
"""The canonical triggers (``updated_at`` maintenance) run on the shards: Citus asks for this to distribute
a table with triggers. The trigger's UPDATE names the conversation, so under ``by_conversation`` it stays
in the co-location group of the message that fired it."""


def distribute(server: Server, chosen: DistributionVariant) -> None:
    """The distribution step, after the seed: enable Citus in the server's database (the coordinator of
    ``--backend citus``, or a ``dsn`` coordinator), turn the canonical schema (empty or seeded) into
    ``chosen``, then drop the coordinator's local copy of the rows that moved into the shards and
    refresh the statistics."""
    server.require_destructive("distribute the tables")
    enable_citus(server)
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        for statement in SESSION_SETTINGS:
            conn.execute(statement)
        for statement in transform_statements(chosen):
            conn.execute(statement)  # (built from declared names only)
        for plan in chosen.tables:
            conn.execute("SELECT truncate_local_data_after_distributing_table(%s::regclass)", (plan.table,))
        for plan in chosen.tables:
            conn.execute(f"VACUUM (ANALYZE) {_q(plan.table)}")  # index-only scans on shards


@contextlib.contextmanager
def seeding_distributed(server: Server, chosen: DistributionVariant) -> Iterator[None]:
    """The distribution step before the seed: the empty canonical schema (built here, in a database the caller
    cleared of a previous one: ``loadgen.ddl.drop_schema``) re-keyed and placed as
    ``chosen``, for the seeder to fill the distributed tables where they stand (``loadgen.seed(...,
    prebuilt=True)``: it takes the schema apart around the COPY and puts it back by the catalog's definitions,
    which Citus runs on every shard); when the block ends, the variant's foreign keys (validated on the shards)
    and the triggers.

    Keys and triggers wait for the rows because Citus would check each row's foreign keys on its shard (the
    seeder's ``session_replication_role = replica`` stays on the coordinator), would refuse the seeder's
    DDL on the reference table after its parallel DDL on a table referring to it in one transaction, and
    re-creates a trigger on a distributed table only with ``citus.enable_unsafe_triggers`` in the session.
    Measured: README, "Citus" (``python -m chatbench.benchmarks.citus``)."""
    server.require_destructive("distribute the tables")
    apply(server.url)  # the schema the seeder fills where it stands (``prebuilt``)
    enable_citus(server)
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        for statement in (*prepare_statements(chosen), *placement_statements(chosen)):
            conn.execute(statement)  # (built from declared names only)
    yield
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        for statement in (*SESSION_SETTINGS, *foreign_key_statements(chosen), *trigger_statements()):
            conn.execute(statement)


def cluster_details(server: Server) -> dict[str, str]:
    """What a report records about the cluster behind ``server``'s (distributed) database: Citus's version and
    its active workers, as that database has them (the same for ``--backend citus`` and a ``dsn`` coordinator)."""
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'citus'").fetchone()
        workers = conn.execute("SELECT node_name, node_port FROM citus_get_active_worker_nodes() ORDER BY 1, 2"
                               ).fetchall()
    return {"citus": str(version[0]) if version else "", "workers": str(len(workers)),
            "worker_nodes": ",".join(f"{host}:{port}" for host, port in workers)}
