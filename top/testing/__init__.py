"""What an application's test suite uses from chatbench: fixture objects and the plan assertion.

The fixtures themselves (``chatbench_server``, ``chat_db``, ``seeded_chat_db``) come from chatbench's
pytest plugin (``chatbench.pytest_plugin``, entry point ``pytest11``): installing chatbench is enough.
Importing this package stays light, like the plugin: ``assert_plan`` loads the database stack when
it is first used (``from chatbench.testing import assert_plan``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatbench.testing.databases import ChatDatabase, ChatServer, DeepCursor, SeededChatDatabase

if TYPE_CHECKING:
    from chatbench.testing.plan_assert import PlanCheck, PlanContractError, assert_plan

__all__ = [
    "ChatDatabase",
    "ChatServer",
    "DeepCursor",
    "PlanCheck",
    "PlanContractError",
    "SeededChatDatabase",
    "assert_plan",
]

_LAZY = {"assert_plan", "PlanCheck", "PlanContractError"}


def __getattr__(name: str) -> Any:
    """The plan assertion and its types, imported on first use (they need psycopg and the verifier)."""
    if name in _LAZY:
        from chatbench.testing import plan_assert  # lazy: start-up (the plugin imports this package), +0.6 s

        return getattr(plan_assert, name)
    raise AttributeError(f"module 'chatbench.testing' has no attribute {name!r}")
