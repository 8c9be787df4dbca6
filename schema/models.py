"""The canonical chat-history tables as SQLAlchemy 2 typed declarative models.

Every constraint and index is named (see ``NAMING_CONVENTION``) so that verification and reports can
talk about them by name. Ids are ``bigint`` identities: a chat product reaches billions of messages,
and a 32-bit id overflows at 2.1 billion.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    DDL,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    MetaData,
    String,
    Table,
    Text,
    event,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MESSAGE_ROLES: tuple[str, ...] = ("user", "assistant", "system", "tool")
TITLE_MAX_LENGTH = 255
EMAIL_MAX_LENGTH = 320
DISPLAY_NAME_MAX_LENGTH = 255


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """An account; owns conversations."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH), unique=True)
    display_name: Mapped[str] = mapped_column(String(DISPLAY_NAME_MAX_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Conversation(Base):
    """A chat thread of one user. ``updated_at`` is maintained by triggers (see ``TRIGGERS``)."""

    __tablename__ = "conversations"
    __table_args__ = (
        CheckConstraint("updated_at >= created_at", name="updated_after_created"),
        # The conversation list, newest activity first, keyset-paginated on (updated_at, id).
        Index("ix_conversations_user_id_updated_at_id", "user_id", text("updated_at DESC"), text("id DESC")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    # varchar(255) enforces the length in the database; NULL means "untitled".
    title: Mapped[str | None] = mapped_column(String(TITLE_MAX_LENGTH), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Message(Base):
    """One turn of a conversation. ``user_id`` is the owning account (denormalised for erasure)."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(
            "role IN (" + ", ".join(f"'{r}'" for r in MESSAGE_ROLES) + ")",
            name="role_allowed",
        ),
        # History pages in both directions: latest (backward scan), older/newer keyset pages.
        Index("ix_messages_conversation_id_created_at_id", "conversation_id", "created_at", "id"),
        # Supports the users FK (account deletion) without scanning all messages.
        Index("ix_messages_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


metadata = Base.metadata
users = cast(Table, User.__table__)
conversations = cast(Table, Conversation.__table__)
messages = cast(Table, Message.__table__)

# --- updated_at maintenance, enforced in the database so every writer gets it -----------------------

TRIGGER_FUNCTIONS: dict[str, str] = {
    "chatbench_touch_conversation_on_message": """
CREATE FUNCTION chatbench_touch_conversation_on_message() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations
       SET updated_at = GREATEST(updated_at, NEW.created_at)
     WHERE id = NEW.conversation_id;
    RETURN NULL;
END;
$$""",
    "chatbench_touch_conversation_on_title": """
CREATE FUNCTION chatbench_touch_conversation_on_title() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.title IS DISTINCT FROM OLD.title THEN
        NEW.updated_at := GREATEST(OLD.updated_at, now());
    END IF;
    RETURN NEW;
END;
$$""",
}

# name -> (table, CREATE TRIGGER statement)
TRIGGERS: dict[str, tuple[str, str]] = {
    "trg_messages_touch_conversation": (
        "messages",
        "CREATE TRIGGER trg_messages_touch_conversation AFTER INSERT ON messages "
        "FOR EACH ROW EXECUTE FUNCTION chatbench_touch_conversation_on_message()",
    ),
    "trg_conversations_touch_on_title": (
        "conversations",
        "CREATE TRIGGER trg_conversations_touch_on_title BEFORE UPDATE OF title ON conversations "
        "FOR EACH ROW EXECUTE FUNCTION chatbench_touch_conversation_on_title()",
    ),
}

for _name, _body in TRIGGER_FUNCTIONS.items():
    event.listen(metadata, "before_create", DDL(_body.strip()))
for _table_name, _create in TRIGGERS.values():
    event.listen(metadata.tables[_table_name], "after_create", DDL(_create))
