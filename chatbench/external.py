"""Every external program chatbench runs goes through ``run``: a timeout, scrubbed output, one-line errors.

The application's migration command (``--schema-from-cmd``), pgbench, initdb, pg_ctl and friends
all run here, so each of them:

- is split with shell rules when given as one string (bad quoting is a one-line error naming the
  setting), and a missing or non-executable program is a one-line error, not a traceback;
- runs in its own session (process group) and is killed with everything it started when it runs
  longer than its timeout (default: the ``command_timeout`` setting), or when chatbench is
  interrupted (Ctrl-C, SIGTERM) while waiting for it: nothing keeps running after chatbench;
- has its output scrubbed of every known secret (``chatbench.errors.redact``) before anyone can
  print it: a migration tool that echoes its database URL does not leak the password.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from chatbench.errors import CommandTimedOut, ConfigError, ExternalCommandError, redact
from chatbench.settings import current

TAIL_LINES = 3


@dataclass(frozen=True)
class Completed:
    """A finished command: its exit status and its output, already scrubbed of secrets."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last lines of stderr (else stdout), joined on one line, for an error message."""
        text = (self.stderr.strip() or self.stdout.strip())
        kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(kept) if kept else "no output"


def split_command(command: str, what: str) -> list[str]:
    """A command line split with shell rules; bad quoting or an empty line is a one-line error."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(f"{what} {command!r}: cannot be split into words ({exc}); check the quoting") from None
    if not words:
        raise ConfigError(f"{what}: the command is empty; give the command to run, e.g. 'alembic upgrade head'")
    return words


def run(
    command: Sequence[str] | str,
    *,
    what: str,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    input: str | None = None,
    user: int | None = None,
    group: int | None = None,
    secrets: frozenset[str] = frozenset(),
) -> Completed:
    """Run ``command`` (argv, or one string split with shell rules) and wait for it, at most ``timeout`` s.

    ``what`` names the command in errors (the setting it came from, or the program's job). A missing
    program and a timeout raise ``ExternalCommandError``; a non-zero exit is returned (the caller
    decides what it means); a timeout is ``CommandTimedOut``, for a caller to whom it is an outcome (a
    rehearsed migration that hangs). Output (text) is scrubbed of every registered secret and of ``secrets``.
    """
    argv = split_command(command, what) if isinstance(command, str) else [str(word) for word in command]
    limit = float(current("command_timeout")) if timeout is None else timeout
    extra: dict[str, object] = {}
    if user is not None:
        extra.update(user=user, group=group, extra_groups=[])
    try:
        process = subprocess.Popen(
            argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, errors="replace", env=None if env is None else dict(env),
            cwd=cwd, start_new_session=True, **extra,  # type: ignore[call-overload]
        )
    except FileNotFoundError:
        raise ExternalCommandError(
            f"{what}: {argv[0]!r} not found (not on PATH, or no such file); install it or give its full path"
        ) from None
    except PermissionError:
        raise ExternalCommandError(f"{what}: {argv[0]!r} is not executable; fix its permissions") from None
    except OSError as exc:
        raise ExternalCommandError(f"{what}: {argv[0]!r} cannot be started ({exc.strerror})") from None
    try:
        stdout, stderr = process.communicate(input, timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise CommandTimedOut(
            f"{what} {shlex.join(argv)!r} ran longer than {limit:g} s and was stopped; raise --command-timeout "
            "(CHATBENCH_COMMAND_TIMEOUT) or fix the command"
        ) from None
    except BaseException:  # Ctrl-C, SIGTERM turned into SystemExit: the command must not outlive us
        _kill_group(process)
        raise
    return Completed(tuple(argv), process.returncode, redact(stdout or "", secrets), redact(stderr or "", secrets))


def _kill_group(process: subprocess.Popen[str]) -> None:
    """Kill the command and everything it started (its own process group), then reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
        process.communicate(timeout=5)


def checked(done: Completed, what: str) -> Completed:
    """``done`` if it exited 0, else a one-line error with the last words of its (scrubbed) output."""
    if done.returncode != 0:
        raise ExternalCommandError(f"{what} exited {done.returncode}: {done.tail()}")
    return done
