"""``chatbench --version``, ``--help`` and every ``chatbench COMMAND --help`` start without the stack.

The top level imports no command (each command's implementation pulls in provisioning, SQLAlchemy, psycopg
and numpy, about a second), yet lists every command as importing them would; a command's ``--help`` imports
its interface alone (``chatbench.commands``), yet shows every option the whole parser gives it.
Deterministic: the modules loaded are checked, not a time (the time is measured with hyperfine,
docs/design.md)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import import_module

import pytest

from chatbench.cli import CommandEntry, build_parser, command_entries, command_modules, implementation
from chatbench.settings import option

HEAVY = ("chatbench.commands.", "chatbench.provision", "sqlalchemy", "psycopg", "numpy", "scipy", "cattrs")
COLUMNS = "100"  # one help width in the subprocess and in this process, so the two texts compare equal


def _run_main(argv: list[str]) -> tuple[str, list[str]]:
    """``chatbench.cli.main(argv)`` in a fresh interpreter: what it printed, and every module it loaded."""
    code = (f"import json, sys\nfrom chatbench.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n"
            "    pass\nprint(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": COLUMNS})
    assert done.returncode == 0, done.stderr
    printed, _, loaded = done.stdout.rstrip("\n").rpartition("\n")
    return printed, json.loads(loaded)


@pytest.mark.parametrize("argv", [["--version"], ["--help"], []])
def test_the_top_level_imports_no_command(argv: list[str]) -> None:
    _, loaded = _run_main(argv)
    assert not [name for name in loaded if name.startswith(HEAVY)], [n for n in loaded if n.startswith(HEAVY)]


@pytest.mark.parametrize("entry", command_entries(), ids=lambda entry: entry.name)
def test_a_command_help_imports_its_interface_alone_and_lists_every_setting(
        entry: CommandEntry, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    printed, loaded = _run_main([entry.name, "--help"])
    interface = f"chatbench.commands.{entry.module}"
    assert [name for name in loaded if name.startswith(HEAVY) and name != interface] == []
    monkeypatch.setenv("COLUMNS", COLUMNS)
    with pytest.raises(SystemExit):
        build_parser().parse_args([entry.name, "--help"])  # every command imported: the whole parser's help
    assert printed == capsys.readouterr().out.rstrip("\n")
    missing = [option(name) for name in import_module(interface).SETTINGS
               if not re.search(rf"(?<![\w-]){re.escape(option(name))}(?![\w-])", printed)]
    assert missing == [], f"chatbench {entry.name} --help lacks {missing}"


MEASURING = ("chatbench.provision", "chatbench.schema", "chatbench.loadgen", "chatbench.verify", "chatbench.rehearse",
             "chatbench.reports.signoff", "chatbench.benchmarks.fidelity", "chatbench.benchmarks.citus",
             "chatbench.benchmarks.environment", "chatbench.benchmarks.session", "docker", "testcontainers")


def test_reading_and_recording_a_result_file_imports_no_measuring_stage() -> None:
    """``history`` records a file and ``compare`` reads one without the modules that measure (provisioning, the
    schema, the sign-off pipeline, the fidelity check): about 0.8 s of imports for every recording process."""
    code = ("import json, sys\nimport chatbench.history, chatbench.reports.inputs\n"
            "print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert "chatbench.benchmarks.fidelity_result" in loaded  # the result model is read, not the check
    assert [name for name in loaded if name.split(".")[0] in ("docker", "testcontainers")
            or any(name == m or name.startswith(f"{m}.") for m in MEASURING)] == []


CLIENT_MODULES = {
    "chatbench.benchmarks.loadtest.worker": {"chatbench", "chatbench.errors", "chatbench.benchmarks",
                                             "chatbench.benchmarks.loadtest", "chatbench.benchmarks.loadtest.worker"},
    "chatbench.rehearse.appclient": {"chatbench", "chatbench.errors", "chatbench.rehearse",
                                     "chatbench.rehearse.appclient"},
}


@pytest.mark.parametrize("module", sorted(CLIENT_MODULES))
def test_a_client_process_imports_no_stage_of_chatbench(module: str) -> None:
    """A ``chatbench load`` client (spawned afresh, one per client) and the rehearsal's app-client launcher import
    psycopg and nothing of chatbench beyond their own modules: the queries come compiled in their tasks. Through
    the load's package and the schema they took 1.5 s of CPU each."""
    code = f"import json, sys\nimport {module}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert {n for n in loaded if n.split(".")[0] == "chatbench"} == CLIENT_MODULES[module]
    assert not {n for n in loaded if n.split(".")[0] in ("sqlalchemy", "numpy", "scipy")}
    assert "psycopg" in loaded


def test_every_command_runs_through_its_implementation() -> None:
    for module in command_modules():
        assert callable(implementation(module).run), module.__name__
        assert not hasattr(module, "run"), f"{module.__name__}: the CLI runs chatbench.commands.impl's run, not this"


def test_the_listing_read_from_source_is_what_the_modules_say() -> None:
    assert [(e.name, e.help) for e in command_entries()] == [(m.NAME, m.HELP) for m in command_modules()]


def test_a_command_parser_is_whole_when_only_that_command_is_imported() -> None:
    whole, alone = build_parser(), build_parser(only="seed")
    assert whole.parse_args(["seed", "--profile", "smoke"]).profile == "smoke"
    assert alone.parse_args(["seed", "--profile", "smoke"]).profile == "smoke"
    with pytest.raises(SystemExit):
        alone.parse_args(["nonesuch"])
