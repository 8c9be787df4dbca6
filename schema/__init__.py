"""The canonical chat-history schema: models, canonical queries and writes, DDL and fingerprint.

Applications may import this package as their source of truth; chatbench verifies live databases
against it.
"""

from chatbench.schema.ddl import DdlStep, apply, ddl, fingerprint
from chatbench.schema.models import (
    MESSAGE_ROLES,
    TITLE_MAX_LENGTH,
    Base,
    Conversation,
    Message,
    User,
    conversations,
    messages,
    metadata,
    users,
)

__all__ = [
    "MESSAGE_ROLES",
    "TITLE_MAX_LENGTH",
    "Base",
    "Conversation",
    "DdlStep",
    "Message",
    "User",
    "apply",
    "conversations",
    "ddl",
    "fingerprint",
    "messages",
    "metadata",
    "users",
]
