"""How long a migration may keep the app's reads or appends out of a table: the ``[rehearsal]``
table of the targets file (``benchmarks/targets.toml`` by default, ``--targets FILE`` otherwise).

One inline table per table name (``messages = { reads_blocked_s = 1.0, appends_blocked_s = 1.0 }``)
and ``default`` for the tables not named. Every key is checked: a typo must not disable a budget.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chatbench.benchmarks.targets import DEFAULT_TARGETS, REHEARSAL_SECTION
from chatbench.rehearse.result import ACCESSES, Access

from chatbench.errors import ConfigError

KEYS: dict[str, Access] = {"reads_blocked_s": "reads", "appends_blocked_s": "appends"}
DEFAULT_TABLE = "default"


@dataclass(frozen=True)
class Budgets:
    source: str
    why: str
    tables: Mapping[str, Mapping[Access, float]]  # table (or "default") -> access -> seconds

    def budget(self, table: str, access: Access) -> float:
        chosen = self.tables.get(table) or self.tables[DEFAULT_TABLE]
        return chosen.get(access, self.tables[DEFAULT_TABLE][access])

    def as_mapping(self) -> dict[str, dict[str, float]]:
        return {t: {a: v for a, v in b.items()} for t, b in self.tables.items()}


def parse_budgets(text: str, source: str) -> Budgets:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc}); fix the file") from None
    section = data.get(REHEARSAL_SECTION)
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: no [{REHEARSAL_SECTION}] table; add one with per-table budgets, e.g. "
                          "messages = { reads_blocked_s = 1.0, appends_blocked_s = 1.0 }")
    why = section.get("why", "")
    if not isinstance(why, str):
        raise ConfigError(f"{source}: {REHEARSAL_SECTION}.why must be a string")
    tables: dict[str, dict[Access, float]] = {}
    for table, value in section.items():
        if table == "why":
            continue
        where = f"{source}: {REHEARSAL_SECTION}.{table}"
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table like {{ reads_blocked_s = 1.0, appends_blocked_s = 1.0 }}")
        unknown = sorted(set(value) - set(KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(KEYS)}")
        parsed: dict[Access, float] = {}
        for key, access in KEYS.items():
            if key not in value:
                continue
            item = value[key]
            if isinstance(item, bool) or not isinstance(item, (int, float)) or item <= 0:
                raise ConfigError(f"{where}.{key} = {item!r}: expected a number of seconds greater than 0")
            parsed[access] = float(item)
        tables[table] = parsed
    fallback = tables.get(DEFAULT_TABLE, {})
    if any(a not in fallback for a in ACCESSES):
        raise ConfigError(f"{source}: {REHEARSAL_SECTION}.{DEFAULT_TABLE} needs both {' and '.join(KEYS)}; "
                          "it covers every table not named")
    return Budgets(source, why, tables)


def load_budgets(path: str | os.PathLike[str] | None = None) -> Budgets:
    source = DEFAULT_TARGETS if path is None else Path(path)
    return parse_budgets(source.read_text(), str(source))
