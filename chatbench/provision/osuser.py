"""The OS user that runs PostgreSQL.

``postgres`` refuses to run as root, and CI runs as root: then the server runs as an unprivileged
user (``CHATBENCH_PG_OS_USER``, else ``postgres`` if it exists, else ``nobody``) and chatbench says so.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbench.errors import ProvisionError
from chatbench.settings import current


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int
    switched: bool  # True when the server runs as a different user than chatbench

    def run(self, args: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a command as this user (text mode, output captured unless redirected)."""
        if self.switched:
            kwargs.update(user=self.uid, group=self.gid, extra_groups=[])
        if "stdout" not in kwargs and "capture_output" not in kwargs:
            kwargs["capture_output"] = True
        return subprocess.run(list(args), text=True, **kwargs)

    def can_execute(self, program: Path) -> bool:
        try:
            return self.run([str(program), "--version"]).returncode == 0
        except OSError:
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
