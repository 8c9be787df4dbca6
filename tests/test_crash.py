"""Crash battery: SIGINT and SIGKILL at every stage of a run on every backend, SIGTERM at every stage on one.

Each run is stopped *at* its stage deterministically: ``chatbench.faults.checkpoint`` makes the run
write a file when it gets there and wait; the test then sends the signal. The stages: provisioning,
COPY (mid-load), the index build, the cache save (a half-made snapshot or template exists), a sign-off's
migration stage (``--migration``: app clients loading a clone while the migration starts),
verification (drift), benchmarks and report writing (the new set staged, not yet in place).

- after SIGINT or SIGTERM: the run exits 130 / 143 and nothing is left: no cluster, owner record,
  process (the rehearsal's app clients included), container, database, half-made cache entry or
  staging folder;
- after SIGKILL: ``chatbench clean`` (``--dsn`` for the DSN server) leaves nothing;
- the next run never reuses half-made data: a seed of a spec whose cache save was killed seeds afresh
  and its integrity check passes, and a sign-off into the killed run's --out passes its integrity
  stage and leaves no staging folder.

SIGTERM is sent on the local backend only: the CLI turns it into SystemExit where Ctrl-C raises
KeyboardInterrupt (``terminate_as_exit``), and no backend's teardown tells the two apart (both unwind
through the same ``finally`` blocks), so repeating it on the container and DSN backends cost 16 more runs
and a minute of CI for nothing the SIGINT runs do not already show there.

All runs of a backend (8 stages x its signals) start together and wait at their stages, each signal's
group in its own run and cache directory, so a backend takes about as long as its slowest stage.
Smoke profile, few rounds.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from commandline import CommandProcess, chatbench, start
from dsn_server import DsnServer

from chatbench.faults import REPORT_DIR, STOP_AT

# No xdist group: the three batteries run on both workers. A "crash" group serialised them on one worker once
# pytest-xdist#1386's workaround made groups work again (+260 s of CI wall time); two batteries at once had
# passed every CI run before, when the group was silently ignored.
pytestmark = [pytest.mark.crash]
SIGNALS = {"SIGINT": (signal.SIGINT, 130), "SIGTERM": (signal.SIGTERM, 128 + signal.SIGTERM),
           "SIGKILL": (signal.SIGKILL, -signal.SIGKILL)}
SIGTERM_BACKENDS = ("local",)
"""The backends whose battery sends SIGTERM too (see the module's docstring)."""


def _signals(backend: str) -> tuple[str, ...]:
    return tuple(name for name in SIGNALS if name != "SIGTERM" or backend in SIGTERM_BACKENDS)
REACH_TIMEOUT = 300.0
SIGNOFF = ("signoff", "--profile", "smoke", "--scaling", "none", "--rounds", "20", "--warmup", "2")
MIGRATION_FILE = "migration.sql"
MIGRATION_SQL = "SET lock_timeout = '2s';\nCREATE INDEX CONCURRENTLY ix_messages_crash ON messages (user_id);\n"
"""The migration of the migration stage's runs, written into the run's working directory by ``_start``."""


@dataclass
class Run:
    stage: str
    proc: CommandProcess
    faults: Path
    log: Path
    out: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@dataclass(frozen=True)
class Place:
    """Where one crash battery keeps everything (private to it) and which server options it passes."""

    root: Path
    run_dir: Path
    cache_dir: Path
    backend_args: tuple[str, ...]
    dsn: DsnServer | None

    def env(self) -> dict[str, str]:
        return {**os.environ, "CHATBENCH_RUN_DIR": str(self.run_dir), "CHATBENCH_CACHE_DIR": str(self.cache_dir),
                "COLUMNS": "80"}


def _argv(stage: str, seed: int) -> tuple[str, ...]:
    """The command that reaches ``stage``: a seed for the seeding stages, a sign-off for the others."""
    if stage in ("seed.copy.rows", "seed.indexes"):
        return ("seed", "--profile", "smoke", "--no-cache")
    if stage == "seed.cache_save":
        return ("seed", "--profile", "smoke", "--seed", str(seed))  # a spec nobody cached: a cold seed, then save
    if stage == "provision":
        return ("seed", "--profile", "smoke")
    if stage == "rehearse.migrate":  # a sign-off's migration stage: live load, lock sampler, the clone migrating
        return ("signoff", "--profile", "smoke", "--scaling", "none", "--rounds", "20", "--warmup", "2",
                "--migration", MIGRATION_FILE, "--baseline-seconds", "0.2")
    return SIGNOFF


def _start(place: Place, stage: str, name: str, argv: tuple[str, ...]) -> Run:
    folder = place.root / name
    faults, out = folder / "faults", folder / "out"
    faults.mkdir(parents=True)
    if MIGRATION_FILE in argv:
        (folder / MIGRATION_FILE).write_text(MIGRATION_SQL)
    log = folder / "log.txt"
    extra = ("--out", str(out)) if argv[0] == "signoff" else ()
    with open(log, "wb") as handle:
        proc = start(*argv, *place.backend_args, *extra, output=handle, cwd=folder,
                     env={**place.env(), STOP_AT: stage, REPORT_DIR: str(faults)})
    return Run(stage, proc, faults, log, out)


def _seed_cache(place: Place) -> tuple[CommandProcess, Path]:
    """A seed of the smoke profile started into the place's cache, and its log."""
    place.root.mkdir(parents=True, exist_ok=True)
    log = place.root / "seed-cache.log"
    with open(log, "wb") as handle:
        return start("seed", "--profile", "smoke", *place.backend_args, output=handle, env=place.env(),
                     cwd=place.root), log


def _wait_reached(run: Run) -> None:
    deadline = time.monotonic() + REACH_TIMEOUT
    while not any(run.faults.iterdir()):
        if run.proc.poll() is not None:
            pytest.fail(f"{run.stage}: the run ended (exit {run.proc.returncode}) before its stage:\n{run.output()}")
        if time.monotonic() > deadline:
            run.proc.kill()
            pytest.fail(f"{run.stage}: not reached in {REACH_TIMEOUT:.0f} s:\n{run.output()}")
        time.sleep(0.05)


def _cli(place: Place, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return chatbench(*argv, env=place.env(), cwd=place.root, timeout=timeout)


def _processes_of(run_dir: Path, runs: list[Run]) -> list[str]:
    """Live processes started for this battery's runs: their environment names its run directory, or they are
    in a run's process group (a run forked from the tests' warm interpreter has a group of its own, and what it
    forks without an exec shows the warm interpreter's environment)."""
    marker = f"CHATBENCH_RUN_DIR={run_dir}".encode()
    groups = {str(run.proc.pid) for run in runs}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state, _parent, group = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
            if state != "Z" and (group in groups or marker in (entry / "environ").read_bytes().split(b"\0")):
                found.append(f"{entry.name}: {(entry / 'cmdline').read_bytes()[:120]!r}")
        except OSError:
            continue
    return found


def _containers_of(run_dir: Path) -> list[str]:
    from chatbench.provision.container import LABEL_LEASE, LABEL_MANAGED, docker_available, docker_client

    if not docker_available():
        return []
    client = docker_client()
    try:
        return [c.name for c in client.containers.list(all=True, filters={"label": f"{LABEL_MANAGED}=true"})
                if str(c.labels.get(LABEL_LEASE, "")).startswith(str(run_dir))]
    finally:
        client.close()


def _leftovers(place: Place, runs: list[Run], baseline_databases: set[str]) -> list[str]:
    """Everything a run could leave behind, described; empty when nothing is left."""
    left = [f"run dir: {p.name}" for p in place.run_dir.iterdir()] if place.run_dir.exists() else []
    seeds = place.cache_dir / "seeds"
    left += [f"cache: {p.name}" for p in seeds.glob("*.partial-*")] if seeds.exists() else []
    left += [f"process {p}" for p in _processes_of(place.run_dir, runs)]
    left += [f"container {c}" for c in _containers_of(place.run_dir)]
    if place.dsn is not None:
        left += [f"database {d}" for d in _databases_of(place, baseline_databases)]
    for run in runs:
        if run.out.exists():
            names = {p.name for p in run.out.iterdir()}
            left += [f"--out {run.out.parent.name}: {n}" for n in names if n.startswith(".chatbench-staging")]
            if names & {"signoff.md", "signoff.html", "signoff.json"} and len(names) != 4:
                left += [f"--out {run.out.parent.name}: a partial set {sorted(names)}"]
    return left


def _databases_of(place: Place, baseline: set[str]) -> list[str]:
    """Databases on the DSN server that this place's runs made (their owner tag names its run dir)."""
    import psycopg

    from chatbench.provision.owner import OwnerTag

    assert place.dsn is not None
    with psycopg.connect(place.dsn.admin.admin_conninfo(), autocommit=True) as conn:
        rows = conn.execute("SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database").fetchall()
    mine = []
    for name, comment in rows:
        if name in baseline or _complete_template(name):
            continue
        tag = OwnerTag.parse(comment)
        if tag is None or tag.lease.startswith(str(place.run_dir)):  # untagged: nobody's yet, so anybody's
            mine.append(str(name))
    return sorted(mine)


def _complete_template(name: str) -> bool:
    import re

    return re.fullmatch(r"cbtpl_[0-9a-f]{16}", name) is not None  # a finished cache entry is the cache


def _wait_until_clean(place: Place, runs: list[Run], baseline: set[str], timeout: float = 30.0) -> list[str]:
    """Leftovers after teardown has had its moment (a killed server takes a few ms to go)."""
    deadline = time.monotonic() + timeout
    while True:
        left = _leftovers(place, runs, baseline)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _place(tmp_root: Path, backend: str, dsn: DsnServer | None) -> Place:
    from chatbench.provision.paths import cache_root, run_root

    token = secrets.token_hex(3)
    # Both must be reachable by the OS user that runs PostgreSQL (not pytest's private tmp_path).
    run_dir, cache_dir = run_root() / f"crash-{backend}-{token}", cache_root() / f"crash-{backend}-{token}"
    args = {"local": ("--backend", "local"), "container": ("--backend", "container"),
            "dsn": ("--backend", "dsn", "--dsn", dsn.dsn if dsn else "")}[backend]
    return Place(tmp_root, run_dir, cache_dir, args, dsn)


@pytest.mark.parametrize("backend", ["local", pytest.param("container", marks=pytest.mark.container), "dsn"])
def test_signals_at_every_stage_leave_nothing(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """One group of runs per signal, each with its own run and cache directory, all at once."""
    from chatbench.faults import STAGES

    dsn = request.getfixturevalue("dsn") if backend == "dsn" else None
    places = {name: _place(tmp_path / name, backend, dsn) for name in _signals(backend)}
    started: list[Run] = []  # every run this battery started, so a failure midway stops them all
    try:
        warming = [_seed_cache(place) for place in places.values() if backend != "container"]  # a container's
        for proc, log in warming:  # cache dies with it; elsewhere this is the cache the sign-off runs hit
            assert proc.wait(timeout=300) == 0, log.read_text(errors="replace")[-3000:]
        baseline = dsn.databases() if dsn is not None else set()
        seeds = {name: 1000 + number for number, name in enumerate(SIGNALS)}
        # On one DSN server a run paused mid-COPY holds a backend in COPY FROM STDIN, which does not absorb
        # ProcSignalBarriers (PostgreSQL 15+): every DROP DATABASE there waits for it. So those runs start
        # once the others have reached their stages (creating and dropping their databases on the way).
        late = ("seed.copy.rows",) if backend == "dsn" else ()
        runs: dict[str, list[Run]] = {name: [] for name in places}
        for wave in ([s for s in STAGES if s not in late], list(late)):
            wave_runs = [(name, _start(place, stage, f"{name}-{stage}", _argv(stage, seeds[name])))
                         for name, place in places.items() for stage in wave]
            started += [run for _, run in wave_runs]
            for name, run in wave_runs:
                _wait_reached(run)
                runs[name].append(run)
        for name, group in runs.items():
            for run in group:
                run.proc.send_signal(SIGNALS[name][0])
        for name, group in runs.items():
            for run in group:
                code = run.proc.wait(timeout=120)
                assert code == SIGNALS[name][1], f"{name} at {run.stage}: exit {code}\n{run.output()}"
                if name != "SIGKILL":
                    assert "Traceback" not in run.output(), f"{name} at {run.stage}:\n{run.output()}"
        for name in (n for n in places if n != "SIGKILL"):
            left = _wait_until_clean(places[name], runs[name], baseline)
            assert not left, f"after {name}: {left}"
        killed = places["SIGKILL"]
        assert _leftovers(killed, runs["SIGKILL"], baseline), "SIGKILL left nothing: were the stages reached?"
        clean = _cli(killed, "clean", *(("--dsn", dsn.dsn) if dsn is not None else ()))
        assert clean.returncode == 0, clean.stderr
        left = _wait_until_clean(killed, runs["SIGKILL"], baseline)
        assert not left, f"after SIGKILL and chatbench clean: {left}"
        if backend != "container":  # a container's cache dies with it: nothing half-made can outlive it
            _next_run_uses_nothing_half_made(killed, seeds["SIGKILL"], baseline,
                                             next(r.out for r in runs["SIGKILL"] if r.stage == "report.write"),
                                             signoff=backend == "local")
    finally:
        _stop_all(started)
        for place in places.values():
            _cli(place, "clean", *(("--dsn", dsn.dsn) if dsn is not None else ()))
            shutil.rmtree(place.run_dir, ignore_errors=True)
            shutil.rmtree(place.cache_dir, ignore_errors=True)


def _stop_all(runs: list[Run]) -> None:
    """A run still paused at its stage when the battery failed is killed: it would wait there, holding its
    server, for the rest of the session (and a rerun would start 24 more beside it)."""
    for run in runs:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait(timeout=60)


def _next_run_uses_nothing_half_made(place: Place, seed: int, baseline: set[str], killed_out: Path, *,
                                     signoff: bool) -> None:
    """The seed whose cache save was killed is seeded afresh (and verified); a sign-off into the killed
    run's --out passes its integrity stage and leaves no staging folder."""
    again = _cli(place, "seed", "--profile", "smoke", "--seed", str(seed), *place.backend_args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "seeded smoke" in again.stderr and "restored" not in again.stderr
    if signoff:
        done = _cli(place, *SIGNOFF, "--out", str(killed_out), *place.backend_args)
        report = json.loads((killed_out / "signoff.json").read_text())
        integrity = [s for t in report["targets"] for s in t["stages"] if s["stage"] == "integrity"]
        assert integrity and all(s["status"] == "ok" for s in integrity), done.stderr[-2000:]
        assert not [p for p in killed_out.iterdir() if p.name.startswith(".chatbench-staging")]
    assert not _wait_until_clean(place, [], baseline)
