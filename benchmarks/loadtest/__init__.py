"""``chatbench load``: N client processes running a weighted mix of history reads and appends.

``mix`` says what runs (operations, weights, parameter pools), ``worker`` is one client process
(closed loop or open loop at a fixed arrival rate, HDR histograms), ``runner`` starts the clients,
merges their histograms and builds the ``LoadResult`` of ``chatbench.benchmarks.results``.

The package imports nothing: each spawned client imports ``worker`` through it, and ``mix`` and ``runner``
bring the benchmarks, verification and provisioning with them (1.5 s of CPU per client). Import from the
modules.
"""
