"""Every command as a CI log sees it: piped into a file at ``COLUMNS=80``, real servers, smoke profile.

The log must carry every identifier whole (index, constraint, check, scenario, query and operation
names, file paths, URLs without their password), every sentence on one line (never wrapped at 80
columns), no table rules or colour codes, and plain progress lines during the long stages (seeding,
benchmarks, a rehearsal, load): a line when the stage starts and ends and, between them, "still
running" lines no more often than ``CHATBENCH_PROGRESS_SECONDS`` (0.3 s here, so smoke-sized stages
show some). What must be whole is taken from the result documents the same runs wrote, not typed in
here. ``--format json`` runs check that stdout holds the document alone (the report then goes to
stderr, which is checked as the log). Seeds go through the session's one seeded-snapshot cache.
"""

from __future__ import annotations

import json
import re
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
from commandline import chatbench, start_server
from dsn_server import DsnServer, password_forms

from chatbench.verify.findings import Finding

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ci-log")]  # its module fixtures (bench, sign-off) once
PROGRESS_SECONDS = 0.3
TABLE_RULES = re.compile(r"[┏┃━│└┡╇┗┓┛┳┻╋─]")
BACKEND = ("--backend", "local")
SMOKE = (*BACKEND, "--profile", "smoke")
ROUNDS = ("--rounds", "20", "--warmup", "2")
MIGRATION = """\
CREATE INDEX ix_messages_user_id_created_at_for_the_ci_log_test ON messages (user_id, created_at);
ALTER TABLE messages ADD CONSTRAINT ck_messages_content_is_not_blank_for_the_ci_log_test
    CHECK (length(content) > 0) NOT VALID;
"""


@dataclass(frozen=True)
class Log:
    argv: tuple[str, ...]
    code: int
    text: str  # what a CI log shows: stdout and stderr as one stream (stderr alone with --format json)
    stdout: str  # --format json: the document

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def has_line(self, line: str) -> None:
        assert line in self.lines, f"{' '.join(self.argv)}: no line {line!r} in\n{self.text[-4000:]}"

    def has_whole(self, text: str) -> None:
        """``text`` (an identifier or a sentence) inside one line, not split across two."""
        assert any(text in line for line in self.lines), f"{' '.join(self.argv)}: {text!r} not whole in\n" \
                                                         f"{self.text[-4000:]}"


@dataclass(frozen=True)
class Place:
    root: Path

    def env(self) -> dict[str, str]:
        return {"COLUMNS": "80", "CHATBENCH_PROGRESS_SECONDS": str(PROGRESS_SECONDS)}

    def run(self, *argv: str, document: bool = False, timeout: float = 600) -> Log:
        done = chatbench(*argv, env=self.env(), cwd=self.root, timeout=timeout, merged=not document)
        log = Log(argv, done.returncode, done.stderr if document else done.stdout, done.stdout if document else "")
        check_log(log)
        return log


def check_log(log: Log) -> None:
    """What holds for every log: no table rules, no colour codes, no traceback, no password (the runs on
    the ``dsn`` server were given it; the others must not have found it anywhere either)."""
    assert not TABLE_RULES.search(log.text), f"{' '.join(log.argv)}: a table rule in a log:\n{log.text[-3000:]}"
    assert "\x1b" not in log.text and "Traceback" not in log.text, log.text[-3000:]
    for form in password_forms().values():
        assert form not in log.text + log.stdout


def check_progress(log: Log, what: str, *, long: bool = True) -> None:
    """A line when ``what`` starts and ends, "still running" lines between them at a bounded rate (a
    ``long`` stage, one that takes seconds even on smoke data, has some)."""
    started = [i for i, line in enumerate(log.lines) if line.startswith(f"{what}: started")]
    ended = [(i, float(m.group(1))) for i, line in enumerate(log.lines)
             if (m := re.fullmatch(rf"{re.escape(what)}: done in (\d+\.\d) s", line))]
    assert len(started) == 1 and len(ended) == 1, f"{what}: start and end lines in\n{log.text[-4000:]}"
    alive = [line for line in log.lines[started[0]:ended[0][0]] if line.startswith(f"{what}: still running: ")]
    assert alive or not long, f"{what}: no progress line while it ran:\n{log.text[-4000:]}"
    assert len(alive) <= (ended[0][1] + 0.1) / PROGRESS_SECONDS + 1, alive  # at most one per interval


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Place:
    return Place(tmp_path_factory.mktemp("ci-log"))


@pytest.fixture(scope="module")
def bench(place: Place) -> tuple[Log, Path]:
    results = place.root / "bench-run.json"
    log = place.run("bench", *SMOKE, *ROUNDS, "--json", str(place.root / "bench.json"), "--results", str(results),
                    "--format", "json", document=True)
    assert log.code in (0, 3), log.text[-4000:]  # 3: INCONCLUSIVE on a busy machine
    return log, results


@pytest.fixture(scope="module")
def signoff(place: Place) -> tuple[Log, dict[str, object]]:
    out = place.root / "signoff"
    log = place.run("signoff", *SMOKE, *ROUNDS, "--scaling", "none", "--out", str(out), "--format", "json",
                    document=True)
    assert log.code in (0, 3), log.text[-4000:]
    document = json.loads(log.stdout)
    assert document == json.loads((out / "signoff.json").read_text())  # stdout: the document alone
    return log, document


def test_seed(place: Place) -> None:
    # ci (200k messages): a seed of a few seconds, a handful of progress intervals (0.3 s here) even on a
    # machine several times faster; smoke seeds in a fifth of a second now. (release, 1M, took 22 s of CI.)
    log = place.run("seed", *BACKEND, "--profile", "ci", "--no-cache")
    assert log.code == 0, log.text[-3000:]
    check_progress(log, "seed")
    checksum = log.lines[-1]
    for table in ("users", "conversations", "messages"):
        assert any(line.startswith(f"table {table}: ") and line.endswith(" rows") for line in log.lines), table
    for phase in ("plan", "copy", "indexes", "constraints", "vacuum_analyze"):
        assert any(line.startswith(f"phase {phase}: ") for line in log.lines), phase
    log.has_whole(f"checksum {checksum}   cache key ")
    url = next(line for line in log.lines if line.startswith("seeded ci (seed 1) into "))
    assert re.fullmatch(r"seeded ci \(seed 1\) into postgresql://chatbench@127\.0\.0\.1:\d+/\w+ in "
                        r"\d+\.\d\d s", url), url


def test_verify(place: Place, dsn: DsnServer) -> None:
    """On someone else's password-protected server: the log carries no form of the password."""
    report = place.root / "verify.json"
    log = place.run("verify", "--dsn", dsn.dsn, "--profile", "smoke", "--json", str(report))
    assert log.code == 0, log.text[-3000:]
    check_progress(log, "verify (exact against the canonical models)", long=False)  # under a second on smoke data
    document = json.loads(report.read_text())
    for check in document["checks"]:
        assert any(line.startswith(f"check {check['name']}: PASS (") for line in log.lines), check["name"]
    for finding in document["findings"]:
        log.has_line(Finding(**finding).message())
    for plan in document["plans"]:
        log.has_whole(f"plan {plan['scenario']} {plan['query']}: ")
        for index in re.findall(r"using (\w+)", plan["shape"]):
            log.has_whole(f"using {index} ")
    assert "ix_messages_conversation_id_created_at_id" in log.text
    assert any(len(line) > 80 for line in log.lines)  # long lines stay long: nothing wrapped at 80


def test_bench_json_on_stdout_and_the_report_on_stderr(bench: tuple[Log, Path]) -> None:
    from chatbench.benchmarks.explain import LATENCY_RULE, noise_summary
    from chatbench.benchmarks.results import read

    log, results = bench
    run = read(results)
    assert json.loads(log.stdout) == json.loads(results.read_text())
    check_progress(log, "benchmarks")
    for scenario in run.scenarios:
        assert any(line.startswith(f"{scenario.scenario}: {scenario.verdict}") for line in log.lines), scenario
    log.has_line(LATENCY_RULE)
    log.has_line(noise_summary(run))
    log.has_whole(f"results (raw samples, environment): {results}")
    assert not re.search(r"^\.+( *\[ *\d+%\])?$", log.text, re.M), "pytest's dots in a log"


def test_load(place: Place, dsn: DsnServer) -> None:
    results = place.root / "load-run.json"
    log = place.run("load", "--dsn", dsn.dsn, "--profile", "smoke", "--duration", "1", "--warmup-seconds", "0.2",
                    "--results", str(results))
    assert log.code == 0, log.text[-3000:]
    check_progress(log, "load")
    for op in json.loads(results.read_text())["load"]["operations"]:
        log.has_whole(f"{op['operation']}: {op['count']} ops, {op['errors']} errors; latency ms p50 ")
    log.has_line(f"results: {results}")


def test_signoff(signoff: tuple[Log, dict[str, object]]) -> None:
    log, document = signoff
    check_progress(log, "benchmarks (smoke)")
    targets = document["targets"]
    assert isinstance(targets, list)
    for stage in targets[0]["stages"]:
        assert any(line.startswith("  ") and f" {stage['stage']:<11} " in line and line.endswith(stage["detail"])
                   for line in log.lines), stage
        assert any(line.startswith(f"stage {stage['stage']}: ") for line in log.lines), stage
    for line in [*document["failing"], *document["inconclusive"]]:  # type: ignore[misc]
        log.has_whole(line)
    log.has_line(str(document["headline"]))
    log.has_whole("reports written in ")


def test_compare(place: Place, bench: tuple[Log, Path], signoff: tuple[Log, dict[str, object]]) -> None:
    _, results = bench
    out = place.root / "compare"
    text = place.run("compare", str(results), str(place.root / "signoff" / "signoff.json"), "--out", str(out))
    document = json.loads((out / "compare.json").read_text())
    assert text.code in (0, 1, 3), text.text[-3000:]
    text.has_line(document["conclusion"])
    for item in document["scenarios"]:
        text.has_line(f"{item['scenario']}: {item['status']}: {item['reason']}")
    as_json = place.run("compare", str(results), str(results), "--format", "json", document=True)
    assert as_json.code == 0 and json.loads(as_json.stdout)["verdict"] == "NO REGRESSION"
    assert any(line.endswith(": NO REGRESSION") for line in as_json.lines)  # the report went to stderr


def test_rehearse(place: Place) -> None:
    migration = place.root / "migration.sql"
    migration.write_text(MIGRATION)
    out = place.root / "rehearsal"
    log = place.run("rehearse", *BACKEND, "--profile", "smoke", "--migration", str(migration), "--rate", "60",
                    "--clients", "1", "--baseline-seconds", "0.3", "--out", str(out), "--format", "json",
                    document=True)
    assert log.code in (0, 1), log.text[-3000:]
    document = json.loads(log.stdout)
    assert document == json.loads((out / "rehearsal.json").read_text())
    check_progress(log, "rehearsal")
    for finding in document["findings"]:
        where = f"statement {finding['statement']}" if finding["statement"] is not None else "migration"
        log.has_whole(f"{finding['severity']} {finding['rule']}: {where}: {finding['evidence']}; "
                      f"fix: {finding['rewrite']}")
    log.has_whole("ix_messages_user_id_created_at_for_the_ci_log_test")
    log.has_whole("ck_messages_content_is_not_blank_for_the_ci_log_test")
    log.has_line(document["headline"])


def test_server_prints_its_url_whole(place: Place) -> None:
    proc, url = start_server(*BACKEND, env=place.env(), cwd=place.root)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert re.fullmatch(r"postgresql://chatbench@127\.0\.0\.1:\d+/\w+", url), url
    log = Log(("server",), proc.returncode, err, url)
    check_log(log)
    assert re.search(r"^PostgreSQL \d+\.\d+ \(local\) ready; Ctrl-C stops it and removes everything$", err, re.M)


def test_schema_and_clean(place: Place, dsn: DsnServer) -> None:
    import psycopg

    ddl = place.run("schema", "ddl")
    assert ddl.code == 0
    for name in re.findall(r"CREATE (?:UNIQUE )?INDEX (\w+)", ddl.text):
        ddl.has_whole(f"INDEX {name} ON ")
    fingerprint = ddl.lines[0].rsplit(" ", 1)[1]
    assert place.run("schema", "fingerprint").lines == [fingerprint]
    with psycopg.connect(dsn.admin.admin_conninfo(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE ci_log_schema OWNER cbuser")
    try:
        applied = place.run("schema", "apply", "--url", dsn.dsn.rsplit("/", 1)[0] + "/ci_log_schema",
                            "--allow-destructive")
        assert applied.code == 0, applied.text
        assert re.fullmatch(rf"applied schema {fingerprint} to postgresql(\+psycopg)?://cbuser:\*\*\*@127\.0\.0\.1:"
                            rf"{dsn.admin.url.port}/ci_log_schema", applied.text.strip()), applied.text
    finally:
        with psycopg.connect(dsn.admin.admin_conninfo(), autocommit=True) as conn:
            conn.execute("DROP DATABASE ci_log_schema")
    cleaned = place.run("clean", "--dsn", dsn.dsn)
    assert cleaned.code == 0 and cleaned.lines, cleaned.text
