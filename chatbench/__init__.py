"""chatbench: will this chat-history schema stay fast and correct at real volume?

One import root. The base (errors, settings, provisioning) and the top (CLI, commands, sign-off
pipeline) live in this folder; the stages (``chatbench.schema``, ``chatbench.loadgen``,
``chatbench.verify``, ``chatbench.benchmarks``, ``chatbench.reports``) live in the repository's
top-level folders of the same names and install beside them (see ``pyproject.toml``).

Importing ``chatbench`` stays light (the pytest plugin does it in every pytest session of an
application): the database stack loads with the module that needs it, e.g. ``chatbench.provision``.
"""

from __future__ import annotations

from importlib.metadata import version

from chatbench.errors import ChatbenchError

__all__ = ["ChatbenchError", "__version__"]
__version__ = version("chatbench")
