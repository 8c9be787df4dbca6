"""The optional comparison with a baseline: which run to compare with, its items as checks, and, against a
history baseline, the re-measurement that confirms a regression before it is a FAIL.

Why a re-measurement against the store and not against a file: ``history:BRANCH`` is judged on every merge,
unattended, on shared runners; one disturbed measurement (a burst of another job during one scenario) would
otherwise fail a merge that changed nothing. A scenario the comparison calls regressed, or whose latency the
detector finds stepped up on this run in the branch's series (``chatbench.history.changes_on_run``), is
measured again once on the same seeded server, through the path it was first measured by
(``measure.measure(..., only=...)``, no retries: one more measurement), and judged again the same way. It
FAILs only when the re-measurement agrees; when it does not, the two measurements disagree and the machine,
not the code, decided between them: the item is INCONCLUSIVE (exit 3), as a latency target the noise left
undecided is (``reports.signoff``'s verdict rules; docs/history.md says why not a warning).
A baseline file is judged as ``chatbench compare`` judges it, once.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from chatbench.benchmarks.app_scenarios import is_app
from chatbench.benchmarks.results import BenchmarkRun
from chatbench.benchmarks.scenarios import SCENARIOS_BY_NAME
from chatbench.errors import ConfigError
from chatbench.history import HistoryBaseline, baseline_from_history, changes_on_run, is_history_baseline
from chatbench.history.records import UNITS, measurements
from chatbench.history.series import ChangePoint
from chatbench.provision import Server
from chatbench.reports.compare import Comparison, ScenarioComparison, compare_runs, is_contrast
from chatbench.reports.inputs import read_runs
from chatbench.reports.signoff import StageTiming
from chatbench.signoff.evidence import Evidence, StageContext
from chatbench.signoff.measure import measure
from chatbench.signoff.options import SignoffOptions
from chatbench.signoff.recorder import Recorder

CONFIRM = "confirm"


@dataclass(frozen=True)
class Suspect:
    """A scenario judged slower on this run, re-measured before it may FAIL: the comparison's regression on it,
    and the detector's change points on this run in its series."""

    scenario: str
    regression: ScenarioComparison | None = None
    changes: tuple[ChangePoint, ...] = ()


@dataclass(frozen=True)
class Baselines:
    """What ``--baseline`` resolved to before any server started: (label, run) pairs, how reports name them,
    and for ``history:BRANCH`` the branch's stored runs (the detector's series)."""

    pairs: tuple[tuple[str, BenchmarkRun], ...] = ()
    name: str | None = None
    history: HistoryBaseline | None = None


def compare_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    rec = ctx.rec
    with rec.stage("compare") as note:
        baseline = pick_baseline(ctx.baselines, evidence.need_server())
        with ctx.display.status("comparing with the baseline"):
            comparison = compare_runs(evidence.need_benchmark(), baseline, ctx.options.thresholds)
        suspects = find_suspects(ctx, evidence, comparison)
        comparison_checks(comparison, rec, pending={s.scenario for s in suspects})
        note.detail = f"{comparison.verdict}: {comparison.conclusion()}" + (
            f" To confirm by a re-measurement: {', '.join(s.scenario for s in suspects)}." if suspects else "")
        note.status = rec.status_of("compare")
    return replace(evidence, comparison=comparison, suspects=suspects)


def find_suspects(ctx: StageContext, evidence: Evidence, comparison: Comparison) -> tuple[Suspect, ...]:
    """Against a history baseline: the scenarios (canonical and the application's, ``app:QUERY/ROLE``) the
    comparison calls regressed or the detector finds stepped up with this run; none against a file."""
    if ctx.history is None:
        return ()
    run = evidence.need_benchmark()
    judged = [r.scenario for r in run.scenarios
              if (r.scenario in SCENARIOS_BY_NAME or is_app(r.scenario)) and not is_contrast(r)]
    regressed = {i.scenario: i for i in comparison.scenarios if i.status == "regressed" and i.scenario in judged}
    changes = changes_on_run(ctx.history.branch_rows, run, _label(evidence),
                             min_change=ctx.options.thresholds.min_effect, scenarios=judged)
    return tuple(Suspect(name, regressed.get(name), tuple(c for c in changes if c.series.scenario == name))
                 for name in judged if name in regressed or any(c.series.scenario == name for c in changes))


def confirm_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    """Measure the suspects again on the same seeded server and keep a FAIL only where the re-measurement
    agrees; the comparison's items say which way each went."""
    rec, options, suspects = ctx.rec, ctx.options, evidence.suspects
    if not suspects or ctx.history is None or evidence.comparison is None:
        rec.add(StageTiming(CONFIRM, 0.0, "ok", "nothing to confirm: no regression against the history baseline "
                                                "and no change point on this run"))
        return evidence
    with rec.stage(CONFIRM) as note:
        server, names = evidence.need_server(), [s.scenario for s in suspects]
        apps = frozenset(n for n in names if is_app(n))  # the application's: chosen by name once bound
        again = measure(server, evidence.need_seed(), options, ctx.display, profile=options.profile,
                        only=[n for n in names if n not in apps], with_app=bool(apps), select=apps.__contains__,
                        retries=0).run
        recompared = {i.scenario: i for i in compare_runs(again, pick_baseline(ctx.baselines, server),
                                                          options.thresholds).scenarios}
        rechanged = {(c.series.scenario, c.series.metric) for c in changes_on_run(
            ctx.history.branch_rows, again, _label(evidence), min_change=options.thresholds.min_effect,
            scenarios=names)}
        first = {(v.scenario, v.metric): v.value for v in measurements(evidence.need_benchmark())}
        second = {(v.scenario, v.metric): v.value for v in measurements(again)}
        settled: dict[str, ScenarioComparison] = {}
        agreed = 0
        for suspect in suspects:
            if suspect.regression is not None:
                item = settle(suspect.regression, recompared.get(suspect.scenario), again)
                settled[suspect.scenario] = item
                agreed += item.status == "regressed"
                if item.status == "regressed":
                    rec.check(CONFIRM, suspect.scenario, False, item.line())
                else:
                    rec.undecided(CONFIRM, suspect.scenario, item.line())
            for change in suspect.changes:
                key = (change.series.scenario, change.series.metric)
                still = key in rechanged
                agreed += still
                unit = UNITS.get(change.series.metric, "")
                cause = f"; likely cause: {change.cause}" if change.cause else ""
                line = (f"{' '.join(key)}: a change point on this run in branch {ctx.history.branch}'s series, "
                        f"{change.change:+.1%} (p={change.pvalue:.2g}{cause}), {first.get(key, float('nan')):.4g} "
                        f"{unit}; re-measured {second.get(key, float('nan')):.4g} {unit}: "
                        + ("still a change point, confirmed" if still else "no longer a change point: unconfirmed"))
                if still:
                    rec.check(CONFIRM, " ".join(key), False, line)
                else:
                    rec.undecided(CONFIRM, " ".join(key), line)
        total = sum((s.regression is not None) + len(s.changes) for s in suspects)
        rounds = again.settings.rounds if again.settings is not None else None
        summary = (f"re-measured {', '.join(names)} on the same seeded server ({rounds} rounds, run "
                   f"{again.run_id}): {agreed} of {total} confirmed (FAIL)"
                   + (f", {total - agreed} unconfirmed (INCONCLUSIVE: the two measurements disagree)"
                      if agreed < total else ""))
        comparison = replace(evidence.comparison,
                             scenarios=tuple(settled.get(i.scenario, i) for i in evidence.comparison.scenarios),
                             notes=(*evidence.comparison.notes, summary))
        note.detail = summary
        note.status = rec.status_of(CONFIRM)
    return replace(evidence, comparison=comparison)


def settle(first: ScenarioComparison, again: ScenarioComparison | None, run: BenchmarkRun) -> ScenarioComparison:
    """A regression after its re-measurement: still ``regressed`` when the re-measurement is regressed too (both
    reasons kept), else ``inconclusive``, saying what each measurement found."""
    if again is not None and again.status == "regressed":
        return replace(first, reason=f"{first.reason}; confirmed by a re-measurement on the same server: "
                                     f"{again.reason}")
    found = (f"{again.status} ({again.reason})" if again is not None
             else f"not measured ({run.skipped.get(first.scenario, 'absent from the re-measurement')})")
    return replace(first, status="inconclusive", reason=f"unconfirmed: regressed on the first measurement "
                                                        f"({first.reason}), {found} on a re-measurement on the "
                                                        "same server")


def _label(evidence: Evidence) -> str:
    """The server label this run is stored under (the sign-off's target label, ``run_record``)."""
    return evidence.label or evidence.need_benchmark().run_id


def load_baselines(path: Path | str) -> tuple[tuple[str, BenchmarkRun], ...]:
    """Benchmark runs in a baseline file: a ``signoff.json`` (one per server) or a benchmark result JSON."""
    return read_runs(path)


def resolve_baselines(options: SignoffOptions) -> Baselines:
    """The baseline runs and how the reports name them: from a file, or for ``history:BRANCH`` the median of
    the branch's last runs in the store (one per server label), which then go through the same comparison,
    and the branch's runs for the detector. Refused in one line (exit 2) before any server starts when the
    store has nothing to offer."""
    if options.baseline is None:
        return Baselines()
    if not is_history_baseline(options.baseline):
        return Baselines(load_baselines(options.baseline), options.baseline)
    found = baseline_from_history(options.history, options.baseline,
                                  profile=None if options.allow_different_sizes else options.profile)
    return Baselines(found.pairs(), found.describe(), found)


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


def comparison_checks(comparison: Comparison, rec: Recorder, pending: Collection[str] = ()) -> None:
    """The comparison's items as checks of the compare stage; ``pending``: scenarios whose regression the
    confirm stage judges after re-measuring them (their check is recorded there)."""
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
        if item.scenario in pending and item.status == "regressed":  # plan:/load: items never are
            continue
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
