"""The seeded-snapshot cache under concurrency and crashes: runs never destroy each other's work.

A save's partial is named by its run (``<key>.partial-<run_id>-*``), whose owner record is locked for
the run's life; a save removes only its own partial, and ``chatbench clean`` removes partials whose
run is dead.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from commandline import chatbench, in_process, start

from chatbench import loadgen
from chatbench.loadgen.cache import generator_source_digest, snapshot_root, source_digest
from chatbench.provision import provision
from chatbench.provision.janitor import clean_snapshot_partials
from chatbench.provision.owner import GRACE_SECONDS, lease_path, lease_state
from chatbench.provision.paths import run_root

SMALL = ("--profile", "smoke", "--set", "messages.count=8000", "--set", "conversations.count=500")


def _env(run_dir: Path) -> dict[str, str]:
    return {"CHATBENCH_RUN_DIR": str(run_dir)}


def _holder(seeds: Path, key: str, run_dir: Path) -> tuple[subprocess.Popen[str], Path, str]:
    """Another process that holds a run's owner record in ``run_dir`` and makes that run's partial of
    ``key`` (as a save does), then stays alive; returns it, the partial and the run id."""
    run_id = secrets.token_hex(4)
    partial = seeds / f"{key}.partial-{run_id}-{secrets.token_hex(2)}"
    script = (
        "import sys, time, pathlib\n"
        "from chatbench.provision.owner import Lease\n"
        "Lease(sys.argv[1], pathlib.Path(sys.argv[2])).acquire()\n"
        "target = pathlib.Path(sys.argv[3])\n"
        "(target / 'data').mkdir(parents=True)\n"
        "(target / 'meta.json').write_text('{}')\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", script, run_id, str(run_dir), str(partial)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc, partial, run_id


def test_two_cold_seeds_of_one_spec_at_once_both_succeed_and_publish_one_entry(run_dir: Path) -> None:
    seed = str(10_000 + secrets.randbelow(10**6))  # a key nobody has cached
    with ThreadPoolExecutor(2) as pool:  # both at once, each to its end
        done = list(pool.map(lambda _: chatbench("seed", "--backend", "local", *SMALL, "--seed", seed,
                                                 env=_env(run_dir)), range(2)))
    key = ""
    try:
        for run in done:
            assert run.returncode == 0, run.stderr
            assert "Traceback" not in run.stderr and "not saved" not in run.stderr
            found = re.search(r"cache key ([0-9a-f]{16})", run.stderr)
            assert found is not None, run.stderr
            key = found.group(1)
        checksums = {run.stdout.strip() for run in done}
        assert len(checksums) == 1
        seeds = snapshot_root()
        mine = sorted(p.name for p in seeds.iterdir() if p.name.startswith(key))
        assert mine == [key], mine  # one entry; no partial, no owner record left behind
        assert json.loads((seeds / key / "meta.json").read_text())["checksum"] in checksums
        # The entry is valid: a third run restores it and its data passes the integrity check.
        spec = loadgen.load_spec("smoke", overrides={"messages.count": 8000, "conversations.count": 500})
        with provision("local", run_dir=run_dir, announce=lambda _: None) as server:
            hit = loadgen.seed(server, spec, seed=int(seed), progress=False)
            assert hit.from_cache and hit.checksum in checksums
            loadgen.check_integrity(server, spec, result=hit)
    finally:
        if key:
            shutil.rmtree(snapshot_root() / key, ignore_errors=True)


def test_a_save_leaves_another_live_runs_partial_alone(run_dir: Path) -> None:
    """The race that crashed one of two cold seeds: a save used to delete every partial of its key."""
    seed = 10_000 + secrets.randbelow(10**6)
    spec = loadgen.load_spec("smoke", overrides={"messages.count": 8000, "conversations.count": 500})
    with provision("local", run_dir=run_dir, announce=lambda _: None) as server:
        key = loadgen.cache_key(server, spec, seed, "time")
        seeds = snapshot_root()
        seeds.mkdir(parents=True, exist_ok=True)
        holder, theirs, run_id = _holder(seeds, key, run_root())
        try:
            result = loadgen.seed(server, spec, seed=seed, progress=False)
            assert result.extra["cache"] == "snapshot"
            assert (theirs / "meta.json").is_file()  # untouched
            assert lease_state(lease_path(run_id)) == "alive"
            assert theirs.name not in [r.name for r in clean_snapshot_partials()] and theirs.exists()
        finally:
            holder.kill()
            holder.wait(timeout=10)
            shutil.rmtree(seeds / key, ignore_errors=True)
        assert lease_state(lease_path(run_id)) == "dead"
        assert theirs.name in [r.name for r in clean_snapshot_partials()]
        assert not theirs.exists()
        lease_path(run_id).unlink(missing_ok=True)


def test_clean_removes_a_dead_runs_partial_and_keeps_a_live_one(run_dir: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # A cache of its own: a `chatbench clean` of another test (another xdist worker) would otherwise remove the
    # stale partial first, and this clean would not name it.
    cache = tmp_path / "cache"
    seeds = cache / "seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    (living, live, _), (dying, dead, _) = _holder(seeds, secrets.token_hex(8), run_dir), \
        _holder(seeds, secrets.token_hex(8), run_dir)
    stale = seeds / f"{secrets.token_hex(8)}.partial-{secrets.token_hex(4)}"  # no run's record
    fresh = seeds / f"{secrets.token_hex(8)}.partial-{secrets.token_hex(4)}"
    for orphan in (stale, fresh):
        (orphan / "data").mkdir(parents=True)
    old = time.time() - GRACE_SECONDS - 60
    os.utime(stale, (old, old))
    try:
        dying.send_signal(signal.SIGKILL)  # a run killed while saving its snapshot
        dying.wait(timeout=10)
        assert dead.exists()
        monkeypatch.setenv("CHATBENCH_RUN_DIR", str(run_dir))
        monkeypatch.setenv("CHATBENCH_CACHE_DIR", str(cache))
        done = in_process(capsys, "clean")
        assert done.returncode == 0, done.stderr
        assert dead.name in done.stderr and stale.name in done.stderr
        assert not dead.exists() and not stale.exists()
        assert live.exists()  # its run is alive: never touched
        assert fresh.exists()  # no record but young: maybe a run of an older version still saving
    finally:
        living.kill()
        living.wait(timeout=10)
        for path in (live, dead, stale, fresh):
            shutil.rmtree(path, ignore_errors=True)


def test_a_killed_seeds_skeleton_is_removed_by_clean(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The spilled message skeleton is owned like a report set's staging folder: SIGKILL the seed while
    it copies and ``chatbench clean`` removes the skeleton (and its owner record)."""
    from chatbench.provision.owner import STAGING_PREFIX

    env = {**_env(run_dir), "CHATBENCH_FAULT_STOP_AT": "seed.copy.rows", "CHATBENCH_FAULT_DIR": str(tmp_path)}
    run_dir.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "seed.log"
    with log.open("wb") as output:
        proc = start("seed", "--backend", "local", *SMALL, "--no-cache", output=output, env=env)
    try:
        deadline = time.monotonic() + 120
        while not list(run_dir.rglob(f"{STAGING_PREFIX}skeleton-*")) and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text(errors="replace")
            time.sleep(0.05)
        skeletons = list(run_dir.rglob(f"{STAGING_PREFIX}skeleton-*"))
        assert skeletons
    finally:
        proc.kill()
        proc.wait(timeout=30)
    monkeypatch.setenv("CHATBENCH_RUN_DIR", str(run_dir))
    done = in_process(capsys, "clean")
    assert done.returncode == 0, done.stderr
    assert not list(run_dir.rglob(f"{STAGING_PREFIX}skeleton-*")), done.stderr
    assert not list(run_dir.glob("run-*.owner")), done.stderr


def test_the_janitor_parses_the_names_the_cache_builds() -> None:
    """One definition (``chatbench.provision.cache_names``): what a save names, clean recognises as its run's."""
    from chatbench.provision import cache_names
    from chatbench.provision.janitor import RUN_DATABASE

    key, run_id = secrets.token_hex(8), secrets.token_hex(4)
    partial = cache_names.snapshot_partial(key, run_id)
    assert Path(partial).match(cache_names.PARTIAL_GLOB) and cache_names.snapshot_partial_run(partial) == run_id
    assert cache_names.snapshot_partial_run(f"{key}.partial-0000") == ""  # an older name: no run id
    assert RUN_DATABASE.match(cache_names.template_partial(key))  # half-made: a run's, dropped once it is dead
    assert not RUN_DATABASE.match(cache_names.template_database(key))  # published: the cache's, kept
    assert cache_names.TEMPLATE.match(cache_names.template_database(key))


def test_a_change_to_the_generators_code_changes_the_key(tmp_path: Path) -> None:
    """A snapshot whose recorded checksum was computed by older code is never served (CI once restored a
    snapshot made before the integrity hash changed, and the seed failed its own integrity check)."""
    package = Path(loadgen.__file__).parent
    copy = tmp_path / "loadgen"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert source_digest(copy) == generator_source_digest()
    integrity = copy / "integrity.py"
    integrity.write_text(integrity.read_text() + "\n# a change\n")
    assert source_digest(copy) != generator_source_digest()
