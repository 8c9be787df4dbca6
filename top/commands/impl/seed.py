"""What ``chatbench seed`` does when it runs.

Its interface (options, help, description) is ``chatbench.commands.seed``, which ``--help`` reads
without importing this module and the stack it needs (``chatbench.commands.impl``)."""

from __future__ import annotations

import argparse
import time
import tomllib
from typing import TYPE_CHECKING

from rich.table import Table

from chatbench import loadgen
from chatbench.commands._common import out, require_writable, server_from
from chatbench.commands.appqueries import role_map
from chatbench.commands.schema_choice import schema_choice
from chatbench.loadgen.size import check_space
from chatbench.settings import Settings

if TYPE_CHECKING:
    from chatbench.loadgen import SeedResult


def _overrides(pairs: tuple[str, ...]) -> dict[str, object]:
    """``FIELD=VALUE`` pairs (checked for shape by the settings) with TOML-typed values."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw.strip()  # a bare string
    return out


def run(settings: Settings, args: argparse.Namespace) -> int:
    spec = loadgen.load_spec(settings.profile, settings.spec, _overrides(settings.set))
    package = schema_choice(settings).package  # --models imported and checked before any server starts
    roles = role_map()  # [tool.chatbench.map]: the --models tables that take the history (a bad map: exit 2 here)
    require_writable(settings, "seeding replaces every table")
    backend = "dsn" if settings.dsn is not None and settings.backend in ("auto", "dsn") else settings.backend
    placement = check_space(spec, backend=backend, use_cache=settings.cache)  # before any server starts
    if placement.note:
        out.note(placement.note)
    with server_from(settings, run_dir=placement.run_dir) as server:
        started = time.perf_counter()
        result = loadgen.seed(server, spec, seed=settings.seed, workers=settings.workers, order=settings.order,
                              use_cache=settings.cache, progress=True, package=package, roles=roles)
        wall = time.perf_counter() - started
        out.table(summary_table(result, wall), summary_lines(result, wall))
        source = f"restored from the cache ({result.extra.get('cache', 'cache')})" if result.from_cache else "seeded"
        out.line(f"{source} {spec.name} (seed {result.seed}) into {server.display_url} in {wall:.2f} s")
        out.line(f"checksum {result.checksum}   cache key {result.cache_key}")
        out.line(f"order {result.order}: pg_stats.correlation(messages.created_at) = "
                 f"{result.created_at_correlation:.4f}")
        whales = ", ".join(f"{w.conversation_id} ({w.messages})" for w in result.params.whales[:5])
        out.line(f"whales (id, messages): {whales}; tie cursors: {len(result.params.tie_cursors)}")
        print(result.checksum)
    return 0


def summary_table(result: SeedResult, wall: float) -> Table:
    rows = sum(result.counts.values())
    table = Table(title=f"seed {result.profile}", title_justify="left")
    table.add_column("table / phase")
    table.add_column("rows", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("rows/s", justify="right")
    for name, count in result.counts.items():
        table.add_row(name, f"{count:,}", "", "")
    for phase, seconds in result.timings.items():
        rate = f"{result.counts.get('messages', 0) / seconds:,.0f}" if phase == "copy" and seconds else ""
        table.add_row(f"[dim]{phase}[/dim]", "", f"{seconds:.3f}", rate)
    table.add_row("[bold]total[/bold]", f"{rows:,}", f"{wall:.3f}", f"{rows / wall:,.0f}" if wall else "")
    return table


def summary_lines(result: SeedResult, wall: float) -> list[str]:
    """The summary table in a log: a line per table, per phase, and the total."""
    rows = sum(result.counts.values())
    lines = [f"table {name}: {count:,} rows" for name, count in result.counts.items()]
    for phase, seconds in result.timings.items():
        rate = f", {result.counts.get('messages', 0) / seconds:,.0f} rows/s" if phase == "copy" and seconds else ""
        lines.append(f"phase {phase}: {seconds:.3f} s{rate}")
    lines.append(f"total: {rows:,} rows in {wall:.3f} s" + (f", {rows / wall:,.0f} rows/s" if wall else ""))
    return lines
