"""The frozen outcome of one verification, and its JSON form (versioned)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from chatbench.verify.findings import Finding

# Bump on any change of ``to_json``'s shape. 2: ``probes_site`` (where the behaviour probes ran).
# 3: ``mode`` and ``expected`` (the drift mode and the schema package judged against), ``against`` per finding.
RESULT_FORMAT_VERSION = 3


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    doc: str
    passed: bool  # no error-severity finding
    errors: int
    warnings: int
    infos: int
    seconds: float


@dataclass(frozen=True)
class GrowthCurve:
    """Buffers of one page query by depth (rows above the page), in one plan mode."""

    curve: str  # "keyset" | "offset"
    query: str
    mode: str  # "custom" | "generic"
    points: tuple[tuple[int, int], ...]  # (depth, buffers)


@dataclass(frozen=True)
class PlanSummary:
    """One measured scenario plan, for the report (the verdict is in the findings)."""

    scenario: str
    description: str
    query: str
    mode: str
    buffers: int
    execution_ms: float
    shape: str


@dataclass(frozen=True)
class VerificationResult:
    server: Mapping[str, Any]
    canonical_source: str
    params_source: str
    read_only: bool
    probes_site: str  # where the behaviour probes ran ("" when none ran)
    findings: tuple[Finding, ...]
    checks: tuple[CheckOutcome, ...]
    curves: tuple[GrowthCurve, ...]
    plans: tuple[PlanSummary, ...]
    timings: Mapping[str, float]
    mode: str = "exact"  # "exact" | "contract"
    expected: str = "canonical"  # the SchemaPackage's name

    @property
    def passed(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": RESULT_FORMAT_VERSION,
            "passed": self.passed,
            "server": dict(self.server),
            "mode": self.mode,
            "expected": self.expected,
            "canonical_source": self.canonical_source,
            "params_source": self.params_source,
            "read_only": self.read_only,
            "probes_site": self.probes_site,
            "checks": [asdict(c) for c in self.checks],
            "findings": [f.to_json() for f in self.findings],
            "curves": [asdict(c) for c in self.curves],
            "plans": [asdict(p) for p in self.plans],
            "timings": dict(self.timings),
        }
