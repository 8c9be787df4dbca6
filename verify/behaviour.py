"""Behaviour: the canonical schema's contracts (``chatbench.schema.behaviour``) probed on the live schema.

One registered check per contract (``drift.behaviour.<contract>``), plus ``drift.behaviour`` that says
what kept the probes from running fully. Where they ran is in the result (``probes_site``).
"""

from __future__ import annotations

from collections.abc import Iterator

from chatbench.schema.behaviour import BEHAVIOUR_CONTRACTS, BehaviourContract
from chatbench.verify.context import VerificationContext
from chatbench.verify.findings import Finding
from chatbench.verify.judge import probe_run
from chatbench.verify.registry import check


@check("drift.behaviour")
def site(ctx: VerificationContext) -> Iterator[Finding]:
    """Where the behaviour probes ran, and anything that kept them from running fully."""
    run = probe_run(ctx)
    if run.not_run is not None:
        yield Finding("drift", "probes_not_run", "behaviour", "the probes run", run.not_run, "info")
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


def _contract_check(contract: BehaviourContract) -> None:
    def run(ctx: VerificationContext) -> Iterator[Finding]:
        for outcome in probe_run(ctx).of(contract.name):
            if outcome.status == "holds":
                continue
            yield Finding(
                "drift",
                "behaviour" if outcome.status == "breached" else "probe_error",
                outcome.subject,
                contract.statement,
                outcome.observed,
                "error",
                query=", ".join(contract.queries) or None,
                detail=f"probe {outcome.probe}: {outcome.evidence}",
            )

    run.__doc__ = contract.statement
    check(f"drift.behaviour.{contract.name}")(run)


for _contract in BEHAVIOUR_CONTRACTS.values():
    _contract_check(_contract)
