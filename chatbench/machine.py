"""The machine a run measures on, as the result files and the history name it.

In the base layer so that reading or recording a run (``history``) does not import the measuring session's
server and schema modules (``benchmarks.environment``) only to name the CPU.
"""

from __future__ import annotations

import platform


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
