"""The settings the benchmark suite reads, as ``--chatbench-*`` pytest options or from the environment/file.

Declared in ``chatbench.settings`` like every setting; this tuple only says which of them the suite
uses, so ``chatbench bench``, ``pytest benchmarks`` and ``pytest --pyargs chatbench.benchmarks``
resolve the same values the same way (the ``bench`` command's defaults).
"""

from __future__ import annotations

from chatbench.settings import SERVER_SETTINGS

SUITE_SETTINGS = (*SERVER_SETTINGS, "profile", "seed", "targets", "rounds", "warmup", "pin", "driver", "results",
                  "cache", "retries", "retry_budget", "models")
SUITE_COMMAND = "bench"
