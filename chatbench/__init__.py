"""chatbench: will this chat-history schema stay fast and correct at real volume?

One import root. The base (errors, settings, provisioning) and the top (CLI, commands, sign-off
pipeline) live in this folder; the stages (``chatbench.schema``, ``chatbench.loadgen``,
``chatbench.verify``, ``chatbench.benchmarks``, ``chatbench.reports``) live in the repository's
top-level folders of the same names and install beside them (see ``pyproject.toml``).
"""

from importlib.metadata import version

from chatbench.errors import ChatbenchError
from chatbench.provision import Server, provision

__all__ = ["ChatbenchError", "Server", "provision"]
__version__ = version("chatbench")
