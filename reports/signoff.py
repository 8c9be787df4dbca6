"""The assembled pre-release sign-off: one verdict, the failing items one line each, the evidence.

The pipeline (``chatbench.signoff``) fills these frozen dataclasses; the renderers (Markdown, HTML,
JSON, JUnit) only read them. One ``Signoff`` holds one ``TargetSignoff`` per server it ran on (a
PostgreSQL upgrade is a release too: versions side by side).

Verdict rules:
- a target PASSes only when every stage ran and every check passed;
- a check that ran but could not be decided on this machine (a latency target or a regression hidden
  by the measured noise) is ``inconclusive``: it does not fail the target, it makes it INCONCLUSIVE
  (exit 3) unless something failed;
- a stage that could not run (provisioning failed, a bug) makes the target ``ERROR``: the evidence
  is incomplete, so it is neither PASS nor a plain FAIL (exit 2);
- the whole sign-off is ``ERROR`` if any target errored, else ``FAIL`` if any failed, else
  ``INCONCLUSIVE`` if any was, else ``PASS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from chatbench import convert
from chatbench.benchmarks.citus import QueryComparison, QueryCost, route_text, side_by_side
from chatbench.benchmarks.results import BenchmarkRun
from chatbench.convert import fields_plain, to_plain
from chatbench.loadgen.result import SeedResult
from chatbench.provision import Server
from chatbench.rehearse.result import Rehearsal
from chatbench.reports.compare import Comparison
from chatbench.reports.inputs import SIGNOFF_KIND
from chatbench.verify.citus import HISTORY_QUERIES
from chatbench.verify.result import VerificationResult

INDEX_FIX_KINDS = ("proposed_index", "no_index_fix")
"""The findings that answer a query's missing index (``verify.proposals``): shown beside the failing list."""

Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE", "ERROR"]
StageStatus = Literal["ok", "failed", "inconclusive", "error", "skipped"]
Severity = Literal["error", "warning", "info"]
Outcome = Literal["passed", "failed", "inconclusive", "skipped"]

SIGNOFF_FORMAT = 4
"""Version of the ``signoff.json`` layout ``to_plain(signoff)`` writes. Bump it on any change a reader
must know about, and say what changed here.

Format history:

- 1 (2026-11-24): first version. ``{kind: "chatbench-signoff", format_version, verdict, headline,
  failing[], created_at, profile, schema_source, schema_fingerprint, chatbench_version, baseline,
  command, notes[], targets[]}``; each target ``{label, verdict, server, error, seconds, stages[],
  failing[], checks[], seed, verification, benchmark, comparison, scaling[]}``; ``benchmark`` is a
  benchmark run in the results format (``chatbench.benchmarks.results``, format 2).
- 2 (2026-11-25): the same keys, now written from typed records: ``server`` (``ServerSummary``; keys
  that were not known are left out, as before), ``seed`` (``SeedSummary``), ``verification``
  (``{"drift": .., "health_plans": ..}``, each a ``chatbench.verify`` result or null). ``benchmark``
  is a results-format 3 run: its ``notes`` became typed fields (see ``chatbench.benchmarks.results``).
  ``reports.inputs.benchmark_runs_in`` reads both versions (a version 1 file's run upgrades through the results
  format's own upgrade path).
  A fourth verdict, ``INCONCLUSIVE`` (exit 3): top-level and per-target ``inconclusive[]`` lines;
  each check has ``outcome`` (passed | failed | inconclusive) beside ``passed`` and ``failing``; a stage
  status may be ``inconclusive``.
- 3 (2026-11-29): each target has ``migration``: null, or (a sign-off with ``--migration`` or
  ``--migration-cmd``) the migration rehearsal in the ``rehearsal.json`` layout
  (``to_plain`` of ``chatbench.rehearse.result.Rehearsal``, rehearsal format 2, with ``verified_by`` set:
  its ``verification`` is null because the target's own ``verification`` judged the migrated
  schema). Its findings are checks of stage ``migration``; a stage may be ``migration``; then there
  is no ``schema``, ``seed`` or ``integrity`` stage, ``seed`` describes the seed the before-schema
  was filled with, and ``schema_source`` reads ``<before-schema> migrated by --migration FILE``.
  From 2026-11-30 the rehearsal is in its format 3 (``sampler_error`` per size); one whose lock
  sampler stopped early makes the ``migration`` stage ``error`` (verdict ERROR), the rehearsal kept.
- 4 (2026-12-02): Citus sign-offs (``--backend citus``). Top-level ``cluster_comparison``: null, or
  ``{single_label, cluster_label, queries[]}``, each query ``{scenario, query, single, cluster, router,
  tasks}`` with ``single``/``cluster`` ``{p50_ms, p95_ms, buffers, rounds}`` (buffers of one execution,
  every shard's counted; ``tasks`` -1 and buffers -1: Citus refuses the statement). Each target has
  ``query_costs[]`` (``{scenario, query, buffers, tasks, router}``) and ``verification.readiness`` (the
  ``citus`` verify group); checks of stage ``readiness``; stage rows ``readiness`` and, on the cluster,
  ``plans`` skipped (routing replaces the plan contracts there; they are judged on the single node).
  From 2026-12-08 a ``--dsn`` Citus coordinator signs off as a cluster too: a cluster target is one whose
  ``server.details`` has ``citus`` (and ``distribution``, the variant its tables were distributed as), whatever
  its ``backend``; top-level ``citus``: null, or ``{distribution, no_comparison}`` (the variant, and why there
  is no single node beside the cluster, or null); ``cluster_comparison`` gains ``distribution``.
  From 2026-12-06 a check's ``outcome`` may be ``skipped`` (severity ``info``, neither passed nor failing): an
  item not run by design, its ``message`` saying why (a canonical query or scenario on a schema whose roles
  ``[tool.chatbench.map]`` renames: ``plans/skipped`` and the benchmarks' ``not_run``).
"""

EXIT_CODES: Mapping[str, int] = {"PASS": 0, "FAIL": 1, "ERROR": 2, "INCONCLUSIVE": 3}
"""INCONCLUSIVE has its own code: a CI job can tell "the machine was too noisy to decide" (rerun, or
run on a quieter runner) from "the schema failed" (1) and "could not run" (2)."""


@dataclass(frozen=True)
class StageTiming:
    """How one stage went and how long it took."""

    stage: str  # provision | schema | migration | drift | seed | integrity | health | plans | benchmarks | ...
    seconds: float
    status: StageStatus
    detail: str = ""  # one line: what it did or why it failed/was skipped


@dataclass(frozen=True)
class CheckItem:
    """One judged item: a drift finding, a missed target, a regression, a stage error.

    Only ``severity == "error"`` items that failed fail the verdict, and only such items that were
    inconclusive make it INCONCLUSIVE; warnings are shown, and so are the items skipped by design (with why).
    """

    stage: str
    name: str  # the object or scenario, e.g. ``messages.ix_messages_history``
    outcome: Outcome
    message: str  # one line
    severity: Severity = "error"

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    @property
    def failing(self) -> bool:
        return self.outcome == "failed" and self.severity == "error"

    @property
    def undecided(self) -> bool:
        return self.outcome == "inconclusive" and self.severity == "error"

    def line(self) -> str:
        return f"{self.stage}: {self.message}"


convert.register(CheckItem, derived=("passed", "failing"))  # a CI step reads them without the severity rules


@dataclass(frozen=True)
class ScalingPoint:
    """One (query scenario, data size) measurement for the scaling plot."""

    scenario: str
    messages: int
    p50_ms: float
    p95_ms: float
    profile: str = ""


@dataclass(frozen=True)
class ServerSummary:
    """What a report says about the server a target ran on (never a password: the URL is the display URL).

    Only ``backend`` is known when provisioning itself failed; the other fields are then None.
    """

    backend: str
    url: str | None = None
    version: str | None = None
    version_num: int | None = None
    database: str | None = None
    settings: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, server: Server) -> ServerSummary:
        return cls(server.backend, server.display_url, server.version, server.version_num, server.database,
                   dict(server.settings), dict(server.details))

    @property
    def cluster(self) -> bool:
        """A Citus cluster (``--backend citus``, or a ``--dsn`` coordinator the sign-off distributed on)."""
        return "citus" in self.details


def _server_document(server: ServerSummary) -> dict[str, Any]:
    """Only what is known: the backend alone when provisioning failed, ``details`` only when there are some."""
    data = fields_plain(server)
    if server.url is None:
        data = {"backend": server.backend, "details": data["details"]}
    if not server.details:
        del data["details"]
    return data


convert.register(ServerSummary, write=_server_document)


@dataclass(frozen=True)
class SeedSummary:
    """The seeded data a target ran on: sizes, checksum, where it came from, how long it took."""

    profile: str
    seed: int
    order: str
    counts: Mapping[str, int]
    checksum: str
    from_cache: bool
    cache_key: str
    timings: Mapping[str, float]
    created_at_correlation: float
    whales: int

    @classmethod
    def of(cls, result: SeedResult) -> SeedSummary:
        return cls(result.profile, result.seed, result.order, dict(result.counts), result.checksum,
                   result.from_cache, result.cache_key, {k: round(v, 4) for k, v in result.timings.items()},
                   result.created_at_correlation, len(result.params.whales))


@dataclass(frozen=True)
class VerificationEvidence:
    """What the verification stages found: drift on its own, health and plans from one call."""

    drift: VerificationResult | None = None
    health_plans: VerificationResult | None = None
    readiness: VerificationResult | None = None  # the ``citus`` group: distribution readiness (Citus sign-offs)

    @property
    def ran(self) -> bool:
        return self.drift is not None or self.health_plans is not None or self.readiness is not None


def _verification_document(evidence: VerificationEvidence) -> dict[str, Any]:
    """The stages that ran, each in the verification's own versioned layout (``VerificationResult.to_json``)."""
    results = {"drift": evidence.drift, "health_plans": evidence.health_plans, "readiness": evidence.readiness}
    return {name: result.to_json() for name, result in results.items() if result is not None}


convert.register(VerificationEvidence, write=_verification_document)


@dataclass(frozen=True)
class TargetSignoff:
    """The sign-off on one server (one PostgreSQL version / image / bin dir)."""

    label: str  # e.g. "PostgreSQL 18.1 (local)"
    server: ServerSummary
    stages: tuple[StageTiming, ...]
    checks: tuple[CheckItem, ...]
    seed: SeedSummary | None = None
    verification: VerificationEvidence | None = None
    benchmark: BenchmarkRun | None = None
    comparison: Comparison | None = None
    scaling: tuple[ScalingPoint, ...] = ()
    migration: Rehearsal | None = None  # --migration: the rehearsal of the migration that built the schema
    error: str | None = None  # the one-line error that stopped this target early
    query_costs: tuple[QueryCost, ...] = ()  # Citus sign-offs: each read scenario's buffers (all shards) and routing

    @property
    def failing(self) -> tuple[CheckItem, ...]:
        return tuple(c for c in self.checks if c.failing)

    @property
    def undecided(self) -> tuple[CheckItem, ...]:
        return tuple(c for c in self.checks if c.undecided)

    @property
    def warnings(self) -> tuple[CheckItem, ...]:
        return tuple(c for c in self.checks if not c.passed and c.severity == "warning")

    @property
    def skipped(self) -> tuple[CheckItem, ...]:
        """Items not run by design, each with why (``outcome == "skipped"``)."""
        return tuple(c for c in self.checks if c.outcome == "skipped")

    @property
    def index_fixes(self) -> tuple[str, ...]:
        """The fix for each application query that failed for want of an index, one line each: the index
        proven on a copy of the database with its before and after, or why no index from the query fixes it.
        They are info findings, so they would otherwise sit only in the JSON beside the errors they answer."""
        found = self.verification.health_plans if self.verification is not None else None
        if found is None:
            return ()
        return tuple(f"{f.query}: {f.actual} ({f.detail})" for f in found.findings if f.kind in INDEX_FIX_KINDS)

    @property
    def verdict(self) -> Verdict:
        if self.error is not None or any(s.status == "error" for s in self.stages):
            return "ERROR"
        if self.failing:
            return "FAIL"
        return "INCONCLUSIVE" if self.undecided else "PASS"

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    def stage(self, name: str) -> StageTiming | None:
        return next((s for s in self.stages if s.stage == name), None)


def _target_document(target: TargetSignoff) -> dict[str, Any]:
    """A rendering: the verdict, the total seconds and the failing and undecided lines are computed for the
    document's readers (a CI step, a PR comment); the evidence follows, each part by the converter."""
    return {
        "label": target.label,
        "verdict": target.verdict,
        "server": to_plain(target.server),
        "error": target.error,
        "seconds": round(target.seconds, 3),
        "stages": to_plain(target.stages),
        "failing": [c.line() for c in target.failing],
        "inconclusive": [c.line() for c in target.undecided],
        **{name: to_plain(getattr(target, name))
           for name in ("checks", "seed", "verification", "benchmark", "comparison", "scaling", "migration",
                        "query_costs")},
    }


convert.register(TargetSignoff, write=_target_document)


@dataclass(frozen=True)
class ClusterComparison:
    """A Citus sign-off's single node against the cluster, per scenario (``benchmarks.citus.side_by_side``)."""

    single_label: str
    cluster_label: str
    queries: tuple[QueryComparison, ...]
    distribution: str = ""  # the variant the cluster's tables were distributed as

    HEADER: ClassVar[tuple[str, ...]] = ("scenario", "query", "route on Citus", "p50 ms single", "p50 ms Citus",
                                         "p95 ms single", "p95 ms Citus", "buffers single", "buffers Citus")

    def rows(self) -> list[tuple[str, ...]]:
        """The table every rendering shows (``HEADER``), one row per scenario, history queries first."""
        ordered = sorted(self.queries, key=lambda q: q.query not in HISTORY_QUERIES)
        return [(q.scenario, q.query, route_text(q), f"{q.single.p50_ms:.3f}", f"{q.cluster.p50_ms:.3f}",
                 f"{q.single.p95_ms:.3f}", f"{q.cluster.p95_ms:.3f}", str(q.single.buffers),
                 str(q.cluster.buffers) if q.cluster.buffers >= 0 else "refused") for q in ordered]


READINESS_HEADER = ("severity", "rule", "object", "expected", "found", "detail")


@dataclass(frozen=True)
class CitusRun:
    """A sign-off on a Citus cluster: the variant its tables were distributed as (the readiness preview on the
    single node is judged against it too), and why there is no single node beside the cluster (None: there is)."""

    distribution: str
    no_comparison: str | None = None


def readiness_title(target: TargetSignoff, citus: CitusRun | None) -> str:
    """The heading of a target's readiness section: the cluster as distributed, or a single node's preview,
    and the variant it was judged against."""
    variant = f" {citus.distribution}" if citus is not None else ""
    if target.server.cluster:
        return f"Distribution readiness (Citus), on the Citus cluster, distributed{variant or ' as declared'}"
    against = f" against{variant}" if variant else ""
    return (f"Distribution readiness (Citus), a preview on a single node{against}: what Citus would refuse, "
            "not judged here")


def readiness_rows(target: TargetSignoff) -> list[tuple[str, ...]]:
    """The distribution-readiness findings of one target (``READINESS_HEADER``), errors first; empty when the
    readiness stage did not run."""
    result = target.verification.readiness if target.verification is not None else None
    if result is None:
        return []
    rank = {"error": 0, "warning": 1, "info": 2}
    return [(f.severity, f.kind, f.object, f.expected, f.actual, f.detail)
            for f in sorted(result.findings, key=lambda f: rank.get(f.severity, 3))]


@dataclass(frozen=True)
class Signoff:
    """The whole sign-off: what was run, on what, the verdict and the evidence per server."""

    created_at: str  # ISO 8601 UTC
    profile: str
    schema_source: str  # "canonical", what --schema-from named, or "<before> migrated by --migration FILE"
    schema_fingerprint: str
    chatbench_version: str
    targets: tuple[TargetSignoff, ...]
    baseline: str | None = None  # the baseline file compared against, if any
    command: str = ""  # the command line (redacted)
    notes: tuple[str, ...] = field(default_factory=tuple)
    citus: CitusRun | None = None  # a sign-off on a Citus cluster

    @property
    def verdict(self) -> Verdict:
        verdicts = {t.verdict for t in self.targets}
        if not self.targets or "ERROR" in verdicts:
            return "ERROR"
        for verdict in ("FAIL", "INCONCLUSIVE"):
            if verdict in verdicts:
                return verdict
        return "PASS"

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

    def index_fix_lines(self) -> tuple[str, ...]:
        """Every proposed index (and every query no index fixes), prefixed by the server when several."""
        return tuple(f"[{t.label}] {line}" if self.multi else line for t in self.targets for line in t.index_fixes)

    def inconclusive_lines(self) -> tuple[str, ...]:
        """Every item the measured noise left undecided, one line each (prefixed by the server when several)."""
        return tuple(
            f"[{t.label}] {c.line()}" if self.multi else c.line() for t in self.targets for c in t.undecided
        )

    def headline(self) -> str:
        """The verdict sentence that opens every rendering."""
        servers = ", ".join(f"{t.label}: {t.verdict}" for t in self.targets) or "no server ran"
        count, undecided = len(self.failing_lines()), len(self.inconclusive_lines())
        parts = []
        if count:
            parts.append(f"{count} failing item{'s' * (count != 1)}")
        if undecided:
            parts.append(f"{undecided} item{'s' * (undecided != 1)} the machine's noise left undecided")
        tail = ", ".join(parts) or ("every check passed" if self.verdict == "PASS" else "0 failing items")
        return f"{self.verdict}: {tail} ({servers}; schema {self.schema_source}, profile {self.profile})"

    def cluster_comparison(self) -> ClusterComparison | None:
        """A Citus sign-off's side-by-side: the cluster target against the single node it ran beside (same
        data, same run), or None when the run has not both with their benchmarks."""
        cluster = next((t for t in self.targets if t.server.cluster), None)
        single = next((t for t in self.targets if t.server.backend == "local" and not t.server.cluster), None)
        if cluster is None or single is None or cluster.benchmark is None or single.benchmark is None:
            return None
        queries = side_by_side(single.benchmark, single.query_costs, cluster.benchmark, cluster.query_costs)
        return ClusterComparison(single.label, cluster.label, queries, cluster.server.details.get("distribution", "")) \
            if queries else None


def _document(signoff: Signoff) -> dict[str, Any]:
    """A rendering, not a round trip (a reader takes only its benchmark runs back,
    ``reports.inputs.benchmark_runs_in``): the kind, version, verdict and its lines lead, computed for readers
    that do not recompute them."""
    fields = fields_plain(signoff)
    return {
        "kind": SIGNOFF_KIND,
        "format_version": SIGNOFF_FORMAT,
        "verdict": signoff.verdict,
        "headline": signoff.headline(),
        "failing": list(signoff.failing_lines()),
        "inconclusive": list(signoff.inconclusive_lines()),
        **{name: value for name, value in fields.items() if name != "targets"},
        "cluster_comparison": to_plain(signoff.cluster_comparison()),
        "targets": fields["targets"],
    }


convert.register(Signoff, write=_document)
