"""Named stop points for the crash tests: make a run stop at a chosen stage, deterministically.

A crash test must signal a run *at* provisioning, COPY, an index build, a cache save, a migration
running under live load, verification, benchmarks or report writing, not "after about two seconds".
Each of those places calls ``checkpoint(stage)``. Normally that is one dictionary lookup and nothing
happens. When the environment names the stage (``CHATBENCH_FAULT_STOP_AT=seed.copy.rows``), the run writes
``<stage>.<pid>`` into ``CHATBENCH_FAULT_DIR`` (the test waits for that file) and then sleeps until a
signal ends it: the test sends SIGINT, SIGTERM or SIGKILL knowing exactly where the run is.

These are test hooks, not settings: they are not in ``chatbench.settings`` and no command documents them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

STOP_AT = "CHATBENCH_FAULT_STOP_AT"
REPORT_DIR = "CHATBENCH_FAULT_DIR"
STAGES = ("provision", "seed.copy.rows", "seed.indexes", "seed.cache_save", "rehearse.migrate", "signoff.drift",
          "signoff.benchmarks", "report.write")
"""The stop points the crash battery uses (every ``checkpoint`` call names one of these, or ``seed.<phase>``)."""


def checkpoint(stage: str) -> None:
    """Stop here for good when the environment asks for ``stage`` (see the module docstring)."""
    if os.environ.get(STOP_AT) != stage:
        return
    folder = Path(os.environ.get(REPORT_DIR) or ".")
    (folder / f"{stage}.{os.getpid()}").write_text(str(os.getpid()))
    while True:
        time.sleep(0.02)  # a signal's handler (KeyboardInterrupt, SystemExit) leaves from here
