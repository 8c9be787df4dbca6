"""Latency and buffer budgets per scenario and profile, read from ``benchmarks/targets.toml``.

The file holds one table per scenario: a ``why`` (what the schema should achieve, so a budget is
argued, not copied from a lucky run) and one inline table per profile with any of ``p95_ms``,
``p99_ms`` and ``buffers``. Every key is validated: a typo must not silently disable a budget.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbench.benchmarks.results import Target
from chatbench.errors import ConfigError
from chatbench.loadgen.spec import profiles

DEFAULT_TARGETS = Path(__file__).with_name("targets.toml")
_BUDGET_KEYS = {"p95_ms": float, "p99_ms": float, "buffers": int}
REHEARSAL_SECTION = "rehearsal"
"""The table of the same file that holds the migration rehearsal's budgets, not a scenario."""
QUERIES_SECTION = "queries"
"""``[queries.NAME]``: the application's queries' contract overrides (``chatbench.schema.appqueries``)."""


@dataclass(frozen=True)
class Targets:
    """All budgets of one file: ``(scenario, profile) -> Target``."""

    source: str
    budgets: Mapping[tuple[str, str], Target]

    def get(self, scenario: str, profile: str) -> Target | None:
        return self.budgets.get((scenario, profile))

    def scenarios(self) -> frozenset[str]:
        return frozenset(scenario for scenario, _ in self.budgets)


def _budget(where: str, value: Any, why: str) -> Target:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table like {{ p95_ms = 1.0, p99_ms = 2.0, buffers = 100 }}")
    unknown = sorted(set(value) - set(_BUDGET_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_BUDGET_KEYS)}")
    parsed: dict[str, Any] = {}
    for key, kind in _BUDGET_KEYS.items():
        if key in value:
            item = value[key]
            if isinstance(item, bool) or not isinstance(item, (int, float)) or (kind is int and
                                                                                 not isinstance(item, int)):
                raise ConfigError(f"{where}.{key} = {item!r}: expected a {'whole' if kind is int else ''} "
                                  "number".replace("  ", " "))
            if item <= 0:
                raise ConfigError(f"{where}.{key} = {item!r}: must be greater than 0")
            parsed[key] = kind(item)
    return Target(why=why, **parsed)


def parse_targets(text: str, source: str = "targets.toml", *, label: str | None = None) -> Targets:
    """Parse and validate a targets file's text; errors are one line naming the key (and ``label``:
    the setting as the user gave it, e.g. ``--targets my.toml``)."""
    named = source if label is None else label
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{named}: not valid TOML ({exc}); fix the file") from None
    from chatbench.benchmarks.scenarios import SCENARIOS_BY_NAME  # lazy: import cycle (scenarios imports this module)

    budgets: dict[tuple[str, str], Target] = {}
    known_profiles = profiles()
    for scenario, table in data.items():
        # "citus": the readiness budgets (chatbench.verify.citus); queries: the app queries' contract overrides
        if scenario in (REHEARSAL_SECTION, QUERIES_SECTION, "citus"):
            continue  # the migration rehearsal's blocking budgets (chatbench.rehearse.budgets)
        if scenario not in SCENARIOS_BY_NAME:  # a typo would silently disable the budget
            raise ConfigError(f"{named}: [{scenario}] is not a scenario; scenarios are "
                              f"{', '.join(SCENARIOS_BY_NAME)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{named}: {scenario} must be a table [{scenario}] with a why and per-profile budgets")
        why = table.get("why", "")
        if not isinstance(why, str):
            raise ConfigError(f"{named}: {scenario}.why must be a string")
        for profile, value in table.items():
            if profile != "why" and profile not in known_profiles:
                raise ConfigError(f"{named}: {scenario}.{profile} is not a profile; profiles are "
                                  f"{', '.join(known_profiles)}")
            if profile != "why":
                budgets[(scenario, profile)] = _budget(f"{named}: {scenario}.{profile}", value, why)
    return Targets(source, budgets)


def load_targets(path: str | os.PathLike[str] | None = None, *, label: str | None = None) -> Targets:
    """Targets from ``path`` (the ``targets`` setting, already resolved and checked), else the packaged
    ``targets.toml``."""
    source = DEFAULT_TARGETS if path is None else Path(path)
    if not source.is_file():
        raise ConfigError(f"targets file {source} does not exist; give an existing file with --targets")
    return parse_targets(source.read_text(), str(source), label=label)
