"""The assembled pre-release sign-off: one verdict, the failing items one line each, the evidence.

The pipeline (``chatbench.signoff``) fills these frozen dataclasses; the renderers (Markdown, HTML,
JSON, JUnit) only read them. One ``Signoff`` holds one ``TargetSignoff`` per server it ran on (a
PostgreSQL upgrade is a release too: versions side by side).

Verdict rules:
- a target PASSes only when every stage ran and every check passed;
- a stage that could not run (provisioning failed, a bug) makes the target ``ERROR``: the evidence
  is incomplete, so it is neither PASS nor a plain FAIL (exit 2);
- the whole sign-off is ``ERROR`` if any target errored, else ``FAIL`` if any failed, else ``PASS``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from chatbench.benchmarks.results import BenchmarkRun
from chatbench.reports.compare import Comparison

Verdict = Literal["PASS", "FAIL", "ERROR"]
StageStatus = Literal["ok", "failed", "error", "skipped"]
Severity = Literal["error", "warning", "info"]

SIGNOFF_FORMAT = 1
"""Version of the ``signoff.json`` layout (1: first version)."""

EXIT_CODES: Mapping[str, int] = {"PASS": 0, "FAIL": 1, "ERROR": 2}


@dataclass(frozen=True)
class StageTiming:
    """How one stage went and how long it took."""

    stage: str  # provision | schema | drift | seed | integrity | health | plans | benchmarks | load | compare
    seconds: float
    status: StageStatus
    detail: str = ""  # one line: what it did or why it failed/was skipped


@dataclass(frozen=True)
class CheckItem:
    """One judged item: a drift finding, a missed target, a regression, a stage error.

    Only ``severity == "error"`` items that did not pass fail the verdict; warnings are shown.
    """

    stage: str
    name: str  # the object or scenario, e.g. ``messages.ix_messages_history``
    passed: bool
    message: str  # one line
    severity: Severity = "error"

    @property
    def failing(self) -> bool:
        return not self.passed and self.severity == "error"

    def line(self) -> str:
        return f"{self.stage}: {self.message}"


@dataclass(frozen=True)
class ScalingPoint:
    """One (query scenario, data size) measurement for the scaling plot."""

    scenario: str
    messages: int
    p50_ms: float
    p95_ms: float
    profile: str = ""


@dataclass(frozen=True)
class TargetSignoff:
    """The sign-off on one server (one PostgreSQL version / image / bin dir)."""

    label: str  # e.g. "PostgreSQL 18.1 (local)"
    server: Mapping[str, Any]  # Server.describe(): no password
    stages: tuple[StageTiming, ...]
    checks: tuple[CheckItem, ...]
    seed: Mapping[str, Any] | None = None  # counts, checksum, timings, cache hit
    verification: Mapping[str, Any] | None = None  # the verification result as JSON
    benchmark: BenchmarkRun | None = None
    comparison: Comparison | None = None
    scaling: tuple[ScalingPoint, ...] = ()
    error: str | None = None  # the one-line error that stopped this target early

    @property
    def failing(self) -> tuple[CheckItem, ...]:
        return tuple(c for c in self.checks if c.failing)

    @property
    def warnings(self) -> tuple[CheckItem, ...]:
        return tuple(c for c in self.checks if not c.passed and c.severity == "warning")

    @property
    def verdict(self) -> Verdict:
        if self.error is not None or any(s.status == "error" for s in self.stages):
            return "ERROR"
        return "FAIL" if self.failing else "PASS"

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    def stage(self, name: str) -> StageTiming | None:
        return next((s for s in self.stages if s.stage == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "verdict": self.verdict,
            "server": _plain(self.server),
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "stages": [_plain(vars_of(s)) for s in self.stages],
            "failing": [c.line() for c in self.failing],
            "checks": [_plain(vars_of(c)) | {"failing": c.failing} for c in self.checks],
            "seed": _plain(self.seed) if self.seed is not None else None,
            "verification": _plain(self.verification) if self.verification is not None else None,
            "benchmark": self.benchmark.to_dict() if self.benchmark is not None else None,
            "comparison": self.comparison.to_dict() if self.comparison is not None else None,
            "scaling": [_plain(vars_of(p)) for p in self.scaling],
        }


@dataclass(frozen=True)
class Signoff:
    """The whole sign-off: what was run, on what, the verdict and the evidence per server."""

    created_at: str  # ISO 8601 UTC
    profile: str
    schema_source: str  # "canonical" or what --schema-from named
    schema_fingerprint: str
    chatbench_version: str
    targets: tuple[TargetSignoff, ...]
    baseline: str | None = None  # the baseline file compared against, if any
    command: str = ""  # the command line (redacted)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> Verdict:
        verdicts = {t.verdict for t in self.targets}
        if not self.targets or "ERROR" in verdicts:
            return "ERROR"
        return "FAIL" if "FAIL" in verdicts else "PASS"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    @property
    def multi(self) -> bool:
        return len(self.targets) > 1

    def failing_lines(self) -> tuple[str, ...]:
        """Every failing item (and target error), one line each, prefixed by the server when several."""
        lines: list[str] = []
        for target in self.targets:
            prefix = f"[{target.label}] " if self.multi else ""
            if target.error is not None:
                lines.append(f"{prefix}error: {target.error}")
            lines.extend(f"{prefix}{c.line()}" for c in target.failing)
        return tuple(lines)

    def headline(self) -> str:
        """The verdict sentence that opens every rendering."""
        servers = ", ".join(f"{t.label}: {t.verdict}" for t in self.targets) or "no server ran"
        count = len(self.failing_lines())
        tail = "every check passed" if self.verdict == "PASS" else f"{count} failing item{'s' * (count != 1)}"
        return f"{self.verdict}: {tail} ({servers}; schema {self.schema_source}, profile {self.profile})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "chatbench-signoff",
            "format_version": SIGNOFF_FORMAT,
            "verdict": self.verdict,
            "headline": self.headline(),
            "failing": list(self.failing_lines()),
            "created_at": self.created_at,
            "profile": self.profile,
            "schema_source": self.schema_source,
            "schema_fingerprint": self.schema_fingerprint,
            "chatbench_version": self.chatbench_version,
            "baseline": self.baseline,
            "command": self.command,
            "notes": list(self.notes),
            "targets": [t.to_dict() for t in self.targets],
        }


def benchmark_runs_in(data: Mapping[str, Any]) -> tuple[tuple[str, BenchmarkRun], ...]:
    """(label, run) pairs found in a ``signoff.json`` document (what ``compare`` reads from one)."""
    runs = []
    for target in data.get("targets", ()):
        if target.get("benchmark"):
            runs.append((str(target.get("label", "")), BenchmarkRun.from_dict(target["benchmark"])))
    return tuple(runs)


def is_signoff_document(data: Any) -> bool:
    return isinstance(data, Mapping) and data.get("kind") == "chatbench-signoff"


def vars_of(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


def _plain(value: Any) -> Any:
    """Plain JSON data (tuples → lists, mappings → dicts, other objects → str)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "__dataclass_fields__"):
        return _plain(vars_of(value))
    return json.loads(json.dumps(value, default=str))
