"""Done when: an application project of its own adopts chatbench's pytest plugin.

A throwaway application (its own ``pyproject.toml`` with ``[tool.chatbench]``, its own SQL schema and
its own ``tests/``) gets chatbench installed into its own venv from this checkout (a wheel) together
with pytest-xdist, and runs its suite with ``-p xdist -n 2``. Its tests use the three fixtures and
``assert_plan`` and log what they saw; the suite passes, both workers ran seeded tests on clones of
one template on one server (seeded once per run, not per worker), each test's writes stayed in its
own clone, and nothing is left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatbench import schema

pytestmark = [pytest.mark.packaging, pytest.mark.xdist_group("wheel")]  # one worker builds the wheel once
ROOT = Path(__file__).resolve().parents[1]

APP_TESTS = '''
import json
import os

import pytest
import sqlalchemy

from chatbench.testing import assert_plan

HISTORY = """SELECT id, content FROM messages
 WHERE conversation_id = %(conversation_id)s AND (created_at, id) < (%(created_at)s, %(id)s)
 ORDER BY created_at DESC, id DESC LIMIT 50"""


def record(kind, db, **extra):
    import chatbench

    with open(os.environ["APP_LOG"], "a") as log:
        log.write(json.dumps({"kind": kind, "worker": os.environ.get("PYTEST_XDIST_WORKER"),
                              "template": getattr(db, "template", None), "url": db.display_url,
                              "chatbench": chatbench.__file__, **extra}) + "\\n")


def test_the_server(chatbench_server):
    assert chatbench_server.url.startswith("postgresql://")
    with chatbench_server.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    record("server", chatbench_server)


def test_a_fresh_database_has_our_schema(chat_db):
    with chat_db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (0,)
        assert conn.execute("SELECT to_regclass('attachments')").fetchone() == ("attachments",)
    record("schema", chat_db)


@pytest.mark.parametrize("depth", range(6))
def test_history_pages_on_realistic_data(seeded_chat_db, depth):
    db = seeded_chat_db
    whale = db.whale
    assert whale.messages >= 1000 and db.heavy_user.conversations > 1
    cursor = db.deep_cursors[depth % len(db.deep_cursors)]
    params = {"conversation_id": cursor.conversation_id, "created_at": cursor.created_at, "id": cursor.id}
    assert_plan(db, HISTORY, params, uses_index="messages(conversation_id, created_at, id)", max_buffers=200,
                max_sort_rows=100)
    with db.connect() as conn:
        count = conn.execute("SELECT count(*) FROM messages WHERE conversation_id = %s", (whale.conversation_id,))
        assert count.fetchone() == (whale.messages,)  # no other test's delete reached this clone
        assert 0 < len(conn.execute(HISTORY, params).fetchall()) <= 50
        conn.execute("DELETE FROM messages WHERE conversation_id = %s", (whale.conversation_id,))
    record("seed", db, depth=cursor.depth)


def test_sqlalchemy_reads_the_same_data(seeded_chat_db):
    engine = sqlalchemy.create_engine(seeded_chat_db.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            total = conn.execute(sqlalchemy.text("SELECT count(*) FROM messages")).scalar_one()
    finally:
        engine.dispose()
    assert total == seeded_chat_db.counts["messages"]
    record("seed", seeded_chat_db)
'''


def _application(base: Path) -> Path:
    app = base / "chatapp"
    (app / "tests").mkdir(parents=True)
    (app / "db").mkdir()
    (app / "pyproject.toml").write_text(
        '[project]\nname = "chatapp"\nversion = "1.0"\n\n'
        '[tool.chatbench]\nbackend = "local"\nschema_from = "db/schema.sql"\n'
    )
    (app / "db" / "schema.sql").write_text(
        schema.ddl() + "\nCREATE TABLE attachments (id bigserial PRIMARY KEY, "
        "message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE, name text NOT NULL);\n"
    )
    (app / "tests" / "test_history.py").write_text(APP_TESTS)
    return app


def _run(*argv: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_an_application_suite_with_two_xdist_workers_passes_and_seeds_once(wheel: Path, tmp_path: Path,
                                                                          run_dir: Path) -> None:
    app = _application(tmp_path)
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and (not k.startswith("CHATBENCH_") or k == "CHATBENCH_CACHE_DIR")}
    built = _run(sys.executable, "-m", "venv", venv, cwd=tmp_path, env=env)
    assert built.returncode == 0, built.stderr
    python = venv / "bin" / "python"
    # --no-compile: pip byte-compiles every installed module for 10 s of a 19 s install; the suite compiles
    # what it imports as it loads it.
    installed = _run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile", wheel,
                     "pytest-xdist", cwd=app, env=env)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]

    log = tmp_path / "app.log"
    env |= {"APP_LOG": str(log), "CHATBENCH_RUN_DIR": str(run_dir)}
    done = _run(python, "-m", "pytest", "-p", "xdist", "-n", "2", "-q", "-p", "no:cacheprovider", cwd=app, env=env)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    assert "9 passed" in done.stdout

    seen = [json.loads(line) for line in log.read_text().splitlines()]
    seeded = [entry for entry in seen if entry["kind"] == "seed"]
    assert len(seeded) == 7
    assert {entry["worker"] for entry in seeded} == {"gw0", "gw1"}  # both workers ran seeded tests ...
    assert len({entry["template"] for entry in seeded}) == 1  # ... on clones of one seeded template
    assert len({entry["url"].rsplit("/", 1)[0] for entry in seen}) == 1  # on one server
    assert all(entry["chatbench"].startswith(str(venv)) for entry in seen)  # chatbench from the app's venv

    summary = done.stdout[done.stdout.index(" chatbench "):]
    made = [line for line in summary.splitlines() if line.startswith("template smoke (seed 1)")]
    assert len(made) == 1 and ": made once (gw" in made[0] and "; 7 clones, median" in made[0], summary
    assert not any(run_dir.iterdir())  # the server is gone, whichever worker started it
