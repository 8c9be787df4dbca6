"""Drift of the roles the map renames (``[tool.chatbench.map]``), judged by meaning in contract mode.

An application's schema plays the roles under its own names (``messages`` is ``"Message_v2"``, its
conversation key ``"chatId"``). Each renamed role is paired with its canonical table through the map, and
each canonical contract is looked up under the application's names; what the application lacks is a
finding named in the role's words and the application's (``messages ("Message_v2")``,
``messages.created_at ("Message_v2"."createdAt")``) that says what is lost:

* a role column the application does not have: the owner of a message (``messages.user_id``:
  ``no_owner_column``), a conversation's last activity (``conversations.updated_at``: ``no_updated_at``),
  another column (``missing_role_column``);
* a time column without time zone (``timestamp_without_time_zone``), or a key, time or content column of
  another kind (``column_type``);
* a foreign key between roles that is missing (``missing_foreign_key``), deletes otherwise than the
  canonical cascade (``no_cascade``) or was never validated (``not_validated``);
* a canonical index of a role that no index of the application's table serves (``missing_index``), and
  an index of the application's that serves none (``extra_index``, info: every write maintains it).

Severity. The canonical queries are not run on a renamed role (``mapped.py``): what they alone would need
cannot fail the verdict. What the application's own queries need is judged where they run, on the same
database (``queries/*``): a history read without its index fails its plan contract, a cursor without a
tie-breaker its page walk, a ``DELETE`` of a chat that still has messages its foreign key. So a canonical
contract the application lacks is a ``warning`` when the history behaves otherwise without it (no owner
column, no ``updated_at``, no cascade, a time without time zone, a missing index), ``info`` when nothing
but a canonical query reads it (a user's ``display_name``). It stays an ``error`` where the role itself is
gone or a guarantee no query can make up for is given up, as in every mode: a role's table, or a column
that makes it the role (``STRUCTURAL``: its key, the key of its conversation or owner, the time that orders
the messages, their content) that is absent (the table does not play the role: the map or the schema is
wrong), a missing or unvalidated foreign key between roles (orphans), an UNLOGGED table (lost on a crash).

Not judged here: CHECKs, defaults, uniqueness and triggers of a renamed role are judged by behaviour, and
the behaviour probes write canonical rows on the canonical names (``judge.py`` says why they did not run).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType

from chatbench.schema.package import CANONICAL_NAME
from chatbench.schema.rolemap import ROLE_TABLES
from chatbench.verify.catalog import ColumnFact, ConstraintFact, IndexFact, unquoted
from chatbench.verify.context import VerificationContext
from chatbench.verify.drift import durability
from chatbench.verify.findings import Finding, Severity
from chatbench.verify.keys import INTEGER_TYPES, KEY_COLUMNS, is_key_type
from chatbench.verify.mapped import mapped_roles, named, quoted
from chatbench.verify.registry import check

STRUCTURAL: frozenset[tuple[str, str]] = frozenset({
    ("users", "id"), ("conversations", "id"), ("conversations", "user_id"), ("messages", "id"),
    ("messages", "conversation_id"), ("messages", "created_at"), ("messages", "content"),
})
"""The role columns that make a table the role: without one it does not play it (an error)."""

TIME_COLUMNS = frozenset({"created_at", "updated_at"})
CONTENT_TYPES = frozenset({"text", "json", "jsonb"})


def _finding(kind: str, obj: str, expected: str, actual: str, severity: Severity, detail: str = "") -> Finding:
    return Finding("drift", kind, obj, expected, actual, severity, detail=detail)


@check("drift.roles")
def roles(ctx: VerificationContext) -> Iterator[Finding]:
    """The roles the map renames, by meaning: columns, time zones, foreign keys and cascades, indexes."""
    renaming = mapped_roles(ctx.roles)
    if ctx.mode == "exact" and ctx.expected == CANONICAL_NAME and renaming:
        renamed = [named(ctx.roles, r) for r in ROLE_TABLES if r in renaming]
        yield _finding("map_not_read", "[tool.chatbench.map]", "the canonical names (exact mode)",
                       f"a map renaming {', '.join(renamed)}", "info",
                       "exact mode compares the canonical names; --drift-mode contract judges the roles through "
                       "the map")
    for role in ROLE_TABLES:
        if role not in ctx.mapped:
            continue
        table = ctx.live.tables.get(ctx.roles.table(role))
        if table is None:
            yield _finding("missing_table", named(ctx.roles, role), "table", "absent", "error",
                           f"the map names {quoted(ctx.roles.table(role))} for {role}, and the database has no "
                           "such table")
            continue
        yield from durability(ctx.canonical.tables[role], table, named(ctx.roles, role))
        yield from _columns(ctx, role)
    yield from _foreign_keys(ctx)
    yield from _indexes(ctx)


def _live_column(ctx: VerificationContext, role: str, column: str) -> ColumnFact | None:
    return ctx.live.columns.get((ctx.roles.table(role), ctx.roles.column(role, column)))


def _canonical_columns(ctx: VerificationContext, role: str) -> list[ColumnFact]:
    return sorted((c for (t, _), c in ctx.canonical.columns.items() if t == role), key=lambda c: c.position)


def _columns(ctx: VerificationContext, role: str) -> Iterator[Finding]:
    for e in _canonical_columns(ctx, role):
        a = _live_column(ctx, role, e.name)
        if a is None:
            yield _lacking(ctx, role, e)
        else:
            yield from _column_type(ctx, role, e, a)


def _lacking(ctx: VerificationContext, role: str, e: ColumnFact) -> Finding:
    """A role column the application's table does not have: what is lost without it, by meaning."""
    r = ctx.roles
    if (role, e.name) == ("messages", "user_id"):
        chat, owner = quoted(r.table("conversations")), quoted(r.column("conversations", "user_id"))
        return _finding(
            "no_owner_column", named(r, role), "an owner column (user_id)", "no owner column", "warning",
            f"per-user message queries must join through {chat} (on {owner}): a user's messages across "
            "conversations, an erasure of a user's messages; the canonical index on messages (user_id) and "
            "its foreign key to users have no column to stand on")
    if (role, e.name) == ("conversations", "updated_at"):
        return _finding(
            "no_updated_at", named(r, role), "updated_at (a conversation's last activity, moved by each new "
            "message)", "no updated_at", "warning",
            "a conversation list ordered by last activity cannot use an index: it sorts by each conversation's "
            f"newest row of {quoted(r.table('messages'))}, or orders by creation instead; the canonical index "
            "(user_id, updated_at DESC, id DESC) and the trigger that moves updated_at have nothing to stand on")
    if (role, e.name) in STRUCTURAL:
        return _finding(
            "missing_role_column", named(r, role, e.name), e.type, "absent", "error",
            f"{quoted(r.table(role))} does not play {role} without it; name the application's column in "
            f"[tool.chatbench.map] (\"{role}.{e.name}\" = \"...\")")
    return _finding("missing_role_column", named(r, role), f"{e.name} ({e.type})", f"no {e.name}", "info",
                    "only the canonical queries return it; the seed has nothing to fill")


def _column_type(ctx: VerificationContext, role: str, e: ColumnFact, a: ColumnFact) -> Iterator[Finding]:
    """A time column without time zone, or a key, time or content column of another kind (``warning``)."""
    obj = named(ctx.roles, role, e.name)
    if e.name in TIME_COLUMNS and a.type == "timestamp without time zone":
        yield _finding(
            "timestamp_without_time_zone", obj, f"{e.type} ({role}.{e.name})", a.type, "warning",
            f"{quoted(a.table)}.{quoted(a.name)} is timestamp without time zone: it stores a wall-clock time, "
            "whose instant depends on the TimeZone of the session that wrote it, and a cursor given as a "
            "timestamptz is compared after conversion to the reading session's TimeZone; rows written from "
            "sessions in two time zones sort out of their real order")
        return
    if _other_kind(role, e, a):
        yield _finding("column_type", obj, e.type, a.type, "warning",
                       f"the seed and the application's queries compare {e.name} as {a.type}")


def _other_kind(role: str, e: ColumnFact, a: ColumnFact) -> bool:
    """A key, time or content column of another kind than the canonical queries serve (a uuid or text key, a
    timestamp, a json or varchar content are the same kind); the other role columns are judged by behaviour."""
    if a.type == e.type:
        return False
    if e.name in TIME_COLUMNS:
        return not a.type.startswith("timestamp")
    if (role, e.name) in KEY_COLUMNS:
        return not (a.type in INTEGER_TYPES or is_key_type(a.type))
    if e.name == "content":
        return not (a.type in CONTENT_TYPES or a.type.startswith("character varying"))
    return False


_DELETES: Mapping[tuple[str, str], str] = MappingProxyType({
    ("messages", "conversations"): "deleting a conversation deletes its messages",
    ("messages", "users"): "deleting a user deletes their messages",
    ("conversations", "users"): "deleting a user deletes their conversations",
})


def _foreign_keys(ctx: VerificationContext) -> Iterator[Finding]:
    """The canonical foreign keys between roles, one end of which the map renames, under the application's
    names: present, validated, and deleting as the canonical cascade does."""
    r = ctx.roles
    canonical = sorted((c for c in ctx.canonical.constraints.values() if c.kind == "FOREIGN KEY"),
                       key=lambda c: (c.table, c.name))
    for e in canonical:
        if e.ref_table is None or not ({e.table, e.ref_table} & ctx.mapped):
            continue
        table, target = r.table(e.table), r.table(e.ref_table)
        columns = tuple(r.column(e.table, c) for c in e.columns)
        if target not in ctx.live.tables or table not in ctx.live.tables or any(
                (table, c) not in ctx.live.columns for c in columns):
            continue  # the table or column finding says so
        obj = named(r, e.table, e.columns[0]) if len(e.columns) == 1 else named(r, e.table)
        a = _live_foreign_key(ctx, table, columns, target)
        if a is None:
            yield _finding(
                "missing_foreign_key", obj, f"REFERENCES {named(r, e.ref_table)}", "absent", "error",
                f"nothing keeps a row of {quoted(table)} from naming a row of {quoted(target)} that does not exist")
            continue
        if a.on_delete != e.on_delete:
            yield _finding(
                "no_cascade", obj, f"ON DELETE {e.on_delete} ({_DELETES.get((e.table, e.ref_table), 'cascade')})",
                f"ON DELETE {a.on_delete} ({quoted(a.name)})", "warning",
                f"no ON DELETE {e.on_delete} from {quoted(table)} to {quoted(target)}: a row of {quoted(target)} "
                f"that still has rows in {quoted(table)} cannot be deleted until the application deletes those "
                "first (an erasure is several statements, and one forgotten table blocks it)"
                if a.on_delete in ("NO ACTION", "RESTRICT") else
                f"no ON DELETE {e.on_delete} from {quoted(table)} to {quoted(target)}: deleting a row of "
                f"{quoted(target)} leaves its rows of {quoted(table)} behind ({a.on_delete})")
        if e.validated and not a.validated:
            yield _finding("not_validated", obj, "VALID", "NOT VALID (existing rows unchecked)", "error")


def _live_foreign_key(ctx: VerificationContext, table: str, columns: tuple[str, ...],
                      target: str) -> ConstraintFact | None:
    return next((c for c in ctx.live.constraints_of(table, "FOREIGN KEY")
                 if c.columns == columns and c.ref_table == target), None)


def _indexes(ctx: VerificationContext) -> Iterator[Finding]:
    """Each canonical index of a renamed role (not a key's) served by an index of the application's table:
    the same leading columns in order, in the same or the opposite direction throughout."""
    r = ctx.roles
    serving: set[str] = set()  # the application's indexes that serve a canonical one
    for e in sorted((i for i in ctx.canonical.indexes.values() if i.table in ctx.mapped and i.constraint is None),
                    key=lambda i: (i.table, i.name)):
        table = r.table(e.table)
        keys = [(r.column(e.table, unquoted(k.split()[0])), "DESC" in k.split()[1:]) for k in e.keys]
        if table not in ctx.live.tables or any((table, c) not in ctx.live.columns for c, _ in keys):
            continue  # the table or column finding says what cannot be indexed
        served = [i.name for i in ctx.live.indexes_of(table) if _serves(i, keys)]
        serving.update(served)
        if served:
            continue
        wanted = ", ".join(quoted(c) + (" DESC" if d else "") for c, d in keys)
        yield _finding(
            "missing_index", named(r, e.table), f"an index on ({wanted}) (the canonical {e.name})", "absent",
            "warning", "the canonical history reads go through it; the application's own queries are judged on "
            "their plans (queries/no_index) and a proven index is proposed there")
    for role in sorted(ctx.mapped):
        for a in sorted(ctx.live.indexes_of(r.table(role)), key=lambda i: i.name):
            if a.constraint is None and a.name not in serving:
                yield _finding("extra_index", f"{named(r, role)}.{a.name}", "absent",
                               f"every write maintains it: {a.definition}", "info",
                               "an index the canonical schema does not have; the application's own queries "
                               "show whether it serves them")


def _serves(index: IndexFact, keys: list[tuple[str, bool]]) -> bool:
    if not (index.valid and index.predicate is None) or len(index.keys) < len(keys):
        return False
    have = [(unquoted(k.split()[0]), "DESC" in k.split()[1:]) for k in index.keys[: len(keys)]]
    if [c for c, _ in have] != [c for c, _ in keys]:
        return False
    flips = {hd != wd for (_, hd), (_, wd) in zip(have, keys, strict=True)}
    return len(flips) == 1

