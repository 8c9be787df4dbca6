"""Behavioural contracts of the canonical schema, as executable probes (data; ``chatbench.verify`` runs them).

The catalog says how a schema is *spelled*; these contracts say what it *does*. A CHECK written
``created_at <= updated_at`` or ``role = ANY (ARRAY[...])`` in another order, a default of
``CURRENT_TIMESTAMP``, a ``bigserial`` id, ``text`` plus a length CHECK, a trigger with another
name and ``WHEN (OLD.title IS DISTINCT FROM NEW.title)``: each behaves as the canonical schema does,
and each probe here shows it by doing what the application does and looking at the result.

A probe is a few statements run in a savepoint that is always rolled back:

* ``setup`` steps make the rows it needs, with explicit ids no row of the table has (the runner binds
  ``user_id``, ``conversation_id``, ``message_id`` and ``next_message_id``, of each key's type: integers
  above the table's rows and sequence, a fresh uuid or text key otherwise) so that no probe but
  ``ids_generated`` and ``history_order`` depends on how ids are generated;
* the ``action`` is the write under test; ``expect`` says whether the schema must accept or reject
  it (a rejection is any integrity or data error, or an exception a trigger raises);
* ``then`` (after an accepted action) is a query returning one row ``(holds boolean, observed text)``.

Placeholders are psycopg's ``%(name)s``; values returned by a step (``RETURNING``) are bound under
``<bind_prefix><column>`` for the steps after it. The canonical writes (``append_message``,
``rename_conversation``, ``create_conversation``) and reads (``latest_messages``, ``messages_before``)
are used as they are wherever they fit, so a probe exercises what the application runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Literal

from chatbench.schema.models import (
    DISPLAY_NAME_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    MESSAGE_ROLES,
    TITLE_MAX_LENGTH,
    TRIGGERS,
)
from chatbench.schema.queries import QUERIES_BY_NAME

# Fixed instants the probes write (explicit times make "forward" and "backwards" exact).
T0 = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
BEFORE_T0 = T0 - timedelta(hours=1)
CREATED = T0 - timedelta(days=1)  # created_at of the setup conversation: strictly before its updated_at

# "The current time": a default or a trigger may use now(), CURRENT_TIMESTAMP, statement_timestamp()
# or clock_timestamp(); all of them fall in this window of the probe's transaction.
NOW_WINDOW = "BETWEEN now() - interval '1 second' AND clock_timestamp() + interval '1 second'"

PROBE_EMAIL = "chatbench-probe@probe.invalid"
# Letters outside ASCII: a limit counted in bytes (octet_length) instead of characters shows.
WIDE_CHAR = "é"


@dataclass(frozen=True)
class Step:
    """One statement of a probe: what it does in words, its SQL, and the prefix for values it returns."""

    does: str
    sql: str
    bind_prefix: str = ""


@dataclass(frozen=True)
class Probe:
    """One observation: after ``setup``, ``action`` must be accepted (and ``then`` hold) or be rejected."""

    name: str
    setup: tuple[Step, ...]
    action: Step
    expect: Literal["accepted", "rejected"]
    breach: str  # the finding when it does not hold: "a role 'admin' is accepted"
    then: str | None = None
    subject: str | None = None  # the object a finding names, when not the contract's subject
    # The severity of a breach where the keys are not integers (uuid, text): a random key cannot keep an
    # order the canonical identity gives for free; the breach is then a warning, not a lost contract.
    unordered_keys: Literal["error", "warning"] = "error"


@dataclass(frozen=True)
class BehaviourContract:
    """What the canonical schema guarantees, the objects that guarantee it, and the probes that show it.

    ``covers`` names the columns (``table.column``) whose CHECKs, defaults, identity and type spelling
    this contract judges; ``triggers`` the canonical triggers whose effect it judges. Drift uses both
    to report a spelling difference there as equivalent (the probes hold) instead of as drift.
    """

    name: str
    statement: str
    subject: str  # the object a finding is about: "messages.role"
    probes: tuple[Probe, ...]
    covers: frozenset[str] = frozenset()
    triggers: frozenset[str] = frozenset()
    queries: tuple[str, ...] = ()


# --- setup steps -------------------------------------------------------------------------------------

USER = Step(
    "inserting a user",
    "INSERT INTO users (id, email, display_name) OVERRIDING SYSTEM VALUE "
    "VALUES (%(user_id)s, %(email)s, 'chatbench probe')",
)
CONVERSATION = Step(
    "inserting a conversation",
    "INSERT INTO conversations (id, user_id, title, created_at, updated_at) OVERRIDING SYSTEM VALUE "
    "VALUES (%(conversation_id)s, %(user_id)s, 'probe', %(created)s, %(t0)s)",
)


def _message(does: str, *, second: bool = False, role: str = "user", created_at: str = "%(t0)s") -> Step:
    key = "next_message_id" if second else "message_id"
    return Step(
        does,
        "INSERT INTO messages (id, conversation_id, user_id, role, content, created_at) OVERRIDING SYSTEM VALUE "
        f"VALUES (%({key})s, %(conversation_id)s, %(user_id)s, '{role}', 'probe', {created_at})",
    )


MESSAGE = _message("inserting a message")
WITH_CONVERSATION = (USER, CONVERSATION)


def canonical_step(name: str, does: str, bind_prefix: str = "", **fixed: str) -> Step:
    """A canonical write as the application runs it; ``fixed`` replaces placeholders by SQL literals."""
    sql = QUERIES_BY_NAME[name].sql()
    for param, literal in fixed.items():
        sql = sql.replace(f"%({param})s", literal)
    return Step(does, sql, bind_prefix)


def _conversation_updated_at(condition: str, observed: str = "updated_at") -> str:
    return (
        f"SELECT coalesce(bool_and({condition}), false), coalesce(string_agg('updated_at is ' || {observed}, ''), "
        "'the conversation is gone') FROM conversations WHERE id = %(conversation_id)s"
    )


def _wide(characters: int, suffix: str = "") -> str:
    """SQL for a string of ``characters`` wide letters (then ``suffix``): short in the probe's evidence."""
    return f"repeat('{WIDE_CHAR}', {characters})" + (f" || '{suffix}'" if suffix else "")


# --- contracts ---------------------------------------------------------------------------------------


def _role_contract() -> BehaviourContract:
    probes = [
        Probe(
            f"role_{role}_accepted",
            WITH_CONVERSATION,
            _message(f"inserting a message with role '{role}'", role=role),
            "accepted",
            f"a role '{role}' is rejected",
        )
        for role in MESSAGE_ROLES
    ]
    probes += [
        Probe(
            f"role_{bad}_rejected",
            WITH_CONVERSATION,
            _message(f"inserting a message with role '{bad}'", role=bad),
            "rejected",
            f"a role '{bad}' is accepted",
        )
        for bad in ("admin", "User")
    ]
    return BehaviourContract(
        "role_allowed",
        f"a message's role is one of {', '.join(MESSAGE_ROLES)} (case-sensitive)",
        "messages.role",
        tuple(probes),
        covers=frozenset({"messages.role"}),
        queries=("append_message",),
    )


def _length_contract(
    name: str,
    table: str,
    column: str,
    limit: int,
    setup: tuple[Step, ...],
    insert: str,
    extra: tuple[Probe, ...] = (),
    suffix: str = "",
) -> BehaviourContract:
    """``column`` takes ``limit`` characters (counted as characters, not bytes) and rejects ``limit + 1``.

    ``suffix`` ends the value (an e-mail address keeps its ``@domain``), the rest is ``WIDE_CHAR``.
    """
    a = "an" if column[0] in "aeiou" else "a"
    fits = _wide(limit - len(suffix), suffix)
    too_long = _wide(limit + 1 - len(suffix), suffix)
    return BehaviourContract(
        name,
        f"{table}.{column} accepts {limit} characters and rejects {limit + 1}",
        f"{table}.{column}",
        (
            Probe(
                f"{column}_{limit}_accepted",
                setup,
                Step(f"inserting {a} {column} of {limit} characters", insert.format(value=fits)),
                "accepted",
                f"{a} {column} of {limit} characters is rejected",
            ),
            Probe(
                f"{column}_{limit + 1}_rejected",
                setup,
                Step(f"inserting {a} {column} of {limit + 1} characters", insert.format(value=too_long)),
                "rejected",
                f"{a} {column} of {limit + 1} characters is accepted",
            ),
            *extra,
        ),
        covers=frozenset({f"{table}.{column}"}),
        queries=tuple(q.name for q in QUERIES_BY_NAME.values() if q.kind == "write" and column in q.params),
    )


_INSERT_USER = (
    "INSERT INTO users (id, email, display_name) OVERRIDING SYSTEM VALUE VALUES (%(user_id)s, {email}, {display_name})"
)
_INSERT_CONVERSATION_TITLED = (
    "INSERT INTO conversations (id, user_id, title, created_at, updated_at) OVERRIDING SYSTEM VALUE "
    "VALUES (%(conversation_id)s, %(user_id)s, {value}, %(created)s, %(t0)s)"
)


def _title_contract() -> BehaviourContract:
    too_long = _wide(TITLE_MAX_LENGTH + 1)
    return _length_contract(
        "title_length",
        "conversations",
        "title",
        TITLE_MAX_LENGTH,
        (USER,),
        _INSERT_CONVERSATION_TITLED,
        extra=(
            Probe(
                "title_rename_too_long_rejected",
                WITH_CONVERSATION,
                canonical_step(
                    "rename_conversation",
                    f"renaming a conversation to {TITLE_MAX_LENGTH + 1} characters",
                    title=too_long,
                ),
                "rejected",
                f"a rename to {TITLE_MAX_LENGTH + 1} characters is accepted",
            ),
            Probe(
                "title_untitled_accepted",
                (USER,),
                Step(
                    "inserting an untitled conversation (title NULL)", _INSERT_CONVERSATION_TITLED.format(value="NULL")
                ),
                "accepted",
                "an untitled conversation (NULL title) is rejected",
            ),
        ),
    )


def _content_contract() -> BehaviourContract:
    return BehaviourContract(
        "content_required",
        "a message's content is required (NULL is rejected)",
        "messages.content",
        (
            Probe(
                "content_null_rejected",
                WITH_CONVERSATION,
                Step(
                    "inserting a message whose content is NULL",
                    "INSERT INTO messages (id, conversation_id, user_id, role, content, created_at) "
                    "OVERRIDING SYSTEM VALUE VALUES (%(message_id)s, %(conversation_id)s, %(user_id)s, 'user', NULL, "
                    "%(t0)s)",
                ),
                "rejected",
                "a message without content (NULL) is accepted",
                then="SELECT false, 'stored content is ' || coalesce(quote_literal(content), 'NULL') "
                "FROM messages WHERE id = %(message_id)s",
            ),
        ),
        covers=frozenset({"messages.content"}),
        queries=("append_message",),
    )


_LEFT_BEHIND = (
    "SELECT c + m = 0, c || ' conversation(s) and ' || m || ' message(s) left' FROM "
    "(SELECT (SELECT count(*) FROM conversations WHERE {conversations}) AS c, "
    "(SELECT count(*) FROM messages WHERE {messages}) AS m) AS left_behind"
)


def _cascade_contract() -> BehaviourContract:
    messages = (MESSAGE, _message("inserting a second message", second=True))
    return BehaviourContract(
        "deletes_cascade",
        "deleting a user deletes their conversations and messages; deleting a conversation deletes its messages",
        "conversations.user_id",
        (
            Probe(
                "delete_user_cascades",
                (*WITH_CONVERSATION, *messages),
                Step("deleting the user", "DELETE FROM users WHERE id = %(user_id)s"),
                "accepted",
                "deleting a user leaves rows behind",
                subject="conversations.user_id",
                then=_LEFT_BEHIND.format(
                    conversations="user_id = %(user_id)s",
                    messages="user_id = %(user_id)s OR conversation_id = %(conversation_id)s",
                ),
            ),
            Probe(
                "delete_conversation_cascades",
                (*WITH_CONVERSATION, *messages),
                Step("deleting the conversation", "DELETE FROM conversations WHERE id = %(conversation_id)s"),
                "accepted",
                "deleting a conversation leaves its messages behind",
                subject="messages.conversation_id",
                then=_LEFT_BEHIND.format(
                    conversations="id = %(conversation_id)s", messages="conversation_id = %(conversation_id)s"
                ),
            ),
        ),
        covers=frozenset({"conversations.user_id", "messages.conversation_id", "messages.user_id"}),
        queries=(),
    )


def _append_contract() -> BehaviourContract:
    return BehaviourContract(
        "append_moves_updated_at",
        "appending a message moves its conversation's updated_at forward to at least the message's "
        "created_at, and never backwards for an older message",
        "conversations.updated_at",
        (
            Probe(
                "append_moves_forward",
                WITH_CONVERSATION,
                canonical_step(
                    "append_message",
                    "appending a message (append_message)",
                    "appended_",
                    role="'user'",
                    content="'probe'",
                ),
                "accepted",
                "appending a message does not move updated_at forward",
                then=_conversation_updated_at("updated_at >= %(appended_created_at)s"),
            ),
            Probe(
                "append_older_never_backwards",
                WITH_CONVERSATION,
                _message("appending a message older than the conversation's updated_at", created_at="%(before_t0)s"),
                "accepted",
                "appending an older message moves updated_at backwards",
                then=_conversation_updated_at("updated_at >= %(t0)s"),
            ),
        ),
        triggers=frozenset({"trg_messages_touch_conversation"}),
        queries=("append_message",),
    )


def _rename_contract() -> BehaviourContract:
    return BehaviourContract(
        "rename_touches_updated_at",
        "renaming a conversation sets its updated_at to the current time",
        "conversations.updated_at",
        (
            Probe(
                "rename_touches",
                WITH_CONVERSATION,
                canonical_step("rename_conversation", "renaming the conversation (rename_conversation)",
                               title="'renamed'"),
                "accepted",
                "renaming a conversation does not touch updated_at",
                then=_conversation_updated_at(f"updated_at {NOW_WINDOW}"),
            ),
        ),
        triggers=frozenset({"trg_conversations_touch_on_title"}),
        queries=("rename_conversation",),
    )


def _updated_after_created_contract() -> BehaviourContract:
    insert = (
        "INSERT INTO conversations (id, user_id, created_at, updated_at) OVERRIDING SYSTEM VALUE "
        "VALUES (%(conversation_id)s, %(user_id)s, %(t0)s, {updated_at})"
    )
    return BehaviourContract(
        "updated_not_before_created",
        "a conversation's updated_at never precedes its created_at (equal is allowed)",
        "conversations.updated_at",
        (
            Probe(
                "updated_before_created_rejected",
                (USER,),
                Step(
                    "inserting a conversation whose updated_at is 1 microsecond before its created_at",
                    insert.format(updated_at="%(t0)s - interval '1 microsecond'"),
                ),
                "rejected",
                "a conversation whose updated_at precedes its created_at is accepted",
            ),
            Probe(
                "updated_equal_created_accepted",
                (USER,),
                Step(
                    "inserting a conversation whose updated_at equals its created_at",
                    insert.format(updated_at="%(t0)s"),
                ),
                "accepted",
                "a conversation whose updated_at equals its created_at is rejected",
            ),
            Probe(
                "update_before_created_rejected",
                WITH_CONVERSATION,
                Step(
                    "moving updated_at before created_at",
                    "UPDATE conversations SET updated_at = created_at - interval '1 microsecond' "
                    "WHERE id = %(conversation_id)s",
                ),
                "rejected",
                "an update moving updated_at before created_at is accepted",
                then=_conversation_updated_at(
                    "updated_at >= created_at", "updated_at || ', created_at is ' || created_at"
                ),
            ),
        ),
        covers=frozenset({"conversations.created_at", "conversations.updated_at"}),
        queries=("create_conversation", "rename_conversation"),
    )


def _ids_contract() -> BehaviourContract:
    def two_distinct(first: str, second: str, what: str) -> str:
        # compared as text: the same test for bigint, uuid and text keys
        return (
            f"SELECT {first}::text IS NOT NULL AND {second}::text IS NOT NULL "
            f"AND {first}::text <> {second}::text, "
            f"'{what} got ids ' || coalesce({first}::text, 'NULL') || ' and ' || coalesce({second}::text, 'NULL')"
        )

    insert_user = "INSERT INTO users (email, display_name) VALUES ({email}, 'probe') RETURNING id"
    return BehaviourContract(
        "ids_generated",
        "users, conversations and messages get distinct ids generated by the database",
        "messages.id",
        (
            Probe(
                "user_ids_generated",
                (
                    Step(
                        "inserting a user without an id", insert_user.format(email="'a-" + PROBE_EMAIL + "'"), "first_"
                    ),
                ),
                Step(
                    "inserting another user without an id",
                    insert_user.format(email="'b-" + PROBE_EMAIL + "'"),
                    "second_",
                ),
                "accepted",
                "user ids are not generated",
                then=two_distinct("%(first_id)s", "%(second_id)s", "two users"),
            ),
            Probe(
                "conversation_ids_generated",
                (
                    USER,
                    canonical_step(
                        "create_conversation", "creating a conversation (create_conversation)", "first_", title="NULL"
                    ),
                ),
                canonical_step("create_conversation", "creating another conversation", "second_", title="NULL"),
                "accepted",
                "conversation ids are not generated",
                then=two_distinct("%(first_id)s", "%(second_id)s", "two conversations"),
            ),
            Probe(
                "message_ids_generated",
                (
                    *WITH_CONVERSATION,
                    canonical_step(
                        "append_message",
                        "appending a message (append_message)",
                        "first_",
                        role="'user'",
                        content="'first'",
                    ),
                ),
                canonical_step("append_message", "appending another message", "second_", role="'user'",
                               content="'second'"),
                "accepted",
                "message ids are not generated",
                then=two_distinct("%(first_id)s", "%(second_id)s", "two messages"),
            ),
        ),
        covers=frozenset({"users.id", "conversations.id", "messages.id"}),
        queries=("create_conversation", "append_message"),
    )


# Messages the history probe appends in one transaction (one created_at): six, so that a key that does not
# follow the append order (a random uuid) is seen out of order with certainty (1 in 720 by chance).
_TIES = ("first", "second", "third", "fourth", "fifth", "sixth")
_PAGE = len(_TIES) // 2


def _history_order_contract() -> BehaviourContract:
    cursor = _TIES[_PAGE]  # the oldest message of the latest page: the keyset cursor of the next one
    latest = QUERIES_BY_NAME["latest_messages"].sql().replace("%(limit)s", str(_PAGE))
    before = QUERIES_BY_NAME["messages_before"].sql().replace("%(limit)s", str(_PAGE))
    newest_first = list(reversed(_TIES))
    pages = (
        f"SELECT latest = ARRAY{newest_first[:_PAGE]!r} AND older = ARRAY{newest_first[_PAGE:]!r}, "
        f"'latest_messages gave ' || latest::text || ', messages_before the {cursor} gave ' || older::text "
        f"FROM (SELECT ARRAY(SELECT content FROM ({latest}) AS page) AS latest, "
        f"ARRAY(SELECT content FROM ({before}) AS page) AS older) AS pages"
    )

    def append(content: str, prefix: str = "") -> Step:
        return canonical_step(
            "append_message",
            f"appending message '{content}' (append_message)",
            prefix,
            role="'user'",
            content=f"'{content}'",
        )

    setup = tuple(append(c, "cursor_" if c == cursor else "") for c in _TIES[:-1])
    return BehaviourContract(
        "history_order",
        "a conversation's history is ordered by (created_at, id): messages appended in one transaction "
        "(equal created_at) page in the order they were appended",
        "messages.id",
        (
            Probe(
                "history_ties_in_append_order",
                (*WITH_CONVERSATION, *setup),
                append(_TIES[-1]),
                "accepted",
                "messages with equal created_at do not page in the order they were appended",
                then=pages,
                unordered_keys="warning",
            ),
        ),
        covers=frozenset({"messages.created_at"}),
        queries=("latest_messages", "messages_before", "messages_after"),
    )


def _defaults_contract() -> BehaviourContract:
    def probe(table: str, columns: tuple[str, ...], setup: tuple[Step, ...], insert: str, key: str) -> Probe:
        condition = " AND ".join(f"{c} {NOW_WINDOW}" for c in columns)
        observed = " || ', ' || ".join(f"'{c} ' || coalesce({c}::text, 'NULL')" for c in columns)
        return Probe(
            f"{table}_{'_'.join(columns)}_default_now",
            setup,
            Step(f"inserting a {table.rstrip('s')} without {' or '.join(columns)}", insert),
            "accepted",
            f"{table}.{' and '.join(columns)} do not default to the current time",
            subject=f"{table}.{columns[0]}",
            then=f"SELECT {condition}, {observed} FROM {table} WHERE id = %({key})s",
        )

    return BehaviourContract(
        "times_default_to_now",
        "created_at (and a new conversation's updated_at) default to the current time",
        "messages.created_at",
        (
            probe(
                "users", ("created_at",), (), _INSERT_USER.format(email="%(email)s", display_name="'probe'"), "user_id"
            ),
            probe(
                "conversations",
                ("created_at", "updated_at"),
                (USER,),
                "INSERT INTO conversations (id, user_id) OVERRIDING SYSTEM VALUE "
                "VALUES (%(conversation_id)s, %(user_id)s)",
                "conversation_id",
            ),
            probe(
                "messages",
                ("created_at",),
                WITH_CONVERSATION,
                "INSERT INTO messages (id, conversation_id, user_id, role, content) OVERRIDING SYSTEM VALUE "
                "VALUES (%(message_id)s, %(conversation_id)s, %(user_id)s, 'user', 'probe')",
                "message_id",
            ),
        ),
        covers=frozenset(
            {"users.created_at", "conversations.created_at", "conversations.updated_at", "messages.created_at"}
        ),
        queries=("append_message", "create_conversation"),
    )


def _user_contracts() -> tuple[BehaviourContract, ...]:
    email = _length_contract(
        "email_length",
        "users",
        "email",
        EMAIL_MAX_LENGTH,
        (),
        _INSERT_USER.format(email="{value}", display_name="'probe'"),
        suffix="@probe.invalid",
    )
    display_name = _length_contract(
        "display_name_length",
        "users",
        "display_name",
        DISPLAY_NAME_MAX_LENGTH,
        (),
        _INSERT_USER.format(email="%(email)s", display_name="{value}"),
    )
    return email, display_name


def _contracts(*items: BehaviourContract) -> Mapping[str, BehaviourContract]:
    names = [c.name for c in items]
    probe_names = [p.name for c in items for p in c.probes]
    assert len(set(names)) == len(names) and len(set(probe_names)) == len(probe_names), "duplicate names"
    unknown = {t for c in items for t in c.triggers} - set(TRIGGERS)
    assert not unknown, f"contracts name unknown canonical triggers: {unknown}"
    return MappingProxyType({c.name: c for c in items})


BEHAVIOUR_CONTRACTS: Mapping[str, BehaviourContract] = _contracts(
    _role_contract(),
    _title_contract(),
    _content_contract(),
    _cascade_contract(),
    _append_contract(),
    _rename_contract(),
    _updated_after_created_contract(),
    _ids_contract(),
    _history_order_contract(),
    _defaults_contract(),
    *_user_contracts(),
)


def probe_bindings() -> dict[str, object]:
    """The fixed values every probe may use (the runner adds the free ids)."""
    return {"email": PROBE_EMAIL, "t0": T0, "before_t0": BEFORE_T0, "created": CREATED, "limit": 2}
