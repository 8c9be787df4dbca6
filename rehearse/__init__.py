"""Migration rehearsal: the measured cost of a release's migration on seeded volume, under live load.

``rehearse(server, plan) -> Rehearsal`` (``stage``) is the one call a pipeline makes: it runs the
migration at two data sizes while the app's canonical reads and appends run open loop, samples every
lock the migration holds or waits for and every app query it blocks, extrapolates the blocking time
to the production size, judges it against the budgets of ``targets.toml`` (``[rehearsal]``) and
verifies the schema the migration produced. Modules: ``statements`` (splitting a SQL file),
``runner`` (running it, or a command), ``sampler`` (``pg_locks``), ``appclient``/``launcher``/``appload`` (the
live load), ``applocks`` (the locks the app takes), ``analysis``, ``extrapolate``, ``rules`` +
``advice`` (verdict and safe rewrites), ``budgets``, ``result`` (the frozen model), ``bench``.

Importing the package stays light: the app clients' launcher imports ``appclient`` through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatbench.rehearse.result import Rehearsal
    from chatbench.rehearse.stage import RehearsalPlan, rehearse

__all__ = ["Rehearsal", "RehearsalPlan", "rehearse"]


def __getattr__(name: str) -> Any:
    # lazy: start-up; the app clients' launcher imports this package (appclient with psycopg 0.15 s, stage +1.9 s)
    if name == "Rehearsal":
        from chatbench.rehearse.result import Rehearsal

        return Rehearsal
    if name in ("RehearsalPlan", "rehearse"):
        from chatbench.rehearse import stage

        return getattr(stage, name)
    raise AttributeError(name)
