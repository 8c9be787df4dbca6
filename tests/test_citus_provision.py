"""``--backend citus``: the build (once, cached), the cluster (coordinator + N workers on loopback), its
bad inputs (exit 2, one line, before anything starts) and its cleanup (Ctrl-C during the build and the
start leaves nothing; after SIGKILL ``chatbench clean`` removes the whole cluster)."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
from citus_support import TARBALL_ENV, citus, citus_tarball  # noqa: F401
from commandline import CommandProcess, chatbench, start

from chatbench.faults import REPORT_DIR, STOP_AT
from chatbench.provision import Server
from chatbench.provision.binaries import embedded_bin_dir, recorded_sources
from chatbench.provision.citus import enable_citus
from chatbench.provision.citus_build import check_source, citus_root, ensure_build
from chatbench.provision.owner import lease_path
from chatbench.provision.process import pid_alive

pytestmark = pytest.mark.slow  # whole sign-offs, rehearsals or a Citus cluster: not in the fast tier


def _one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_bad_inputs_are_one_line_before_anything_starts(tmp_path: Path) -> None:
    tarball = str(citus_tarball())
    _one_line_error(chatbench("server", "--backend", "citus", "--citus-workers", "0"), "--citus-workers 0",
                    "at least 1")
    _one_line_error(chatbench("server", "--backend", "citus", "--citus-tarball", str(tmp_path / "none.tar.gz")),
                    "--citus-tarball", "none.tar.gz")
    unset = {k: v for k, v in os.environ.items() if k != TARBALL_ENV}
    done = chatbench("server", "--backend", "citus", env=unset, inherit=False, cwd=tmp_path, timeout=120)
    _one_line_error(done, "--citus-tarball", "not set", TARBALL_ENV)
    no_pg_config = tmp_path / "bin"
    no_pg_config.mkdir()
    for name in ("initdb", "pg_ctl", "postgres"):
        (no_pg_config / name).symlink_to(embedded_bin_dir() / name)
    _one_line_error(chatbench("server", "--backend", "citus", "--pg-bin", str(no_pg_config),
                              env={TARBALL_ENV: tarball}), "--pg-bin", "no pg_config")


def test_a_failed_build_is_one_line_and_leaves_no_partial(tmp_path: Path) -> None:
    bad = tmp_path / "citus-v0.0.0.tar.gz"
    bad.write_bytes(gzip.compress(b"not a tar archive"))
    cache = tmp_path / "cache"
    done = chatbench("server", "--backend", "citus", "--citus-tarball", str(bad),
                     env={"CHATBENCH_CACHE_DIR": str(cache)})
    line = [ln for ln in done.stderr.splitlines() if "error" in ln]
    assert done.returncode == 2 and len(line) == 1 and "--citus-tarball" in line[0], done.stderr
    assert [p.name for p in (cache / "citus").iterdir()] == [".lock"]


def _stop_at(stage: str, faults: Path, env: dict[str, str], *argv: str, command: str = "server") -> CommandProcess:
    """``chatbench COMMAND --backend citus ARGV`` started and paused at ``stage`` (its output in a log beside
    ``faults``)."""
    faults.mkdir()
    log = faults.with_suffix(".log")
    with log.open("wb") as output:
        proc = start(command, "--backend", "citus", *argv, output=output,
                     env={**env, STOP_AT: stage, REPORT_DIR: str(faults)})
    deadline = time.monotonic() + 300
    while not any(faults.iterdir()):
        assert proc.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, f"{stage} not reached"
        time.sleep(0.05)
    return proc


def _postmasters(run_dir: Path) -> list[int]:
    pids = []
    for pid_file in run_dir.glob("cluster-*/**/postmaster.pid"):
        pid = int(pid_file.read_text().split()[0])
        if pid_alive(pid):
            pids.append(pid)
    return pids


def test_ctrl_c_during_the_build_removes_the_partial_build(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    proc = _stop_at("citus.build", tmp_path / "faults", {"CHATBENCH_CACHE_DIR": str(cache),
                                                         TARBALL_ENV: str(citus_tarball())})
    assert [p.name for p in (cache / "citus").iterdir() if ".partial-" in p.name]  # mid-build
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode == 130
    assert [p.name for p in (cache / "citus").iterdir()] == [".lock"]


def test_ctrl_c_during_the_start_leaves_nothing(tmp_path: Path, run_dir: Path) -> None:
    proc = _stop_at("citus.start", tmp_path / "faults", {"CHATBENCH_RUN_DIR": str(run_dir),
                                                         TARBALL_ENV: str(citus_tarball())})
    assert len(_postmasters(run_dir)) == 3  # coordinator + two workers up
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode == 130
    assert sorted(p.name for p in run_dir.iterdir()) == []


def test_ctrl_c_during_the_clusters_seed_leaves_nothing(tmp_path: Path, run_dir: Path) -> None:
    """A sign-off on the cluster stopped mid-COPY (the rows going into the distributed tables, or the single
    node's beside it, whichever seeds first): exit 130, no node, no owner record, no report staging left."""
    out = tmp_path / "out"
    proc = _stop_at("seed.copy.rows", tmp_path / "faults", {"CHATBENCH_RUN_DIR": str(run_dir),
                                                            TARBALL_ENV: str(citus_tarball())},
                    "--profile", "smoke", "--no-cache", "--scaling", "none", "--out", str(out), command="signoff")
    assert len(_postmasters(run_dir)) >= 3  # the coordinator and its two workers up, the seed paused in its COPY
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    assert proc.returncode == 130
    assert sorted(p.name for p in run_dir.iterdir()) == []
    assert not [p for p in out.iterdir() if p.name.startswith(".chatbench-staging")] if out.exists() else True


def test_after_sigkill_clean_removes_every_node(tmp_path: Path, run_dir: Path) -> None:
    env = {"CHATBENCH_RUN_DIR": str(run_dir), TARBALL_ENV: str(citus_tarball())}
    proc = _stop_at("citus.start", tmp_path / "faults", env, "--citus-workers", "3")
    pids = _postmasters(run_dir)
    assert len(pids) == 4
    proc.kill()
    proc.wait(timeout=30)
    done = chatbench("clean", env=env)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in run_dir.iterdir()] == []
    deadline = time.monotonic() + 10
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(pid_alive(p) for p in pids)


def test_the_cluster_is_a_coordinator_with_its_workers_on_loopback(citus: Server) -> None:  # noqa: F811
    assert citus.backend == "citus" and citus.url.host == "127.0.0.1"
    assert citus.details["citus"] == "14.0.1" and citus.details["workers"] == "2"
    assert lease_path(citus.run_id).exists()
    enable_citus(citus)
    enable_citus(citus)  # idempotent
    with psycopg.connect(citus.conninfo(), autocommit=True) as conn:
        nodes = conn.execute("SELECT nodename, nodeport, noderole, isactive, groupid = 0 FROM pg_dist_node "
                             "ORDER BY groupid").fetchall()
        preload = conn.execute("SHOW shared_preload_libraries").fetchone()
    assert [(n[0], n[4]) for n in nodes] == [("127.0.0.1", True), ("127.0.0.1", False), ("127.0.0.1", False)]
    assert {str(n[1]) for n in nodes[1:]} == set(citus.details["worker_ports"].split(","))
    assert preload == ("citus",)


def test_the_build_records_the_postgresql_it_was_made_from(citus: Server) -> None:  # noqa: F811
    """So that `chatbench clean` removes it once that build is gone (a deleted virtualenv's)."""
    source = check_source(citus_tarball(), None, tarball_where="tarball", pg_bin_where="pg_bin")
    build = ensure_build(source, announce=lambda _m: None)  # the cluster's, cached
    assert not build.built
    assert source.binaries.bin_dir.parent in (recorded_sources(citus_root() / build.key) or [])
    assert citus.details["citus"] == build.citus_version
