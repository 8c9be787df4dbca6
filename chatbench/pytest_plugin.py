"""chatbench's pytest plugin (entry point ``pytest11``): the ``--chatbench-*`` options.

Loaded by every pytest session in a venv where chatbench is installed, so it must stay light: it
imports only the settings declarations (no server, database or numeric library). The options are
generated from ``chatbench.settings``, like the CLI's, so ``pytest benchmarks``,
``pytest --pyargs chatbench.benchmarks`` and ``chatbench bench`` accept the same settings.
"""

from __future__ import annotations

from typing import Any

from chatbench.benchmarks.options import SUITE_SETTINGS
from chatbench.settings import add_pytest_options

PLUGIN_SETTINGS = SUITE_SETTINGS
"""Every setting a pytest session can take: the benchmark suite's."""


def pytest_addoption(parser: Any) -> None:
    add_pytest_options(parser, PLUGIN_SETTINGS)
