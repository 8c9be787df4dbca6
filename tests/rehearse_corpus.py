"""The rehearsal's corpus: migrations of the canonical schema, each in an unsafe and a safe version.

Each case starts from the canonical schema with one thing undone (``down``: the schema of the
previous release) and migrates it back to the canonical schema, so the migrated schema verifies
clean and a verdict is about the migration alone. ``blocks`` is what the unsafe version must be
failed for: the table, the lock mode and the statement (1-based, in the unsafe file). ``safe_trips``:
the rules the safe version still fails, when no lock-safe form exists for what it must do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chatbench import loadgen, schema

SPEC = loadgen.load_spec("smoke")
SMALL_SPEC = loadgen.load_spec("smoke_fifth")
"""The two sizes each case is rehearsed at: smoke (20k messages) and a fifth of it that still holds
1000+ message whales. What a case is judged on is a lock, a rewrite or a queue and its extrapolation to
``production_messages``, which two small sizes show as the ci profile's 200k did, in a third of the time."""


TIMEOUT = "SET lock_timeout = '500ms';"  # below the 1 s blocking budget: each try queues the app that long at most


@dataclass(frozen=True)
class Case:
    name: str
    down: tuple[str, ...]
    unsafe: str
    safe: str
    table: str
    lock: str
    statement: int = 1
    safe_down: tuple[str, ...] | None = None  # when the safe version starts elsewhere (the type-change pair)
    safe_trips: tuple[str, ...] = ()

    def before_sql(self, folder: Path, safe: bool) -> Path:
        path = folder / f"{self.name}.{'safe' if safe else 'unsafe'}.before.sql"
        down = self.safe_down if safe and self.safe_down is not None else self.down
        path.write_text(schema.ddl() + "\n" + "\n".join(s + ";" for s in down) + "\n")
        return path

    def migration(self, folder: Path, safe: bool) -> Path:
        path = folder / f"{self.name}.{'safe' if safe else 'unsafe'}.sql"
        path.write_text((self.safe if safe else self.unsafe) + "\n")
        return path


ROLES = "('user', 'assistant', 'system', 'tool')"

CASES: tuple[Case, ...] = (
    Case("index_messages_user_id", ("DROP INDEX ix_messages_user_id",),
         "CREATE INDEX ix_messages_user_id ON messages (user_id);",
         f"{TIMEOUT}\nCREATE INDEX CONCURRENTLY ix_messages_user_id ON messages (user_id);",
         "messages", "ShareLock"),
    Case("index_conversations_sidebar", ("DROP INDEX ix_conversations_user_id_updated_at_id",),
         "CREATE INDEX ix_conversations_user_id_updated_at_id ON conversations (user_id, updated_at DESC, id DESC);",
         f"{TIMEOUT}\nCREATE INDEX CONCURRENTLY ix_conversations_user_id_updated_at_id "
         "ON conversations (user_id, updated_at DESC, id DESC);",
         "conversations", "ShareLock"),
    # (a new column: the before-schema must keep every column the seeded history fills)
    Case("column_default_users_last_seen_at", (),
         "ALTER TABLE users ADD COLUMN last_seen_at timestamptz NOT NULL DEFAULT clock_timestamp();\n"
         "ALTER TABLE users ALTER COLUMN last_seen_at SET DEFAULT now();",
         f"{TIMEOUT}\nALTER TABLE users ADD COLUMN last_seen_at timestamptz NOT NULL DEFAULT now();",
         "users", "AccessExclusiveLock"),
    Case("check_messages_role", ("ALTER TABLE messages DROP CONSTRAINT ck_messages_role_allowed",),
         f"ALTER TABLE messages ADD CONSTRAINT ck_messages_role_allowed CHECK (role IN {ROLES});",
         f"{TIMEOUT}\nALTER TABLE messages ADD CONSTRAINT ck_messages_role_allowed CHECK (role IN {ROLES}) NOT VALID;\n"
         "ALTER TABLE messages VALIDATE CONSTRAINT ck_messages_role_allowed;",
         "messages", "AccessExclusiveLock"),
    Case("check_conversations_updated_after_created",
         ("ALTER TABLE conversations DROP CONSTRAINT ck_conversations_updated_after_created",),
         "ALTER TABLE conversations ADD CONSTRAINT ck_conversations_updated_after_created "
         "CHECK (updated_at >= created_at);",
         f"{TIMEOUT}\nALTER TABLE conversations ADD CONSTRAINT ck_conversations_updated_after_created "
         "CHECK (updated_at >= created_at) NOT VALID;\n"
         "ALTER TABLE conversations VALIDATE CONSTRAINT ck_conversations_updated_after_created;",
         "conversations", "AccessExclusiveLock"),
    Case("fk_messages_conversation",
         ("ALTER TABLE messages DROP CONSTRAINT fk_messages_conversation_id_conversations",),
         "ALTER TABLE messages ADD CONSTRAINT fk_messages_conversation_id_conversations FOREIGN KEY (conversation_id) "
         "REFERENCES conversations (id) ON DELETE CASCADE;",
         f"{TIMEOUT}\nALTER TABLE messages ADD CONSTRAINT fk_messages_conversation_id_conversations "
         "FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE NOT VALID;\n"
         "ALTER TABLE messages VALIDATE CONSTRAINT fk_messages_conversation_id_conversations;",
         "messages", "ShareRowExclusiveLock"),
    Case("fk_messages_user", ("ALTER TABLE messages DROP CONSTRAINT fk_messages_user_id_users",),
         "ALTER TABLE messages ADD CONSTRAINT fk_messages_user_id_users FOREIGN KEY (user_id) "
         "REFERENCES users (id) ON DELETE CASCADE;",
         f"{TIMEOUT}\nALTER TABLE messages ADD CONSTRAINT fk_messages_user_id_users FOREIGN KEY (user_id) "
         "REFERENCES users (id) ON DELETE CASCADE NOT VALID;\n"
         "ALTER TABLE messages VALIDATE CONSTRAINT fk_messages_user_id_users;",
         "messages", "ShareRowExclusiveLock"),
    # unsafe: a type change with USING rewrites messages and its indexes (the before-schema keeps the seeded history's
    # key types, so not integer -> bigint on a key); safe: varchar(n) -> text is binary-coercible (on a column no
    # CHECK uses: a CHECK on the column is re-validated, a scan under ACCESS EXCLUSIVE)
    Case("type_change", (),
         "ALTER TABLE messages ALTER COLUMN role TYPE text USING lower(role);",
         f"{TIMEOUT}\nALTER TABLE messages ALTER COLUMN content TYPE text;",
         "messages", "AccessExclusiveLock",
         safe_down=("ALTER TABLE messages ALTER COLUMN content TYPE varchar(1000000)",),
         # varchar(n) -> text rewrites nothing and locks for a moment, but the column's result type changes
         # under the app's prepared statements: they fail ("cached plan must not change result type")
         safe_trips=("app_errors",)),
    Case("not_null_messages_content", ("ALTER TABLE messages ALTER COLUMN content DROP NOT NULL",),
         "ALTER TABLE messages ALTER COLUMN content SET NOT NULL;",
         f"{TIMEOUT}\nALTER TABLE messages ADD CONSTRAINT ck_content_not_null CHECK (content IS NOT NULL) NOT VALID;\n"
         "ALTER TABLE messages VALIDATE CONSTRAINT ck_content_not_null;\n"
         "ALTER TABLE messages ALTER COLUMN content SET NOT NULL;\n"
         "ALTER TABLE messages DROP CONSTRAINT ck_content_not_null;",
         "messages", "AccessExclusiveLock"),
    Case("not_null_conversations_user_id", ("ALTER TABLE conversations ALTER COLUMN user_id DROP NOT NULL",),
         "ALTER TABLE conversations ALTER COLUMN user_id SET NOT NULL;",
         f"{TIMEOUT}\nALTER TABLE conversations ADD CONSTRAINT ck_user_not_null CHECK (user_id IS NOT NULL) "
         "NOT VALID;\nALTER TABLE conversations VALIDATE CONSTRAINT ck_user_not_null;\n"
         "ALTER TABLE conversations ALTER COLUMN user_id SET NOT NULL;\n"
         "ALTER TABLE conversations DROP CONSTRAINT ck_user_not_null;",
         "conversations", "AccessExclusiveLock"),
)


# -- the long transaction, WAL and residue (issue 28) -----------------------------------------------------------------
# Each pair starts from the canonical schema (the seed cache's) and is judged by one rule: the unsafe version FAILs it,
# the safe one passes every rule. The lock pairs run with a long transaction open across the migration's start.

LONG_TRANSACTION_S = 2.0
SHORT_TIMEOUT = "SET lock_timeout = '500ms';"
EDITED_AT = "ALTER TABLE messages ADD COLUMN edited_at timestamptz;"
BATCH = ("UPDATE messages SET content_chars = length(content) WHERE id IN (SELECT id FROM messages WHERE content_chars "
         "IS NULL ORDER BY id LIMIT 5000);")


@dataclass(frozen=True)
class Pair:
    """An unsafe and a safe migration for one of the rules the long transaction, WAL and residue brought."""

    name: str
    unsafe: str
    safe: str
    rule: str  # what the unsafe version must FAIL
    statement: int | None  # the statement the finding names (None: a command's migration)
    long_transaction_s: float = 0.0
    alembic: bool = False  # the two versions are Alembic projects (env.py differs), run by --migration-cmd
    verify: bool = True  # verify the migrated schema too

    def migration(self, folder: Path, safe: bool) -> Path:
        path = folder / f"{self.name}.{'safe' if safe else 'unsafe'}.sql"
        path.write_text((self.safe if safe else self.unsafe) + "\n")
        return path


PAIRS: tuple[Pair, ...] = (
    # metadata-only, a millisecond once granted: without lock_timeout it waits behind the long transaction and the
    # app queues behind it; with a short one it gives up, is retried, and gets the lock once the transaction ended
    Pair("add_column_long_transaction", EDITED_AT, f"{SHORT_TIMEOUT}\n{EDITED_AT}", "lock_timeout", 1,
         LONG_TRANSACTION_S),
    # the same ADD COLUMN in the file's own transaction block, as a tool that wraps a migration in a transaction runs
    # it: a lock timeout aborts the transaction, so the block is retried whole from its BEGIN (its SET LOCAL too)
    Pair("add_column_transaction_block", f"BEGIN;\n{EDITED_AT}\nCOMMIT;",
         f"BEGIN;\n{SHORT_TIMEOUT.replace('SET', 'SET LOCAL')}\n{EDITED_AT}\nCOMMIT;", "lock_timeout", 2,
         LONG_TRANSACTION_S),
    # a one-statement backfill writes WAL in proportion to the table; one batch of a batched backfill (the deploy
    # tool repeats it until it updates no row) writes the same at any size. Not verified: a backfill's updates move
    # the oldest messages to new pages (no room for HOT updates), which the plan contracts' keyset-growth check sees
    # (a real cost of any backfill; this pair judges its WAL)
    Pair("backfill", "ALTER TABLE messages ADD COLUMN content_chars integer;\n"
         "UPDATE messages SET content_chars = length(content);",
         f"ALTER TABLE messages ADD COLUMN content_chars integer;\n{BATCH}\n{BATCH}", "wal", 2, verify=False),
    # the release restores ix_messages_user_id but declares it UNIQUE by mistake: the concurrent build meets duplicate
    # user ids, fails, and leaves an INVALID index behind
    Pair("concurrent_unique_index", "DROP INDEX ix_messages_user_id;\n"
         "CREATE UNIQUE INDEX CONCURRENTLY ix_messages_user_id ON messages (user_id);",
         "DROP INDEX ix_messages_user_id;\nCREATE INDEX CONCURRENTLY ix_messages_user_id ON messages (user_id);",
         "residue", 2),
    # Alembic: the same ADD COLUMN, lock_timeout set (or not) in env.py through the connection's options, where no
    # reading of the migration's text can see it (a second longer: Python and Alembic take about a second to start)
    Pair("alembic_lock_timeout", "", "", "lock_timeout", None, LONG_TRANSACTION_S + 1.0, alembic=True),
)

ALEMBIC_ENV = '''
import os
from alembic import context
from sqlalchemy import create_engine

engine = create_engine(os.environ["CHATBENCH_SQLALCHEMY_URL"], connect_args={CONNECT_ARGS})
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
'''

ALEMBIC_REVISION = '''
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    UPGRADE
'''
ADD_EDITED_AT = 'op.add_column("messages", sa.Column("edited_at", sa.DateTime(timezone=True)))'


def alembic_project(folder: Path, *, upgrade: str = ADD_EDITED_AT, lock_timeout: str | None = None) -> str:
    """An Alembic project whose one revision runs ``upgrade`` (op calls), its env.py setting ``lock_timeout`` in the
    connection's options (or not); returns the command that upgrades it."""
    import sys
    import textwrap

    project = folder / ("alembic_timeout" if lock_timeout else "alembic_plain")
    (project / "migrations" / "versions").mkdir(parents=True, exist_ok=True)
    (project / "alembic.ini").write_text(f"[alembic]\nscript_location = {project / 'migrations'}\n")
    args = f'"options": "-c lock_timeout={lock_timeout}"' if lock_timeout else ""
    (project / "migrations" / "env.py").write_text(textwrap.dedent(ALEMBIC_ENV).replace("CONNECT_ARGS", args))
    (project / "migrations" / "script.py.mako").write_text("")
    (project / "migrations" / "versions" / "0001_release.py").write_text(
        textwrap.dedent(ALEMBIC_REVISION).replace("UPGRADE", upgrade))
    return f"{sys.executable} -m alembic -c {project / 'alembic.ini'} upgrade head"
