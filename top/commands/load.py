"""Concurrent load: N client processes running a weighted mix of history reads and message appends.

Closed loop by default (each client back to back for ``--duration``); ``--rate R`` makes it open
loop at R operations per second in total (Poisson arrivals, latency from the intended start).
Latency percentiles come from HDR histograms corrected for coordinated omission; the result (same
JSON family as ``chatbench bench``) goes to ``--out``. Exit 1 when any operation failed.
"""

from __future__ import annotations

from chatbench.settings import SERVER_SETTINGS

NAME = "load"
HELP = "concurrent clients running a weighted read/append mix (HDR percentiles, throughput, errors)"
SETTINGS = (*SERVER_SETTINGS, "profile", "seed", "clients", "duration", "warmup_seconds", "rate", "mix", "results",
            "format")
