"""How long a migration may keep the app's reads or appends out of a table: the ``[rehearsal]``
table of the targets file (``benchmarks/targets.toml`` by default, ``--targets FILE`` otherwise).

One inline table per table name (``messages = { reads_blocked_s = 1.0, appends_blocked_s = 1.0 }``)
and ``default`` for the tables not named. Every key is checked: a typo must not disable a budget.

``wal = { replica_apply_mb_s = 100.0, lag_allowed_s = 300.0 }`` in the same table: the WAL budget. A
statement's WAL (extrapolated to the production size) divided by the rate a replica applies WAL is how
far the replica falls behind it; more than ``lag_allowed_s`` fails. The shipped targets file sets it;
absent (a targets file written before the WAL rule), ``WAL_DEFAULT`` below applies.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chatbench.benchmarks.targets import DEFAULT_TARGETS, REHEARSAL_SECTION
from chatbench.errors import ConfigError
from chatbench.rehearse.result import ACCESSES, Access

KEYS: dict[str, Access] = {"reads_blocked_s": "reads", "appends_blocked_s": "appends"}
DEFAULT_TABLE = "default"
WAL_TABLE = "wal"
WAL_KEYS = ("replica_apply_mb_s", "lag_allowed_s")


@dataclass(frozen=True)
class WalBudget:
    """How much WAL one statement may write: the replica's apply rate and the lag allowed behind it."""

    replica_apply_mb_s: float
    lag_allowed_s: float

    @property
    def allowed_bytes(self) -> float:
        return self.replica_apply_mb_s * 1e6 * self.lag_allowed_s

    def lag_s(self, wal_bytes: float) -> float:
        return wal_bytes / (self.replica_apply_mb_s * 1e6)


# A replica's single-threaded redo applies on the order of 100 MB/s on SSDs; five minutes behind is where
# reads from replicas visibly go stale and a failover would lose that much. 30 GB per statement, measured with
# wal_level = replica and full-page writes as the rehearsal runs: a two-column index on messages (28 MB of WAL at
# 1M messages, built CONCURRENTLY or not) is about 28 GB at 10^9 and just passes; a one-statement backfill of
# them (1.33 GB at 1M, about 1.3 TB) does not.
WAL_DEFAULT = WalBudget(replica_apply_mb_s=100.0, lag_allowed_s=300.0)


@dataclass(frozen=True)
class Budgets:
    source: str
    why: str
    tables: Mapping[str, Mapping[Access, float]]  # table (or "default") -> access -> seconds
    wal: WalBudget = WAL_DEFAULT

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
    wal = _wal(section.get(WAL_TABLE), f"{source}: {REHEARSAL_SECTION}.{WAL_TABLE}")
    for table, value in section.items():
        if table in ("why", WAL_TABLE):
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
    return Budgets(source, why, tables, wal)


def _wal(value: object, where: str) -> WalBudget:
    if value is None:
        return WAL_DEFAULT
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table like {{ replica_apply_mb_s = 100.0, lag_allowed_s = 300.0 }}")
    unknown = sorted(set(value) - set(WAL_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(WAL_KEYS)}")
    numbers = {}
    for key in WAL_KEYS:
        item = value.get(key, getattr(WAL_DEFAULT, key))
        if isinstance(item, bool) or not isinstance(item, (int, float)) or item <= 0:
            raise ConfigError(f"{where}.{key} = {item!r}: expected a number greater than 0")
        numbers[key] = float(item)
    return WalBudget(**numbers)


def load_budgets(path: str | os.PathLike[str] | None = None) -> Budgets:
    source = DEFAULT_TARGETS if path is None else Path(path)
    return parse_budgets(source.read_text(), str(source))
