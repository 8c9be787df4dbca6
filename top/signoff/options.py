"""What a sign-off run is asked to do: the resolved options and the round/budget defaults.

Kept apart from the pipeline so the command can build ``SignoffOptions`` without importing anything
that measures. Which stages run, in which order, is declared once in ``chatbench.signoff.stages``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chatbench.errors import ChatbenchError
from chatbench.provision.binaries import resolve_binaries
from chatbench.provision.choice import ServerChoice
from chatbench.provision.dsn import CitusCoordinator, check_citus_coordinator, find_citus_coordinator, parse_dsn
from chatbench.reports.compare import Thresholds
from chatbench.settings import DriftMode, default

if TYPE_CHECKING:
    from chatbench.rehearse import RehearsalPlan
    from chatbench.schema.appqueries import AppQueries
    from chatbench.schema.package import SchemaPackage
    from chatbench.schema.rolemap import RoleMap

PROFILE_ORDER = ("smoke", "ci", "release", "scale")
SIGNOFF_ROUNDS = (1000, 100)
"""Default (timed, warm-up) rounds per scenario in a sign-off, capped by the profile's own default.

Why fewer than ``chatbench bench`` at release (5000): the sign-off must finish in about a minute at
1M messages; 1000 rounds still put 50 samples above p95 and 10 above p99, and the comparison with a
baseline works on the raw samples, whose count its statistics take into account."""
CONTRAST_ROUNDS = (200, 20)
"""Rounds for the contrast scenarios (OFFSET pages, tagged ``contrast``): they are expected to be slow
(20 ms for the last page of a 20k-message whale) and only show the growth with depth; 200 rounds do
that, 1000 would cost the sign-off 20 s."""
SCALING_SCENARIOS = ("latest_page", "keyset_page_20", "offset_page_20", "conversation_list_first", "message_count")
"""Measured again on smaller databases for the scaling plot: the central reads and the OFFSET contrast."""


@dataclass(frozen=True)
class DsnCluster:
    """A ``--dsn`` server found to be a Citus coordinator, and the single node a sign-off runs beside it."""

    coordinator: CitusCoordinator
    beside: ServerChoice | None  # a local node of the coordinator's PostgreSQL major; None: none can start here
    why_alone: str = ""  # why there is no node beside it (the report says so)


def dsn_cluster(servers: tuple[ServerChoice, ...], *, use_dsn_database: bool) -> DsnCluster | None:
    """The ``--dsn`` server of ``servers`` when it is a Citus coordinator (read only, before anything is created;
    one line and exit 2 when a database chatbench creates there could not be distributed; with
    ``--use-dsn-database`` the DSN's own database is the one distributed), with the local node to run beside it
    (``beside_coordinator``)."""
    choice = next((c for c in servers if c.backend == "dsn" and c.dsn is not None), None)
    find = find_citus_coordinator if use_dsn_database else check_citus_coordinator
    found = None if choice is None or choice.dsn is None else find(parse_dsn(choice.dsn))
    if found is None:
        return None
    try:
        local = resolve_binaries(None).major
    except ChatbenchError as exc:
        return DsnCluster(found, None, f"no single node beside the cluster: {exc}")
    return beside_coordinator(found, local)


def beside_coordinator(found: CitusCoordinator, local_major: int) -> DsnCluster:
    """A single node beside a ``--dsn`` coordinator: the embedded PostgreSQL (``--pg-bin`` does not go with
    ``--dsn``) when its major (``local_major``) is the coordinator's, else none and why: the same rows on two
    majors would not compare the distribution alone."""
    if local_major == found.major:
        return DsnCluster(found, ServerChoice("local"))
    return DsnCluster(found, None, f"no single node beside the cluster: the coordinator runs PostgreSQL "
                                   f"{found.major} and the PostgreSQL chatbench starts here (embedded) is "
                                   f"{local_major}; the same rows on two majors would not compare the distribution "
                                   "alone")


@dataclass(frozen=True)
class SignoffOptions:
    """Everything the pipeline needs, resolved (the command builds it from ``chatbench.settings``, where
    every value's default is declared; none is repeated here)."""

    servers: tuple[ServerChoice, ...]
    profile: str
    seed: int
    out: Path
    baseline: str | None  # a signoff.json or results JSON, or history:BRANCH (the median of its last runs)
    schema_from: Path | None
    schema_from_cmd: str | None
    command_timeout: float
    load: bool
    load_clients: int
    load_seconds: float
    rounds: int | None  # None: the profile's default (benchmarks.session.ROUNDS)
    warmup: int | None
    targets_file: Path | None
    pin_mode: str
    use_cache: bool
    scenario_budget_s: float | None  # None: every round, however long
    scaling_profiles: tuple[str, ...] | None  # None: every profile smaller than ``profile``
    use_dsn_database: bool
    allow_destructive: bool
    start_timeout: float
    command: str
    retries: int  # re-measurements of an undecided scenario
    retry_budget_s: float  # seconds of re-measurement per server
    allow_different_sizes: bool  # --baseline of another data size: compare latency only
    package: SchemaPackage  # the schema the database must equal or serve (canonical, or --models)
    drift_mode: DriftMode  # how drift judges it (``chatbench.commands.schema_choice``)
    queries: AppQueries | None  # --queries: judged by the plans stage, benchmarked as ``app:QUERY/ROLE`` scenarios
    roles: RoleMap  # the application's tables and columns by role (``[tool.chatbench.map]``)
    production_messages: float  # what a proven index's build time is extrapolated to
    migration: RehearsalPlan | None = None  # --migration/--migration-cmd: the migration stage, before-schema and all
    history: str = ""  # the results store --baseline history:BRANCH reads (--history, else the default store)
    scaling_rounds: int = 300
    thresholds: Thresholds = field(default_factory=Thresholds)
    citus_distribution: str = field(default_factory=lambda: str(default("citus_distribution")))
    dsn_cluster: DsnCluster | None = None  # the --dsn server, when it is a Citus coordinator (``dsn_cluster``)

    @property
    def citus(self) -> bool:
        """A Citus sign-off (``--backend citus``, or a ``--dsn`` Citus coordinator): readiness is judged, and a
        single node runs beside the cluster where one can."""
        return self.dsn_cluster is not None or any(choice.backend == "citus" for choice in self.servers)

    def on_cluster(self, choice: ServerChoice) -> bool:
        """``choice`` is a Citus cluster: its seed stage distributes the tables (variant ``citus_distribution``)."""
        return choice.backend == "citus" or (choice.backend == "dsn" and self.dsn_cluster is not None)

    @property
    def no_comparison(self) -> str | None:
        """Why a Citus sign-off has no single node beside the cluster (None: it has one, or is not on Citus)."""
        return self.dsn_cluster.why_alone if self.dsn_cluster is not None and self.dsn_cluster.beside is None \
            else None

    def targets(self) -> tuple[ServerChoice, ...]:
        """The servers the pipeline runs on: the chosen ones, and for each Citus cluster a single local node of
        the same PostgreSQL after it, seeded with the same rows in the same run (the side-by-side's other half)."""
        out: list[ServerChoice] = []
        for choice in self.servers:
            out.append(choice)
            if choice.backend == "citus" and choice.citus is not None:
                binaries = choice.citus.source.binaries
                out.append(ServerChoice("local", pg_bin=str(binaries.bin_dir) if binaries.source == "pg-bin" else None))
            elif self.on_cluster(choice) and self.dsn_cluster is not None and self.dsn_cluster.beside is not None:
                out.append(self.dsn_cluster.beside)
        return tuple(out)

    @property
    def prebuilt(self) -> bool:
        """The application builds the schema itself (``--schema-from``/``--schema-from-cmd``)."""
        return self.schema_from is not None or self.schema_from_cmd is not None

    @property
    def schema_source(self) -> str:
        """What built the schema, and the application's models it is judged against when they are given."""
        if self.package.canonical:
            return self._built_by()
        models = f"--models {self.package.name}"
        if self.migration is None and not self.prebuilt:
            return f"{models} (built from them, judged {self.drift_mode})"
        return f"{self._built_by()}, judged {self.drift_mode} against {models}"

    def _built_by(self) -> str:
        if self.migration is not None:
            before = "canonical" if self.migration.before_file is None and self.migration.before_cmd is None \
                else self.migration.before_source
            return f"{before} migrated by {self.migration.migration_source}"
        if self.schema_from is not None:
            return f"--schema-from {self.schema_from}"
        if self.schema_from_cmd is not None:
            return f"--schema-from-cmd {self.schema_from_cmd!r}"
        return "canonical"

    def scaling(self) -> tuple[str, ...]:
        if self.scaling_profiles is not None:
            return tuple(p for p in self.scaling_profiles if p != self.profile)
        if self.profile not in PROFILE_ORDER:
            return ()
        smaller = PROFILE_ORDER[: PROFILE_ORDER.index(self.profile)]
        return tuple(p for p in smaller if p != "scale")
