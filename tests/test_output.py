"""The one output helper (``chatbench.output``) and the renderers built on it, on both of its paths.

A terminal (``Console(force_terminal=True, width=...)``) gets tables at that width and live progress;
anything else gets one whole line per item (no table rules, no wrapping, no truncation) and plain
progress lines: a line when a stage starts and ends, and between them at most one "still running"
line per ``progress_seconds``. The end-to-end check of every command piped into a file is
``test_ci_output.py``.
"""

from __future__ import annotations

import io
import re
import time

import pytest
from reports_fixtures import make_run, make_signoff, make_target
from rich.console import Console
from rich.table import Table

from chatbench.output import Output, console_for
from chatbench.verify.findings import Finding
from chatbench.verify.result import CheckOutcome, GrowthCurve, PlanSummary, VerificationResult

TABLE_RULES = re.compile(r"[┏┃━│└┡╇┗┓┛┳┻╋─]")
LONG_INDEX = "ix_messages_conversation_id_created_at_id_and_a_suffix"  # 55 characters


def _terminal(width: int) -> tuple[Output, io.StringIO]:
    buffer = io.StringIO()
    return Output(Console(file=buffer, force_terminal=True, width=width, color_system=None)), buffer


def _log(progress_seconds: float = 5.0) -> tuple[Output, io.StringIO]:
    buffer = io.StringIO()
    return Output(console_for(file=buffer, width=80), progress_seconds=progress_seconds), buffer


def _table() -> Table:
    table = Table(title="indexes")
    table.add_column("index", no_wrap=True)
    table.add_column("why")
    table.add_row(LONG_INDEX, "serves the history page, newest first, and the count")
    return table


def test_a_terminal_gets_the_table_at_its_width_and_a_log_gets_whole_lines() -> None:
    lines = [f"index {LONG_INDEX}: serves the history page, newest first, and the count"]
    wide, shown = _terminal(200)
    wide.table(_table(), lines)
    assert "┏" in shown.getvalue() and LONG_INDEX in shown.getvalue()
    assert max(len(line) for line in shown.getvalue().splitlines()) <= 200
    narrow, shown = _terminal(60)  # the table cannot fit whole: lines (wrapped between words) instead
    narrow.table(_table(), lines)
    assert "┏" not in shown.getvalue() and any(LONG_INDEX in line for line in shown.getvalue().splitlines())
    log, shown = _log()
    log.table(_table(), lines)
    assert shown.getvalue().splitlines() == lines and not TABLE_RULES.search(shown.getvalue())


def test_a_log_line_is_never_wrapped_nor_read_as_markup() -> None:
    sentence = ("p95/p99: the wall-clock percentile [low–high] over every round of the measurement that decided, "
                "postgresql://chatbench@127.0.0.1:5432/chatbench_run_0123456789abcdef [bold]not markup[/bold]")
    log, shown = _log()
    log.line(sentence)
    log.note(sentence)
    log.console.print(sentence, markup=False)  # code that holds the console itself: not wrapped either
    assert shown.getvalue().splitlines() == [sentence] * 3


def test_a_stage_in_a_log_starts_ends_and_says_it_is_alive_at_a_bounded_rate() -> None:
    interval = 0.1
    log, shown = _log(interval)
    started = time.monotonic()
    with log.stage("seed", total=3, unit="phases") as stage:
        for phase in ("plan", "copy", "indexes"):
            stage.step(phase)
            time.sleep(0.4)  # a long silent step: the timer speaks
            stage.advance()
    elapsed = time.monotonic() - started
    lines = shown.getvalue().splitlines()
    assert lines[0] == "seed: started (0/3 phases)"
    assert re.fullmatch(r"seed: done in \d+\.\d s", lines[-1]), lines
    alive = [line for line in lines if line.startswith("seed: still running: ")]
    assert alive and len(alive) == len(lines) - 2, lines
    assert any(re.fullmatch(r"seed: still running: copy, [12]/3 phases, \d+ s", line) for line in alive), alive
    assert len(alive) <= elapsed / interval + 1  # at most one line per interval


def test_a_stage_in_a_log_says_how_it_ended() -> None:
    log, shown = _log()
    with pytest.raises(RuntimeError), log.stage("benchmarks"):
        raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt), log.stage("rehearsal"):
        raise KeyboardInterrupt
    lines = shown.getvalue().splitlines()
    assert lines[0:2] == ["benchmarks: started", lines[1]] and lines[1].startswith("benchmarks: stopped after ")
    assert lines[2] == "rehearsal: started" and lines[3].startswith("rehearsal: interrupted after ")


def test_a_stage_on_a_terminal_is_live_and_leaves_no_progress_lines() -> None:
    terminal, shown = _terminal(100)
    with terminal.stage("seed", total=10, unit="rows") as outer:
        outer.step("copy")
        with terminal.stage("verify") as inner:  # nested stages share one live display
            inner.step("drift.tables")
        outer.advance(10)
        terminal.line("a line printed while a stage runs")
    text = shown.getvalue()
    assert "a line printed while a stage runs" in text
    assert "started" not in text and "still running" not in text and "done in" not in text


def _verification() -> VerificationResult:
    finding = Finding("plans", "index_used", "messages", f"uses {LONG_INDEX}", "Seq Scan on messages", "error",
                      query="latest_messages (custom plan)", scenario="whale-latest", detail="Seq Scan (rows=20000)")
    return VerificationResult(
        server={"url": "postgresql://chatbench@127.0.0.1:5432/chatbench", "version": "18.1"},
        canonical_source="schema.apply", params_source="seed", read_only=False, probes_site="",
        findings=(finding,),
        checks=(CheckOutcome("drift.behaviour.updated_not_before_created", "", True, 0, 0, 0, 0.001),
                CheckOutcome("plans.contracts", "", False, 1, 0, 0, 0.02)),
        curves=(GrowthCurve("keyset", "messages_before", "custom", ((50, 15), (2449, 14))),),
        plans=(PlanSummary("whale-latest", "", "latest_messages", "custom", 17,
                           0.1, f"Limit [Index Scan Backward using {LONG_INDEX} on messages]"),),
        timings={},
    )


def test_verify_report_is_tables_on_a_wide_terminal_and_whole_lines_in_a_log() -> None:
    from chatbench.verify.render import render_terminal

    terminal, shown = _terminal(260)
    render_terminal(_verification(), terminal)
    assert shown.getvalue().count("┏") == 4  # checks, findings, plans, growth
    log, shown = _log()
    render_terminal(_verification(), log)
    text = shown.getvalue()
    assert not TABLE_RULES.search(text)
    lines = text.splitlines()
    assert "check drift.behaviour.updated_not_before_created: PASS (0 errors, 0 warnings, 0 info; 1.0 ms)" in lines
    assert _verification().findings[0].message() in lines
    assert (f"plan whale-latest latest_messages: custom 17 buffers; custom plan Limit [Index Scan Backward "
            f"using {LONG_INDEX} on messages]") in lines
    assert "growth keyset (messages_before), custom plan: buffers by depth 50:15  2449:14" in lines


def test_benchmark_report_is_a_table_on_a_wide_terminal_and_a_line_per_scenario_in_a_log() -> None:
    from chatbench.benchmarks.explain import LATENCY_RULE
    from chatbench.benchmarks.table import render_run

    run = make_run()
    terminal, shown = _terminal(200)
    render_run(run, terminal)
    table = [line for line in shown.getvalue().splitlines() if line.startswith("│")]
    assert [line.split("│")[1].strip() for line in table] == [s.scenario for s in run.scenarios]
    log, shown = _log()
    render_run(run, log)
    lines = shown.getvalue().splitlines()
    assert not TABLE_RULES.search(shown.getvalue())
    for scenario in run.scenarios:
        assert any(line.startswith(f"{scenario.scenario}: {scenario.verdict}; p50 ") for line in lines), scenario
    assert LATENCY_RULE in lines and lines[-1].startswith("verdict: ")


def test_signoff_display_and_summary_on_both_paths() -> None:
    from chatbench.reports.signoff import StageTiming
    from chatbench.signoff.display import Display, show_summary

    signoff = make_signoff(make_target(make_run()), make_target(None, label="PostgreSQL 15.8 (local)"))
    terminal, shown = _terminal(120)
    show_summary(signoff, terminal)
    assert "┏" in shown.getvalue() and "PostgreSQL 15.8 (local)" in shown.getvalue()
    log, shown = _log()
    show_summary(signoff, log)
    detail = "local, PostgreSQL 18.6, postgresql://chatbench@127.0.0.1:48205/chatbench_run_0123456789abcdef"
    Display(log, show_label=True).stage_done("PostgreSQL 18.6 (local)", StageTiming("provision", 0.27, "ok", detail))
    lines = shown.getvalue().splitlines()
    assert not TABLE_RULES.search(shown.getvalue())
    assert "stage provision: 0.90 s (PostgreSQL 18.1 (local)), 0.90 s (PostgreSQL 15.8 (local))" in lines
    assert any(line.startswith("total ") and line.endswith("(PostgreSQL 15.8 (local))") for line in lines)
    assert lines[-1] == f"  ✓ provision      0.27 s  {detail}  (PostgreSQL 18.6 (local))"


def test_comparison_is_a_table_on_a_wide_terminal_and_a_line_per_scenario_in_a_log() -> None:
    from chatbench.reports.compare import Thresholds, compare_runs
    from chatbench.reports.render_terminal import render_comparison

    comparison = compare_runs(make_run(seed=2, slow={"offset_page_20": 2.0}), make_run(seed=1), Thresholds())
    terminal, shown = _terminal(250)
    render_comparison(comparison, terminal, title="chatbench compare a.json vs b.json")
    assert "┏" in shown.getvalue()
    log, shown = _log()
    render_comparison(comparison, log, title="chatbench compare a.json vs b.json")
    lines = shown.getvalue().splitlines()
    assert lines[0] == f"chatbench compare a.json vs b.json: {comparison.verdict}"
    for item in comparison.all_items:
        assert item.line() in lines
