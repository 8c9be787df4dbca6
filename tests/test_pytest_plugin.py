"""chatbench's pytest plugin as an application meets it: light to load, strict with bad input, and its
fixtures' databases (canonical or the application's schema, seeded or not) made once and cloned per test.

Bad settings and bad fixture parameters are checked in a pytest run of a scratch project (a real
session of the plugin, as a user starts it); the fixtures' work is checked in-process on
``FixtureSession``, the object behind them. The whole application story (its own venv, xdist with
two workers) is ``test_app_project.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from chatbench import schema
from chatbench.provision import Server
from chatbench.pytest_plugin import FIXTURE_COMMAND, FIXTURE_SETTINGS, summary_lines
from chatbench.settings import resolve
from chatbench.testing.session import FixtureSession
from chatbench.testing.sharing import Lease, run_folder

HEAVY = ("psycopg", "sqlalchemy", "numpy", "faker", "scipy", "chatbench.loadgen", "chatbench.provision",
         "chatbench.verify", "chatbench.testing.session", "chatbench.testing.plan_assert")


def test_the_plugin_loads_light() -> None:
    """It loads in every pytest session of every application that installs chatbench."""
    code = ("import sys, chatbench.pytest_plugin, chatbench.testing; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _project(base: Path, test_body: str, pyproject: str = "") -> Path:
    (base / "tests").mkdir(parents=True, exist_ok=True)
    (base / "pyproject.toml").write_text('[project]\nname = "app"\nversion = "0"\n' + pyproject)
    (base / "tests" / "test_app.py").write_text(test_body)
    return base


def _pytest(project: Path, *args: str, env: dict[str, str] | None = None, run_dir: Path | None = None,
            only_chatbench: bool = False) -> subprocess.CompletedProcess[str]:
    """A pytest session in ``project``. With ``only_chatbench`` it loads chatbench's plugin alone (``-p``,
    entry points off): about a second less per run than importing every installed plugin (xdist,
    benchmark, Faker's); the other runs of this file load it through its ``pytest11`` entry point."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CHATBENCH_") or k == "CHATBENCH_CACHE_DIR"}
    environ |= {"CHATBENCH_BACKEND": "local", **({"CHATBENCH_RUN_DIR": str(run_dir)} if run_dir else {}), **(env or {})}
    plugins: tuple[str, ...] = ()
    if only_chatbench:
        environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        plugins = ("-p", "chatbench.pytest_plugin")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugins, *args],
                          cwd=project, env=environ, capture_output=True, text=True, timeout=300)


USES_EVERY_FIXTURE = """
def test_it(chatbench_server, chat_db, seeded_chat_db):
    pass
"""


@pytest.mark.parametrize(
    "args,env,pyproject,message",
    [
        (["--chatbench-profile", "bogus"], {}, "", "--chatbench-profile bogus: not a profile; use one of ci,"),
        ([], {"CHATBENCH_PROFILE": "bogus"}, "", "CHATBENCH_PROFILE=bogus: not a profile"),
        ([], {}, '[tool.chatbench]\nprofile = "bogus"\n', "pyproject.toml [tool.chatbench] profile = bogus: not a"),
        ([], {}, '[tool.chatbench]\nprofil = "ci"\n', "unknown key 'profil'"),
        (["--chatbench-seed", "-1"], {}, "", "--chatbench-seed -1: must be at least 0"),
        (["--chatbench-backend", "kube"], {}, "", "--chatbench-backend kube: not one of auto, container, local, dsn"),
        (["--chatbench-schema-from", "/nonexistent.sql"], {}, "", "--chatbench-schema-from /nonexistent.sql: no such"),
        (["--chatbench-schema-from-cmd", "no-such-program-x up"], {}, "", "which is not on PATH"),
        (["--chatbench-schema-from", "pyproject.toml", "--chatbench-schema-from-cmd", "true"], {}, "",
         "--chatbench-schema-from pyproject.toml and --chatbench-schema-from-cmd true: give one of them, not both"),
        (["--chatbench-command-timeout", "0"], {}, "", "--chatbench-command-timeout 0: must be more than 0"),
        (["--chatbench-dsn", "mysql://u:secret@h/d"], {}, "", "--chatbench-dsn mysql://u:***@h/d: names 'mysql'"),
    ],
)
def test_bad_settings_are_a_one_line_usage_error_before_any_server(
    tmp_path: Path, run_dir: Path, args: list[str], env: dict[str, str], pyproject: str, message: str
) -> None:
    project = _project(tmp_path, USES_EVERY_FIXTURE, pyproject)
    done = _pytest(project, *args, env=env, run_dir=run_dir, only_chatbench=True)
    assert done.returncode == 4, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ERROR: chatbench: "), done.stderr
    assert message in lines[0]
    assert "Traceback" not in done.stdout + done.stderr and "secret" not in done.stdout + done.stderr
    assert not run_dir.exists() or not any(run_dir.iterdir())


def test_a_bad_profile_parameter_is_a_collection_error_naming_the_test(tmp_path: Path, run_dir: Path) -> None:
    project = _project(tmp_path, """
import pytest

@pytest.mark.parametrize("seeded_chat_db", ["smoke", "huge"], indirect=True)
def test_it(seeded_chat_db):
    pass
""")
    done = _pytest(project, run_dir=run_dir)
    assert done.returncode == 2, done.stdout + done.stderr
    from chatbench.loadgen import profiles

    assert ("tests/test_app.py::test_it: seeded_chat_db parameter 'huge' is not a profile; use one of "
            f"{', '.join(profiles())}" in done.stdout)
    assert "Traceback" not in done.stdout + done.stderr
    assert not run_dir.exists() or not any(run_dir.iterdir())


def test_a_failing_migration_is_one_line_in_each_test_and_leaves_nothing(tmp_path: Path,
                                                                         run_dir: Path) -> None:
    project = _project(tmp_path, """
def test_one(chat_db):
    pass

def test_two(seeded_chat_db):
    pass

def test_three():
    pass
""", '[tool.chatbench]\nschema_from = "db/schema.sql"\n')
    (project / "db").mkdir()
    (project / "db" / "schema.sql").write_text("CREATE TABLE users (id bigint PRIMARY KEY);\nCREATE TABLE oops (;\n")
    done = _pytest(project, run_dir=run_dir, only_chatbench=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 passed, 2 errors" in done.stdout
    failures = [line for line in done.stdout.splitlines() if "the SQL failed" in line and not line.startswith("ERROR ")]
    assert len(failures) == 2 and all(line.startswith("chatbench: --schema-from db/schema.sql") for line in failures)
    assert "Traceback" not in done.stdout
    assert not any(run_dir.iterdir())  # the server was stopped and removed


def test_the_summary_counts_each_template_made_once_and_its_clones() -> None:
    tallies = [
        {"made": [{"kind": "seed", "label": "smoke (seed 1)", "seconds": 1.2, "worker": "gw1"}],
         "clones": {"smoke (seed 1)": [0.02, 0.03]}, "notes": ["running PostgreSQL as OS user 'postgres'"]},
        {"made": [], "clones": {"smoke (seed 1)": [0.04]}, "notes": ["running PostgreSQL as OS user 'postgres'"]},
    ]
    assert summary_lines(tallies) == [
        "running PostgreSQL as OS user 'postgres'",
        "template smoke (seed 1): made once (gw1 1.20 s); 3 clones, median 30 ms",
    ]


def test_a_lease_holder_waits_for_the_other_users(tmp_path: Path) -> None:
    """The process that started the server stops it only when every other worker gave its lease back."""
    owner, other = Lease(tmp_path), Lease(tmp_path)
    released_at: list[float] = []

    def release_later() -> None:
        time.sleep(0.3)
        released_at.append(time.monotonic())
        other.release()

    threading.Thread(target=release_later).start()
    owner.wait_for_the_others()
    assert released_at and time.monotonic() >= released_at[0]
    owner.release()


# -- the fixtures' work, in-process ---------------------------------------------------------------------

APP_SCHEMA_EXTRA = "CREATE TABLE attachments (id bigserial PRIMARY KEY, message_id bigint NOT NULL);\n"


@pytest.fixture(scope="module")
def app_schema_sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FixtureSession, FixtureSession]]:
    """Two sessions sharing one run folder, as two xdist workers do, with the application's own schema."""
    base = tmp_path_factory.mktemp("app")
    sql_file = base / "schema.sql"
    sql_file.write_text(schema.ddl() + APP_SCHEMA_EXTRA)
    settings = resolve(FIXTURE_COMMAND, {"backend": "local", "schema_from": str(sql_file)}, names=FIXTURE_SETTINGS,
                       env={}, cwd=base)
    folder = run_folder(base / "basetemp" / "popen-gw0", xdist_worker=True)
    first = FixtureSession.open(settings, folder, "gw0")
    try:
        second = FixtureSession.open(settings, folder, "gw1")
        try:
            yield first, second
        finally:
            second.close()
    finally:
        first.close()


def _databases(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def test_two_workers_share_one_server_and_seed_once(app_schema_sessions: tuple[FixtureSession, FixtureSession]
                                                    ) -> None:
    first, second = app_schema_sessions
    assert first.owner and not second.owner and first.server.url == second.server.url
    with first.seeded_chat_db(None) as a, second.seeded_chat_db(None) as b:
        assert a.template == b.template and a.name != b.name
    made = [m for m in first.tally.made + second.tally.made if m.kind == "seed"]
    assert len(made) == 1
    assert made[0].label == f"smoke (seed 1) into --chatbench-schema-from {first.settings.schema_from}"
    assert sum(len(v) for t in (first.tally, second.tally) for v in t.clones.values()) == 2


def test_chat_db_has_the_application_schema_and_is_dropped_after(
    app_schema_sessions: tuple[FixtureSession, FixtureSession],
) -> None:
    first, _ = app_schema_sessions
    with first.chat_db() as db:
        assert db.url.startswith("postgresql://") and db.sqlalchemy_url.startswith("postgresql+psycopg://")
        with db.connect() as conn:
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            assert tables == {"users", "conversations", "messages", "attachments"}
            assert conn.execute("SELECT count(*) FROM messages").fetchone() == (0,)
        assert db.schema.startswith("--chatbench-schema-from ") and db.name in _databases(first.server.conninfo())
    assert db.name not in _databases(first.server.conninfo())


def test_seeded_chat_db_holds_the_scenario_facts_in_the_application_schema(
    app_schema_sessions: tuple[FixtureSession, FixtureSession],
) -> None:
    first, _ = app_schema_sessions
    with first.seeded_chat_db(None) as db, db.connect() as conn:
        assert db.profile == "smoke" and db.counts["messages"] == 20_000
        assert db.whale.messages >= 1000
        whale_rows = conn.execute("SELECT count(*) FROM messages WHERE conversation_id = %s",
                                  (db.whale.conversation_id,)).fetchone()
        assert whale_rows == (db.whale.messages,)
        heavy = conn.execute("SELECT count(*) FROM conversations WHERE user_id = %s",
                             (db.heavy_user.user_id,)).fetchone()
        assert heavy == (db.heavy_user.conversations,)
        cursor = db.deep_cursor
        newer = conn.execute(
            "SELECT count(*) FROM messages WHERE conversation_id = %s AND (created_at, id) > (%s, %s)",
            (cursor.conversation_id, cursor.created_at, cursor.id),
        ).fetchone()
        assert newer == (cursor.depth - 1,) and cursor.depth > db.whale.messages // 2
        assert conn.execute("SELECT to_regclass('attachments')").fetchone() == ("attachments",)
        assert ", url=" not in repr(db) and "sqlalchemy_url" not in repr(db)  # (they may hold a password)


def test_another_profile_is_its_own_template(app_schema_sessions: tuple[FixtureSession, FixtureSession]) -> None:
    first, _ = app_schema_sessions
    with first.seeded_chat_db("smoke") as default, first.seeded_chat_db(None) as same:
        assert default.template == same.template  # the default profile is smoke


def test_on_a_dsn_server_each_database_is_a_marked_run_database_and_dropped(pg: Server, tmp_path: Path) -> None:
    """A server someone else runs: templates and clones are named and marked as run databases (so
    ``chatbench clean --dsn`` finds them after a crash) and all dropped when the session ends."""
    from chatbench.provision.dsn import COMMENT_MARKER, RUN_DATABASE_PREFIX

    before = _databases(pg.admin_conninfo())
    settings = resolve(FIXTURE_COMMAND, {"dsn": pg.admin_url.render_as_string(hide_password=False)},
                       names=FIXTURE_SETTINGS, env={}, cwd=tmp_path)
    session = FixtureSession.open(settings, run_folder(tmp_path, xdist_worker=False), "main")
    try:
        assert session.server.backend == "dsn"
        with session.chat_db() as db, psycopg.connect(pg.admin_conninfo()) as conn:
            mine = _databases(pg.admin_conninfo()) - before
            assert {db.name, db.template} < mine and all(n.startswith(RUN_DATABASE_PREFIX) for n in mine)
            comment = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                                   (db.name,)).fetchone()
            assert comment is not None and COMMENT_MARKER in json.loads(comment[0])
    finally:
        session.close()
    assert _databases(pg.admin_conninfo()) == before
