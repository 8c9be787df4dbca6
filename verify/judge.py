"""The one probe run of a verification, and how drift asks it whether a spelling difference matters.

The probes run once per verification, on first use, always on a schema-only copy of the database
(``sites.py`` says where the copy goes and why never in place). Drift's spelling checks
(CHECK texts, defaults, identity, string types, triggers) and the behaviour checks read the same run.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from chatbench.schema.behaviour import BEHAVIOUR_CONTRACTS
from chatbench.schema.rolemap import ROLE_TABLES
from chatbench.verify.context import VerificationContext
from chatbench.verify.mapped import named
from chatbench.verify.probes import ProbeRun, run_probes
from chatbench.verify.sites import SchemaCopy, schema_only_copy

_MEMO = "behaviour"
_COPY = "schema_copy"


def copy_on_same_server(ctx: VerificationContext) -> bool:
    """The copy may go on the live server only where the harness created the database (so it may create one).

    A database the user lent (``--use-dsn-database --allow-destructive``) or gave read-only (``--url``)
    gets its copy on a throwaway local server: nothing is created on a server chatbench does not run.
    """
    return not ctx.read_only and ctx.server.owns_database


def schema_copy(ctx: VerificationContext) -> SchemaCopy:
    """The schema-only copy of the live database every write probe runs on, made once per verification."""
    copy = ctx.memo.get(_COPY)
    if isinstance(copy, SchemaCopy):
        return copy
    host = ctx.server if copy_on_same_server(ctx) else ctx.scratch_server()
    copy = schema_only_copy(ctx.server, host, ctx.stack, ctx.schema_name)
    ctx.memo[_COPY] = copy
    return copy


def probe_run(ctx: VerificationContext) -> ProbeRun:
    """Every contract's probes, run once per verification on a schema-only copy (see ``sites.py``)."""
    run = ctx.memo.get(_MEMO)
    if isinstance(run, ProbeRun):
        return run
    contracts = tuple(BEHAVIOUR_CONTRACTS.values())
    missing = sorted(f"{t}.{c}" for (t, c) in ctx.canonical.columns if (t, c) not in ctx.live.columns)
    if ctx.mapped:
        run = ProbeRun("", (), 0.0, _not_through_the_map(ctx))
    elif missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        run = ProbeRun("", (), 0.0, f"the probes use {shown}, which the live schema lacks (see drift)")
    else:
        copy = schema_copy(ctx)
        with psycopg.connect(copy.server.conninfo(), autocommit=True, application_name="chatbench-probes") as conn:
            run = run_probes(conn, contracts, site=copy.description, schema=ctx.schema_name, notes=copy.restore_errors)
    ctx.memo[_MEMO] = run
    return run


def _not_through_the_map(ctx: VerificationContext) -> str:
    """Why the probes did not run on a schema whose roles the map renames: they write canonical rows on the
    canonical names (``schema/behaviour.py``) and are not rendered through the map; the role columns the
    application lacks are named too, since no rendering could write a row with them."""
    lacking: dict[str, list[str]] = {}
    for table in (t for t in ROLE_TABLES if t in ctx.mapped):
        for column in sorted(c for t, c in ctx.canonical.columns if t == table):
            if (ctx.roles.table(table), ctx.roles.column(table, column)) not in ctx.live.columns:
                lacking.setdefault(named(ctx.roles, table), []).append(column)
    lacks = "; ".join(f"{table} has no {', '.join(columns)}" for table, columns in lacking.items())
    return ("the probes write canonical rows on the canonical names, which [tool.chatbench.map] renames, and are not "
            "rendered through it" + (f" ({lacks}: see drift)" if lacks else "")
            + "; the CHECKs, defaults and triggers of the renamed roles are not judged by behaviour")


def judged(
    ctx: VerificationContext, *, columns: Iterable[str] = (), triggers: Iterable[str] = ()
) -> tuple[tuple[str, ...], bool | None]:
    """The contracts that judge these columns (``table.column``) or canonical triggers, and whether they hold.

    ``()`` when no contract judges them (a spelling difference there stays drift); ``None`` for "holds"
    when the probes did not run.
    """
    wanted_columns, wanted_triggers = set(columns), set(triggers)
    names = tuple(
        c.name for c in BEHAVIOUR_CONTRACTS.values() if c.covers & wanted_columns or c.triggers & wanted_triggers
    )
    if not names:
        return (), None
    return names, probe_run(ctx).holds(names)


def judgement(names: tuple[str, ...], holds: bool | None) -> str:
    """One phrase for a finding's evidence: what judged the difference and how it came out."""
    listed = ", ".join(names)
    if holds is None:
        return f"judged by behaviour ({listed}): probes not run"
    return (
        f"same behaviour: {listed} hold{'s' if len(names) == 1 else ''}"
        if holds
        else (f"behaviour differs: see drift/behaviour ({listed})")
    )
