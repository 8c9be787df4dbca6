"""``chatbench server`` prints a URL psql accepts: ``psql "$(head -1 server.url)"`` connects.

A throwaway server's URL carries its (throwaway) password; a ``--dsn`` server's never does, and the
status line says where the password comes from instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import commandline
import pytest
from servers import unavailable

PSQL = Path("/usr/bin/psql")


def require_psql() -> None:
    if not PSQL.is_file():
        unavailable(f"psql is not installed at {PSQL}", ".ci/run installs postgresql-15 (with its client)")


def psql(url: str, query: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | (env or {})
    return subprocess.run([str(PSQL), url, "-Atc", query], capture_output=True, text=True, timeout=60, env=environ,
                          stdin=subprocess.DEVNULL)


def start_server(*args: str, run_dir: Path | None = None) -> tuple[subprocess.Popen[str], str]:
    return commandline.start_server(*args, env={"CHATBENCH_RUN_DIR": str(run_dir)} if run_dir else None)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    return err


def test_psql_connects_to_the_printed_url_of_a_local_server(run_dir: Path) -> None:
    require_psql()
    proc, url = start_server("--backend", "local", run_dir=run_dir)
    try:
        assert url.startswith("postgresql://") and "+psycopg" not in url, url
        done = psql(url, "SELECT current_database()")
        assert done.returncode == 0 and done.stdout.strip() == "chatbench", done.stderr
    finally:
        stop(proc)
    assert not any(run_dir.iterdir())


@pytest.mark.container
def test_a_container_url_has_its_password_and_a_dsn_url_never() -> None:
    require_psql()
    container, url = start_server("--backend", "container")
    try:
        assert url.startswith("postgresql://") and ":@" not in url, url
        assert psql(url, "SELECT 1").stdout.strip() == "1"
        password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
        dsn, dsn_url = start_server("--dsn", url)
        try:
            assert dsn_url.startswith("postgresql://") and f":{password}@" not in dsn_url, dsn_url
            assert psql(dsn_url, "SELECT current_database()", env={"PGPASSWORD": password}).stdout.startswith(
                "chatbench_run_")
            refused = psql(dsn_url, "SELECT 1", env={"PGPASSWORD": "wrong"})
            assert refused.returncode != 0
        finally:
            err = " ".join(stop(dsn).split())  # (the status lines are wrapped at the pipe's width)
        assert "the URL leaves the password out: it is the one in --dsn postgresql://" in err
        assert f":{password}@" not in err
    finally:
        stop(container)
