"""``chatbench signoff --migration``: the migration's report and the schema's report are one sign-off.

The before-schema is the canonical one without ``ix_messages_user_id`` (the corpus' first case), the
migration creates it: safely (CONCURRENTLY, with a lock_timeout) or not. Real server, real live load,
smoke profile (the rehearsal's two sizes: smoke's 20k and smoke_fifth's 4k messages: what is judged here is how the
migration's verdict joins the sign-off, which the rehearsal corpus shows two small sizes judge as the ci profile's
would). Latency budgets are generous (a shared machine's noise must not decide a test); buffer budgets and the
rehearsal's budgets are the shipped ones.
Bad input to the new options is in tests/test_bad_inputs.py, Ctrl-C at the migration in tests/test_crash.py.
"""

from __future__ import annotations

import json
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from app_models import ADD_COLUMN, REFERENCE, forget_app, write_app
from rehearse_corpus import CASES

from chatbench.benchmarks.targets import DEFAULT_TARGETS, REHEARSAL_SECTION
from chatbench.cli import main
from chatbench.reports.output import SIGNOFF_FILES
from chatbench.reports.signoff import SIGNOFF_FORMAT

pytestmark = pytest.mark.slow  # whole sign-offs, rehearsals or a Citus cluster: not in the fast tier

PROFILE, SIZES = "smoke", (4_000, 20_000)  # the profile and its rehearsal's two sizes, smaller first
CASE = CASES[0]  # ix_messages_user_id: CREATE INDEX with and without CONCURRENTLY
FAST = ["--profile", PROFILE, "--rounds", "40", "--warmup", "5", "--scaling", "none", "--baseline-seconds", "0.3",
        "--backend", "local"]
MIGRATED_STAGES = ["provision", "migration", "drift", "health", "plans", "benchmarks", "teardown"]


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped targets with latency budgets no noise reaches at PROFILE; buffers and [rehearsal] as shipped."""
    shipped = tomllib.loads(DEFAULT_TARGETS.read_text())
    lines = []
    for name, table in shipped.items():
        if name == REHEARSAL_SECTION or not isinstance(table, dict) or PROFILE not in table:
            continue
        buffers = table[PROFILE].get("buffers")
        extra = f", buffers = {buffers}" if buffers is not None else ""
        lines += [f"[{name}]", 'why = "test budgets: latency generous, buffers as shipped"',
                  f"{PROFILE} = {{ p95_ms = 5000.0, p99_ms = 5000.0{extra} }}", ""]
    lines.append(f"[{REHEARSAL_SECTION}]")
    lines += [f"{table} = {{ " + ", ".join(f"{key} = {value}" for key, value in budget.items()) + " }"
              for table, budget in shipped[REHEARSAL_SECTION].items() if isinstance(budget, dict)]
    path = tmp_path_factory.mktemp("targets") / "targets.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _signoff(folder: Path, targets: Path, *, safe: bool) -> tuple[int, dict[str, str]]:
    before, migration = CASE.before_sql(folder, safe), CASE.migration(folder, safe)
    out = folder / "out"
    code = main(["signoff", *FAST, "--targets", str(targets), "--from", str(before), "--migration", str(migration),
                 "--out", str(out)])
    return code, {name: (out / name).read_text(encoding="utf-8") for name in SIGNOFF_FILES}


def test_a_safe_migration_passes_and_every_format_carries_it(tmp_path: Path, targets: Path) -> None:
    code, files = _signoff(tmp_path, targets, safe=True)
    report = json.loads(files["signoff.json"])
    assert code == 0 and report["verdict"] == "PASS", report["failing"]
    assert report["format_version"] == SIGNOFF_FORMAT
    assert report["schema_source"].startswith("--from ") and "migrated by --migration " in report["schema_source"]
    [target] = report["targets"]
    assert [s["stage"] for s in target["stages"]] == MIGRATED_STAGES
    assert all(s["status"] == "ok" for s in target["stages"]), target["stages"]
    # What the sign-off verified and measured is the migrated database: the before-schema lacks the index the
    # canonical models have, so drift passes only on the schema the migration produced.
    assert target["server"]["database"].startswith("cbr_run_")
    assert any(c["stage"] == "drift" and c["passed"] for c in target["checks"])
    assert target["benchmark"]["scenarios"] and target["seed"]["profile"] == PROFILE
    migration = target["migration"]
    assert migration["verdict"] == "PASS" and migration["findings"] == []
    assert tuple(s["messages"] for s in migration["sizes"]) == SIZES
    assert migration["verification"] is None and migration["verified_by"]
    assert "CREATE INDEX CONCURRENTLY" in migration["sizes"][-1]["statements"][-1]["sql"]
    items = [c for c in target["checks"] if c["stage"] == "migration"]
    assert len(items) == 2 and all(c["passed"] for c in items)  # SET lock_timeout, CREATE INDEX CONCURRENTLY

    md = files["signoff.md"]
    assert md.startswith("## ✅ chatbench sign-off: **PASS**")
    assert "#### ✅ Migration rehearsal: PASS" in md and f"##### Statements at {SIZES[1]:,} messages ({PROFILE})" in md
    assert "##### The app before, during and after the migration" in md and "##### Sizes measured" in md
    html = files["signoff.html"]
    assert "<h3>Migration rehearsal: " in html and f"rehearsal-timeline-{PROFILE}" in html  # the timeline plot
    assert "http://" not in html and "https://" not in html
    junit = ET.fromstring(files["signoff.junit.xml"])
    [suite] = [s for s in junit.iter("testsuite") if s.get("name") == "migration"]
    assert suite.get("tests") == "2" and suite.get("failures") == "0"
    assert any("CREATE INDEX CONCURRENTLY" in (case.get("name") or "") for case in suite.iter("testcase"))
    assert junit.get("failures") == "0"


def test_an_unsafe_migration_fails_naming_statement_lock_and_blocked_time(tmp_path: Path, targets: Path) -> None:
    code, files = _signoff(tmp_path, targets, safe=False)
    report = json.loads(files["signoff.json"])
    assert code == 1 and report["verdict"] == "FAIL"
    [target] = report["targets"]
    assert [s["stage"] for s in target["stages"]] == MIGRATED_STAGES
    assert {s["stage"]: s["status"] for s in target["stages"]}["migration"] == "failed"
    blocking = [f for f in target["migration"]["findings"] if f["rule"] == "blocking"]
    assert blocking and blocking[0]["table"] == CASE.table and blocking[0]["lock"] == CASE.lock
    finding = blocking[0]
    held = f"held SHARE on messages for {finding['measured_s']:.3f} s"
    statement = "`CREATE INDEX ix_messages_user_id ON messages (user_id)`"
    [line] = [line for line in report["failing"] if line.startswith("migration: blocking: statement 1:")]
    assert statement in line and held in line and "extrapolated" in line and "CREATE INDEX CONCURRENTLY" in line
    # The rest of the sign-off still judged the migrated schema: the migration's FAIL is the only failure.
    assert report["failing"] == [line]
    # lock_timeout is judged by what was measured, no longer a WARN read from the migration's text (issue 28):
    # the statement ran with none, but its SHARE lock did not wait behind the long transaction (which read the
    # tables: ACCESS SHARE), so no app query queued behind a waiting lock and there is no lock_timeout finding.
    measured = target["migration"]["sizes"][-1]
    [run] = measured["statements"]
    assert run["lock_timeout"] == "0" and run["queue"] == [] and measured["long_transaction"] is not None
    assert not any(f["rule"] == "lock_timeout" for f in target["migration"]["findings"])

    md_failing = files["signoff.md"].split("### Failing (1)", 1)[1].split("\n\n", 2)[1]
    assert statement in md_failing and held in md_failing and "budget 1 s" in md_failing
    junit = ET.fromstring(files["signoff.junit.xml"])
    [suite] = [s for s in junit.iter("testsuite") if s.get("name") == "migration"]
    failures = [f for case in suite.iter("testcase") for f in case.iter("failure")]
    assert suite.get("failures") == "1" and len(failures) == 1
    assert statement in (failures[0].get("message") or "") and held in (failures[0].get("message") or "")
    assert "ix_messages_user_id" in next(c.get("name") or "" for c in suite.iter("testcase") if c.find("failure")
                                         is not None)


def test_a_migration_that_fails_leaves_nothing_to_verify_and_fails(tmp_path: Path, targets: Path) -> None:
    """Ran and failed (exit 1), not could-not-run (2): the statement is named, the later stages are not run.

    The ALTER takes its ACCESS EXCLUSIVE lock on messages before PostgreSQL looks up the table it references,
    so it first waits behind the long transaction, gives up on its lock_timeout and is retried; once it holds
    the lock it fails for another reason, which is ``failed`` (not ``lock_retries``), the tries its evidence.
    """
    migration = tmp_path / "broken.sql"
    migration.write_text("SET lock_timeout = '1s';\n"
                         "ALTER TABLE messages ADD COLUMN broken int REFERENCES nowhere (id);\n")
    out = tmp_path / "out"
    code = main(["signoff", *FAST, "--targets", str(targets), "--migration", str(migration), "--out", str(out),
                 "--long-transaction", "2", "--lock-retries", "3"])
    report = json.loads((out / "signoff.json").read_text())
    assert code == 1 and report["verdict"] == "FAIL"
    [target] = report["targets"]
    assert target["error"] is None
    stages = {s["stage"]: s for s in target["stages"]}
    assert list(stages) == MIGRATED_STAGES
    assert stages["migration"]["status"] == "failed" and stages["teardown"]["status"] == "ok"
    for name in ("drift", "health", "plans", "benchmarks"):
        assert stages[name]["status"] == "skipped" and stages[name]["detail"] == "not run: the migration failed"
    [line] = report["failing"]
    assert line.startswith("migration: failed: statement 2:") and "nowhere" in line and "line 2" in line
    assert "tries: 1: " in line and "lock timeout after" in line and "chatbench-rehearse-long-transaction" in line
    [size] = target["migration"]["sizes"]
    assert size["messages"] == SIZES[0]  # the larger size was not run
    outcomes = [a["outcome"] for a in size["statements"][-1]["attempts"]]
    assert outcomes[0] == "lock timeout" and outcomes[-1] == "failed" and len(outcomes) <= 4, outcomes
    # the sign-off's --long-transaction and --lock-retries reached the rehearsal
    assert any("stayed open 2 s into the migration" in n and "retried up to 3 time(s)" in n
               for n in target["migration"]["notes"]), target["migration"]["notes"]


def test_a_lost_lock_sampler_is_an_error_with_the_rehearsal_kept(tmp_path: Path, targets: Path) -> None:
    """Could not judge (exit 2), not PASS: the migration terminates the rehearsal's lock sampler; the
    stage errs naming it, the later stages do not run, and the rehearsal is in the report."""
    from chatbench.rehearse.sampler import SAMPLER_NAME

    migration = tmp_path / "kills_sampler.sql"
    migration.write_text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
                         f"'{SAMPLER_NAME}';\nSELECT pg_sleep(0.3);\n")
    out = tmp_path / "out"
    code = main(["signoff", *FAST, "--targets", str(targets), "--migration", str(migration), "--out", str(out)])
    report = json.loads((out / "signoff.json").read_text())
    assert code == 2 and report["verdict"] == "ERROR"
    [target] = report["targets"]
    stages = {s["stage"]: s for s in target["stages"]}
    assert stages["migration"]["status"] == "error" and "lock sampler stopped" in stages["migration"]["detail"]
    for name in ("drift", "health", "plans", "benchmarks"):
        assert stages[name]["status"] == "skipped"
    assert target["migration"]["verdict"] == "ERROR"
    assert all(s["sampler_error"] for s in target["migration"]["sizes"])
    [line] = report["failing"]  # nothing failed: the stage's error, the one reason it could not be judged
    incomplete = f"error: migration: lock evidence incomplete at {SIZES[0]:,} and {SIZES[1]:,} messages"
    # the server's word for it depends on when the sampler next reads: the termination notice, or a closed socket
    assert line.startswith(incomplete) and any(w in line for w in ("terminating connection", "closed the connection"))
    assert target["error"] == line.removeprefix("error: ")


@pytest.mark.parametrize("models", [False, True], ids=["contract", "models-lacking-the-column"])
def test_a_release_that_adds_a_column_is_judged_against_the_schema_it_must_reach(
    tmp_path: Path, targets: Path, monkeypatch: pytest.MonkeyPatch, models: bool
) -> None:
    """``signoff --migration add_column.sql``: the migrated database is judged in contract mode against the
    canonical schema (an extra nullable column passes); with ``--models`` exactly against the application's
    models, so models that do not declare the column fail the drift stage naming it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "add_column.sql").write_text(ADD_COLUMN)
    out = tmp_path / "out"
    given = ["--models", REFERENCE] if models else []
    if models:
        write_app(tmp_path, declares_edited_at=False)
    try:
        code = main(["signoff", *FAST, "--targets", str(targets), *given, "--migration", "add_column.sql",
                     "--out", str(out)])
    finally:
        forget_app()
    report = json.loads((out / "signoff.json").read_text(encoding="utf-8"))
    [target] = report["targets"]
    stages = {s["stage"]: s for s in target["stages"]}
    assert stages["migration"]["status"] == "ok", stages["migration"]
    if not models:
        assert code == 0 and report["verdict"] == "PASS", report["failing"]
        assert "(contract against canonical)" in stages["drift"]["detail"], stages["drift"]
        return
    assert code == 1 and report["verdict"] == "FAIL"
    assert report["schema_source"] == (f"canonical migrated by --migration add_column.sql, judged exact against "
                                       f"--models {REFERENCE}")
    assert stages["drift"]["status"] == "failed" and "(exact against app.models:Base)" in stages["drift"]["detail"]
    assert report["failing"] and all(line.startswith("drift") and "edited_at" in line
                                     for line in report["failing"]), report["failing"]
