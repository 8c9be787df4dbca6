"""Settings declared once: one precedence for every setting, every CLI key settable in a file, one default
seed, one-line errors naming the source as the user wrote it, and the same options for pytest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chatbench.cli import build_parser, command_modules
from chatbench.errors import ConfigError
from chatbench.settings import DECLARATIONS, default, env_var, option, pytest_option, read_file, resolve

SAMPLES: dict[str, tuple[Any, Any]] = {
    # setting: (a valid TOML value, the same as a command-line string)
    "str": ("x", "x"),
    "int": (3, "3"),
    "float": (2.5, "2.5"),
    "bool": (True, True),
    "list": (["a", "b"], ["a,b"]),
}
VALID: dict[str, tuple[Any, Any]] = {
    "backend": ("local", "local"),
    "pin": ("off", "off"),
    "driver": ("libpq", "libpq"),
    "order": ("conversation", "conversation"),
    "dsn": ("postgresql://u@127.0.0.1:5432/db", "postgresql://u@127.0.0.1:5432/db"),
    "url": ("postgresql://u@127.0.0.1:5432/db", "postgresql://u@127.0.0.1:5432/db"),
    "schema_from_cmd": ("true", "true"),
    "from_cmd": ("true", "true"),
    "migration_cmd": ("true", "true"),
    "pg_versions": (["15"], ["15"]),
    "set": (["messages.count=5"], ["messages.count=5"]),
    "alpha": (0.05, "0.05"),
    "min_effect": (0.2, "0.2"),
    "scaling": (["smoke"], ["smoke"]),
    "profile": ("smoke", "smoke"),
    "baseline": ("history:main", "history:main"),
    "cache": (False, False),
    "format": ("json", "json"),
    "models": ("app.models:Base", "app.models:Base"),
    "drift_mode": ("contract", "contract"),
    "citus_distribution": ("by_user", "by_user"),
}


def _valid(name: str, tmp_path: Path) -> tuple[Any, Any]:
    spec = DECLARATIONS[name]
    if name in VALID:
        return VALID[name]
    if spec.must_exist == "file":
        path = tmp_path / "input.txt"
        path.write_text("x")
        return str(path), str(path)
    if spec.must_exist == "dir":
        return str(tmp_path), [str(tmp_path)] if spec.kind == "list" else str(tmp_path)
    if spec.kind == "path":
        return str(tmp_path / "out"), str(tmp_path / "out")
    return SAMPLES[spec.kind]


@pytest.mark.parametrize("name", sorted(DECLARATIONS))
def test_every_setting_resolves_argument_over_environment_over_file_over_default(name: str, tmp_path: Path) -> None:
    spec = DECLARATIONS[name]
    toml_value, cli_value = _valid(name, tmp_path)
    key = name.replace("_", "-") if len(name) % 2 else name  # both spellings are accepted
    (tmp_path / "chatbench.toml").write_text(f"{key} = {_toml(toml_value)}\n")
    from_file = resolve(None, names=(name,), env={}, cwd=tmp_path)
    assert from_file.source(name) == "file"
    assert getattr(from_file, name) != default(name) or (spec.kind == "bool" and name == "cache")
    if spec.kind != "bool":
        env_value = ",".join(cli_value) if isinstance(cli_value, list) else str(cli_value)
        from_env = resolve(None, names=(name,), env={env_var(name): env_value}, cwd=tmp_path)
        assert from_env.source(name) == "environment"
    if spec.cli:
        from_argument = resolve(None, {name: cli_value}, names=(name,), env={}, cwd=tmp_path)
        assert from_argument.source(name) == "argument"
    assert resolve(None, names=(name,), env={}, cwd=tmp_path / "nowhere").source(name) == "default"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else str(value)


def test_a_falsy_argument_still_wins(tmp_path: Path) -> None:
    (tmp_path / "chatbench.toml").write_text('warmup = 5\nbackend = "container"\n')
    settings = resolve("bench", {"warmup": "0", "backend": None}, env={"CHATBENCH_BACKEND": "local"}, cwd=tmp_path)
    assert (settings.warmup, settings.source("warmup")) == (0, "argument")
    assert (settings.backend, settings.source("backend")) == ("local", "environment")


def test_every_cli_key_is_a_file_key_and_every_command_takes_declared_settings(tmp_path: Path) -> None:
    for module in command_modules():
        for name in module.SETTINGS:
            assert name in DECLARATIONS and DECLARATIONS[name].cli, (module.NAME, name)
    (tmp_path / "pyproject.toml").write_text("[tool.chatbench]\n" + "".join(
        f"{name.replace('_', '-')} = {_toml(_valid(name, tmp_path)[0])}\n" for name in sorted(DECLARATIONS)))
    assert set(read_file(tmp_path).values) == set(DECLARATIONS)


@pytest.mark.parametrize("file_name,header", [("chatbench.toml", ""), ("pyproject.toml", "[tool.chatbench]\n")])
def test_an_unknown_key_is_the_same_error_in_both_files(tmp_path: Path, file_name: str, header: str) -> None:
    (tmp_path / file_name).write_text(header + 'profil = "ci"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'profil'; allowed: .*profile"):
        resolve("seed", env={}, cwd=tmp_path)


def test_pyprojects_spelling_in_chatbench_toml_says_how_chatbench_toml_spells_it(tmp_path: Path) -> None:
    (tmp_path / "chatbench.toml").write_text('[tool.chatbench.map]\nconversations = "topics"\n')
    with pytest.raises(ConfigError, match=r"pyproject.toml's spelling; .* write profile = \"ci\" and \[map\]"):
        resolve("seed", env={}, cwd=tmp_path)


def test_profile_in_pyproject_is_read(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.chatbench]\nprofile = "smoke"\n')
    assert resolve("signoff", env={}, cwd=tmp_path).profile == "smoke"


def test_one_default_seed_and_per_command_defaults_only_where_declared() -> None:
    assert {default("seed", module.NAME) for module in command_modules()} == {1}
    assert default("profile", "signoff") == "release" and default("profile", "bench") == "ci"


@pytest.mark.parametrize(
    "given,env,file,message",
    [
        ({"rounds": "0"}, {}, "", "--rounds 0: must be at least 1"),
        ({"rounds": "many"}, {}, "", "--rounds many: not a whole number"),
        ({}, {"CHATBENCH_ROUNDS": "-3"}, "", "CHATBENCH_ROUNDS=-3: must be at least 1"),
        ({}, {}, "rounds = 2.5", "chatbench.toml rounds = 2.5: not a whole number"),
        ({}, {}, "rounds = true", "chatbench.toml rounds = True: a number is needed"),
        ({"budget": "-1"}, {}, "", "--budget -1: must be at least 0"),
        ({"pin": "bogus"}, {}, "", "--pin bogus: not one of same-core, off"),
        ({"backend": "kube"}, {}, "", "--backend kube: not one of auto, container, local, dsn"),
        ({"workers": "1000"}, {}, "", "--workers 1000: must be at most"),
        ({"alpha": "1.5"}, {}, "", "--alpha 1.5: must be at most 0.5"),
        ({"dsn": "garbage"}, {}, "", "--dsn garbage: is not a database URL"),
        ({"url": "mysql://u:p@h/d"}, {}, "", "--url mysql://u:***@h/d: names 'mysql', not PostgreSQL"),
        ({"schema_from_cmd": "no-such-program-x up"}, {}, "", "which is not on PATH"),
        ({"schema_from_cmd": "alembic 'upgrade"}, {}, "", "check the quoting"),
        ({"schema_from": "/nonexistent.sql"}, {}, "", "--schema-from /nonexistent.sql: no such file"),
        ({"out": "/proc/x"}, {}, "", "--out /proc/x: /proc is not writable"),
        ({"pg_versions": ["15,x"]}, {}, "", "x not a major version"),
        ({"set": ["messages.count"]}, {}, "", "'messages.count' is not FIELD=VALUE"),
        ({}, {"CHATBENCH_LOAD": "maybe"}, "", "CHATBENCH_LOAD=maybe: not true or false"),
        ({"models": "app.models"}, {}, "", "--models app.models: is not MODULE:ATTR; name the models' MetaData"),
        ({}, {"CHATBENCH_MODELS": "app:"}, "", "CHATBENCH_MODELS=app:: is not MODULE:ATTR"),
        ({}, {}, 'models = ":Base"', "chatbench.toml models = :Base: is not MODULE:ATTR"),
        ({"drift_mode": "loose"}, {}, "", "--drift-mode loose: not one of auto, exact, contract"),
    ],
)
def test_bad_values_are_one_line_naming_their_source(
    tmp_path: Path, given: dict[str, Any], env: dict[str, str], file: str, message: str
) -> None:
    if file:
        (tmp_path / "chatbench.toml").write_text(file + "\n")
    with pytest.raises(ConfigError) as raised:
        resolve("signoff", given, env=env, cwd=tmp_path)
    text = str(raised.value)
    assert message in text and "\n" not in text


def test_a_file_for_the_out_folder_is_refused(tmp_path: Path) -> None:
    occupied = tmp_path / "a-file"
    occupied.write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        resolve("signoff", {"out": str(occupied)}, env={}, cwd=tmp_path)


def test_pg_bin_from_a_file_does_not_override_backend_container_on_the_command_line(tmp_path: Path) -> None:
    from chatbench.provision.choice import choose_servers

    (tmp_path / "pyproject.toml").write_text(f'[tool.chatbench]\npg_bin = ["{tmp_path}"]\n')
    settings = resolve("signoff", {"backend": "container"}, env={}, cwd=tmp_path)
    assert [c.backend for c in choose_servers(settings)] == ["container"]
    with pytest.raises(ConfigError, match="--pg-bin is for --backend local"):
        choose_servers(resolve("signoff", {"backend": "container", "pg_bin": [str(tmp_path)]}, env={}, cwd=tmp_path))


def test_cli_options_are_generated_from_the_declarations() -> None:
    parser = build_parser()
    help_text = {action.dest: action for action in parser._subparsers._group_actions[0].choices["signoff"]._actions}
    for name in ("rounds", "budget", "pin", "cache", "clients"):
        assert option(name) in help_text[name].option_strings
        assert env_var(name) in str(help_text[name].help)


def test_pytest_sees_the_same_settings(tmp_path: Path) -> None:
    """``pytest --help`` of an unrelated project lists the suite's options (the pytest11 plugin)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    for name in ("profile", "rounds", "backend", "cache"):
        assert pytest_option(name) in done.stdout


def test_two_ways_of_giving_one_thing_are_refused_naming_each_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``refuse_both``: the message names each setting in the form it came from, so a CHATBENCH_* variable
    or a file's key the user forgot about is named, not an option they never typed."""
    from chatbench.settings import refuse_both

    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.sql").write_text("SELECT 1;\n")
    both = resolve("rehearse", {"migration": "m.sql"}, env={"CHATBENCH_MIGRATION_CMD": "true upgrade head"},
                   cwd=tmp_path)
    with pytest.raises(ConfigError, match=r"^--migration m\.sql and CHATBENCH_MIGRATION_CMD=true upgrade head: "
                                          r"give one of them, not both$"):
        refuse_both(both, "migration", "migration_cmd")
    (tmp_path / "chatbench.toml").write_text('schema_from_cmd = "true schema"\n')
    from_file = resolve("verify", {"schema_from": "m.sql"}, env={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match=r"and chatbench\.toml schema_from_cmd = true schema: give one"):
        refuse_both(from_file, "schema_from", "schema_from_cmd")
    (tmp_path / "chatbench.toml").unlink()
    one = resolve("verify", {"schema_from": "m.sql"}, env={}, cwd=tmp_path)
    refuse_both(one, "schema_from", "schema_from_cmd")  # one of them: nothing to refuse


def test_a_bad_file_value_is_refused_by_a_command_that_does_not_take_it(tmp_path: Path) -> None:
    """The file is checked whole, so a typo shows at the next command, not the day another command reads it;
    the environment, shared with other tools, is checked only for the command's own names."""
    (tmp_path / "pyproject.toml").write_text('[tool.chatbench]\ncitus_distribution = "nope"\n')
    with pytest.raises(ConfigError) as raised:
        resolve("verify", {}, names=("profile",), env={}, cwd=tmp_path)
    assert str(raised.value) == ("pyproject.toml [tool.chatbench] citus_distribution = nope: "
                                 "not one of by_conversation, by_user")
    (tmp_path / "pyproject.toml").write_text('[tool.chatbench]\nprofile = "smoke"\n')
    settings = resolve("verify", {}, names=("profile",), env={env_var("citus_distribution"): "nope"}, cwd=tmp_path)
    assert settings.profile == "smoke"
