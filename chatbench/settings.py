"""Run settings, each declared once and resolved with explicit precedence.

Precedence: command-line argument > environment variable > file (``chatbench.toml`` or
``[tool.chatbench]`` in ``pyproject.toml`` of the working directory) > default. Absence is tested
with ``is None``, never ``or``, so a falsy value given on purpose is kept.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbench.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str


SETTINGS: tuple[Setting, ...] = (
    Setting("backend", "CHATBENCH_BACKEND", "auto", "auto | container | local | dsn"),
    Setting("pg_bin", "CHATBENCH_PG_BIN", None, "PostgreSQL bin dir for the local backend (default: embedded wheel)"),
    Setting("image", "CHATBENCH_IMAGE", None, "container image (default: $HARNESS_PG_IMAGE or postgres:18)"),
    Setting("dsn", "CHATBENCH_DSN", None, "existing server: postgresql://user:password@host:port/db"),
    Setting("out", "CHATBENCH_OUT", "out", "folder for generated reports"),
)
_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    backend: str
    pg_bin: str | None
    image: str | None
    dsn: str | None
    out: str
    sources: Mapping[str, str]  # setting -> "argument" | "environment" | "file" | "default"


def file_settings(cwd: Path | None = None) -> dict[str, Any]:
    base = cwd or Path.cwd()
    for path, pick in (
        (base / "chatbench.toml", lambda d: d),
        (base / "pyproject.toml", lambda d: d.get("tool", {}).get("chatbench", {})),
    ):
        if path.is_file():
            try:
                data = pick(tomllib.loads(path.read_text()))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path.name}: not valid TOML ({exc}); fix the file") from None
            unknown = sorted(set(data) - set(_BY_NAME))
            if unknown and path.name == "chatbench.toml":
                raise ConfigError(f"{path.name}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_BY_NAME)}")
            return {k: v for k, v in data.items() if k in _BY_NAME}
    return {}


def resolve(arguments: Mapping[str, Any], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    environ = os.environ if env is None else env
    from_file = file_settings(cwd)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        if arguments.get(setting.name) is not None:
            values[setting.name], sources[setting.name] = arguments[setting.name], "argument"
        elif environ.get(setting.env) is not None:
            values[setting.name], sources[setting.name] = setting.parse(environ[setting.env]), "environment"
        elif from_file.get(setting.name) is not None:
            values[setting.name], sources[setting.name] = from_file[setting.name], "file"
        else:
            values[setting.name], sources[setting.name] = setting.default, "default"
    return Settings(**values, sources=sources)
