"""The seeded-snapshot cache under concurrency and crashes: runs never destroy each other's work.

Every save first claims its partial (an owner record written atomically, locked for the run's life);
a save removes only its own partial, and ``chatbench clean`` removes partials whose owner is dead.
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
from collections.abc import Iterator
from pathlib import Path

import pytest
from chatbench.loadgen.cache import remove_dead_partials, snapshot_root

from chatbench import loadgen
from chatbench.provision import owner, provision
from chatbench.provision.paths import run_root

SMALL = ("--profile", "smoke", "--set", "messages.count=8000", "--set", "conversations.count=500")


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A run directory of this test's own (the server's OS user can enter it, unlike tmp_path)."""
    path = run_root() / f"test-cache-{secrets.token_hex(4)}"
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _env(run_dir: Path) -> dict[str, str]:
    return {**os.environ, "CHATBENCH_RUN_DIR": str(run_dir)}


def _holder(target: Path) -> subprocess.Popen[str]:
    """Another process that claims ``target`` (as a save does), makes it, and stays alive."""
    script = (
        "import sys, time, pathlib\n"
        "from chatbench.provision import owner\n"
        "target = pathlib.Path(sys.argv[1])\n"
        "held = owner.claim(target)\n"
        "(target / 'data').mkdir(parents=True)\n"
        "(target / 'meta.json').write_text('{}')\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_two_cold_seeds_of_one_spec_at_once_both_succeed_and_publish_one_entry(run_dir: Path) -> None:
    seed = str(10_000 + secrets.randbelow(10**6))  # a key nobody has cached
    command = [sys.executable, "-m", "chatbench", "seed", "--backend", "local", *SMALL, "--seed", seed]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(run_dir))
             for _ in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    key = ""
    try:
        for proc, (_, stderr) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, stderr
            assert "Traceback" not in stderr and "not saved" not in stderr
            found = re.search(r"cache key ([0-9a-f]{16})", stderr)
            assert found is not None, stderr
            key = found.group(1)
        checksums = {stdout.strip() for stdout, _ in outputs}
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
        theirs = seeds / f"{key}.partial-{secrets.token_hex(4)}"
        holder = _holder(theirs)
        try:
            result = loadgen.seed(server, spec, seed=seed, progress=False)
            assert result.extra["cache"] == "snapshot"
            assert (theirs / "meta.json").is_file() and owner.owner_alive(theirs)  # untouched
            assert theirs not in remove_dead_partials() and theirs.exists()  # what clean does: alive, kept
        finally:
            holder.kill()
            holder.wait(timeout=10)
            shutil.rmtree(seeds / key, ignore_errors=True)
        assert not owner.owner_alive(theirs)
        assert theirs in remove_dead_partials()
        assert not theirs.exists() and not owner.record_of(theirs).exists()


def test_clean_removes_a_dead_runs_partial_and_keeps_a_live_one(run_dir: Path) -> None:
    seeds = snapshot_root()
    seeds.mkdir(parents=True, exist_ok=True)
    live = seeds / f"{secrets.token_hex(8)}.partial-{secrets.token_hex(4)}"
    dead = seeds / f"{secrets.token_hex(8)}.partial-{secrets.token_hex(4)}"
    stale = seeds / f"{secrets.token_hex(8)}.partial-{secrets.token_hex(4)}"  # an older version's: no record
    fresh = seeds / f"{secrets.token_hex(8)}.partial-{secrets.token_hex(4)}"
    living, dying = _holder(live), _holder(dead)
    for orphan in (stale, fresh):
        (orphan / "data").mkdir(parents=True)
    old = time.time() - owner.ORPHAN_GRACE_SECONDS - 60
    os.utime(stale, (old, old))
    try:
        dying.send_signal(signal.SIGKILL)  # a run killed while saving its snapshot
        dying.wait(timeout=10)
        assert dead.exists() and owner.record_of(dead).exists()
        done = subprocess.run([sys.executable, "-m", "chatbench", "clean"], capture_output=True, text=True,
                              timeout=120, env=_env(run_dir))
        assert done.returncode == 0, done.stderr
        assert f"partial seeds/{dead.name}: removed" in done.stderr
        assert f"partial seeds/{stale.name}: removed" in done.stderr
        assert not dead.exists() and not owner.record_of(dead).exists() and not stale.exists()
        assert live.exists() and owner.owner_alive(live)  # its owner is alive: never touched
        assert fresh.exists()  # no record but young: maybe a run of an older version still saving
    finally:
        living.kill()
        living.wait(timeout=10)
        for path in (live, dead, stale, fresh):
            shutil.rmtree(path, ignore_errors=True)
            owner.record_of(path).unlink(missing_ok=True)


def test_owner_record_is_written_before_the_target_and_released_after() -> None:
    base = run_root() / f"test-owner-{secrets.token_hex(4)}"
    with owner.owned(base) as held:
        assert held.record.exists() and not base.exists()
        assert json.loads(held.record.read_text())["pid"] == os.getpid()
        assert owner.owner_alive(base)
        assert owner.remove_dead(base.parent, base.name) == []  # alive: left alone
    assert not held.record.exists() and not owner.owner_alive(base)
