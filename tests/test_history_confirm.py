"""``signoff --baseline history:BRANCH``: what the comparison or the detector finds slower on this run is measured
again on the same seeded server, and is a FAIL only when the re-measurement agrees; when it does not, the item is
INCONCLUSIVE, and every report says what each measurement found.

Real servers and a real SQLite store. The first measurement of the in-process tests is a real run of the session
server's seeded database, or that run made 20 times as slow: a measurement a burst of other work disturbed, which
a test cannot order from a real machine (the re-measurement, the comparison and the detector are all real). The
store's runs are the same real run made faster or slower, so the comparison and the detector have one right
answer whatever the machine's noise: a 10x step either way."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from commandline import chatbench
from loadgen_fixtures import seeded_database

from chatbench import loadgen
from chatbench.benchmarks.results import BenchmarkRun
from chatbench.history import baseline_from_history, record_run
from chatbench.history.records import Provenance
from chatbench.output import stderr
from chatbench.provision import Server
from chatbench.reports import render_html, render_json, render_junit, render_markdown
from chatbench.reports.signoff import ServerSummary, Signoff, TargetSignoff
from chatbench.settings import resolve
from chatbench.signoff import Display, Evidence, SignoffOptions, StageContext, measure
from chatbench.signoff.baseline import compare_stage, confirm_stage
from chatbench.signoff.recorder import Recorder

SCENARIO = "latest_page"
GIVEN = {"backend": "local", "profile": "smoke", "rounds": "30", "warmup": "2", "retries": "0"}


@dataclass(frozen=True)
class Measured:
    server: Server
    seed: loadgen.SeedResult
    options: SignoffOptions
    run: BenchmarkRun  # one real measurement of SCENARIO

    @property
    def label(self) -> str:
        return f"PostgreSQL {self.server.version} ({self.server.backend})"


@pytest.fixture(scope="module")
def measured(pg: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Measured]:
    from chatbench.commands.impl.signoff import options_from

    cwd = tmp_path_factory.mktemp("confirm")
    options = options_from(resolve("signoff", GIVEN, env={}, cwd=cwd))
    with seeded_database(pg, seed=options.seed) as (db, seed):  # the data a sign-off seeds: its scenarios' params
        run = measure(db, seed, options, Display(stderr()), profile="smoke", only=[SCENARIO]).run
        assert [r.scenario for r in run.scenarios] == [SCENARIO] and run.scenarios[0].cpu_ms
        yield Measured(db, seed, options, run)


def scaled(run: BenchmarkRun, factor: float, index: int = 0) -> BenchmarkRun:
    """``run`` with every round ``factor`` times as long (wall and CPU time), as its own run."""
    scenarios = tuple(replace(r, samples_ms=tuple(x * factor for x in r.samples_ms),
                              cpu_ms=tuple(x * factor for x in r.cpu_ms)) for r in run.scenarios)
    return replace(run, run_id=f"{run.run_id[:8]}x{index}", created_at=f"2026-12-01T00:{index:02d}:00+00:00",
                   scenarios=scenarios)


def history_of(store: Path, run: BenchmarkRun, factor: float, label: str) -> None:
    """Six runs of branch main: ``run`` made ``factor`` times as long, all alike (a level without noise).

    Recorded without the machine's load: the detector leaves out a run measured at more than 1.5 times the
    series' median load (``suspect_loads``), so a re-measurement made while the other xdist worker runs the crash
    batteries (3.2 per CPU in CI29, against the history's own load) was never a change point, and these tests
    judged the load, not the confirmation. Without a recorded load in the history, nothing is suspect."""
    for index in range(6):
        history = replace(scaled(run, factor, index), machine=None)
        record_run(str(store), history, label, Provenance(f"{index:040d}", "main"))


def judged(measured: Measured, store: Path, first: BenchmarkRun) -> TargetSignoff:
    """The compare and confirm stages, as the pipeline runs them, on the seeded server with ``first`` as the
    benchmark stage's run; the target they make."""
    history = baseline_from_history(str(store), "history:main", profile="smoke")
    options = replace(measured.options, baseline="history:main", history=str(store))
    rec = Recorder(Display(stderr()))
    ctx = StageContext(options, options.targets()[0], rec.display, rec, contextlib.ExitStack(),
                       loadgen.load_spec("smoke"), history.pairs(), set(), history=history)
    evidence = Evidence(server=measured.server, label=measured.label, seed=measured.seed, benchmark=first)
    for stage in (compare_stage, confirm_stage):
        evidence = stage(ctx, evidence)
    return TargetSignoff(measured.label, ServerSummary.of(measured.server), tuple(rec.stages), tuple(rec.checks),
                         benchmark=first, comparison=evidence.comparison)


def reports(target: TargetSignoff) -> dict[str, str]:
    signoff = Signoff("2026-12-08T00:00:00+00:00", "smoke", "canonical", "", "test", (target,), baseline="history:main")
    return {"md": render_markdown.render_signoff(signoff), "html": render_html.render_signoff(signoff),
            "json": render_json.render_signoff(signoff), "junit": render_junit.render_signoff(signoff)}


def test_a_regression_the_re_measurement_does_not_see_is_inconclusive_not_a_fail(
        measured: Measured, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "h.sqlite"
    history_of(store, measured.run, 2.0, measured.label)  # the branch: twice as slow as this server really is
    target = judged(measured, store, scaled(measured.run, 20.0, 9))  # a first measurement 20x disturbed
    assert target.verdict == "INCONCLUSIVE" and not target.failing, [c.line() for c in target.checks]
    confirm = [c for c in target.checks if c.stage == "confirm"]
    # the comparison's regression and the detector's change point (cpu_p10), both seen again: neither agrees
    assert {c.name for c in confirm} == {SCENARIO, f"{SCENARIO} cpu_p10"}
    assert all(c.outcome == "inconclusive" and "unconfirmed" in c.message for c in confirm), confirm
    assert not [c for c in target.checks if c.stage == "compare" and c.name == SCENARIO]  # judged by confirm
    assert target.comparison is not None
    (item,) = [i for i in target.comparison.scenarios if i.scenario == SCENARIO]
    assert item.status == "inconclusive" and item.reason.startswith("unconfirmed: regressed on the first"), item
    stage = target.stage("confirm")
    assert stage is not None and stage.status == "inconclusive"
    assert f"re-measured {SCENARIO} on the same seeded server" in stage.detail and "0 of 2 confirmed" in stage.detail
    for name, text in reports(target).items():
        assert "unconfirmed" in text and f"re-measured {SCENARIO}" in text, name
    document = json.loads(reports(target)["json"])
    assert document["verdict"] == "INCONCLUSIVE" and not document["failing"]
    assert any("unconfirmed" in line for line in document["inconclusive"])
    assert "confirm" in capsys.readouterr().err  # the terminal's stage line


def test_a_regression_the_re_measurement_agrees_with_is_a_fail(measured: Measured, tmp_path: Path) -> None:
    store = tmp_path / "h.sqlite"
    history_of(store, measured.run, 0.1, measured.label)  # the branch: ten times as fast as this server
    target = judged(measured, store, measured.run)
    assert target.verdict == "FAIL"
    failing = {c.name: c.message for c in target.failing}
    assert set(failing) == {SCENARIO, f"{SCENARIO} cpu_p10"}, [c.line() for c in target.checks]
    assert "confirmed by a re-measurement on the same server" in failing[SCENARIO]
    assert "still a change point, confirmed" in failing[f"{SCENARIO} cpu_p10"]
    assert target.comparison is not None and target.comparison.verdict == "REGRESSION"
    stage = target.stage("confirm")
    assert stage is not None and stage.status == "failed" and "2 of 2 confirmed" in stage.detail
    for name, text in reports(target).items():
        assert "confirmed by a re-measurement" in text, name


def test_nothing_to_confirm_is_said_and_a_file_baseline_is_judged_once(measured: Measured, tmp_path: Path) -> None:
    store = tmp_path / "h.sqlite"
    history_of(store, measured.run, 1.0, measured.label)
    target = judged(measured, store, scaled(measured.run, 1.0, 9))  # the same samples: nothing slower
    stage = target.stage("confirm")
    assert stage is not None and stage.status == "ok" and stage.detail.startswith("nothing to confirm")
    assert not [c for c in target.checks if c.stage == "confirm"]


@pytest.mark.slow
def test_signoff_against_history_re_measures_and_fails_only_when_confirmed(measured: Measured,
                                                                            tmp_path: Path) -> None:
    """The command itself: its confirm stage, its terminal lines and its four report files."""
    store = tmp_path / "h.sqlite"
    history_of(store, measured.run, 0.1, measured.label)
    out = tmp_path / "out"
    done = chatbench("signoff", *(f"--{k}={v}" for k, v in GIVEN.items()), "--scaling", "none", "--out", str(out),
                     "--history", str(store), "--baseline", "history:main", merged=True, timeout=600)
    assert done.returncode == 1, done.stdout[-4000:]
    assert "✗ confirm" in done.stdout and "confirmed by a re-measurement on the same server" in done.stdout
    document = json.loads((out / "signoff.json").read_text())
    (target,) = document["targets"]
    confirm = [s for s in target["stages"] if s["stage"] == "confirm"]
    assert confirm and confirm[0]["status"] == "failed" and "re-measured" in confirm[0]["detail"]
    assert any(line.startswith("confirm: latest_page") for line in document["failing"]), document["failing"]
    for name in ("signoff.md", "signoff.html", "signoff.junit.xml"):
        assert "confirmed by a re-measurement" in (out / name).read_text(), name


def test_an_application_scenario_is_re_measured_by_name(measured: Measured, tmp_path: Path) -> None:
    """``--queries``: an ``app:QUERY/ROLE`` scenario the comparison calls regressed is measured again (chosen by
    name once bound), and fails only as the canonical ones do, when the re-measurement agrees."""
    from chatbench.schema.appqueries import load_queries

    queries = tmp_path / "app.sql"
    queries.write_text("-- name: page\nSELECT id, content, created_at FROM messages WHERE conversation_id = "
                       ":conversation_id ORDER BY created_at DESC, id DESC LIMIT :limit;\n")
    name = "app:page/whale"
    options = replace(measured.options, queries=load_queries(queries))
    run = measure(measured.server, measured.seed, options, Display(stderr()), profile="smoke", only=[],
                  with_app=True, select=name.__eq__).run
    assert [r.scenario for r in run.scenarios] == [name]
    mine = replace(measured, options=options, run=run)
    store = tmp_path / "h.sqlite"
    history_of(store, run, 0.1, measured.label)  # the branch: ten times as fast as this server
    target = judged(mine, store, run)
    assert target.verdict == "FAIL", [c.line() for c in target.checks]
    failing = {c.name: c.message for c in target.failing}
    assert "confirmed by a re-measurement on the same server" in failing[name], failing
    stage = target.stage("confirm")
    assert stage is not None and f"re-measured {name} on the same seeded server" in stage.detail, stage
