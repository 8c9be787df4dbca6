"""pytest-benchmark suites of the canonical history queries (run with `pytest benchmarks`)."""
