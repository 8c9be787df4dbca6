"""Files a reader must see whole or not at all: written to a temporary name beside them, then renamed.

A crash (SIGKILL, a full disk) while writing leaves at most a hidden ``.<name>.<pid>.tmp`` beside
the file, never a truncated file under the real name; ``rename`` in the same folder is atomic.
Write errors (no room, no permission) become one line naming the file and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from chatbench.errors import ChatbenchError

TEMPORARY_SUFFIX = ".tmp"


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{TEMPORARY_SUFFIX}")


def write_atomically(path: str | Path, text: str, *, what: str | None = None, mode: int = 0o666) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename in the same folder;
    ``mode`` (before the umask) is the new file's from its first byte (0o600: a file holding a secret)."""
    target = Path(path)
    temporary = temporary_name(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise write_error(target, exc, what) from None
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return target


def write_error(path: Path, exc: OSError, what: str | None = None) -> ChatbenchError:
    """One line for a failed write: which file, why (no room, no permission, ...) and the fix."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some space or write elsewhere"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "give a folder you can write to"
    else:
        fix = "check the path"
    return ChatbenchError(f"{what or path}: cannot write {path} ({exc.strerror or type(exc).__name__}); {fix}")
