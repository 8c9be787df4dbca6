"""chatbench: will this chat-history schema stay fast and correct at real volume?

One import root. This folder holds the base (errors, settings, output, provisioning) and
``python -m chatbench``; the stages (``chatbench.schema``, ``chatbench.loadgen``, ``chatbench.verify``,
``chatbench.benchmarks``, ``chatbench.rehearse``, ``chatbench.reports``, ``chatbench.history``) live in the
repository's top-level folders of the same names, and the top (CLI, commands, sign-off pipeline, pytest
plugin, testing helpers) in ``top/``; all install as subpackages of ``chatbench`` (``pyproject.toml``).

Importing ``chatbench`` stays light: the pytest plugin does it in every pytest session of an application,
and the clients of a load or a rehearsal start with it. The database stack loads with the module that needs
it (e.g. ``chatbench.provision``).
"""

from __future__ import annotations

from importlib.metadata import version

from chatbench.errors import ChatbenchError

__all__ = ["ChatbenchError", "__version__"]
__version__ = version("chatbench")
