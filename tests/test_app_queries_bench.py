"""The application's queries (``--queries``) in ``chatbench bench`` and ``chatbench signoff``: measured as
``app:QUERY/ROLE`` scenarios beside the canonical ones, judged against targets, written to the results JSON,
bench.json, signoff.json and the JUnit, compared by ``compare`` (an edited query is ``changed``).

Real commands on the local backend with the smoke profile and the tenant schema of the corpus
(``tests/app_queries/chat_tenant``). No timing is asserted: the defective queries fail their targets on
buffers (exact: a Seq Scan reads over a thousand pages where the budget is 200), the rest is structure.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from xml.etree import ElementTree

import psycopg
import pytest
from app_queries_support import CORPUS, queries_of, seeded_app
from commandline import chatbench, in_process

from chatbench.benchmarks.results import read
from chatbench.benchmarks.session import measure_scenarios
from chatbench.benchmarks.targets import load_targets
from chatbench.provision import Server
from chatbench.reports.compare import compare_runs
from chatbench.schema.appqueries import parse_queries

TENANT = CORPUS / "chat_tenant"
BROKEN = ("\n-- name: broken\nSELECT no_such_column FROM messages WHERE conversation_id = :conversation_id"
          " LIMIT :limit;\n")
FAST = ("--backend", "local", "--profile", "smoke", "--rounds", "20", "--warmup", "2", "--retries", "0")


def _blocks(*names: str, edit: dict[str, tuple[str, str]] | None = None) -> str:
    """The tenant corpus's queries ``names``, as the file writes them (``edit``: name -> (old, new) in its SQL)."""
    text = (TENANT / "queries.sql").read_text()
    parts = re.split(r"(?m)^(?=-- name: )", text)
    chosen = []
    for part in parts:
        match = re.match(r"-- name: (\w+)", part)
        if match and match.group(1) in names:
            old, new = (edit or {}).get(match.group(1), ("", ""))
            chosen.append(part.replace(old, new) if old else part)
    return "\n".join(chosen)


@pytest.mark.parametrize("command", ["bench", "signoff"])
def test_a_bad_queries_file_is_one_line_before_any_server(tmp_path: Path, command: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "app.sql"
    bad.write_text("-- name: by_tenant\nSELECT * FROM messages WHERE tenant_id = :tenant LIMIT :limit\n")
    done = in_process(capsys, command, "--backend", "local", "--profile", "smoke", "--queries", str(bad),
                      "--out" if command == "signoff" else "--results", str(tmp_path / "out"))
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "parameter :tenant is not a role" in lines[0], lines
    assert str(bad) in lines[0] and "Traceback" not in done.stderr
    assert "postgresql" not in (done.stdout + done.stderr).lower()  # no server was started
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_bench_measures_the_app_queries_and_compare_sees_an_edited_one(tmp_path: Path) -> None:
    """One bench with the corpus's queries, then one with a query edited: results JSON, bench.json, compare."""
    queries = tmp_path / "app.sql"
    queries.write_text(_blocks("history_numeric", "history_numeric_fixed", "rename_chat") + BROKEN)
    first, bench_json = tmp_path / "first.json", tmp_path / "bench.json"
    done = chatbench("bench", *FAST, "-k", "latest_page or app:", "--schema-from", str(TENANT / "schema.sql"),
                     "--queries", str(queries), "--results", str(first), "--json", str(bench_json), timeout=600)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    run = read(first)
    names = {r.scenario for r in run.scenarios}
    assert {"latest_page", "app:history_numeric/whale", "app:history_numeric/small",
            "app:history_numeric_fixed/whale", "app:history_numeric_fixed/small", "app:rename_chat/whale"} <= names
    # the implicit cast reads the whole table: over the plan contract's page budget (exact, not a timing)
    bad = run.scenario("app:history_numeric/whale")
    assert bad.verdict == "FAIL" and bad.target is not None and bad.target.buffers == 200
    assert any("app:history_numeric/whale: buffers" in f for f in bad.failures), bad.failures
    assert bad.buffers is not None and bad.buffers.total > 200
    good = run.scenario("app:history_numeric_fixed/whale")
    assert good.buffers is not None and good.buffers.total <= 200 and good.target is not None
    assert good.target.p95_ms == run.scenario("latest_page").target.p95_ms  # type: ignore[union-attr]
    assert good.extra["app_query"] == "history_numeric_fixed" and good.extra["rows_per_round"] == 50
    write = run.scenario("app:rename_chat/whale")
    assert "rolled back" in write.extra["transaction"] and write.extra["rows_per_round"] == 1
    assert "app:history_numeric/whale: buffers" in done.stdout  # the one-line miss, and the table's row
    assert re.search(r"^app:history_numeric/whale: FAIL", done.stdout, re.M), done.stdout[-3000:]
    # a query the server cannot run is named with the server's reason, not a crash of the run
    assert "UndefinedColumn" in run.skipped["app:broken/whale"], run.skipped
    document = json.loads(bench_json.read_text())
    assert {b["extra_info"]["scenario"] for b in document["benchmarks"]} == names

    edited = tmp_path / "edited.sql"
    edited.write_text(_blocks("history_numeric", "history_numeric_fixed", "rename_chat",
                              edit={"history_numeric_fixed": ("SELECT id, created_at, content, raw",
                                                              "SELECT id, created_at, content")}))
    second = tmp_path / "second.json"
    done = chatbench("bench", *FAST, "-k", "latest_page or app:", "--schema-from", str(TENANT / "schema.sql"),
                     "--queries", str(edited), "--results", str(second), "--json", str(tmp_path / "b2.json"),
                     timeout=600)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    status = {s.scenario: s.status for s in compare_runs(read(second), read(first)).scenarios}
    assert status["app:history_numeric_fixed/whale"] == status["app:history_numeric_fixed/small"] == "changed"
    for same in ("app:history_numeric/whale", "app:rename_chat/whale", "latest_page"):
        assert status[same] not in ("changed", "new", "missing"), (same, status[same])


@pytest.mark.slow
def test_signoff_judges_and_benchmarks_the_app_queries(tmp_path: Path) -> None:
    """The plans stage judges the queries' plan contracts; the benchmarks stage measures them; both reach
    signoff.json, the JUnit and the Markdown."""
    queries = tmp_path / "app.sql"
    queries.write_text(_blocks("history_numeric", "history_numeric_fixed", "rename_chat"))
    assert queries_of("chat_tenant").named("history_numeric")  # the corpus still has the query used here
    out = tmp_path / "signoff"
    done = chatbench("signoff", *FAST, "--scaling", "none", "--schema-from", str(TENANT / "schema.sql"),
                     "--queries", str(queries), "--out", str(out), timeout=900)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((out / "signoff.json").read_text())
    (target,) = data["targets"]
    scenarios = {s["scenario"]: s for s in target["benchmark"]["scenarios"]}
    assert {"app:history_numeric/whale", "app:history_numeric_fixed/whale", "app:rename_chat/whale"} <= set(scenarios)
    assert scenarios["app:history_numeric/whale"]["verdict"] == "FAIL"
    checks = [c for c in target["checks"] if c["stage"] in ("plans", "benchmarks")]
    failed = {(c["stage"], c["name"]) for c in checks if not c["passed"]}
    assert ("benchmarks", "app:history_numeric/whale") in failed  # its buffers: exact, not a timing
    # the plans stage judged the queries' contracts as `chatbench verify --queries` does
    plan_lines = [c["message"] for c in checks if c["stage"] == "plans" and not c["passed"]]
    assert any("implicit_cast" in line and "query history_numeric " in line for line in plan_lines), plan_lines
    assert not any("query history_numeric_fixed" in line for line in plan_lines), plan_lines
    plans = next(s for s in target["stages"] if s["stage"] == "plans")
    assert plans["status"] == "failed" and "3 application queries" in plans["detail"], plans
    suite = ElementTree.parse(out / "signoff.junit.xml").getroot()
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    app_cases = [name for name in cases if name and "app:history_numeric/whale" in name]
    assert app_cases and cases[app_cases[0]].find("failure") is not None, sorted(cases)
    assert any(name and "app:history_numeric_fixed/whale" in name for name in cases), sorted(cases)
    assert "app:history_numeric/whale" in (out / "signoff.md").read_text()


@pytest.mark.parametrize("driver", ["psycopg", "libpq"])
def test_an_app_write_is_measured_rolled_back(pg: Server, driver: str) -> None:
    """The application's UPDATE runs every round and returns its row, yet no title changes: each round is rolled
    back, and the prepared statement survives the rollbacks (a libpq round would fail without it)."""
    queries = parse_queries(_blocks("rename_chat", "history_numeric_fixed"), "app.sql")
    with seeded_app(pg, "chat_tenant") as app:
        with psycopg.connect(app.server.conninfo()) as conn:
            before = conn.execute("SELECT count(*), max(title), min(title) FROM conversations").fetchone()
        measured = measure_scenarios(app.server, app.seed, profile="smoke", targets=load_targets(), scenarios=(),
                                     pin_mode="off", rounds=10, warmup=1, retries=0, driver=driver,  # type: ignore[arg-type]
                                     app=queries)
        with psycopg.connect(app.server.conninfo()) as conn:
            after = conn.execute("SELECT count(*), max(title), min(title) FROM conversations").fetchone()
    run = measured.run
    assert {r.scenario for r in run.scenarios} == {"app:rename_chat/whale", "app:rename_chat/small",
                                                   "app:history_numeric_fixed/whale",
                                                   "app:history_numeric_fixed/small"}, run.skipped
    write = run.scenario("app:rename_chat/whale")
    assert write.extra["rows_per_round"] == 1 and len(write.samples_ms) == 10
    assert write.buffers is not None and write.buffers.total > 0
    assert after == before
