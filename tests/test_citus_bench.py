"""The side-by-side benchmark (one node vs a Citus cluster, same rows): what it prints is measured, what
is asserted here is deterministic (rows, routing, that every figure was measured)."""

from __future__ import annotations

import math

import pytest
from citus_support import citus_server

from chatbench.benchmarks import citus as side_by_side
from chatbench.loadgen import load_spec
from chatbench.provision import provision

pytestmark = pytest.mark.slow  # whole sign-offs, rehearsals or a Citus cluster: not in the fast tier


def test_side_by_side_on_the_smoke_profile() -> None:
    with provision("local", announce=lambda _m: None) as single, citus_server() as cluster:
        result = side_by_side.run(single, cluster, load_spec("smoke"), profile="smoke", rounds=20)
    seed = result.seed
    assert seed.messages == 20000
    assert min(seed.single_node_s, seed.cluster_seed_s, seed.cluster_distribute_s, seed.raw_copy_s) > 0
    by_scenario = {q.scenario: q for q in result.queries}
    history = [q for q in result.queries if q.query in ("latest_messages", "messages_before", "messages_offset",
                                                         "messages_after", "count_messages")]
    assert history and all(q.router and q.tasks == 1 for q in history)
    assert (by_scenario["conversation_list_first"].router, by_scenario["conversation_list_first"].tasks) == (False, 32)
    assert by_scenario["append_message"].tasks == -1  # Citus refuses the parameterised INSERT ... SELECT
    for q in result.queries:
        assert q.single.buffers > 0 and q.single.rounds >= 20
        if q.tasks > 0:
            assert q.cluster.buffers > 0 and not math.isnan(q.cluster.p50_ms)
    assert "seed ratios: cluster / raw COPY" in side_by_side.render(result)
