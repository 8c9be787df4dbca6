"""A battery of bad inputs across every command: each is one line naming the field, exit 2, nothing left.

Each case runs the real CLI (``chatbench.cli.main``, in this process for speed) in an empty working
directory and checks, besides the exit code and the line: no traceback, nothing new in the run
directory or in the snapshot cache, no process left running, no database left on the DSN server, and
no file or folder left in the working directory (a refused ``--out`` is not created).
The DSN server is a real one with password authentication (``tests/dsn_server.py``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dsn_server import DsnServer
from servers import require_tmpfs_mount

from chatbench.cli import main
from chatbench.provision.paths import cache_root, run_root

Setup = Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    field: str  # what the one line must name
    env: dict[str, str] = field(default_factory=dict)
    setup: Setup | None = None


def _file(name: str, text: str) -> Setup:
    def make(tmp: Path) -> None:
        (tmp / name).write_text(text)

    return make


def _files(files: dict[str, str]) -> Setup:
    def make(tmp: Path) -> None:
        for name, text in files.items():
            (tmp / name).write_text(text)

    return make


MIGRATION = _files({"m.sql": "CREATE INDEX CONCURRENTLY ix ON messages (user_id);\n", "s.sql": "SELECT 1;\n"})


def _case(id: str, command: str, *args: str, field: str, env: dict[str, str] | None = None,
          setup: Setup | None = None) -> Case:
    return Case(f"{command}-{id}", (command, *args), field, env or {}, setup)


SERVER_COMMANDS = ("seed", "bench", "verify", "load", "signoff", "server")
DATA_COMMANDS = ("seed", "bench", "verify", "load", "signoff")
WRITING_COMMANDS = ("seed", "bench", "load", "signoff", "verify")

CASES: list[Case] = []
for command in SERVER_COMMANDS:
    CASES += [
        _case("backend-bogus", command, "--backend", "bogus", field="--backend bogus"),
        _case("backend-env-bogus", command, field="CHATBENCH_BACKEND=moon", env={"CHATBENCH_BACKEND": "moon"}),
        _case("start-timeout-zero", command, "--start-timeout", "0", field="--start-timeout 0"),
        _case("start-timeout-text", command, "--start-timeout", "soon", field="--start-timeout soon"),
        _case("pg-bin-missing", command, "--pg-bin", "/nonexistent/bin", field="--pg-bin /nonexistent/bin"),
        _case("dsn-garbage", command, "--dsn", "garbage", field="--dsn garbage"),
        _case("dsn-not-postgres", command, "--dsn", "mysql://u@127.0.0.1/db", field="--dsn"),
        _case("backend-dsn-without-dsn", command, "--backend", "dsn", field="--dsn"),
        _case("image-for-local", command, "--backend", "local", "--image", "postgres:18", field="--image"),
        _case("file-unknown-key", command, field="chatbench.toml", setup=_file("chatbench.toml", "colour = 1\n")),
        _case("file-bad-toml", command, field="chatbench.toml", setup=_file("chatbench.toml", "profile = \n")),
    ]
for command in DATA_COMMANDS:
    CASES += [
        _case("profile-bogus", command, "--profile", "bogus", field="--profile bogus"),
        _case("seed-negative", command, "--seed", "-1", field="--seed -1"),
        _case("seed-text", command, "--seed", "abc", field="--seed abc"),
        _case("seed-huge", command, "--seed", str(2**64), field="--seed"),
    ]
for command in WRITING_COMMANDS:
    CASES.append(_case("use-dsn-database-not-allowed", command, "--dsn", "{dsn}", "--use-dsn-database",
                       field="--use-dsn-database"))
CASES += [
    # seed
    _case("workers-zero", "seed", "--workers", "0", field="--workers 0"),
    _case("workers-1000", "seed", "--workers", "1000", field="--workers 1000"),
    _case("workers-env", "seed", field="CHATBENCH_WORKERS=1000", env={"CHATBENCH_WORKERS": "1000"}),
    _case("order-bogus", "seed", "--order", "random", field="--order random"),
    _case("spec-missing", "seed", "--spec", "/nonexistent/spec.toml", field="--spec"),
    _case("spec-bad-toml", "seed", "--spec", "{tmp}/spec.toml", field="--spec", setup=_file("spec.toml", "[users\n")),
    _case("spec-unknown-field", "seed", "--spec", "{tmp}/spec.toml", field="colour",
          setup=_file("spec.toml", "colour = 1\n")),
    _case("set-no-equals", "seed", "--set", "messages.count", field="--set"),
    _case("set-users-10e12", "seed", "--set", "users.count=1000000000000", field="users.count"),
    _case("set-messages-negative", "seed", "--set", "messages.count=-1", field="messages.count"),
    _case("set-whales-text", "seed", "--set", "whales.count=many", field="whales.count"),
    _case("set-unknown-section", "seed", "--set", "nosuch.count=1", field="nosuch"),
    _case("set-too-deep", "seed", "--set", "a.b.c=1", field="a.b.c"),
    _case("pg-versions-not-signoff", "seed", "--pg-versions", "15", field="--pg-versions"),
    _case("copy-stall-env", "seed", field="CHATBENCH_COPY_STALL_SECONDS", env={"CHATBENCH_COPY_STALL_SECONDS": "-3"}),
    # bench
    _case("rounds-zero", "bench", "--rounds", "0", field="--rounds 0"),
    _case("rounds-env-zero", "bench", field="CHATBENCH_ROUNDS=0", env={"CHATBENCH_ROUNDS": "0"}),
    _case("warmup-negative", "bench", "--warmup", "-1", field="--warmup -1"),
    _case("pin-bogus", "bench", "--pin", "bogus", field="--pin bogus"),
    _case("driver-bogus", "bench", "--driver", "odbc", field="--driver odbc"),
    _case("select-matches-nothing", "bench", "-k", "no_such_scenario", field="-k no_such_scenario"),
    _case("select-bad-expression", "bench", "-k", "and or", field="-k and or"),
    _case("targets-missing", "bench", "--targets", "/nonexistent/t.toml", field="--targets"),
    _case("targets-bad-toml", "bench", "--targets", "{tmp}/t.toml", field="--targets",
          setup=_file("t.toml", "[latest_page\n")),
    _case("targets-unknown-scenarios-only", "bench", "--targets", "{tmp}/t.toml", field="--targets",
          setup=_file("t.toml", "[no_such_scenario]\nci = { p95_ms = 1.0 }\n")),
    _case("targets-unknown-profile", "bench", "--targets", "{tmp}/t.toml", field="--targets",
          setup=_file("t.toml", "[latest_page]\nrelase = { p95_ms = 1.0 }\n")),
    _case("targets-nothing-judged", "bench", "--targets", "{tmp}/t.toml", "--profile", "smoke", field="--targets",
          setup=_file("t.toml", "[latest_page]\nci = { p95_ms = 1.0 }\n")),
    _case("targets-bad-budget", "bench", "--targets", "{tmp}/t.toml", field="--targets",
          setup=_file("t.toml", "[latest_page]\nci = { p95_ms = -1.0 }\n")),
    _case("json-in-proc", "bench", "--json", "/proc/x/bench.json", field="--json"),
    _case("json-is-folder", "bench", "--json", "{tmp}", field="--json"),
    _case("results-under-a-file", "bench", "--results", "/etc/passwd/run.json", field="--results"),
    _case("fidelity-profile-bogus", "bench", "--fidelity", "--profile", "bogus", field="--profile bogus"),
    # verify
    _case("url-garbage", "verify", "--url", "garbage", field="--url garbage"),
    _case("url-not-postgres", "verify", "--url", "sqlite:///x.db", field="--url"),
    _case("url-with-schema-from", "verify", "--url", "{dsn}", "--schema-from", "{tmp}/s.sql", field="--url",
          setup=_file("s.sql", "SELECT 1;\n")),
    _case("schema-from-missing", "verify", "--schema-from", "/nonexistent/s.sql", field="--schema-from"),
    _case("schema-from-cmd-missing-program", "verify", "--schema-from-cmd", "no-such-migrator up",
          field="--schema-from-cmd"),
    _case("schema-from-cmd-unbalanced-quote", "verify", "--schema-from-cmd", "alembic 'upgrade head",
          field="--schema-from-cmd"),
    _case("schema-from-cmd-empty", "verify", "--schema-from-cmd", "  ", field="--schema-from-cmd"),
    _case("schema-from-and-cmd", "verify", "--schema-from", "{tmp}/s.sql", "--schema-from-cmd", "true",
          field="--schema-from", setup=_file("s.sql", "SELECT 1;\n")),
    _case("schema-from-cmd-hangs", "verify", "--dsn", "{dsn}", "--schema-from-cmd", "sleep 300",
          "--command-timeout", "1", field="--schema-from-cmd"),
    _case("command-timeout-zero", "verify", "--command-timeout", "0", field="--command-timeout 0"),
    _case("json-in-proc", "verify", "--json", "/proc/x/v.json", field="--json"),
    # load
    _case("clients-zero", "load", "--clients", "0", field="--clients 0"),
    _case("clients-1000", "load", "--clients", "1000", field="--clients 1000"),
    _case("duration-zero", "load", "--duration", "0", field="--duration 0"),
    _case("duration-nan", "load", "--duration", "nan", field="--duration nan"),
    _case("rate-zero", "load", "--rate", "0", field="--rate 0"),
    _case("rate-text", "load", "--rate", "fast", field="--rate fast"),
    _case("warmup-seconds-negative", "load", "--warmup-seconds", "-1", field="--warmup-seconds -1"),
    _case("mix-unknown-operation", "load", "--mix", "dance=1", field="--mix"),
    _case("mix-bad-weight", "load", "--mix", "latest_page=heavy", field="--mix"),
    _case("results-in-proc", "load", "--results", "/proc/x/load.json", field="--results"),
    # signoff
    _case("budget-negative", "signoff", "--budget", "-1", field="--budget -1"),
    _case("pin-bogus", "signoff", "--pin", "bogus", field="--pin bogus"),
    _case("scaling-bogus", "signoff", "--scaling", "bogus", field="--scaling bogus"),
    _case("rounds-zero", "signoff", "--rounds", "0", field="--rounds 0"),
    _case("out-is-a-file", "signoff", "--out", "/etc/passwd", field="--out /etc/passwd"),
    _case("out-in-proc", "signoff", "--out", "/proc/x", field="--out /proc/x"),
    _case("out-under-a-file", "signoff", "--out", "/etc/passwd/out", field="--out"),
    _case("baseline-missing", "signoff", "--baseline", "/nonexistent/b.json", field="--baseline"),
    _case("clients-zero", "signoff", "--clients", "0", field="--clients 0"),
    _case("duration-negative", "signoff", "--duration", "-5", field="--duration -5"),
    _case("pg-versions-not-a-version", "signoff", "--pg-versions", "abc", field="--pg-versions abc"),
    _case("pg-versions-not-installed", "signoff", "--backend", "local", "--pg-versions", "11",
          field="--pg-versions 11"),
    _case("pg-versions-with-dsn", "signoff", "--dsn", "{dsn}", "--pg-versions", "15", field="--pg-versions"),
    _case("targets-nothing-judged", "signoff", "--targets", "{tmp}/t.toml", field="--targets",
          setup=_file("t.toml", "[latest_page]\nsmoke = { p95_ms = 1.0 }\n")),
    _case("schema-from-cmd-missing-program", "signoff", "--schema-from-cmd", "no-such-migrator up",
          field="--schema-from-cmd"),
    _case("schema-from-cmd-unbalanced-quote", "signoff", "--schema-from-cmd", "make \"schema",
          field="--schema-from-cmd"),
    _case("schema-from-and-cmd", "signoff", "--schema-from", "{tmp}/s.sql", "--schema-from-cmd", "true",
          field="--schema-from", setup=_file("s.sql", "SELECT 1;\n")),
    _case("command-timeout-text", "signoff", "--command-timeout", "forever", field="--command-timeout forever"),
    # signoff --migration: the migration stage takes rehearse's inputs, checked the same way
    _case("migration-missing", "signoff", "--migration", "/nonexistent/m.sql", field="--migration /nonexistent/m.sql"),
    _case("migration-env-missing", "signoff", field="CHATBENCH_MIGRATION=/nonexistent/m.sql",
          env={"CHATBENCH_MIGRATION": "/nonexistent/m.sql"}),
    _case("migration-and-cmd", "signoff", "--migration", "{tmp}/m.sql", "--migration-cmd", "true",
          field="--migration-cmd true: give one of them, not both", setup=MIGRATION),
    _case("migration-not-sql", "signoff", "--migration", "{tmp}/bad.sql", field="bad.sql line 2: not valid SQL",
          setup=_file("bad.sql", "SELECT 1;\nCREAT INDEX ix ON messages (user_id);\n")),
    _case("migration-no-statement", "signoff", "--migration", "{tmp}/empty.sql", field="--migration",
          setup=_file("empty.sql", "-- nothing yet\n")),
    _case("migration-cmd-missing-program", "signoff", "--migration-cmd", "no-such-migrator up",
          field="--migration-cmd"),
    _case("migration-cmd-unbalanced-quote", "signoff", "--migration-cmd", "alembic 'upgrade head",
          field="--migration-cmd"),
    # (the smallest profile has no smaller one to rehearse at (tests/test_rehearse_cli.py), and no budgets: the
    # targets refuse it first)
    _case("migration-profile-smallest", "signoff", "--migration", "{tmp}/m.sql", "--profile", "smoke_fifth",
          field="no budget for profile smoke_fifth", setup=MIGRATION),
    _case("migration-production-below-profile", "signoff", "--migration", "{tmp}/m.sql", "--production-messages",
          "1000", field="--production-messages", setup=MIGRATION),
    _case("migration-production-text", "signoff", "--migration", "{tmp}/m.sql", "--production-messages", "lots",
          field="--production-messages lots", setup=MIGRATION),
    _case("migration-baseline-seconds-zero", "signoff", "--migration", "{tmp}/m.sql", "--baseline-seconds", "0",
          field="--baseline-seconds 0", setup=MIGRATION),
    _case("migration-with-schema-from", "signoff", "--migration", "{tmp}/m.sql", "--schema-from", "{tmp}/s.sql",
          field="--schema-from", setup=MIGRATION),
    _case("migration-with-schema-from-cmd", "signoff", "--migration", "{tmp}/m.sql", "--schema-from-cmd", "true",
          field="--schema-from-cmd", setup=MIGRATION),
    _case("migration-from-and-from-cmd", "signoff", "--migration", "{tmp}/m.sql", "--from", "{tmp}/s.sql",
          "--from-cmd", "true", field="--from-cmd true: give one of them, not both", setup=MIGRATION),
    _case("migration-from-missing", "signoff", "--migration", "{tmp}/m.sql", "--from", "/nonexistent/s.sql",
          field="--from /nonexistent/s.sql", setup=MIGRATION),
    _case("migration-targets-without-rehearsal", "signoff", "--migration", "{tmp}/m.sql", "--targets", "{tmp}/t.toml",
          field="[rehearsal]", setup=_files({"m.sql": "SELECT 1;\n",
                                             "t.toml": "[latest_page]\nrelease = { p95_ms = 1.0 }\n"})),
    _case("from-without-migration", "signoff", "--from", "{tmp}/s.sql", field="--from", setup=MIGRATION),
    _case("production-messages-without-migration", "signoff", "--production-messages", "2e9",
          field="--production-messages"),
    # compare
    _case("current-missing", "compare", "/nonexistent/a.json", "/nonexistent/b.json", field="a.json"),
    _case("current-not-json", "compare", "{tmp}/a.json", "{tmp}/a.json", field="a.json",
          setup=_file("a.json", "not json")),
    _case("current-not-a-result", "compare", "{tmp}/a.json", "{tmp}/a.json", field="a.json",
          setup=_file("a.json", "{\"hello\": 1}")),
    _case("min-effect-zero", "compare", "x.json", "y.json", "--min-effect", "0", field="--min-effect 0"),
    _case("alpha-too-big", "compare", "x.json", "y.json", "--alpha", "0.9", field="--alpha 0.9"),
    _case("alpha-text", "compare", "x.json", "y.json", "--alpha", "low", field="--alpha low"),
    _case("out-in-proc", "compare", "x.json", "y.json", "--out", "/proc/x", field="--out /proc/x"),
    _case("missing-baseline-argument", "compare", "x.json", field="BASELINE.json"),
    # server
    _case("apply-schema-in-their-database", "server", "--dsn", "{dsn}", "--use-dsn-database", "--apply-schema",
          field="--use-dsn-database"),
    _case("apply-schema-env-their-database", "server", "--dsn", "{dsn}", "--apply-schema", field="USE_DSN_DATABASE",
          env={"CHATBENCH_USE_DSN_DATABASE": "true"}),
    _case("use-dsn-database-not-bool", "server", field="CHATBENCH_USE_DSN_DATABASE=maybe",
          env={"CHATBENCH_USE_DSN_DATABASE": "maybe"}),
    # schema
    _case("apply-without-url", "schema", "apply", field="--url"),
    _case("apply-url-garbage", "schema", "apply", "--url", "garbage", field="--url garbage"),
    _case("apply-not-allowed", "schema", "apply", "--url", "{dsn}", field="--allow-destructive"),
    _case("action-bogus", "schema", "drop", field="action"),
    # clean
    _case("dsn-garbage", "clean", "--dsn", "garbage", field="--dsn garbage"),
    _case("dsn-wrong-password", "clean", "--dsn", "{wrong_dsn}", field="--dsn"),
    _case("dsn-nobody-listens", "clean", "--dsn", "postgresql://u@127.0.0.1:1/postgres", field="--dsn"),
    # the command line itself
    _case("unknown-option", "seed", "--colour", "red", field="--colour"),
]


def _children() -> set[int]:
    me = str(os.getpid())
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] == me:
                    found.add(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


def _listing(folder: Path) -> set[str]:
    """What a folder holds, two levels deep (a live server's own files come and go below that)."""
    if not folder.is_dir():
        return set()
    return {str(p.relative_to(folder)) for p in (*folder.glob("*"), *folder.glob("*/*"))
            if not str(p.relative_to(folder)).startswith("cluster-") or p.parent == folder}


def test_the_battery_is_big_and_covers_every_command() -> None:
    assert len(CASES) >= 100
    assert len({case.id for case in CASES}) == len(CASES)
    assert {case.argv[0] for case in CASES} >= {"seed", "bench", "verify", "load", "signoff", "compare", "server",
                                                 "schema", "clean"}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_line_naming_the_field(case: Case, dsn: DsnServer, tmp_path: Path, run_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # Run and cache directories of the test's own: another xdist worker's runs come and go in the shared ones.
    monkeypatch.setenv("CHATBENCH_RUN_DIR", str(run_dir))
    monkeypatch.setenv("CHATBENCH_CACHE_DIR", str(tmp_path / "cache"))
    runs, seeds = run_root(), cache_root() / "seeds"  # before the case's own (bad) settings apply
    work = tmp_path / "work"
    work.mkdir()
    if case.setup is not None:
        case.setup(work)
    monkeypatch.chdir(work)
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    argv = [a.format(tmp=work, dsn=dsn.dsn, wrong_dsn=dsn.wrong_dsn) for a in case.argv]
    before = (_listing(work), _listing(runs), _listing(seeds), _children(), dsn.databases())
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"exit {code}: {err}"
    assert len(lines) == 1, err
    assert case.field in lines[0], lines[0]
    assert "Traceback" not in out + err and "unexpected error" not in err
    after = (_listing(work), _listing(runs), _listing(seeds), _children(), dsn.databases())
    assert after == before, "something was left behind"


def test_a_full_disk_is_refused_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--out on a nearly full file system (a 1 MB tmpfs): one line, exit 2, nothing written."""
    full = tmp_path / "full"
    full.mkdir()
    require_tmpfs_mount(full, "1m")
    try:
        assert main(["signoff", "--out", str(full / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--out" in err and "free" in err
        assert not (full / "out").exists()
    finally:
        subprocess.run(["umount", str(full)], check=True)


def test_a_disk_that_fills_while_writing_is_one_line(tmp_path: Path) -> None:
    """The report set is written through a staging folder: ENOSPC halfway leaves the old set, whole."""
    from chatbench.errors import ChatbenchError
    from chatbench.reports.output import SIGNOFF_FILES, write_set

    full = tmp_path / "full"
    full.mkdir()
    require_tmpfs_mount(full, "256k")
    try:
        old = {name: f"old {name}" for name in SIGNOFF_FILES}
        write_set(old, full, (), SIGNOFF_FILES)
        with pytest.raises(ChatbenchError) as raised:
            write_set({name: "x" * 200_000 for name in SIGNOFF_FILES}, full, (), SIGNOFF_FILES)
        assert "No space left" in str(raised.value) and "free some space" in str(raised.value)
        assert {p.name: p.read_text() for p in full.iterdir()} == old  # the previous set, whole; no staging
    finally:
        shutil.rmtree(full / "x", ignore_errors=True)
        subprocess.run(["umount", str(full)], check=True)
