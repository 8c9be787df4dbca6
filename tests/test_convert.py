"""The one converter (``chatbench.convert``): each result class goes to its JSON document and back, the documents
keep what their readers rely on (derived keys, key order, keys left out), and documents written before the
converter still read. The literal documents below were written by the hand-written ``to_dict``/``from_dict``
pairs the converter replaced, so a change of shape fails here before a reader meets it."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from reports_fixtures import environment, make_run

from chatbench.benchmarks.fidelity_result import FidelityReport, FidelityRow
from chatbench.benchmarks.noise import CalibrationProbe
from chatbench.benchmarks.pinning import PinningResult
from chatbench.benchmarks.results import (
    FORMAT_VERSION,
    BenchmarkRun,
    DepthCurve,
    LoadResult,
    MachineLoad,
    OperationLoadResult,
    PlanRecord,
    RunSettings,
    ScenarioResult,
    Target,
    from_json,
    to_json,
)
from chatbench.benchmarks.stats import GrowthFit, SampleStats, describe, fit_growth
from chatbench.convert import DocumentError, from_plain, to_plain
from chatbench.errors import ChatbenchError
from chatbench.loadgen.result import (
    ConversationRef,
    SeedParameters,
    SeedResult,
    TieCursor,
    UserRef,
    seed_result_from_json,
    seed_result_to_json,
)
from chatbench.loadgen.spec import load_spec
from chatbench.reports.comparison import Thresholds
from chatbench.reports.signoff import CheckItem, ServerSummary, VerificationEvidence

STATS = SampleStats(3, 0.1, 0.3, 0.2, 0.1, 0.2, 0.29, 0.298, 0.15, 0.25, 0.1, 0.5)
PINNING = PinningResult("same-core", 1, 100, True, (1,), 200, False, (), "server: not local")
OPERATION = OperationLoadResult("append", "append_message", 1000, 2, {"p50": 0.5, "p99": 2.0}, 0.6, "HISTFAAA")
LOAD = LoadResult(4, 10.0, "open", 100.0, {"append": 1.0}, 99.5, 1000, 2, True, (OPERATION,),
                  replace(OPERATION, operation="all"), ("boom",), "open loop: intended start")

# Written by the hand-written converters this module replaced (captured before the change).
LOAD_DOCUMENT = (
    '{"clients": 4, "duration_s": 10.0, "mode": "open", "rate_per_s": 100.0, "weights": {"append": 1.0}, '
    '"throughput_per_s": 99.5, "total": 1000, "errors": 2, "corrected_for_coordinated_omission": true, '
    '"operations": [{"operation": "append", "query": "append_message", "count": 1000, "errors": 2, '
    '"percentiles_ms": {"p50": 0.5, "p99": 2.0}, "mean_ms": 0.6, "histogram": "HISTFAAA"}], '
    '"overall": {"operation": "all", "query": "append_message", "count": 1000, "errors": 2, '
    '"percentiles_ms": {"p50": 0.5, "p99": 2.0}, "mean_ms": 0.6, "histogram": "HISTFAAA"}, '
    '"error_samples": ["boom"], "correction": "open loop: intended start"}'
)
PINNING_DOCUMENT = (
    '{"mode": "same-core", "cpu": 1, "client_pid": 100, "client_pinned": true, "client_cpus": [1], '
    '"server_pid": 200, "server_pinned": false, "server_cpus": [], "reason": "server: not local", "same_core": false}'
)
RUN_DOCUMENT = (
    '{"format_version": 3, "kind": "load", "run_id": "r2", "created_at": "t", "environment": {"server_version": '
    '"18.1", "server_version_num": 180001, "server_settings": {"fsync": "off"}, "backend": "local", "cpu_model": '
    '"Test CPU", "cpu_count": 2, "pinning": {"mode": "same-core"}, "python_version": "3.11.7", "libraries": '
    '{"psycopg": "3.2"}, "schema_fingerprint": "abc123", "profile": "smoke", "spec": {"messages": {"count": 20000}}, '
    '"seed": 42, "data_sizes": {"users": 100, "conversations": 800, "messages": 20000}, "platform": "", "hostname": '
    '""}, "scenarios": [], "load": null, "settings": null, "skipped": {}, "depth_scaling": {}, "seed_from_cache": '
    'null, "data_checksum": null, "machine": null, "plans": [], "fidelity": null, "calibration": [], "cpu_time": ""}'
)
SEED_PARAMS_DOCUMENT = (
    '{"whales": [{"conversation_id": 1, "user_id": 2, "messages": 1500}, {"conversation_id": "0b7e-uuid", '
    '"user_id": "u-1", "messages": 1200}], "small_conversations": [{"conversation_id": 3, "user_id": 4, '
    '"messages": 2}], "heavy_users": [{"user_id": 5, "conversations": 300}], "light_users": [{"user_id": "u2", '
    '"conversations": 1}], "tie_cursors": [{"conversation_id": 1, "user_id": 2, "created_at": '
    '"2026-01-02T03:04:05.678000+00:00", "id": 99, "tie_size": 4}]}'
)


def full_run() -> BenchmarkRun:
    """A run with every part a document can hold: load, settings, curves with and without buffers, the machine,
    plans, fidelity, calibration, a scenario judged on CPU time and one without a target."""
    run = make_run(seed=3, n=120)
    judged = ScenarioResult.judge(scenario="cpu", query="q", params_version="v", samples_ms=[0.2, 0.3, 0.25] * 40,
                                  cpu_ms=[0.1, 0.15, 0.12] * 40, target=Target(p95_ms=0.5, why="budget"),
                                  extra={"when": datetime(2026, 1, 2, tzinfo=UTC), "pair": (1, 2)})
    bare = ScenarioResult.judge(scenario="bare", query="q", params_version="v", samples_ms=[0.1, 0.2])
    fidelity = FidelityReport((FidelityRow("latest_page", "latest_messages", STATS, STATS, STATS, STATS, 50),),
                              STATS, STATS, to_plain(PINNING), True, "/usr/bin/pgbench")
    without_buffers = DepthCurve((1, 5, 20), (0.1, 0.2, 0.4), fit_growth([1, 5, 20], [0.1, 0.2, 0.4]), (50, 51, 52))
    return replace(
        run, environment=replace(run.environment, pinning=to_plain(PINNING)), scenarios=(*run.scenarios, judged, bare),
        load=LOAD, settings=RunSettings(300, 30, "psycopg", "targets.toml", 3.0), skipped={"offset_page_last": "why"},
        depth_scaling={**run.depth_scaling, "no_buffers": without_buffers}, seed_from_cache=True, data_checksum="abc",
        machine=MachineLoad(2, (0.5, 3.5), 0.4, 3.1, 0.5, 0.01),
        plans=(PlanRecord("whale", "latest_messages", "generic", 50, "Limit [Index Scan]", "d", 0.1),),
        fidelity=fidelity, calibration=(CalibrationProbe("latest_page", (0.1, 0.2), (1.0, 1.1)),), cpu_time="rusage",
    )


def test_a_run_round_trips_through_its_document() -> None:
    run = full_run()
    again = from_json(to_json(run))
    assert to_json(again) == to_json(run)
    # Equal field by field where no NaN is involved (a growth fit of too few points holds NaN, never equal).
    assert (again.load, again.settings, again.machine, again.plans, again.fidelity, again.calibration,
            again.environment) == (run.load, run.settings, run.machine, run.plans, run.fidelity, run.calibration,
                                   run.environment)
    extra = {"when": "2026-01-02T00:00:00+00:00", "pair": [1, 2]}  # ``extra`` is free-form: JSON-plain once written
    assert again.scenarios == (*run.scenarios[:-2], replace(run.scenarios[-2], extra=extra), run.scenarios[-1])
    assert isinstance(again.scenarios[0].samples_ms, tuple) and isinstance(again.load, LoadResult)
    assert again.scenarios[-2].latency[0].floor == "cpu" and again.scenarios[-1].target is None
    assert again.depth_scaling["no_buffers"].buffers == ()  # not written without its growth class (below)


def test_documents_written_before_the_converter_still_read_and_write_back_byte_for_byte() -> None:
    assert from_plain(LoadResult, json.loads(LOAD_DOCUMENT)) == LOAD
    assert json.dumps(to_plain(LOAD)) == LOAD_DOCUMENT
    assert json.dumps(to_plain(PINNING)) == PINNING_DOCUMENT
    run = from_json(RUN_DOCUMENT)
    assert run == BenchmarkRun(kind="load", run_id="r2", created_at="t", environment=environment())
    assert json.dumps(to_plain(run)) == RUN_DOCUMENT
    params = from_plain(SeedParameters, json.loads(SEED_PARAMS_DOCUMENT))
    assert params.whales[1].conversation_id == "0b7e-uuid" and params.whales[0].conversation_id == 1
    assert params.tie_cursors[0].created_at == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert json.dumps(to_plain(params)) == SEED_PARAMS_DOCUMENT


def test_a_format_1_run_reads_its_notes_and_drops_what_it_no_longer_has() -> None:
    data = json.loads(RUN_DOCUMENT)
    for key in ("settings", "skipped", "depth_scaling", "seed_from_cache", "data_checksum", "machine", "plans",
                "fidelity", "calibration", "cpu_time"):
        del data[key]
    data |= {"format_version": 1, "notes": {"rounds": 50, "load_average_1min": [2.5], "unknown": 1},
             "load": json.loads(LOAD_DOCUMENT)}
    del data["load"]["correction"]  # version 2 added it
    run = from_json(json.dumps(data))
    assert run.format_version == FORMAT_VERSION and run.settings == RunSettings(50, 0, "psycopg")
    assert run.machine == MachineLoad(2, (2.5,)) and run.load == replace(LOAD, correction="")


def test_seed_results_round_trip_through_the_names_the_cache_stores_them_by() -> None:
    params = from_plain(SeedParameters, json.loads(SEED_PARAMS_DOCUMENT))
    result = SeedResult("db", "smoke", to_plain(load_spec("smoke")), 42, "time", {"messages": 20000}, "f" * 64,
                        {"load": 1.5}, False, "key", 0.99, params, {"note": [1, 2]})
    stored = json.loads(json.dumps(seed_result_to_json(result)))
    assert seed_result_from_json(stored) == result
    assert stored["params"]["tie_cursors"][0]["created_at"] == "2026-01-02T03:04:05.678000+00:00"
    assert seed_result_from_json({**stored, "written_by_a_newer_chatbench": 1}) == result  # unknown keys ignored
    assert seed_result_from_json({k: v for k, v in stored.items() if k != "extra"}) == replace(result, extra={})
    assert params == SeedParameters((ConversationRef(1, 2, 1500), ConversationRef("0b7e-uuid", "u-1", 1200)),
                                    (ConversationRef(3, 4, 2),), (UserRef(5, 300),), (UserRef("u2", 1),),
                                    (TieCursor(1, 2, params.tie_cursors[0].created_at, 99, 4),))


def test_derived_keys_are_written_for_readers_and_ignored_when_read() -> None:
    stats = describe([0.1, 0.2, 0.9])
    data = to_plain(stats)
    assert data["unstable"] is stats.unstable is True and from_plain(SampleStats, data) == stats
    row = FidelityRow("s", "q", STATS, STATS, STATS, replace(STATS, p50=0.1), 7)
    assert list(to_plain(row))[:4] == ["scenario", "query", "rows", "ratio"] and to_plain(row)["ratio"] == 2.0
    report = to_plain(full_run().fidelity)
    assert report["goal_ratio"] == 1.3 and report["rows"][0]["harness"]["unstable"] is True
    check = to_plain(CheckItem("plans", "x", "failed", "Seq Scan"))
    assert (check["passed"], check["failing"]) == (False, True)
    assert next(iter(to_plain(full_run()))) == "format_version"


def test_keys_without_content_are_left_out_as_before() -> None:
    curve = to_plain(DepthCurve((1, 2, 3), (0.1, 0.1, 0.1), fit_growth([1, 2, 3], [1, 1, 1]), (5, 5, 5)))
    assert "buffers" not in curve and "buffer_growth" not in curve
    assert to_plain(ServerSummary("container")) == {"backend": "container"}
    assert to_plain(ServerSummary("dsn", details={"k": "v"})) == {"backend": "dsn", "details": {"k": "v"}}
    assert list(to_plain(ServerSummary("local", "u", "18", 180000, "db"))) == [
        "backend", "url", "version", "version_num", "database", "settings"]
    assert to_plain(VerificationEvidence()) == {}
    spec = load_spec("smoke")
    assert "tables" not in to_plain(spec)  # the three-table spec's document, and so its cache key, is unchanged
    assert to_plain(replace(spec, tables=(("attachments", 0.5),)))["tables"] == {"attachments": {"per_parent": 0.5}}
    assert to_plain(Thresholds())["min_effect"] == 0.10


def test_a_growth_fit_of_an_older_file_reads_missing_and_null_numbers_as_nan() -> None:
    fit = from_plain(GrowthFit, {"growth_class": "flat", "points": 3, "growth": None})
    assert fit.growth_class == "flat" and math.isnan(fit.growth) and math.isnan(fit.r2_linear)
    assert from_plain(GrowthFit, {}).growth_class == "unknown"


def test_a_document_that_does_not_read_names_the_field_in_one_line() -> None:
    data = json.loads(to_json(full_run()))
    del data["scenarios"][1]["stats"]["p95"]
    data["scenarios"][0]["verdict"] = "MAYBE"
    with pytest.raises(DocumentError) as caught:
        from_plain(BenchmarkRun, data)
    message = str(caught.value)
    assert "\n" not in message and "required field missing @ BenchmarkRun.scenarios[1].stats.p95" in message
    assert "MAYBE" in message and "BenchmarkRun.scenarios[0].verdict" in message
    with pytest.raises(ChatbenchError, match=r"result file does not read as a run \(.*stats\.p95.*pass a file"):
        from_json(json.dumps(data))
    with pytest.raises(DocumentError, match=r"expected str @ RunSettings\.driver"):  # not the text "None"
        from_plain(RunSettings, {"rounds": 3, "warmup": 0, "driver": None})
    assert from_json(RUN_DOCUMENT.replace('"cpu_time": ""', '"cpu_time": null')).cpu_time == ""  # as it always read
