"""The ``local`` backend: a throwaway cluster from initdb'd files on tmpfs, no Docker, no system install.

initdb is slow here (0.5-1.2 s on ext4), so each (PostgreSQL build) gets one pristine data dir in the
cache, made once under a lock; every server starts from a ``cp -a`` copy of it (about 0.05 s). The
cluster directory ``cluster-<run_id>`` is made only after its owner record ``run-<run_id>.owner``
(``chatbench.provision.owner``) exists and is locked, so ``chatbench clean`` can stop and remove the
clusters whose owner died (SIGKILL, power loss) and never one whose owner lives. Every program
(initdb, pg_ctl, cp) runs through ``chatbench.external``: bounded in time, output scrubbed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from chatbench import external
from chatbench.errors import ProvisionError
from chatbench.faults import checkpoint
from chatbench.files import write_atomically
from chatbench.provision.binaries import PgBinaries, record_source, resolve_binaries, runnable_binaries
from chatbench.provision.osuser import OsUser, server_os_user
from chatbench.provision.owner import current_tag
from chatbench.provision.paths import cache_root, ensure, run_root
from chatbench.provision.probe import wait_until_ready
from chatbench.provision.process import pid_alive as _pid_alive

SUPERUSER = "chatbench"
DATABASE = "chatbench"
CONF_FILE = "chatbench.conf"
CLUSTER_PREFIX = "cluster-"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pristine_data_dir(binaries: PgBinaries, user: OsUser) -> Path:
    """An initdb'd data dir with the ``chatbench`` database, made once per build and OS user."""
    root = cache_root() / "pristine"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{binaries.key}-{user.name}"
    if (final / "data" / "PG_VERSION").exists():
        record_source(final, binaries.bin_dir)
        return final / "data"
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "data" / "PG_VERSION").exists():
            record_source(final, binaries.bin_dir)
            return final / "data"
        partial = root / f".{final.name}.{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(mode=0o755)
        user.chown(partial)
        data = partial / "data"
        result = user.run(
            [
                binaries.tool("initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            what="initdb", env={**os.environ, "LC_ALL": "C"},
        )
        if result.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise ProvisionError(f"initdb failed ({binaries.bin_dir}): {_last_line(result.stderr)}")
        created = user.run(
            [binaries.tool("postgres"), "--single", "-D", str(data), "-c", "fsync=off", "postgres"],
            what="postgres --single", input=f"CREATE DATABASE {DATABASE}\n",
        )
        if created.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise ProvisionError(f"creating the {DATABASE} database failed: {_last_line(created.stderr)}")
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(f"\ninclude_if_exists = '{CONF_FILE}'\n")
        record_source(partial, binaries.bin_dir)
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
    return final / "data"


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


@dataclass
class LocalCluster:
    """One running throwaway cluster; ``stop()`` is idempotent and always removes the directory."""

    root: Path
    binaries: PgBinaries
    user: OsUser
    port: int
    settings: dict[str, str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = DATABASE) -> URL:
        return URL.create("postgresql+psycopg", username=SUPERUSER, host="127.0.0.1", port=self.port, database=database)

    def conninfo(self, database: str = DATABASE) -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    # --- lifecycle ---------------------------------------------------------------------------------

    def write_conf(self) -> None:
        lines = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            **self.settings,
        }
        (self.data / CONF_FILE).write_text("".join(f"{k} = '{v}'\n" for k, v in lines.items()))

    def start(self, timeout: float = 30.0) -> None:
        self.write_conf()
        if self.log_file.exists():
            # A restart (snapshot restore): set the old log aside, else is_alive() reads the previous
            # shutdown's FATAL lines before the new postmaster.pid exists and reports a false death.
            self.log_file.replace(self.log_file.with_name(self.log_file.name + ".previous"))
        result = self.user.run(
            [self.binaries.tool("pg_ctl"), "-D", str(self.data), "-l", str(self.log_file), "-W", "-s", "start"],
            what="pg_ctl start", timeout=timeout,
        )
        if result.returncode != 0:
            raise ProvisionError(f"pg_ctl start failed: {_last_line(result.stderr)} (log: {self.log_tail()})")
        wait_until_ready(self.conninfo("postgres"), timeout=timeout, is_alive=self.is_alive, log_tail=self.log_tail)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def is_alive(self) -> bool:
        if "FATAL" in self.log_tail(lines=5) and self.postmaster_pid() is None:
            return False
        pid = self.postmaster_pid()
        return pid is None or _pid_alive(pid)

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def shutdown(self, *, fast: bool) -> None:
        """Stop the server: ``fast`` checkpoints (consistent files), otherwise immediate."""
        pid = self.postmaster_pid()
        if pid is None or not _pid_alive(pid):
            return
        os.kill(pid, signal.SIGINT if fast else signal.SIGQUIT)
        deadline = time.monotonic() + 30
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)

    def stop(self) -> None:
        try:
            self.shutdown(fast=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # --- whole-cluster snapshots (the seeded-snapshot cache of throwaway servers) ------------------

    def save_snapshot(self, target: Path) -> None:
        """Copy the cleanly stopped data dir to ``target``, then start again.

        After a clean shutdown only the WAL segments from the shutdown checkpoint's redo point to the
        checkpoint record are needed; the others are recycled segments (renamed to future names for
        reuse), often as large as the tables after a bulk load. Leaving them out halves what a
        snapshot restore has to copy.
        """
        self.shutdown(fast=True)
        try:
            segments = self._checkpoint_wal_segments()
            target.mkdir(mode=0o700)
            self.user.chown(target)
            entries = [p for p in self.data.iterdir() if p.name != "pg_wal"]
            _copy([*entries], target)
            wal = target / "pg_wal"
            wal.mkdir(mode=0o700)
            self.user.chown(wal)
            needed = [p for p in (self.data / "pg_wal").iterdir()
                      if not p.is_file() or segments is None or p.name in segments or len(p.name) != 24]
            _copy(needed, wal)
            checkpoint("seed.cache_save")  # the crash tests stop here: server down, snapshot half-made
        finally:
            self.start()

    def _checkpoint_wal_segments(self) -> set[str] | None:
        """Names of the WAL segments from the latest checkpoint's redo point to its record, or None."""
        result = self.user.run([self.binaries.tool("pg_controldata"), "-D", str(self.data)],
                               what="pg_controldata", env={**os.environ, "LC_ALL": "C"})
        facts = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
        try:
            state = facts["Database cluster state"].strip()
            timeline = int(facts["Latest checkpoint's TimeLineID"])
            segment_size = int(facts["Bytes per WAL segment"])
            first = _segment_number(facts["Latest checkpoint's REDO location"], segment_size)
            last = _segment_number(facts["Latest checkpoint location"], segment_size)
        except (KeyError, ValueError):
            return None
        if state != "shut down" or last < first:
            return None
        per_xlogid = 0x100000000 // segment_size
        return {f"{timeline:08X}{n // per_xlogid:08X}{n % per_xlogid:08X}" for n in range(first, last + 1)}

    def restore_snapshot(self, source: Path) -> None:
        """Replace this cluster's data by a snapshot's and start it on the same port."""
        self.shutdown(fast=False)
        shutil.rmtree(self.data)
        _copy_tree(source, self.data)
        self.start()


def _segment_number(lsn: str, segment_size: int) -> int:
    high, low = lsn.strip().split("/")
    return ((int(high, 16) << 32) + int(low, 16)) // segment_size


def _copy(sources: list[Path], target: Path) -> None:
    """``cp -a`` (keeps owners and modes: the server's OS user must own its files)."""
    if sources:
        external.checked(external.run(["cp", "-a", *map(str, sources), str(target)], what="cp"), "cp")


def _copy_tree(source: Path, target: Path) -> None:
    external.checked(external.run(["cp", "-a", str(source), str(target)], what="cp"), "cp")


def start_local_cluster(
    run_id: str, pg_bin: str | Path | None, settings: dict[str, str], *, timeout: float = 60.0,
    run_dir: Path | None = None,
) -> LocalCluster:
    """Copy the pristine data dir for this build, start it on a free loopback port, wait until ready.

    The cluster lives in ``run_dir`` (a size check chose it; created if needed) or the default run root.
    """
    user = server_os_user()
    binaries = runnable_binaries(resolve_binaries(pg_bin), user)
    pristine = pristine_data_dir(binaries, user)
    root = (ensure(run_dir) if run_dir is not None else run_root()) / f"{CLUSTER_PREFIX}{run_id}"
    root.mkdir(mode=0o755)  # after the run's owner record (provision() holds it): never unowned
    cluster = LocalCluster(root, binaries, user, free_port(), dict(settings))
    try:
        user.chown(root)
        if user.switched and user.run(["test", "-w", str(root)], what="test -w").returncode != 0:
            raise ProvisionError(
                f"CHATBENCH_RUN_DIR: OS user {user.name!r} cannot reach {root.parent} (a parent directory is "
                "private); choose a directory whose parents are world-executable, e.g. /dev/shm/chatbench"
            )
        meta = {**current_tag(run_id).to_json(), "bin_dir": str(binaries.bin_dir), "os_user": user.name}
        write_atomically(root / "meta.json", json.dumps(meta))
    except BaseException:
        cluster.stop()
        raise
    try:
        _copy_tree(pristine, cluster.data)
        cluster.socket_dir.mkdir(mode=0o755)
        user.chown(cluster.socket_dir)
        for attempt in range(3):
            try:
                cluster.start(timeout)
                break
            except ProvisionError as exc:
                if ("could not bind" not in str(exc) and "Address already in use" not in str(exc)) or attempt == 2:
                    raise
                cluster.shutdown(fast=False)
                cluster.port = free_port()
    except BaseException:
        cluster.stop()
        raise
    return cluster
