"""Rows the canonical schema accepts must be accepted: what an extra constraint, column or trigger does.

An application's schema adds what applications add (a CHECK, a UNIQUE, a NOT NULL column, a trigger).
Whether such an extra is harmless is not a matter of its kind but of what it does to the writes the
canonical queries make, so this module *writes* canonical-valid rows, the way the canonical writes
write them (``create_conversation``, ``append_message``, ``rename_conversation``), and records which
are rejected and by what:

* very long content (100 kB, plain and multi-byte), empty content, every allowed role;
* a 255-character title, a NULL title, a rename to 255 characters and to NULL;
* non-ASCII text everywhere (counted in characters by the canonical schema, not bytes);
* two messages with identical content appended in one transaction (equal ``created_at``: a tie);
* a message dated long ago (an imported history).

They run like the behaviour probes (``probes.py``): each in its own savepoint, always rolled back, on
the schema-only copy of the live database, never among real rows. A rejected row is an error naming
what rejected it (the constraint or column the server names) with the row as evidence; drift then
reports the extra object itself as info (it rejects nothing) or a warning pointing here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg

from chatbench.schema.behaviour import (
    USER,
    WITH_CONVERSATION,
    BehaviourContract,
    Probe,
    Step,
    canonical_step,
)
from chatbench.schema.models import MESSAGE_ROLES, TITLE_MAX_LENGTH
from chatbench.verify.context import VerificationContext
from chatbench.verify.findings import Finding
from chatbench.verify.judge import judged, probe_run, schema_copy
from chatbench.verify.probes import ProbeOutcome, ProbeRun, run_probes
from chatbench.verify.registry import check

_MEMO = "acceptance"
CONTENT_BYTES = 100 * 1024
WIDE = "é"  # two bytes in UTF-8: a limit counted in bytes shows at half the characters
NON_ASCII = "Grüße, 東京 👋 — ½ ∑"


def _append(does: str, *, role: str = "user", content: str = "'probe'", prefix: str = "") -> Step:
    return canonical_step("append_message", does, prefix, role=f"'{role}'", content=content)


def _probe(name: str, setup: tuple[Step, ...], action: Step) -> Probe:
    return Probe(name, setup, action, "accepted", f"{action.does} is rejected")


def _rows() -> tuple[Probe, ...]:
    title = f"repeat('{WIDE}', {TITLE_MAX_LENGTH})"
    probes = [
        _probe(
            f"append_role_{role}",
            WITH_CONVERSATION,
            _append(f"appending a message with role '{role}' (append_message)", role=role),
        )
        for role in MESSAGE_ROLES
    ]
    probes += [
        _probe(
            "append_content_100kB",
            WITH_CONVERSATION,
            _append(
                f"appending a message of {CONTENT_BYTES} characters (100 kB, append_message)",
                content=f"repeat('x', {CONTENT_BYTES})",
            ),
        ),
        _probe(
            "append_content_100kB_multibyte",
            WITH_CONVERSATION,
            _append(
                f"appending a message of {CONTENT_BYTES // 2} two-byte characters (100 kB, append_message)",
                content=f"repeat('{WIDE}', {CONTENT_BYTES // 2})",
            ),
        ),
        _probe("append_content_empty", WITH_CONVERSATION, _append("appending a message with empty content ''",
                                                                   content="''")),
        _probe(
            "append_content_non_ascii",
            WITH_CONVERSATION,
            _append(f"appending a message with content '{NON_ASCII}'", content=f"'{NON_ASCII}'"),
        ),
        _probe(
            "append_tie",
            (*WITH_CONVERSATION, _append("appending a message 'same'", content="'same'")),
            _append("appending an identical message 'same' in the same transaction (equal created_at)",
                    content="'same'"),
        ),
        _probe(
            "message_dated_2001",
            WITH_CONVERSATION,
            Step(
                "inserting a message dated 2001-02-03 (an imported history)",
                "INSERT INTO messages (conversation_id, user_id, role, content, created_at) "
                "VALUES (%(conversation_id)s, %(user_id)s, 'user', 'imported', %(t0)s)",
            ),
        ),
        _probe(
            "create_untitled",
            (USER,),
            canonical_step("create_conversation", "creating an untitled conversation (title NULL)", title="NULL"),
        ),
        _probe(
            "create_title_255",
            (USER,),
            canonical_step(
                "create_conversation",
                f"creating a conversation titled with {TITLE_MAX_LENGTH} characters '{WIDE}'",
                title=title,
            ),
        ),
        _probe(
            "create_title_non_ascii",
            (USER,),
            canonical_step("create_conversation", f"creating a conversation titled '{NON_ASCII}'",
                       title=f"'{NON_ASCII}'"),
        ),
        _probe(
            "rename_title_255",
            WITH_CONVERSATION,
            canonical_step("rename_conversation", f"renaming a conversation to {TITLE_MAX_LENGTH} characters '{WIDE}'",
                       title=title),
        ),
        _probe(
            "rename_title_null",
            WITH_CONVERSATION,
            canonical_step("rename_conversation", "renaming a conversation to no title (NULL)", title="NULL"),
        ),
        _probe(
            "user_non_ascii",
            (),
            Step(
                f"inserting a user named '{NON_ASCII}'",
                "INSERT INTO users (id, email, display_name) OVERRIDING SYSTEM VALUE "
                f"VALUES (%(user_id)s, %(email)s, '{NON_ASCII}')",
            ),
        ),
    ]
    return tuple(probes)


CANONICAL_ROWS = BehaviourContract(
    "canonical_rows_accepted",
    "rows the canonical schema accepts, written as the canonical writes write them, are accepted",
    "messages.content",
    _rows(),
    queries=("append_message", "create_conversation", "rename_conversation"),
)

_CONSTRAINT = re.compile(r'constraint "([^"]+)"')
_COLUMN = re.compile(r'column "([^"]+)"')
_RELATION = re.compile(r'relation "([^"]+)"')


@dataclass(frozen=True)
class Rejection:
    """One canonical-valid row the live schema rejected, and what the server said rejected it."""

    probe: str
    row: str  # the row in words: "appending a message of 102400 characters (100 kB, append_message)"
    error: str  # "CheckViolation: new row for relation ... violates check constraint ..."
    table: str | None
    constraint: str | None
    column: str | None
    evidence: str  # the statement, one line

    @property
    def cause(self) -> str:
        """The object a finding names: ``table.constraint``, ``table.column`` or the table."""
        name = self.constraint or self.column
        if self.table and name:
            return f"{self.table}.{name}"
        return self.table or name or "schema"


def acceptance_run(ctx: VerificationContext) -> ProbeRun:
    """The canonical rows written once per verification on the schema-only copy (not run where the
    behaviour probes could not run: the schema lacks canonical columns, which drift reports)."""
    run = ctx.memo.get(_MEMO)
    if isinstance(run, ProbeRun):
        return run
    behaviour = probe_run(ctx)
    if behaviour.not_run is not None:
        run = ProbeRun("", (), 0.0, behaviour.not_run)
    else:
        copy = schema_copy(ctx)
        with psycopg.connect(copy.server.conninfo(), autocommit=True, application_name="chatbench-probes") as conn:
            run = run_probes(conn, (CANONICAL_ROWS,), site=copy.description, schema=ctx.schema_name)
    ctx.memo[_MEMO] = run
    return run


def _rejection(ctx: VerificationContext, outcome: ProbeOutcome) -> Rejection:
    def first(pattern: re.Pattern[str]) -> str | None:
        found = pattern.search(outcome.observed)
        return found.group(1) if found else None

    table = first(_RELATION)
    if table is not None:
        table = ctx.live.leaf_parents.get(table, table)
    # "<row> is rejected (<error>)", or "the probe's setup (<row>) is rejected (<error>)" when a row the
    # probe needed first was the one rejected
    row, _, error = outcome.observed.partition(" is rejected (")
    setup = "the probe's setup ("
    if row.startswith(setup):
        row = row[len(setup) : -1]
    return Rejection(outcome.probe, row, error[:-1], table, first(_CONSTRAINT), first(_COLUMN), outcome.evidence)


def rejections(ctx: VerificationContext) -> tuple[Rejection, ...]:
    """Every canonical-valid row the live schema rejected (empty when nothing was or the rows did not run)."""
    run = acceptance_run(ctx)
    return tuple(_rejection(ctx, o) for o in run.outcomes if o.status == "breached")


def rejected_by(ctx: VerificationContext, table: str, name: str) -> tuple[Rejection, ...]:
    """The canonical-valid rows a live constraint, unique index or column (``name``) of ``table`` rejected."""
    return tuple(r for r in rejections(ctx) if r.table == table and name in (r.constraint, r.column))


def _judged_elsewhere(ctx: VerificationContext, r: Rejection) -> bool:
    """A rejection by a constraint over columns a breached behaviour contract judges (a canonical CHECK that
    now rejects ``'tool'``): that contract's probe is already the error, one line is enough."""
    columns: tuple[str, ...] = ()
    if r.table and r.constraint and (r.table, r.constraint) in ctx.live.constraints:
        columns = ctx.live.constraints[(r.table, r.constraint)].columns
    elif r.table and r.column:
        columns = (r.column,)
    if not columns:
        return False
    names, holds = judged(ctx, columns=[f"{r.table}.{c}" for c in columns])
    return bool(names) and holds is False


@check("drift.acceptance")
def accepted(ctx: VerificationContext) -> Iterator[Finding]:
    """Rows the canonical schema accepts (100 kB content, every role, 255-character titles, NULL titles,
    non-ASCII text, ties) are accepted; a rejection names what rejected it, with the row."""
    run = acceptance_run(ctx)
    if run.not_run is not None:
        return
    if run.failed is not None:
        yield Finding("drift", "probes_failed", "canonical rows", "every row is written",
                      f"the run broke off {run.failed}", "error", detail=f"on {run.site}")
        return
    by_cause: dict[str, list[Rejection]] = {}
    for r in rejections(ctx):
        if not _judged_elsewhere(ctx, r):
            by_cause.setdefault(r.cause, []).append(r)
    for cause, rows in sorted(by_cause.items()):
        first = rows[0]
        others = f"; {len(rows) - 1} more rejected: {', '.join(r.probe for r in rows[1:])}" if len(rows) > 1 else ""
        yield Finding(
            "drift",
            "rejects_canonical_row",
            cause,
            "accepted (the canonical schema accepts it)",
            f"rejected: {first.row}",
            "error",
            query=", ".join(CANONICAL_ROWS.queries),
            detail=f"{first.error}{others}; probe {first.probe}: {first.evidence}",
        )
    errors: dict[str, list[ProbeOutcome]] = {}
    for outcome in run.outcomes:
        if outcome.status == "error":
            errors.setdefault(outcome.cause, []).append(outcome)
    for cause, outcomes in errors.items():
        yield Finding(
            "drift",
            "probe_error",
            "canonical rows",
            CANONICAL_ROWS.statement,
            outcomes[0].observed,
            "error",
            detail=f"probe {', '.join(o.probe for o in outcomes)} could not run ({cause})",
        )
