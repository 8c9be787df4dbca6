"""Result objects for report tests: built through the real result model from generated samples.

The comparison and renderers are pure functions of result files; these fixtures give them runs with
known distributions (lognormal latencies, a seeded RNG) so a test can state what must be found.
The end-to-end sign-off tests use real servers (see ``test_reports_signoff.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from chatbench.benchmarks.results import (
    BenchmarkRun,
    BufferUsage,
    DepthCurve,
    EnvironmentFingerprint,
    ScenarioResult,
    Target,
)
from chatbench.benchmarks.stats import GrowthFit
from chatbench.convert import from_plain
from chatbench.reports.signoff import (
    CheckItem,
    ScalingPoint,
    SeedSummary,
    ServerSummary,
    Signoff,
    StageTiming,
    TargetSignoff,
)

SCENARIOS: tuple[tuple[str, str, float, int, int | None], ...] = (
    # name, query, p50 ms, buffers, depth
    ("latest_page", "latest_messages", 0.08, 57, None),
    ("keyset_page_1", "messages_before", 0.09, 58, 1),
    ("keyset_page_5", "messages_before", 0.09, 58, 5),
    ("keyset_page_20", "messages_before", 0.09, 59, 20),
    ("offset_page_1", "messages_offset", 0.12, 110, 1),
    ("offset_page_5", "messages_offset", 0.30, 310, 5),
    ("offset_page_20", "messages_offset", 1.10, 1060, 20),
    ("message_count", "count_messages", 0.20, 30, None),
)


def environment(**changes: Any) -> EnvironmentFingerprint:
    env = EnvironmentFingerprint(
        server_version="18.1",
        server_version_num=180001,
        server_settings={"fsync": "off"},
        backend="local",
        cpu_model="Test CPU",
        cpu_count=2,
        pinning={"mode": "same-core"},
        python_version="3.11.7",
        libraries={"psycopg": "3.2"},
        schema_fingerprint="abc123",
        profile="smoke",
        spec={"messages": {"count": 20000}},
        seed=42,
        data_sizes={"users": 100, "conversations": 800, "messages": 20000},
    )
    return replace(env, **changes)


def samples(p50: float, n: int, rng: np.random.Generator) -> list[float]:
    return list(p50 * np.exp(rng.normal(0.0, 0.25, n)) + rng.exponential(p50 * 0.05, n))


def make_run(
    *,
    seed: int = 1,
    n: int = 400,
    slow: Mapping[str, float] | None = None,
    buffers: Mapping[str, int] | None = None,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
    env: EnvironmentFingerprint | None = None,
    versions: Mapping[str, str] | None = None,
    drop: tuple[str, ...] = (),
    run_id: str | None = None,
) -> BenchmarkRun:
    """A run of ``SCENARIOS``; ``slow`` multiplies a scenario's latency, ``buffers`` overrides its buffers."""
    rng = np.random.default_rng(seed)
    results = []
    for name, query, p50, bufs, depth in SCENARIOS:
        if name in drop:
            continue
        factor = (slow or {}).get(name, 1.0)
        results.append(
            ScenarioResult.judge(
                scenario=name,
                query=query,
                params_version=(versions or {}).get(name, f"v-{name}"),
                samples_ms=samples(p50 * factor, n, rng),
                buffers=BufferUsage(shared_hit=(buffers or {}).get(name, bufs), shared_read=0),
                target=Target(
                    p95_ms=1.0 if not name.startswith("offset") else 5.0,
                    p99_ms=3.0 if not name.startswith("offset") else 10.0,
                    buffers=2000,
                ),
                extra={"depth": depth, "rows_per_round": 50, **((extra or {}).get(name, {}))},
            )
        )
    keyset = [r for r in results if r.scenario.startswith("keyset_page_")]
    offset = [r for r in results if r.scenario.startswith("offset_page_")]

    def curve(points: list[ScenarioResult], growth: str) -> DepthCurve:
        fit = from_plain(GrowthFit, {"growth_class": growth})
        return DepthCurve(
            tuple(r.extra["depth"] for r in points),
            tuple(r.stats.p50 for r in points),
            fit,
            tuple(r.buffers.total for r in points if r.buffers),
            fit,
        )

    return BenchmarkRun(
        kind="bench",
        run_id=run_id or f"run{seed}",
        created_at="2026-11-24T01:00:00+00:00",
        environment=env or environment(),
        scenarios=tuple(results),
        depth_scaling={"keyset_page": curve(keyset, "flat"), "offset_page": curve(offset, "linear")},
    )


def make_target(
    run: BenchmarkRun | None,
    *,
    label: str = "PostgreSQL 18.1 (local)",
    failing: tuple[str, ...] = (),
    error: str | None = None,
    comparison: Any = None,
) -> TargetSignoff:
    checks = [
        CheckItem("drift", "messages", "passed", "table matches"),
        CheckItem("health", "messages.conversation_id", "failed", "FK column covered twice", "warning"),
    ]
    checks += [CheckItem("plans", name, "failed", f"{name}: Seq Scan on messages (rows=20000)") for name in failing]
    if run is not None:
        checks += [
            CheckItem(
                "benchmarks",
                s.scenario,
                {"FAIL": "failed", "INCONCLUSIVE": "inconclusive"}.get(s.verdict, "passed"),  # type: ignore[arg-type]
                "; ".join(s.failures or s.undecided) or "within target",
            )
            for s in run.scenarios
        ]
    stages = (
        StageTiming("provision", 0.9, "ok", "local, PostgreSQL 18.1"),
        StageTiming("schema", 0.1, "ok"),
        StageTiming("seed", 0.4, "ok", "template cache hit"),
        StageTiming("plans", 0.8, "failed" if failing else "ok"),
        StageTiming("benchmarks", 3.2, "ok"),
    )
    if error is not None:
        stages += (StageTiming("load", 0.0, "error", error),)
    scaling = (
        ScalingPoint("latest_page", 20_000, 0.07, 0.2, "smoke"),
        ScalingPoint("latest_page", 200_000, 0.08, 0.22, "ci"),
        ScalingPoint("offset_page_20", 20_000, 0.9, 1.2, "smoke"),
        ScalingPoint("offset_page_20", 200_000, 1.1, 1.5, "ci"),
    )
    return TargetSignoff(
        label=label,
        server=ServerSummary("local", "postgresql://chatbench:***@127.0.0.1:5432/x", "18.1", 180001, "x"),
        stages=stages,
        checks=tuple(checks),
        seed=SeedSummary("smoke", 1, "time", {"messages": 20000}, "f" * 64, True, "key", {}, 0.99, 8),
        benchmark=run,
        comparison=comparison,
        scaling=scaling,
        error=error,
    )


def make_signoff(*targets: TargetSignoff) -> Signoff:
    return Signoff(
        created_at="2026-11-24T01:00:00+00:00",
        profile="smoke",
        schema_source="canonical",
        schema_fingerprint="abc123",
        chatbench_version="0.1.0",
        targets=targets,
    )
