"""``chatbench rehearse`` as a user meets it: bad input is one line and exit 2 before any server
starts; an Alembic migration run through ``--migration-cmd`` is rehearsed under live load, FAILs for
its non-concurrent index build, and the four report files are written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rehearse_corpus import CASES, alembic_project

from chatbench.cli import main
from chatbench.rehearse.statements import split_sql


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["rehearse", *argv])
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "give --migration FILE.sql or --migration-cmd CMD"),
        (["--migration", "MIGRATION", "--migration-cmd", "true"],
         "--migration MIGRATION and --migration-cmd true: give one of them, not both"),
        (["--migration", "nope.sql"], "--migration nope.sql: no such file"),
        (["--migration", "MIGRATION", "--production-messages", "0"], "--production-messages 0: must be at least 1"),
        (["--migration", "MIGRATION", "--production-messages", "lots"], "--production-messages lots"),
        (["--migration", "MIGRATION", "--profile", "smoke_fifth"],
         "--profile smoke_fifth: a rehearsal measures two sizes"),
        (["--migration-cmd", "true", "--profile", "smoke"],
         "--profile smoke: a --migration-cmd's statements are seen only by the lock sampler"),
        (["--migration", "MIGRATION", "--from", "MIGRATION", "--from-cmd", "true"],
         "--from MIGRATION and --from-cmd true: give one of them, not both (neither: the canonical schema)"),
        (["--migration-cmd", "no-such-program-xyz up"], "not on PATH"),
        (["--migration", "BAD"], "line 2: not valid SQL"),
        (["--migration", "MIGRATION", "--baseline-seconds", "0"], "--baseline-seconds 0: must be at least 0.2"),
        (["--migration", "MIGRATION", "--rate", "-5"], "--rate -5: must be more than 0"),
        (["--migration", "MIGRATION", "--long-transaction", "-1"], "--long-transaction -1: must be at least 0"),
        (["--migration", "MIGRATION", "--lock-retries", "many"], "--lock-retries many"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], expected: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "MIGRATION").write_text("CREATE INDEX CONCURRENTLY ix ON messages (user_id);\n")
    (tmp_path / "BAD").write_text("SELECT 1;\nCREAT INDEX ix ON messages (user_id);\n")
    code, err = _run(argv, capsys)
    assert code == 2, err
    assert expected in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_split_keeps_function_bodies_and_marks_transaction_blocks() -> None:
    statements = split_sql(
        "SET lock_timeout = '1s';\nCREATE INDEX CONCURRENTLY a ON messages (user_id);\nBEGIN;\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\nCOMMIT;\n", "t.sql")
    assert [s.line for s in statements] == [1, 2, 3, 4, 5]
    assert [s.transaction_control for s in statements] == [None, None, "begin", None, "commit"]
    assert [s.no_transaction_block for s in statements] == [False, True, False, False, False]
    assert statements[3].sql.endswith("$$ SELECT 1; $$")


@pytest.mark.slow  # a whole ci rehearsal at two sizes, an Alembic run at each: the fast tier's longest test
def test_alembic_migration_via_migration_cmd(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    index = 'op.create_index("ix_messages_user_id", "messages", ["user_id"])'
    alembic = alembic_project(tmp_path / "app", upgrade=index)
    before = CASES[0].before_sql(tmp_path, safe=False)  # the canonical schema without ix_messages_user_id
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    code, err = _run(["--backend", "local", "--from", str(before), "--migration-cmd", alembic,
                      "--rate", "100", "--clients", "2", "--baseline-seconds", "0.3", "--out", str(out)], capsys)
    assert code == 1, err
    report = json.loads((out / "rehearsal.json").read_text())
    assert report["verdict"] == "FAIL"
    assert report["verification"]["passed"], report["failing"]  # alembic_version is a tool table, not drift
    blocking = [f for f in report["findings"] if f["rule"] == "blocking"]
    assert blocking and blocking[0]["table"] == "messages" and blocking[0]["lock"] == "ShareLock", report["failing"]
    assert "CREATE INDEX ix_messages_user_id" in blocking[0]["sql"]
    assert "CREATE INDEX CONCURRENTLY" in blocking[0]["rewrite"]
    assert {p.name for p in out.iterdir()} == {"rehearsal.md", "rehearsal.html", "rehearsal.json",
                                               "rehearsal.junit.xml"}
    html = (out / "rehearsal.html").read_text()
    assert "<svg" in html and "http://" not in html and "https://" not in html
    assert "<failure" in (out / "rehearsal.junit.xml").read_text()
    assert "FAIL blocking" in err
