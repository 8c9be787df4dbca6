"""The next release: soft delete, archiving, token counts, the model name, jsonb metadata, attachments.

Every canonical contract is kept; what is added is what applications add (the same extras as
``superset.sql``, built the Alembic way): nullable columns or columns with a server default, a
partial index for live rows, and a new table with a foreign key to messages and its own index.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

EMPTY_JSON = sa.text("'{}'::jsonb")


def upgrade() -> None:
    op.add_column("conversations", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("conversations", sa.Column("archived", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("messages", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("messages", sa.Column("token_count", sa.Integer(), nullable=True))
    op.add_column("messages", sa.Column("model", sa.Text(), nullable=True))
    op.add_column("messages", sa.Column("metadata", postgresql.JSONB(), server_default=EMPTY_JSON, nullable=False))
    op.create_index("ix_messages_live", "messages", ["conversation_id", "created_at", "id"],
                    postgresql_where=sa.text("deleted_at IS NULL"))
    op.create_table(
        "attachments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("mime_type", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("size_bytes >= 0", name="ck_attachments_size_non_negative"),
        sa.CheckConstraint("mime_type IN ('image/png', 'image/jpeg', 'application/pdf', 'text/plain')",
                           name="ck_attachments_mime_type_allowed"),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], name="fk_attachments_message_id_messages",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_attachments"),
    )
    op.create_index("ix_attachments_message_id", "attachments", ["message_id"])


def downgrade() -> None:
    op.drop_table("attachments")
    op.drop_index("ix_messages_live", table_name="messages")
    for column in ("metadata", "model", "token_count", "deleted_at"):
        op.drop_column("messages", column)
    op.drop_column("conversations", "archived")
    op.drop_column("conversations", "deleted_at")
