"""What ``chatbench history`` does when it runs.

Its interface (options, help, description) is ``chatbench.commands.history``, which ``--help`` reads
without importing this module and the stack it needs (``chatbench.commands.impl``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from chatbench.commands._common import out
from chatbench.errors import ConfigError, redact
from chatbench.history import record_file
from chatbench.history.export import FORMATS, render
from chatbench.history.provenance import provenance
from chatbench.history.series import appeared, build_series, detect_all
from chatbench.history.show import show_table, write_html
from chatbench.history.store import default_location, opened
from chatbench.output import print_document
from chatbench.provision.paths import cache_root_path
from chatbench.settings import Settings

if TYPE_CHECKING:
    from chatbench.history.store import StoredValue


def location(settings: Settings) -> str:
    if settings.history is not None:
        return settings.history

    return default_location(cache_root_path())


def record_result(settings: Settings, path: Path) -> None:
    """``signoff``/``bench``/``rehearse --history``: add the runs of the result document the command just wrote, through
    ``record_file`` as ``history add`` does, and say in one line what went where.

    Without ``--history`` nothing is recorded (not even in the default store): a run on a laptop or a
    PR's experiment is not history; an application's CI opts in where it keeps the series."""
    if settings.history is None:
        return
    found = provenance(settings.commit, settings.branch)
    added = record_file(settings.history, path, found)
    runs = "; ".join(f"{a.label}: run {a.run_id}, {a.values} values" + ("" if a.new else " (already there)")
                     for a in added)
    out.line(f"history: recorded {len(added)} run(s) of commit {found.commit[:10] or 'unknown'} on "
             f"{found.branch or 'unknown branch'} ({runs}) in {redact(settings.history)}")


def run(settings: Settings, args: argparse.Namespace) -> int:
    action: str = args.action
    items: list[str] = list(args.items)
    if action == "add":
        return _add(settings, items)
    if action == "export":
        return _export(settings, items)
    return _show(settings, items, detect_only=action == "detect")


def _add(settings: Settings, files: list[str]) -> int:
    if not files:
        raise ConfigError("history add: give the result files to add, e.g. out/signoff.json")
    for name in files:  # every file is checked before the first is added
        if not Path(name).is_file():
            raise ConfigError(f"history add {name}: no such file; pass a results JSON, a bench.json or a signoff.json")
    found = provenance(settings.commit, settings.branch)
    store = location(settings)
    for name in files:
        for added in record_file(store, name, found):
            state = "added" if added.new else "already in the store, left alone"
            out.line(f"{name}: {added.label}: run {added.run_id}, {added.values} values, commit "
                     f"{found.commit[:10] or 'unknown'} on {found.branch or 'unknown branch'}: {state}")
    out.note(f"history store: {redact(store)}")  # a postgresql:// URL's password masked
    return 0


def _rows(settings: Settings, scenarios: list[str]) -> tuple[list[StoredValue], str]:
    with opened(location(settings), create=False) as store:
        rows = store.values(branch=settings.branch, scenarios=scenarios)
        name = store.name
    if not rows:
        where = f" on branch {settings.branch}" if settings.branch else ""
        raise ConfigError(f"--history {name}: no runs{where}" + (f" of {', '.join(scenarios)}" if scenarios else "")
                          + "; add some with `chatbench history add RESULT.json`")
    return rows, name


def _show(settings: Settings, scenarios: list[str], *, detect_only: bool) -> int:
    rows, name = _rows(settings, scenarios)
    all_series = build_series(rows)
    with out.stage("history: change points") as stage:
        stage.step(f"{len(all_series)} series")
        changes = detect_all(all_series)
    if detect_only:
        # What the latest run added: a step is found a few runs after it began (the rank test needs them), at
        # its first run, so "made by the latest run" is a change point found with it and not without it.
        made = {(c.series, c.index) for series in all_series for c in appeared(series)}
        latest = [c for c in changes if (c.series, c.index) in made]
        for change in changes:  # one measurement can be disturbed: the latest run's is a suspicion until re-measured
            out.line(change.line() + ("; made by the latest run: unconfirmed until re-measured"
                                      if change in latest else ""))
        out.line(f"{len(changes)} change point(s) in {len(all_series)} series"
                 + (f"; {len(latest)} made by the latest run, unconfirmed until re-measured (signoff --baseline "
                    "history:BRANCH measures a suspect again and fails only when the re-measurement agrees)"
                    if latest else ""))
        return 1 if latest else 0
    show_table(all_series, changes, out)
    if settings.out is not None:
        written = write_html(all_series, changes, Path(settings.out) / "history.html", store=name)
        out.note(f"wrote {written}")
    return 0


def _export(settings: Settings, items: list[str]) -> int:
    if len(items) != 1 or items[0] not in FORMATS:
        raise ConfigError(f"history export: give one format, one of {' | '.join(FORMATS)}")
    rows, _ = _rows(settings, [])
    print_document(render(rows, items[0]))
    return 0
