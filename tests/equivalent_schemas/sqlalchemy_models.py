"""An application's own SQLAlchemy models of the chat history, declared without a naming convention.

Run as a migration command (``chatbench verify --schema-from-cmd "python sqlalchemy_models.py"``): it
creates the schema with ``metadata.create_all`` in the database ``CHATBENCH_SQLALCHEMY_URL`` names.
PostgreSQL then picks the constraint names (users_pkey, users_email_key, conversations_user_id_fkey,
messages_role_check, ...); indexes get SQLAlchemy's default ``ix_<table>_<column>`` or the app's own
names; the trigger functions and triggers are DDL events with the app's names.
"""

from __future__ import annotations

import os
from datetime import datetime

from sqlalchemy import (
    DDL,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    String,
    Text,
    create_engine,
    event,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import func


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.current_timestamp())


class Thread(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        CheckConstraint("created_at <= updated_at"),
        Index("threads_sidebar", "user_id", text("updated_at DESC"), text("id DESC")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Turn(Base):
    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint("role = ANY (ARRAY['assistant', 'user', 'tool', 'system'])"),
        Index("turns_history", "conversation_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


event.listen(
    Base.metadata,
    "before_create",
    DDL(
        """
        CREATE FUNCTION bump_thread() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE conversations SET updated_at = GREATEST(updated_at, NEW.created_at) WHERE id = NEW.conversation_id;
            RETURN NULL;
        END $$;
        CREATE FUNCTION retitle_thread() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.updated_at := GREATEST(OLD.updated_at, now());
            RETURN NEW;
        END $$
        """
    ),
)
event.listen(
    Turn.__table__,
    "after_create",
    DDL("CREATE TRIGGER turns_bump_thread AFTER INSERT ON messages FOR EACH ROW EXECUTE FUNCTION bump_thread()"),
)
event.listen(
    Thread.__table__,
    "after_create",
    DDL(
        "CREATE TRIGGER threads_retitle BEFORE UPDATE OF title ON conversations FOR EACH ROW "
        "WHEN (OLD.title IS DISTINCT FROM NEW.title) EXECUTE FUNCTION retitle_thread()"
    ),
)

if __name__ == "__main__":
    engine = create_engine(os.environ["CHATBENCH_SQLALCHEMY_URL"])
    try:
        Base.metadata.create_all(engine)
    finally:
        engine.dispose()
