"""Behaviour: the canonical schema's contracts (``chatbench.schema.behaviour``) probed on the live schema.

One registered check per contract (``drift.behaviour.<contract>``), plus ``drift.behaviour`` that says
what kept the probes from running fully. Where they ran is in the result (``probes_site``).
"""

from __future__ import annotations

from collections.abc import Iterator

from chatbench.schema.behaviour import BEHAVIOUR_CONTRACTS, BehaviourContract, Probe
from chatbench.verify.context import VerificationContext
from chatbench.verify.findings import Finding, Severity
from chatbench.verify.judge import probe_run
from chatbench.verify.keys import INTEGER_TYPES
from chatbench.verify.registry import check


@check("drift.behaviour")
def site(ctx: VerificationContext) -> Iterator[Finding]:
    """Where the behaviour probes ran, and anything that kept them from running fully."""
    run = probe_run(ctx)
    if run.not_run is not None:
        yield Finding("drift", "probes_not_run", "behaviour", "the probes run", run.not_run, "info")
    if run.failed is not None:
        yield Finding(
            "drift",
            "probes_failed",
            "behaviour",
            "every probe runs",
            f"the probe run broke off {run.failed}",
            "error",
            detail=f"on {run.site}",
        )
    for note in run.notes:
        yield Finding(
            "drift",
            "copy_incomplete",
            "behaviour",
            "the schema-only copy restores cleanly",
            note,
            "warning",
            detail="a probe touching what failed to restore may report a difference the live schema does not have",
        )


def _breach_severity(ctx: VerificationContext, probe: Probe) -> tuple[Severity, str]:
    """An error, unless the probe judges an order only integer keys give for free and the keys are not
    integers (a random uuid): then ``probe.unordered_keys``, with why (the detail's tail)."""
    column = ctx.live.columns.get(("messages", "id"))
    if probe.unordered_keys == "error" or column is None or column.type in INTEGER_TYPES:
        return "error", ""
    return probe.unordered_keys, (
        f"; messages.id is {column.type}: the database orders messages of one created_at by a key that does not "
        "follow the append order (a time-ordered key such as uuidv7() would)"
    )


def _contract_check(contract: BehaviourContract) -> None:
    def run(ctx: VerificationContext) -> Iterator[Finding]:
        outcomes = probe_run(ctx).of(contract.name)
        query = ", ".join(contract.queries) or None
        by_name = {p.name: p for p in contract.probes}
        for outcome in outcomes:
            if outcome.status == "breached":
                severity, why = _breach_severity(ctx, by_name[outcome.probe])
                yield Finding(
                    "drift",
                    "behaviour",
                    outcome.subject,
                    contract.statement,
                    outcome.observed,
                    severity,
                    query=query,
                    detail=f"probe {outcome.probe}: {outcome.evidence}{why}",
                )
        # a probe that could not run is not a pass; the same failure of several probes is one line
        errors: dict[str, list[str]] = {}
        for outcome in outcomes:
            if outcome.status == "error":
                errors.setdefault(outcome.cause, []).append(outcome.probe)
        for probes in errors.values():
            first = next(o for o in outcomes if o.probe == probes[0])
            yield Finding(
                "drift",
                "probe_error",
                first.subject,
                contract.statement,
                first.observed,
                "error",
                query=query,
                detail=f"probe {', '.join(probes)} could not run: {first.evidence}",
            )

    run.__doc__ = contract.statement
    check(f"drift.behaviour.{contract.name}")(run)


for _contract in BEHAVIOUR_CONTRACTS.values():
    _contract_check(_contract)
