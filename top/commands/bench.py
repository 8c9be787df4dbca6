"""Benchmark the canonical history queries against targets, through the sign-off's own path.

A throwaway server (or the one the settings name) seeded with the profile (snapshot cache reused), then
``benchmarks.session.measure_scenarios``, the function the sign-off's benchmark stage measures through:
one session, the selected scenarios (``-k``, pytest's keyword expression over the suite's test ids, and over
the application's ``app:QUERY/ROLE`` scenarios by the same rule) in order, undecided ones measured again.
The run is written as the results JSON (``--results``) and as ``bench.json`` (``--json``:
pytest-benchmark's format built from the same run, raw samples in ``extra_info``, the whole run under
``"chatbench"``), shown as a table of p50/p95/p99 with target and verdict, and recorded with
``--history``. ``pytest benchmarks`` (the suite, for pytest users) measures through the same
``BenchSession.measure``, one test per scenario. ``--fidelity`` instead compares the harness with
pgbench -M prepared.
Exit 0 when every target is met, 1 when one is missed, 3 when none is missed but the noise measured on
this machine left one undecided (INCONCLUSIVE), 2 on bad input.
"""

from __future__ import annotations

from chatbench.benchmarks.options import SUITE_SETTINGS

NAME = "bench"
HELP = "benchmark the history queries against targets (p50/p95/p99 table, JSON with raw samples)"
SETTINGS = (*SUITE_SETTINGS, "json", "select", "fidelity", "format", "history", "commit", "branch", "queries",
            "schema_from", "schema_from_cmd", "command_timeout")
