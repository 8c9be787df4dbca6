"""``--models MODULE:ATTR`` and ``--drift-mode``: resolved once (``chatbench.commands.schema_choice``) for every
command and the pytest fixtures; a reference that does not import, has no colon, names something that is not
a MetaData or declares no table is one line and exit 2 before any server starts, in the form it was given."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatbench.cli import main
from chatbench.commands.schema_choice import drift_mode, schema_choice
from chatbench.errors import ConfigError
from chatbench.settings import resolve

MODELS = '''
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id = sa.Column(sa.BigInteger, primary_key=True)


NOT_METADATA = 42
EMPTY = sa.MetaData()
'''


@pytest.fixture
def app_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project folder holding ``badapp/models.py``, as the working directory; the import is forgotten after."""
    package = tmp_path / "badapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(textwrap.dedent(MODELS))
    (tmp_path / "MIGRATION.sql").write_text("ALTER TABLE messages ADD COLUMN edited_at timestamptz;\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in [n for n in os.environ if n.startswith("CHATBENCH_") and n != "CHATBENCH_CACHE_DIR"]:
        monkeypatch.delenv(name)
    yield tmp_path
    for name in [n for n in sys.modules if n == "badapp" or n.startswith("badapp.")]:
        del sys.modules[name]


BAD = [
    ("nomodule:Base", "--models 'nomodule:Base': cannot import 'nomodule' (ModuleNotFoundError"),
    ("badapp.models", "--models badapp.models: is not MODULE:ATTR; name the models' MetaData or declarative base"),
    ("badapp.models:Nope", "--models 'badapp.models:Nope': 'badapp.models' has no attribute 'Nope'"),
    ("badapp.models:NOT_METADATA", "'NOT_METADATA' is not a SQLAlchemy MetaData or declarative base"),
    ("badapp.models:EMPTY", "--models 'badapp.models:EMPTY': its MetaData declares no table"),
]
COMMANDS = [
    ["verify"],
    ["seed"],
    ["bench"],
    ["signoff"],
    ["rehearse", "--migration", "MIGRATION.sql"],
]


@pytest.mark.parametrize(("reference", "expected"), BAD, ids=[r for r, _ in BAD])
@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_bad_models_are_one_line_exit_2_before_any_server(
    app_project: Path, run_dir: Path, command: list[str], reference: str, expected: str,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATBENCH_RUN_DIR", str(run_dir))
    monkeypatch.setenv("CHATBENCH_BACKEND", "local")
    code = main([*command, "--models", reference])
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not run_dir.exists() or not any(run_dir.iterdir())  # no server was started
    assert not (app_project / "out").exists()


def test_the_error_names_the_environment_variable(app_project: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATBENCH_MODELS", "nomodule:Base")
    assert main(["verify"]) == 2
    err = capsys.readouterr().err
    assert "CHATBENCH_MODELS 'nomodule:Base': cannot import 'nomodule'" in err, err
    monkeypatch.setenv("CHATBENCH_MODELS", "badapp.models")
    assert main(["verify"]) == 2
    assert "CHATBENCH_MODELS=badapp.models: is not MODULE:ATTR" in capsys.readouterr().err


def test_the_error_names_the_file_key(app_project: Path) -> None:
    (app_project / "chatbench.toml").write_text('models = "badapp.models:NOT_METADATA"\n')
    with pytest.raises(ConfigError, match=r"^chatbench.toml models 'badapp.models:NOT_METADATA': 'NOT_METADATA' is "
                                          "not a SQLAlchemy MetaData"):
        schema_choice(resolve("verify", names=("models",)))


def test_a_bad_drift_mode_is_refused(app_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--drift-mode", "loose"]) == 2
    err = capsys.readouterr().err
    assert "--drift-mode loose: not one of auto, exact, contract" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("given", "mode"),
    [
        ({}, "exact"),  # the schema chatbench builds from the canonical models: the canonical CI
        ({"schema_from": "MIGRATION.sql"}, "contract"),
        ({"schema_from_cmd": "true"}, "contract"),
        ({"url": "postgresql://app@db/app"}, "contract"),
        ({"migration": "MIGRATION.sql"}, "contract"),  # rehearse / signoff --migration without --models
        ({"models": "badapp.models:Base"}, "exact"),
        ({"models": "badapp.models:Base", "schema_from": "MIGRATION.sql"}, "exact"),
        ({"models": "badapp.models:Base", "migration": "MIGRATION.sql"}, "exact"),
        ({"schema_from": "MIGRATION.sql", "drift_mode": "exact"}, "exact"),
        ({"drift_mode": "contract"}, "contract"),
    ],
)
def test_auto_drift_mode_follows_where_the_schema_comes_from(app_project: Path, given: dict[str, str],
                                                             mode: str) -> None:
    settings = resolve("verify", given)
    assert drift_mode(settings) == mode
    choice = schema_choice(settings)
    assert choice.mode == mode
    assert choice.package.canonical == ("models" not in given)
    if "models" in given:
        assert choice.package.name == "badapp.models:Base" and list(choice.package.metadata.tables) == ["notes"]
        assert choice.source == "--models badapp.models:Base"


def test_pytest_fixtures_refuse_bad_models_before_any_test(app_project: Path, run_dir: Path) -> None:
    (app_project / "tests").mkdir()
    (app_project / "tests" / "test_app.py").write_text("def test_it(chat_db):\n    pass\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CHATBENCH_") or k == "CHATBENCH_CACHE_DIR"}
    # chatbench's plugin alone (-p, entry points off): a second less per run than every installed plugin;
    # test_pytest_plugin.py's other runs load it through its pytest11 entry point.
    environ |= {"CHATBENCH_BACKEND": "local", "CHATBENCH_RUN_DIR": str(run_dir), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    for reference, expected in (("badapp.models:NOT_METADATA", "--chatbench-models 'badapp.models:NOT_METADATA': "
                                 "'NOT_METADATA' is not a SQLAlchemy MetaData"),
                                ("badapp.models", "--chatbench-models badapp.models: is not MODULE:ATTR")):
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                               "chatbench.pytest_plugin", "--chatbench-models", reference], cwd=app_project,
                              env=environ, capture_output=True, text=True, timeout=120)
        assert done.returncode == 4, done.stdout + done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("ERROR: chatbench: "), done.stderr
        assert expected in lines[0], lines[0]
        assert "Traceback" not in done.stdout + done.stderr
    assert not run_dir.exists() or not any(run_dir.iterdir())


def test_the_commands_hand_the_choice_to_the_stages(app_project: Path) -> None:
    """``SignoffOptions`` and ``RehearsalPlan`` (the frozen options the stages read) carry the package and
    the resolved mode; ``signoff --migration`` hands its rehearsal the same."""
    from chatbench.commands.impl.rehearse import plan_from
    from chatbench.commands.impl.signoff import options_from

    options = options_from(resolve("signoff", {"backend": "local", "models": "badapp.models:Base"}))
    assert (options.package.name, options.drift_mode) == ("badapp.models:Base", "exact")
    assert options.schema_source == "--models badapp.models:Base (built from them, judged exact)"
    canonical = options_from(resolve("signoff", {"backend": "local"}))
    assert canonical.package.canonical and canonical.drift_mode == "exact" and canonical.schema_source == "canonical"
    migrated = options_from(resolve("signoff", {"backend": "local", "migration": "MIGRATION.sql"}))
    assert migrated.package.canonical and migrated.drift_mode == "contract"
    assert migrated.migration is not None and migrated.migration.drift_mode == "contract"
    plan = plan_from(resolve("rehearse", {"migration": "MIGRATION.sql", "models": "badapp.models:Base"}))
    assert (plan.package.name, plan.drift_mode) == ("badapp.models:Base", "exact")
    assert plan_from(resolve("rehearse", {"migration": "MIGRATION.sql"})).drift_mode == "contract"


def test_chat_db_is_built_from_the_application_models(tmp_path: Path, run_dir: Path) -> None:
    """``--chatbench-models``: the fixtures' schema is the application's models (here: the canonical tables
    plus ``messages.edited_at``), created by the models themselves, triggers and all."""
    from app_models import REFERENCE, write_app

    write_app(tmp_path, declares_edited_at=True)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_app.py").write_text(textwrap.dedent('''
        def test_it(chat_db):
            assert chat_db.schema == "--chatbench-models app.models:Base"
            with chat_db.connect() as conn:
                columns = [r[0] for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'messages'")]
                triggers = [r[0] for r in conn.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")]
            assert "edited_at" in columns, columns
            assert "trg_messages_touch_conversation" in triggers, triggers
    '''))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CHATBENCH_") or k == "CHATBENCH_CACHE_DIR"}
    environ |= {"CHATBENCH_BACKEND": "local", "CHATBENCH_RUN_DIR": str(run_dir), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                           "chatbench.pytest_plugin", "--chatbench-models", REFERENCE],  # chatbench's plugin alone
                          cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "template schema --chatbench-models app.models:Base: made once" in done.stdout, done.stdout
