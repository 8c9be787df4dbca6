"""Facts read from a live server: version and the non-default settings in force."""

from __future__ import annotations

import time

import psycopg

from chatbench.errors import ProvisionError, redact


def wait_until_ready(conninfo: str, *, timeout: float, is_alive: object = None, log_tail: object = None) -> None:
    """Poll a connection every 10 ms until the server accepts it, the process dies, or ``timeout``.

    ``is_alive`` (a callable) lets a caller stop waiting for a server that has already exited;
    ``log_tail`` (a callable returning text) puts the server's last words into the error.
    """
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            with psycopg.connect(conninfo, connect_timeout=2, autocommit=True) as conn:
                conn.execute("SELECT 1")
                return
        except psycopg.OperationalError as exc:
            last_error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if callable(is_alive) and not is_alive():
            tail = log_tail() if callable(log_tail) else ""
            raise ProvisionError(f"PostgreSQL exited during start-up: {tail or last_error}")
        if time.monotonic() > deadline:
            tail = log_tail() if callable(log_tail) else ""
            raise ProvisionError(
                f"PostgreSQL did not accept connections within {timeout:.0f} s "
                f"(last error: {redact(last_error)}; {tail}); "
                "raise --start-timeout (CHATBENCH_START_TIMEOUT) or check the server log"
            )
        time.sleep(0.01)


def read_version_and_settings(conninfo: str) -> tuple[str, int, dict[str, str]]:
    """Server version string, ``server_version_num`` and every setting not at its built-in default."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        version = str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]  # type: ignore[index]
        version_num = int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
        rows = conn.execute(
            "SELECT name, current_setting(name) FROM pg_settings "
            "WHERE source NOT IN ('default', 'override', 'client') ORDER BY name"
        ).fetchall()
    settings = {str(name): str(value) for name, value in rows}
    return version, version_num, settings
