"""``chatbench --version`` and ``--help`` import no command (each pulls in provisioning, SQLAlchemy and
psycopg, about a second), yet list every command as importing them would. Deterministic: the modules
loaded are checked, not a time (the time is measured with hyperfine, docs/design.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from chatbench.cli import build_parser, command_entries, command_modules

HEAVY = ("chatbench.commands.", "chatbench.provision", "sqlalchemy", "psycopg", "numpy", "scipy", "cattrs")


@pytest.mark.parametrize("argv", [["--version"], ["--help"], []])
def test_the_top_level_imports_no_command(argv: list[str]) -> None:
    code = (f"import json, sys\nfrom chatbench.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n"
            "    pass\nprint(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert not [name for name in loaded if name.startswith(HEAVY)], [n for n in loaded if n.startswith(HEAVY)]


def test_the_listing_read_from_source_is_what_the_modules_say() -> None:
    assert [(e.name, e.help) for e in command_entries()] == [(m.NAME, m.HELP) for m in command_modules()]


def test_a_command_parser_is_whole_when_only_that_command_is_imported() -> None:
    whole, alone = build_parser(), build_parser(only="seed")
    assert whole.parse_args(["seed", "--profile", "smoke"]).profile == "smoke"
    assert alone.parse_args(["seed", "--profile", "smoke"]).profile == "smoke"
    with pytest.raises(SystemExit):
        alone.parse_args(["nonesuch"])
