"""``chatbench seed``: fill a throwaway (or --dsn) database with a profile's chat history."""

from __future__ import annotations

import argparse
import time

from rich.table import Table

from chatbench.commands._common import console, server_from, settings_from

NAME = "seed"
HELP = "seed a database with deterministic chat history (profile or TOML spec) by binary COPY"
USES_SERVER = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from chatbench.loadgen import profiles

    parser.add_argument("--profile", default="smoke", help=f"named profile: {', '.join(profiles())} (default smoke)")
    parser.add_argument("--spec", metavar="FILE", help="a TOML spec file (instead of --profile)")
    parser.add_argument("--set", metavar="FIELD=VALUE", action="append", default=[],
                        help="override one spec field, e.g. --set messages.count=50000 (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes rendering rows for the one COPY stream (default: CPU count, max 4)")
    parser.add_argument("--order", choices=("time", "conversation"), default="time",
                        help="physical row order of messages (default time, as a live product writes them)")
    parser.add_argument("--no-cache", action="store_true", help="seed from scratch; neither read nor write the cache")


def _overrides(pairs: list[str]) -> dict[str, object]:
    import tomllib

    from chatbench.errors import ConfigError

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: use FIELD=VALUE, e.g. --set messages.count=50000")
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw.strip()  # a bare string
    return out


def run(args: argparse.Namespace) -> int:
    from chatbench import loadgen
    from chatbench.loadgen.size import check_space

    spec = loadgen.load_spec(args.profile, args.spec, _overrides(args.set))
    settings = settings_from(args)
    backend = "dsn" if settings.dsn is not None and settings.backend in ("auto", "dsn") else settings.backend
    placement = check_space(spec, backend=backend, use_cache=not args.no_cache)  # before any server starts
    if placement.note:
        console.print(f"[dim]{placement.note}[/dim]")
    with server_from(args, run_dir=placement.run_dir) as server:
        started = time.perf_counter()
        result = loadgen.seed(server, spec, seed=args.seed, workers=args.workers, order=args.order,
                              use_cache=not args.no_cache, progress=True)
        wall = time.perf_counter() - started
        console.print(summary_table(result, wall))
        source = f"restored from the cache ({result.extra.get('cache', 'cache')})" if result.from_cache else "seeded"
        console.print(f"{source} {spec.name} (seed {result.seed}) into {server.display_url} in {wall:.2f} s")
        console.print(f"checksum {result.checksum}   cache key {result.cache_key}")
        console.print(f"order {result.order}: pg_stats.correlation(messages.created_at) = "
                      f"{result.created_at_correlation:.4f}")
        whales = ", ".join(f"{w.conversation_id} ({w.messages})" for w in result.params.whales[:5])
        console.print(f"whales (id, messages): {whales}; tie cursors: {len(result.params.tie_cursors)}")
        print(result.checksum)
    return 0


def summary_table(result: object, wall: float) -> Table:
    from chatbench.loadgen import SeedResult

    assert isinstance(result, SeedResult)
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
