"""The OS user that runs PostgreSQL.

``postgres`` refuses to run as root, and CI runs as root: then the server runs as an unprivileged
user (``CHATBENCH_PG_OS_USER``, else ``postgres`` if it exists, else ``nobody``) and chatbench says so.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from chatbench import external
from chatbench.errors import ChatbenchError, ProvisionError
from chatbench.settings import current


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int
    switched: bool  # True when the server runs as a different user than chatbench

    def run(
        self,
        args: Sequence[str],
        *,
        what: str | None = None,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float | None = None,
    ) -> external.Completed:
        """Run a program as this user (``chatbench.external.run``: timeout, scrubbed output, one-line errors)."""
        return external.run(
            args, what=what or Path(args[0]).name, env=env, input=input, timeout=timeout,
            user=self.uid if self.switched else None, group=self.gid if self.switched else None,
        )

    def can_execute(self, program: Path) -> bool:
        try:
            return self.run([str(program), "--version"]).returncode == 0
        except ChatbenchError:
            return False

    def chown(self, path: Path) -> None:
        if self.switched:
            os.chown(path, self.uid, self.gid)


def server_os_user() -> OsUser:
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid, switched=False)
    wanted = current("pg_os_user")
    names = [wanted] if wanted else ["postgres", "nobody"]
    for name in names:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid == 0:
            break
        return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid, switched=True)
    raise ProvisionError(
        f"CHATBENCH_PG_OS_USER: no unprivileged OS user to run PostgreSQL as (tried {', '.join(names)}); "
        "create one (useradd --system pgrunner) and set CHATBENCH_PG_OS_USER=pgrunner"
    )
