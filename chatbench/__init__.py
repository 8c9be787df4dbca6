"""chatbench: will this chat-history schema stay fast and correct at real volume?

One import root. This folder holds the base (errors, settings, output, provisioning) and
``python -m chatbench``; the stages (``chatbench.schema``, ``chatbench.loadgen``, ``chatbench.verify``,
``chatbench.benchmarks``, ``chatbench.rehearse``, ``chatbench.reports``, ``chatbench.history``) live in the
repository's top-level folders of the same names, and the top (CLI, commands, sign-off pipeline, pytest
plugin, testing helpers) in ``top/``; all install as subpackages of ``chatbench`` (``pyproject.toml``).

Importing ``chatbench`` stays light: the pytest plugin does it in every pytest session of an application,
and every app client of a rehearsal's live load starts with it. The database stack loads with the module
that needs it (e.g. ``chatbench.provision``), and ``__version__`` is read from the installed metadata only
when asked for.
"""

from __future__ import annotations

from chatbench.errors import ChatbenchError

__all__ = ["ChatbenchError", "__version__"]


def __getattr__(name: str) -> str:
    """``chatbench.__version__``, read when first asked for: ``importlib.metadata`` costs about 25 ms of the
    30 ms ``import chatbench`` took (``python -X importtime``), paid by every process that never shows it."""
    if name != "__version__":
        raise AttributeError(f"module 'chatbench' has no attribute {name!r}")
    from importlib.metadata import version  # lazy: the measured start-up cost above

    return version("chatbench")
