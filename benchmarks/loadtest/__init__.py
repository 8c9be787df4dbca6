"""``chatbench load``: N client processes running a weighted mix of history reads and appends.

``mix`` says what runs (operations, weights, parameter pools), ``worker`` is one client process
(closed loop or open loop at a fixed arrival rate, HDR histograms), ``runner`` starts the clients,
merges their histograms and builds the ``LoadResult`` of ``chatbench.benchmarks.results``.
"""

from chatbench.benchmarks.loadtest.mix import DEFAULT_WEIGHTS, OPERATIONS, parse_weights
from chatbench.benchmarks.loadtest.runner import LoadConfig, run_load

__all__ = ["DEFAULT_WEIGHTS", "OPERATIONS", "LoadConfig", "parse_weights", "run_load"]
