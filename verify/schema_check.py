"""Verify a database against a schema package in a drift mode: one call for every stage that verifies.

``chatbench.verify.verify`` judges one package in one mode. With the application's models judged
exactly (``--models``), the canonical contracts must still hold: an application that drops the
history index from its models and its database is exact and still breaks the canonical queries.
So ``verify_schema`` then also runs the drift checks against the canonical package in contract mode
and returns both judgements as one result (each finding says which one it came from: ``against``),
for ``chatbench verify``, the rehearsal and the sign-off alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from chatbench.loadgen.result import SeedResult
from chatbench.provision import Server
from chatbench.schema.package import SchemaPackage, canonical
from chatbench.schema.rolemap import CANONICAL, RoleMap
from chatbench.settings import DriftMode
from chatbench.verify import verify
from chatbench.verify.findings import Finding
from chatbench.verify.result import VerificationResult

CONTRACT_GROUP = "drift"
"""The checks that judge the schema itself; health and plans do not depend on the package."""


def verify_schema(
    server: Server,
    seed_result: SeedResult | None,
    *,
    package: SchemaPackage,
    mode: DriftMode,
    only: Iterable[str] | None = None,
    read_only: bool = False,
    progress: Callable[[str], None] | None = None,
    pg_bin: str | Path | None = None,
    roles: RoleMap = CANONICAL,
) -> VerificationResult:
    """``verify`` against ``package`` in ``mode``; an exact application package is judged against the
    canonical contracts too (module docstring). ``roles``: the application's names for the roles
    (``[tool.chatbench.map]``), which the contract judgement reads."""
    wanted = None if only is None else tuple(only)
    result = verify(server, seed_result, expected=package, mode=mode, only=wanted, read_only=read_only,
                    progress=progress, pg_bin=pg_bin, roles=roles)
    if package.canonical or mode != "exact" or not _judges_drift(wanted):
        return result
    contracts = verify(server, seed_result, expected=canonical(), mode="contract", only=[CONTRACT_GROUP],
                       read_only=read_only, progress=progress, pg_bin=pg_bin, roles=roles)
    return merged(result, contracts)


def _judges_drift(only: tuple[str, ...] | None) -> bool:
    return only is None or any(o == CONTRACT_GROUP or o.startswith(CONTRACT_GROUP + ".") for o in only)


def merged(first: VerificationResult, second: VerificationResult) -> VerificationResult:
    """One result holding both judgements: the second's checks are named with what they judged against
    (``drift.columns [contract canonical]``), its findings keep their own ``against``."""
    label = f"{second.mode} {second.expected}"
    findings = sorted((*first.findings, *second.findings), key=Finding.report_order)
    return replace(
        first,
        findings=tuple(findings),
        checks=(*first.checks, *(replace(c, name=f"{c.name} [{label}]") for c in second.checks)),
        timings={**first.timings, **{f"{name} [{label}]": s for name, s in second.timings.items()}},
        canonical_source=f"{first.canonical_source}; {label}: {second.canonical_source}",
    )
