"""The app clients of a rehearsal's live load (``rehearse.launcher``, ``rehearse.appclient``): one launcher per
process forks them all, a forked process starts its own, a launcher that died is started again, a client that
cannot connect fails the load with its error shown, and no client or launcher outlives its parent, however the
parent ends (a normal exit, or SIGKILL, where nothing of the parent's runs).

Real server, real processes: nothing here is mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from chatbench.errors import ChatbenchError
from chatbench.provision import Server
from chatbench.rehearse.appclient import APP_PREFIX
from chatbench.rehearse.appload import AppOperation, app_load
from chatbench.rehearse.launcher import ClientLauncher

ONE = AppOperation("one", "SELECT 1", True, "reads", 1.0, ({},))
GONE_WITHIN_S = 10.0  # a bound for processes that are ending, not a speed target

LOADED_SCRIPT = textwrap.dedent("""
    import sys, time
    from chatbench.rehearse.appload import AppOperation, app_load
    from chatbench.rehearse.launcher import ClientLauncher
    with app_load(sys.argv[1], (AppOperation("one", "SELECT 1", True, "reads", 1.0, ({},)),), clients=2,
                  rate_per_s=50, seed=1) as load:
        print(ClientLauncher.shared().pid, flush=True)
        if sys.argv[2] == "wait":
            time.sleep(600)
        load.stop()
""")


def _children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _still_running(pids: set[int]) -> set[int]:
    """The pids of ``pids`` still running after up to ``GONE_WITHIN_S`` (a zombie has ended)."""
    deadline = time.monotonic() + GONE_WITHIN_S
    while (left := {p for p in pids if _running(p)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _client_sessions(server: Server) -> int:
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
                           (f"{APP_PREFIX}%",)).fetchone()
    assert row is not None
    return int(row[0])


def test_one_launcher_forks_every_client_of_the_process(fresh_db: Server) -> None:
    with app_load(fresh_db.conninfo(), (ONE,), clients=2, rate_per_s=50, seed=1) as first:
        launcher = ClientLauncher.shared()
        clients = _children(launcher.pid)
        assert len(clients) == 2 and _client_sessions(fresh_db) == 2
        first.stop()
    assert not _still_running(clients)
    with app_load(fresh_db.conninfo(), (ONE,), clients=1, rate_per_s=50, seed=1) as second:
        assert ClientLauncher.shared() is launcher and len(_children(launcher.pid) - clients) == 1
        time.sleep(0.3)
        requests = second.stop()
    assert requests.requests and all(r.ok for r in requests.requests)
    assert _client_sessions(fresh_db) == 0


def test_a_launcher_that_died_is_started_again(fresh_db: Server) -> None:
    killed = ClientLauncher.shared()
    os.kill(killed.pid, signal.SIGKILL)
    assert not _still_running({killed.pid})
    with app_load(fresh_db.conninfo(), (ONE,), clients=1, rate_per_s=50, seed=1) as load:
        assert ClientLauncher.shared().pid != killed.pid
        time.sleep(0.2)
        assert load.stop().requests


def test_a_forked_process_starts_its_own_launcher() -> None:
    """Two processes sending on one control socket could take each other's clients: a fork never shares it."""
    parents = ClientLauncher.shared().pid
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child reports through the pipe, and never returns into pytest
        try:
            os.close(read)
            own = ClientLauncher.shared()
            os.write(write, f"{own.pid} {_parent_of(own.pid)}".encode())
            own.close()
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        launcher, its_parent = (int(n) for n in pipe.read().split())
    os.waitpid(child, 0)
    assert launcher != parents and its_parent == child
    assert ClientLauncher.shared().pid == parents


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_client_that_cannot_connect_fails_the_load_with_its_error_shown(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ChatbenchError, match="client 0 failed before it was ready; see its error above"), \
            app_load("host=/nonexistent dbname=none", (ONE,), clients=1, rate_per_s=50, seed=1):
        pass
    assert "OperationalError" in capfd.readouterr().err


def test_a_chatbench_folder_in_the_working_directory_is_not_imported(fresh_db: Server, tmp_path: Path) -> None:
    """chatbench run from a folder that holds a ``chatbench`` package of its own (chatbench's own checkout beside
    an installed chatbench, where ``chatbench/`` is the base package without the stages): the launcher must import
    the chatbench its parent runs, not the folder's (``python -P``). The parent here starts as a console script
    does, without its working directory on ``sys.path``."""
    (tmp_path / "chatbench").mkdir()
    (tmp_path / "chatbench" / "__init__.py").write_text('raise ImportError("the working directory\'s chatbench")\n')
    done = subprocess.run([sys.executable, "-P", "-c", LOADED_SCRIPT, fresh_db.conninfo(), "stop"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "the working directory's chatbench" not in done.stderr


@pytest.mark.parametrize("ending", ["exits", "is killed"])
def test_no_client_outlives_its_parent(fresh_db: Server, ending: str) -> None:
    parent = subprocess.Popen([sys.executable, "-c", LOADED_SCRIPT, fresh_db.conninfo(),
                               "wait" if ending == "is killed" else "stop"], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    launcher = int(parent.stdout.readline())
    processes = {launcher} | (_children(launcher) if ending == "is killed" else set())
    if ending == "is killed":
        assert len(processes) == 3
        parent.kill()
    assert parent.wait(timeout=60) == (-signal.SIGKILL if ending == "is killed" else 0)
    assert not _still_running(processes)
    deadline = time.monotonic() + GONE_WITHIN_S
    while _client_sessions(fresh_db) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _client_sessions(fresh_db) == 0
