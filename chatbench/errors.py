"""One exception family whose message is the one line a user sees.

The CLI prints ``str(error)`` without a traceback and exits 2; anything that is not a
``ChatbenchError`` is a bug and keeps its traceback.
"""

from __future__ import annotations

import re

_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-z0-9+.-]+://[^:/@\s]*:)(?P<secret>[^@\s]+)(?=@)", re.IGNORECASE)
_PASSWORD_KV = re.compile(r"(?P<head>password\s*=\s*)(?P<secret>'[^']*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace passwords in URLs (``user:secret@``) and ``password=...`` pairs by ``***``."""
    text = _PASSWORD_IN_URL.sub(r"\g<head>***", text)
    return _PASSWORD_KV.sub(r"\g<head>***", text)


class ChatbenchError(Exception):
    """A user-facing failure: bad input or an environment that cannot run the job (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(" ".join(message.split())))


class ConfigError(ChatbenchError):
    """A setting or spec field is invalid; the message names the field and the fix."""


class ProvisionError(ChatbenchError):
    """A throwaway or existing server could not be provided."""


class UnsafeOperationError(ChatbenchError):
    """Destructive work was asked of a database the harness did not create."""
