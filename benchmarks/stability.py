"""How stable is the sign-off's verdict on a busy machine? ``python -m chatbench.benchmarks.stability``.

A benchmark of the verdict itself, not a test (it prints counts; nothing asserts on a timing). It runs
real ``chatbench signoff`` processes (local backend, loopback only) in phases and counts verdicts:

- ``baseline``: one sign-off of the unchanged canonical schema with no CPU hog: the quiet baseline
  the other phases compare with (``--baseline``). Run it when the machine is quiet (``uptime``).
- ``quiet``: N sign-offs of the unchanged schema, no hog: they should all PASS.
- ``hog``: N sign-offs of the unchanged schema with a CPU hog on every core, against the quiet
  baseline: a FAIL here is a false FAIL (PASS or INCONCLUSIVE are the right answers).
- ``slow``: N sign-offs under the hog of a schema whose append trigger function burns as much CPU
  (a plpgsql loop, no ``pg_sleep``) as an append costs: ``append_message`` about 2x slower, plans and
  buffers unchanged. Counted as detected when the latency evidence itself names ``append_message``
  (a failing ``benchmarks`` or ``compare`` line); the changed function body is also a drift
  finding (the verifier compares trigger function bodies), so the sign-off FAILs anyway; both counts
  are printed.
- ``broken``: N sign-offs under the hog of a schema without the history index
  (``ix_messages_conversation_id_created_at_id``): plans and buffers break; must FAIL every time.

The hog is one busy-looping process per core, pinned to it, started and stopped by this benchmark:
it stops when the benchmark ends, on Ctrl-C, and by itself when the benchmark process is gone or
its time limit passes. Each sign-off is a child process; on Ctrl-C it gets the interrupt too, and is
waited for so its teardown completes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from chatbench.provision import provision, terminate_as_exit
from chatbench.schema import ddl

PHASES = ("baseline", "quiet", "hog", "slow", "broken")
COMPARED_PHASES = ("hog", "slow", "broken")
"""The phases run under the CPU hog and judged against the quiet baseline's sign-off (``--baseline``, or the
baseline phase's)."""
HISTORY_INDEX = "ix_messages_conversation_id_created_at_id"
TRIGGER_FUNCTION = "chatbench_touch_conversation_on_message"
HOG_LIMIT_S = 4 * 3600.0
"""A hog process stops by itself after this long, whatever happens to the benchmark."""


# --- the CPU hog ---------------------------------------------------------------------------------


HOG_SIGNALS = {signal.SIGINT, signal.SIGTERM}
"""Blocked while a hog process is forked, until it has set its own dispositions (``cpu_hog``)."""


def _spin(cpu: int, parent: int, limit_s: float) -> None:
    """Busy-loop on ``cpu`` until the parent is gone or ``limit_s`` passed (runs in a child process).

    It starts with ``HOG_SIGNALS`` blocked (``cpu_hog``): it ignores Ctrl-C (the benchmark stops it), and SIGTERM
    (``terminate``) ends it at once, as the kernel's default, before any Python handler inherited from the
    benchmark (``terminate_as_exit``) could turn it into an exception the fork's own start-up swallows."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HOG_SIGNALS)  # a signal sent meanwhile is handled here, as set
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {cpu})
    deadline = time.monotonic() + limit_s
    value = 0
    while True:
        for step in range(200_000):
            value = (value + step * step) % 1_000_003
        if time.monotonic() > deadline or os.getppid() != parent:
            return


@contextlib.contextmanager
def cpu_hog(limit_s: float = HOG_LIMIT_S) -> Iterator[list[multiprocessing.process.BaseProcess]]:
    """One busy process per core this process may use, pinned; always stopped on exit (SIGTERM, SIGKILL after
    5 s). Yields the processes.

    Each is forked with ``HOG_SIGNALS`` blocked: a child inherits the benchmark's Python handlers, and a SIGTERM
    that reached one while the fork was still running its at-fork hooks raised ``SystemExit`` there, which
    Python reports as ignored: the hog then spun on its core until the kill (the test suite's hog, stopped as it
    started, did; docs/design.md)."""
    cpus = sorted(os.sched_getaffinity(0))
    context = multiprocessing.get_context("fork")
    processes: list[multiprocessing.process.BaseProcess] = [
        context.Process(target=_spin, args=(cpu, os.getpid(), limit_s), daemon=True) for cpu in cpus]
    try:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, HOG_SIGNALS)
        try:
            for process in processes:
                process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        yield processes
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)


# --- the schemas --------------------------------------------------------------------------------


def slow_append_ddl(iterations: int) -> str:
    """The canonical DDL with the append trigger function burning ``iterations`` loop steps of CPU first."""
    text = ddl()
    head = f"CREATE FUNCTION {TRIGGER_FUNCTION}() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n"
    if head not in text:
        raise SystemExit(f"stability: the canonical DDL has no {TRIGGER_FUNCTION} in the expected form")
    burn = (f"CREATE FUNCTION {TRIGGER_FUNCTION}() RETURNS trigger\nLANGUAGE plpgsql AS $$\n"
            f"DECLARE burned bigint := 0;\nBEGIN\n    FOR step IN 1..{iterations} LOOP burned := burned + step; "
            "END LOOP;\n")
    return text.replace(head, burn, 1)


def broken_ddl() -> str:
    """The canonical DDL without the history index: plans turn into sorts and scans, buffers multiply."""
    return "\n".join(line for line in ddl().splitlines() if HISTORY_INDEX not in line) + "\n"


def loop_step_ns() -> float:
    """What one step of the trigger's plpgsql loop costs on this machine (backend CPU, ns), measured once."""
    with (provision("local", announce=lambda _m: None) as server,
          psycopg.connect(server.conninfo(), autocommit=True) as conn):
        conn.execute("CREATE FUNCTION pg_temp.burn(n int) RETURNS bigint LANGUAGE plpgsql AS $$ "
                     "DECLARE burned bigint := 0; BEGIN FOR step IN 1..n LOOP burned := burned + step; END LOOP; "
                     "RETURN burned; END $$")
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        best = float("inf")
        for _ in range(5):
            before = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
            conn.execute("SELECT pg_temp.burn(2000000)")
            best = min(best, (int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) - before) / 2_000_000)
        return best


# --- running sign-offs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One sign-off's verdict and what it named."""

    phase: str
    index: int
    verdict: str
    exit_code: int
    seconds: float
    load: float
    failing: tuple[str, ...]
    inconclusive: tuple[str, ...]
    append_cpu_p50_ms: float | None = None

    def names(self, scenario: str, stages: tuple[str, ...]) -> bool:
        """A failing line of one of ``stages`` names ``scenario``."""
        return any(line.split(":", 1)[0] in stages and scenario in line for line in self.failing)


@dataclass
class Phase:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(o.verdict == verdict for o in self.outcomes)


def run_signoff(args: Sequence[str], out: Path, log: Path) -> tuple[int, dict[str, Any] | None]:
    """One ``chatbench signoff`` child; its report, or None when it wrote none. Ctrl-C: wait for its teardown."""
    # -P: a folder named chatbench in the working directory (a checkout of chatbench) is not what runs
    command = [sys.executable, "-P", "-m", "chatbench", "signoff", *args, "--out", str(out)]
    with log.open("w") as handle:
        child = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        try:
            code = child.wait()
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM turned into SystemExit (see main)
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGINT)  # it may not have had the terminal's Ctrl-C
            try:
                child.wait(timeout=120)
            except subprocess.TimeoutExpired:
                child.terminate()
                child.wait(timeout=30)
            raise
    report = out / "signoff.json"
    return code, (json.loads(report.read_text()) if report.is_file() else None)


def _append_cpu_p50(report: dict[str, Any] | None) -> float | None:
    if not report:
        return None
    for target in report.get("targets", ()):
        for scenario in (target.get("benchmark") or {}).get("scenarios", ()):
            if scenario["scenario"] == "append_message" and scenario.get("cpu_ms"):
                return float(np.median(scenario["cpu_ms"]))
    return None


def signoffs(phase: Phase, runs: int, args: Sequence[str], work: Path) -> None:
    for index in range(1, runs + 1):
        out = work / f"{phase.name}-{index:02d}"
        load = os.getloadavg()[0]
        started = time.perf_counter()
        code, report = run_signoff(args, out, work / f"{phase.name}-{index:02d}.log")
        verdict = report["verdict"] if report else f"no report (exit {code})"
        outcome = Outcome(phase.name, index, verdict, code, time.perf_counter() - started, load,
                          tuple(report.get("failing", ())) if report else (),
                          tuple(report.get("inconclusive", ())) if report else (), _append_cpu_p50(report))
        phase.outcomes.append(outcome)
        print(f"  {phase.name} {index:>2}/{runs}: {verdict:<12} exit {code}  {outcome.seconds:5.1f} s  "
              f"load {load:.2f}  {len(outcome.failing)} failing, {len(outcome.inconclusive)} undecided", flush=True)


# --- the benchmark ------------------------------------------------------------------------------


def summary(phases: Sequence[Phase], baseline_append: float | None) -> list[str]:
    lines = [f"{'phase':<9}{'runs':>5}{'PASS':>6}{'INCONCL':>9}{'FAIL':>6}{'ERROR':>7}  counts"]
    for phase in phases:
        runs = len(phase.outcomes)
        counts = (f"{phase.name:<9}{runs:>5}{phase.count('PASS'):>6}{phase.count('INCONCLUSIVE'):>9}"
                  f"{phase.count('FAIL'):>6}{phase.count('ERROR'):>7}  ")
        if phase.name == "hog":
            counts += f"false FAIL: {phase.count('FAIL')} of {runs}"
        elif phase.name == "quiet":
            counts += f"PASS: {phase.count('PASS')} of {runs}"
        elif phase.name == "slow":
            latency = sum(o.names("append_message", ("benchmarks", "compare")) for o in phase.outcomes)
            ratios = [o.append_cpu_p50_ms / baseline_append for o in phase.outcomes
                      if o.append_cpu_p50_ms and baseline_append]
            measured = f"; append CPU p50 {min(ratios):.2f}x-{max(ratios):.2f}x the baseline's" if ratios else ""
            counts += (f"detected by the latency evidence (benchmarks/compare name append_message): {latency} of "
                       f"{runs}; sign-off FAIL (any reason, drift included): {phase.count('FAIL')} of {runs}"
                       f"{measured}")
        elif phase.name == "broken":
            plans = sum(o.names("", ("plans",)) or o.names("buffers", ("benchmarks",)) for o in phase.outcomes)
            counts += (f"FAIL: {phase.count('FAIL')} of {runs}; plans or buffers named in the failing lines: "
                       f"{plans} of {runs}")
        lines.append(counts)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatbench.benchmarks.stability", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="sign-offs per phase (default 10)")
    parser.add_argument("--profile", default="ci", help="data profile of every sign-off (default ci)")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"comma-separated, in order, from {', '.join(PHASES)} (default: all)")
    parser.add_argument("--work", type=Path, default=Path("out/stability"),
                        help="folder for every sign-off's reports and log (default out/stability)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a quiet signoff.json to compare with (default: the baseline phase's, in --work)")
    parser.add_argument("--signoff-args", default="",
                        help="more arguments for every sign-off, e.g. '--scaling none'")
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = [p for p in phases if p not in PHASES]
    if unknown or args.runs < 1:
        parser.error(f"--phases: unknown {', '.join(unknown)}" if unknown else "--runs must be at least 1")
    work: Path = args.work
    baseline = args.baseline if args.baseline is not None else work / "baseline-01" / "signoff.json"
    compared = [p for p in phases if p in COMPARED_PHASES]
    if compared and not baseline.is_file() and "baseline" not in phases[:phases.index(compared[0])]:
        # checked before anything is made or started
        parser.error(f"--phases {compared[0]} compares with a quiet baseline and {baseline} does not exist: "
                     f"put baseline before it in --phases, or pass --baseline FILE")
    work.mkdir(parents=True, exist_ok=True)
    common = ["--profile", args.profile, "--backend", "local", *shlex.split(args.signoff_args)]
    done: list[Phase] = []

    stack = contextlib.ExitStack()
    stack.enter_context(terminate_as_exit())  # SIGTERM/SIGHUP unwind like Ctrl-C: hog stopped, child waited for
    print(f"stability: {args.runs} sign-off(s) per phase, profile {args.profile}, phases {', '.join(phases)}; "
          f"{os.cpu_count()} CPUs; load average now {os.getloadavg()[0]:.2f}", flush=True)
    try:
        for name in phases:
            phase = Phase(name)
            done.append(phase)
            runs = 1 if name == "baseline" else args.runs
            if name in COMPARED_PHASES and not baseline.is_file():  # the baseline phase made none
                raise SystemExit(f"stability: phase {name} compares with a quiet baseline; run the baseline phase "
                                 f"first (or pass --baseline): {baseline} does not exist")
            against = ["--baseline", str(baseline)] if name in COMPARED_PHASES else []
            schema: list[str] = []
            if name == "slow":
                base_append = _append_cpu_p50(json.loads(baseline.read_text()))
                if base_append is None:
                    raise SystemExit(f"stability: {baseline} has no append_message CPU time to size the slowdown")
                step = loop_step_ns()
                iterations = max(1, round(base_append * 1e6 / step))
                path = work / "slow-append.sql"
                path.write_text(slow_append_ddl(iterations))
                print(f"  slow: {iterations} loop steps of {step:.1f} ns in the append trigger = +{base_append:.3f} ms"
                      f" of CPU per append (the baseline's append CPU p50 is {base_append:.3f} ms): about 2x",
                      flush=True)
                schema = ["--schema-from", str(path)]
            elif name == "broken":
                path = work / "broken.sql"
                path.write_text(broken_ddl())
                schema = ["--schema-from", str(path)]
            hogged = name in COMPARED_PHASES
            hog: contextlib.AbstractContextManager[list[multiprocessing.process.BaseProcess]] = \
                cpu_hog() if hogged else contextlib.nullcontext([])
            with hog as hogs:
                print(f"phase {name}: {'a CPU hog on each of ' + str(len(hogs)) + ' cores' if hogged else 'no hog'}, "
                      f"load average {os.getloadavg()[0]:.2f}", flush=True)
                signoffs(phase, runs, [*common, *schema, *against], work)
    except KeyboardInterrupt:
        print("stability: interrupted; the hog is stopped and the running sign-off cleaned up", file=sys.stderr)
        return 130
    finally:
        stack.close()
    base_report = json.loads(baseline.read_text()) if baseline.is_file() else None
    print()
    for line in summary([p for p in done if p.name != "baseline"], _append_cpu_p50(base_report)):
        print(line)
    print(f"reports and logs: {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
