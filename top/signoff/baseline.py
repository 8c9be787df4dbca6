"""The optional comparison with a baseline: which run to compare with, and its items as checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from chatbench.benchmarks.results import BenchmarkRun
from chatbench.errors import ConfigError
from chatbench.provision import Server
from chatbench.reports.compare import Comparison, compare_runs
from chatbench.signoff.evidence import Evidence, StageContext
from chatbench.signoff.options import SignoffOptions
from chatbench.signoff.recorder import Recorder


def compare_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    rec = ctx.rec
    with rec.stage("compare") as note:
        baseline = pick_baseline(ctx.baselines, evidence.need_server())
        with ctx.display.status("comparing with the baseline"):
            comparison = compare_runs(evidence.need_benchmark(), baseline, ctx.options.thresholds)
        comparison_checks(comparison, rec)
        note.detail = f"{comparison.verdict}: {comparison.conclusion()}"
        note.status = rec.status_of("compare")
    return replace(evidence, comparison=comparison)


def load_baselines(path: Path | str) -> tuple[tuple[str, BenchmarkRun], ...]:
    """Benchmark runs in a baseline file: a ``signoff.json`` (one per server) or a benchmark result JSON."""
    from chatbench.reports.inputs import read_runs

    return read_runs(path)


def resolve_baselines(options: SignoffOptions) -> tuple[tuple[tuple[str, BenchmarkRun], ...], str | None]:
    """The baseline runs and how the reports name them: from a file, or for ``history:BRANCH`` the median of
    the branch's last runs in the store (one per server label), which then go through the same comparison.
    Refused in one line (exit 2) before any server starts when the store has nothing to offer."""
    from chatbench.history import baseline_from_history, is_history_baseline

    if options.baseline is None:
        return (), None
    if not is_history_baseline(options.baseline):
        return load_baselines(options.baseline), options.baseline
    found = baseline_from_history(options.history, options.baseline,
                                  profile=None if options.allow_different_sizes else options.profile)
    return found.pairs(), found.describe()


def check_baseline_profile(baselines: Sequence[tuple[str, BenchmarkRun]], options: SignoffOptions) -> None:
    """Refuse, before any server starts, a baseline measured on another data profile (another size)."""
    if options.allow_different_sizes:
        return
    for label, run in baselines:
        if run.environment.profile != options.profile:
            messages = run.environment.data_sizes.get("messages")
            size = f" ({messages:,} messages)" if messages is not None else ""
            raise ConfigError(
                f"--baseline {options.baseline}: its run {label} measured the {run.environment.profile} profile"
                f"{size}, this sign-off measures "
                f"{options.profile}: runs of different data sizes are not comparable; give a baseline of the "
                "same --profile, or pass --allow-different-sizes"
            )


def pick_baseline(baselines: Sequence[tuple[str, BenchmarkRun]], server: Server) -> BenchmarkRun:
    """The baseline run for this server: same major version if the file has several, else the only one."""
    if not baselines:
        raise ConfigError("--baseline: the file holds no benchmark run to compare with")
    if len(baselines) == 1:
        return baselines[0][1]
    major = server.version_num // 10000
    for _, run in baselines:
        if run.environment.server_version_num // 10000 == major:
            return run
    return baselines[0][1]


def comparison_checks(comparison: Comparison, rec: Recorder) -> None:
    for difference in comparison.environment:
        if difference.decisive:
            rec.check(
                "compare",
                f"environment.{difference.field}",
                False,
                f"environment differs from the baseline: {difference.describe()}",
                "warning",
            )
    for item in comparison.all_items:
        if item.failing:
            rec.check("compare", item.scenario, False, item.line())
        elif item.status == "inconclusive":
            rec.undecided("compare", item.scenario, item.line())
        elif item.status in ("changed", "missing"):
            rec.check("compare", item.scenario, False, item.line(), "warning")
        else:
            rec.check("compare", item.scenario, True, item.line())
    for note in comparison.notes:
        rec.check("compare", "note", False, note, "warning")
