"""Benchmark (not a test): time from ``provision(backend)`` to a ready connection, median of N.

python -m chatbench.provision.bench [--runs 10] [--backend local container]
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg
from rich.console import Console
from rich.table import Table

from chatbench.errors import ChatbenchError
from chatbench.provision import provision


def time_to_ready(backend: str, pg_bin: str | None) -> tuple[float, float]:
    """Seconds until a fresh connection answers, and seconds for the whole teardown."""
    start = time.perf_counter()
    with provision(backend, pg_bin=pg_bin, announce=lambda _: None) as server:
        with psycopg.connect(server.conninfo()) as conn:
            conn.execute("SELECT 1")
        ready = time.perf_counter() - start
        stop_start = time.perf_counter()
    return ready, time.perf_counter() - stop_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--backend", nargs="+", default=["local", "container"])
    parser.add_argument("--pg-bin", default=None)
    args = parser.parse_args()
    console = Console()
    table = Table(title=f"provision() to a ready connection, {args.runs} runs")
    for column in ("backend", "median s", "min s", "max s", "teardown median s"):
        table.add_column(column, justify="right" if column != "backend" else "left")
    for backend in args.backend:
        try:
            time_to_ready(backend, args.pg_bin)  # warm-up: pristine data dir, image, Ryuk
            samples = [time_to_ready(backend, args.pg_bin) for _ in range(args.runs)]
        except ChatbenchError as exc:
            console.print(f"{backend}: skipped: {exc}")
            continue
        ready = [s[0] for s in samples]
        table.add_row(
            backend,
            f"{statistics.median(ready):.3f}",
            f"{min(ready):.3f}",
            f"{max(ready):.3f}",
            f"{statistics.median(s[1] for s in samples):.3f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
