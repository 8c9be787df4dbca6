"""Running the behavioural contracts' probes (``chatbench.schema.behaviour``) on one connection.

All probes run in one transaction that is always rolled back, each in its own savepoint (rolled back
too), with deferred constraints made immediate (what a commit would check, the probe sees) and a
statement timeout so that a pathological schema cannot hang a sign-off. A probe's outcome is:

* ``holds``: the schema behaved as the canonical one does;
* ``breached``: it behaved otherwise (a canonical value rejected, a forbidden one accepted, an effect
  missing): a difference in meaning, reported with the probe as evidence;
* ``error``: the probe could not run for another reason (a missing privilege, a lock, a timeout, a
  syntax the schema does not support): reported as such, never as a pass.

A rejection is an integrity violation (SQLSTATE class 23), a data exception (class 22: a value too
long for ``varchar(n)``) or an exception a trigger raises (class P0): a schema may enforce a rule
with any of them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

from chatbench.loadgen.result import Key
from chatbench.schema.behaviour import BehaviourContract, Probe, Step, probe_bindings
from chatbench.verify.keys import INTEGER_TYPES, fresh_key, key_type

REJECTION_CLASSES = ("22", "23", "P0")
PROBE_STATEMENT_TIMEOUT_MS = 10_000
# Explicit ids of the probes' own rows start this far above anything the tables or sequences hold.
ID_HEADROOM = 1000

Status = Literal["holds", "breached", "error"]


@dataclass(frozen=True)
class ProbeOutcome:
    contract: str
    probe: str
    subject: str
    status: Status
    observed: str  # what happened, in one line
    evidence: str  # the probe's action (SQL, one line)
    cause: str = ""  # for "error": the server's error alone, the same for every probe it stopped


@dataclass(frozen=True)
class ProbeRun:
    """Every probe's outcome, where they ran, and why none ran (``not_run``) when that is so."""

    site: str
    outcomes: tuple[ProbeOutcome, ...]
    seconds: float
    not_run: str | None = None  # the schema lacks what the probes use (drift reports it as an error)
    notes: tuple[str, ...] = ()  # e.g. what the schema-only copy could not restore
    failed: str | None = None  # the run broke off (a lost connection): not judged, never a pass

    def of(self, contract: str) -> tuple[ProbeOutcome, ...]:
        return tuple(o for o in self.outcomes if o.contract == contract)

    def holds(self, contracts: Iterable[str]) -> bool | None:
        """True if every probe of these contracts holds, False if one does not, None if they did not run."""
        if self.not_run is not None or self.failed is not None:
            return None
        return all(o.status == "holds" for name in contracts for o in self.of(name))


def _one_line(text: str, limit: int = 300) -> str:
    """One line of at most about ``limit`` characters, cut between words: no identifier is cut in two."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit].rsplit(" ", 1)[0] + " ..."


def describe_error(exc: psycopg.Error) -> str:
    """``CheckViolation: new row ... violates check constraint "x"`` (first line of the server's message)."""
    message = exc.diag.message_primary or (str(exc).splitlines()[0] if str(exc) else "")
    return f"{type(exc).__name__}: {_one_line(message, 200)}"


def is_rejection(exc: psycopg.Error) -> bool:
    return (exc.sqlstate or "")[:2] in REJECTION_CLASSES


def _execute(conn: psycopg.Connection[Any], step: Step, binds: dict[str, Any]) -> None:
    cur = conn.execute(step.sql.encode(), binds) if binds else conn.execute(step.sql.encode())
    if cur.description is not None:
        row = cur.fetchone()
        if row is not None:
            for column, value in zip(cur.description, row, strict=True):
                binds[f"{step.bind_prefix}{column.name}"] = value


def _then(conn: psycopg.Connection[Any], query: str, binds: dict[str, Any]) -> tuple[bool, str]:
    row = conn.execute(query.encode(), binds).fetchone()
    if row is None:
        return False, "no row"
    return bool(row[0]), _one_line(str(row[1]))


class _Abandon(Exception):
    """Leaves a probe's savepoint, rolling it back, once the outcome is known."""


def run_probe(
    conn: psycopg.Connection[Any], contract: BehaviourContract, probe: Probe, base: Mapping[str, Any]
) -> ProbeOutcome:
    """One probe in its own savepoint, always rolled back."""
    binds = dict(base)
    evidence = _one_line(probe.action.sql)
    subject = probe.subject or contract.subject

    def outcome(status: Status, observed: str, cause: str = "") -> ProbeOutcome:
        return ProbeOutcome(contract.name, probe.name, subject, status, observed, evidence, cause)

    current, stage = probe.action, "setup"
    result: ProbeOutcome | None = None
    try:
        with conn.transaction():
            for current in probe.setup:
                _execute(conn, current, binds)
            current, stage = probe.action, "action"
            _execute(conn, probe.action, binds)
            current, stage = probe.action, "then"
            holds, observed = _then(conn, probe.then, binds) if probe.then else (True, "accepted")
            if probe.expect == "rejected":
                result = outcome("breached", f"{probe.breach} ({observed})" if probe.then else probe.breach)
            elif holds:
                result = outcome("holds", observed)
            else:
                result = outcome("breached", f"{probe.breach} ({observed})")
            raise _Abandon
    except _Abandon:
        pass
    except psycopg.Error as exc:
        if stage == "action" and is_rejection(exc):
            if probe.expect == "rejected":
                return outcome("holds", f"rejected ({describe_error(exc)})")
            return outcome("breached", f"{current.does} is rejected ({describe_error(exc)})")
        if stage == "setup" and is_rejection(exc):
            return outcome("breached", f"the probe's setup ({current.does}) is rejected ({describe_error(exc)})")
        return outcome("error", f"{current.does} failed unexpectedly ({describe_error(exc)})", describe_error(exc))
    assert result is not None
    return result


def free_ids(conn: psycopg.Connection[Any]) -> dict[str, Key]:
    """Keys no row of each table has, of the table's key type: the probes' own rows use them.

    Integer keys start above every row and every sequence value (``ID_HEADROOM``); uuid and text keys
    are fresh uuids (text: their hex), which no row has. ``next_message_id`` is a second message key.
    """
    ids: dict[str, Key] = {}
    for table, key in (("users", "user_id"), ("conversations", "conversation_id"), ("messages", "message_id")):
        type_name = key_type(conn, table)
        if type_name not in INTEGER_TYPES:
            ids[key] = fresh_key(type_name)
            continue
        query = sql.SQL(
            "SELECT greatest((SELECT coalesce(max(id), 0) FROM {t}), "
            "coalesce(pg_sequence_last_value(pg_get_serial_sequence({name}, 'id')::regclass), 0))"
        ).format(t=sql.Identifier(table), name=sql.Literal(table))
        row = conn.execute(query).fetchone()
        ids[key] = int(row[0] if row and row[0] is not None else 0) + ID_HEADROOM
    message = ids["message_id"]
    ids["next_message_id"] = message + 1 if isinstance(message, int) else fresh_key(key_type(conn, "messages"))
    return ids


def run_probes(
    conn: psycopg.Connection[Any],
    contracts: Iterable[BehaviourContract],
    *,
    site: str,
    schema: str = "public",
    notes: tuple[str, ...] = (),
) -> ProbeRun:
    """Run every probe of ``contracts`` on ``conn`` (autocommit); nothing they do is kept."""
    started = time.perf_counter()
    outcomes: list[ProbeOutcome] = []
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(PROBE_STATEMENT_TIMEOUT_MS)))
            conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
            base = {**probe_bindings(), **free_ids(conn)}
            for contract in contracts:
                for probe in contract.probes:
                    outcomes.append(run_probe(conn, contract, probe, base))
    except psycopg.Error as exc:
        done = f"after {len(outcomes)} probes" if outcomes else "before the first probe"
        return ProbeRun(
            site, tuple(outcomes), time.perf_counter() - started, None, notes, f"{done}: {describe_error(exc)}"
        )
    return ProbeRun(site, tuple(outcomes), time.perf_counter() - started, None, notes)
