"""The chat history as the application's first release had it: the canonical contracts, Alembic's spelling.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("updated_at >= created_at", name=op.f("ck_conversations_updated_after_created")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_conversations_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
    )
    op.create_index("ix_conversations_user_id_updated_at_id", "conversations",
                    ["user_id", sa.text("updated_at DESC"), sa.text("id DESC")])
    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("role IN ('user', 'assistant', 'system', 'tool')", name=op.f("ck_messages_role_allowed")),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name=op.f("fk_messages_conversation_id_conversations"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_messages_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    op.create_index(op.f("ix_messages_conversation_id_created_at_id"), "messages",
                    ["conversation_id", "created_at", "id"])
    op.create_index(op.f("ix_messages_user_id"), "messages", ["user_id"])
    op.execute("""
        CREATE FUNCTION app_touch_conversation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE conversations SET updated_at = GREATEST(updated_at, NEW.created_at)
             WHERE id = NEW.conversation_id;
            RETURN NULL;
        END $$""")
    op.execute("""
        CREATE FUNCTION app_touch_on_retitle() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.title IS DISTINCT FROM OLD.title THEN
                NEW.updated_at := GREATEST(OLD.updated_at, now());
            END IF;
            RETURN NEW;
        END $$""")
    op.execute("CREATE TRIGGER messages_touch_conversation AFTER INSERT ON messages "
               "FOR EACH ROW EXECUTE FUNCTION app_touch_conversation()")
    op.execute("CREATE TRIGGER conversations_touch_on_retitle BEFORE UPDATE OF title ON conversations "
               "FOR EACH ROW EXECUTE FUNCTION app_touch_on_retitle()")


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("conversations")
    op.drop_table("users")
    op.execute("DROP FUNCTION app_touch_conversation()")
    op.execute("DROP FUNCTION app_touch_on_retitle()")
