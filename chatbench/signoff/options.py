"""What a sign-off run is asked to do: the resolved options and the round/budget defaults.

Kept apart from the pipeline so the command can build ``SignoffOptions`` (and the stage list can be
planned) without importing anything that measures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from chatbench.reports.compare import Thresholds

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
SCENARIO_BUDGET_S = 3.0
"""Seconds of timed rounds one scenario may take in a sign-off (after at least
``benchmarks.session.MIN_BUDGET_ROUNDS``).

Why: a schema that lost its history index turns a 0.2 ms page into a 100 ms scan; 1000 rounds of
each would make the FAIL take half an hour. The budget keeps a broken schema's sign-off to about a
minute; the rounds actually taken are in every result (``stats.rounds``)."""
SCALING_SCENARIOS = ("latest_page", "keyset_page_20", "offset_page_20", "conversation_list_first", "message_count")
"""Measured again on smaller databases for the scaling plot: the central reads and the OFFSET contrast."""


@dataclass(frozen=True)
class ServerChoice:
    """One server to sign off on: a backend plus the binaries or image that pick its version."""

    backend: str
    pg_bin: str | None = None
    image: str | None = None
    dsn: str | None = None
    version_hint: str | None = None  # what --pg-versions asked for


@dataclass(frozen=True)
class SignoffOptions:
    """Everything the pipeline needs, resolved (the command turns arguments into this)."""

    servers: tuple[ServerChoice, ...]
    profile: str = "release"
    seed: int = 1
    out: Path = Path("out")
    baseline: Path | None = None
    schema_from: Path | None = None
    schema_from_cmd: str | None = None
    load: bool = False
    load_clients: int = 2
    load_seconds: float = 5.0
    rounds: int | None = None  # None: the profile's default (benchmarks.session.ROUNDS)
    warmup: int | None = None
    targets_file: Path | None = None
    pin_mode: str = "same-core"
    use_cache: bool = True
    scaling_profiles: tuple[str, ...] | None = None  # None: every profile smaller than ``profile``
    scaling_rounds: int = 300
    scenario_budget_s: float | None = SCENARIO_BUDGET_S  # None: every round, however long
    use_dsn_database: bool = False
    allow_destructive: bool = False
    thresholds: Thresholds = field(default_factory=Thresholds)
    command: str = ""

    @property
    def schema_source(self) -> str:
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


def planned_stages(options: SignoffOptions) -> tuple[str, ...]:
    prebuilt = options.schema_from is not None or options.schema_from_cmd is not None
    stages = ["provision", "schema"]
    stages += ["drift", "seed", "integrity"] if prebuilt else ["seed", "integrity", "drift"]
    stages += ["health", "plans", "benchmarks"]
    if options.scaling():
        stages.append("scaling")
    if options.load:
        stages.append("load")
    if options.baseline is not None:
        stages.append("compare")
    return (*stages, "teardown")
