"""One exception family whose message is the one line a user sees, and the one secret scrub.

The CLI prints ``str(error)`` without a traceback and exits 2; anything that is not a
``ChatbenchError`` is a bug and keeps its traceback.

Secrets are scrubbed at the source: every password chatbench learns (a ``--dsn``/``--url``, a
container's generated password, ``PGPASSWORD``) is registered here once, and ``redact`` masks it in
every form it can take on its way out: raw, URL-encoded (as libpq and SQLAlchemy spell it in a URL),
HTML/XML-escaped and JSON-escaped, because a report renders text after it was scrubbed.
"""

from __future__ import annotations

import html
import json
import os
import re
from urllib.parse import quote, quote_plus

_USERINFO = re.compile(r"[^:/@\s]{0,256}:(?P<secret>[^@\s]{1,512})(?=@)")
_PASSWORD_KV = re.compile(r"(?P<head>password\s*=\s*)(?P<secret>'[^']*'|\S+)", re.IGNORECASE)
MASK = "***"
MIN_SECRET_LENGTH = 3
"""Shorter strings are not masked by value: masking every "ab" would shred the text, not protect it."""

_secrets: set[str] = set()


def register_secret(secret: object) -> None:
    """Remember a password so that ``redact`` masks it wherever it appears, in any encoding."""
    if isinstance(secret, str) and len(secret) >= MIN_SECRET_LENGTH:
        _secrets.add(secret)


def secret_forms(secret: str) -> set[str]:
    """Every spelling of ``secret`` an output can carry: raw, URL-encoded, HTML/XML- and JSON-escaped."""
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), quote(secret, safe="").lower()}
    forms |= {html.escape(form, quote=True) for form in list(forms)}
    escaped_xml = secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    forms |= {escaped_xml, escaped_xml.replace('"', "&quot;").replace("'", "&apos;"),
              escaped_xml.replace('"', "&quot;").replace("'", "&#39;"),
              escaped_xml.replace('"', "&#34;").replace("'", "&#39;")}
    for form in list(forms):
        forms.add(json.dumps(form)[1:-1])
        forms.add(json.dumps(form, ensure_ascii=False)[1:-1])
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def known_secrets() -> frozenset[str]:
    """The registered passwords plus the one libpq would take from the environment."""
    environment = os.environ.get("PGPASSWORD")
    extra = {environment} if environment and len(environment) >= MIN_SECRET_LENGTH else set()
    return frozenset(_secrets | extra)


def redact(text: str, secrets: frozenset[str] | set[str] | tuple[str, ...] = ()) -> str:
    """Mask every known secret (in every form), URL passwords (``user:secret@``) and ``password=...``."""
    forms: set[str] = set()
    for secret in known_secrets() | set(secrets):
        forms |= secret_forms(secret)
    for form in sorted(forms, key=len, reverse=True):  # longest first: a form may contain another
        text = text.replace(form, MASK)
    return _PASSWORD_KV.sub(rf"\g<head>{MASK}", _mask_url_passwords(text))


def _mask_url_passwords(text: str) -> str:
    """``scheme://user:secret@`` -> ``scheme://user:***@``, found from each ``://`` (linear in the text;
    a regex that starts with the scheme is quadratic on long runs of letters, like base64 plots)."""
    parts: list[str] = []
    done = 0
    found = text.find("://")
    while found != -1:
        before = text[found - 1] if found else ""
        match = _USERINFO.match(text, found + 3) if before.isalnum() or (before != "" and before in "+.-") else None
        if match is not None:
            parts += [text[done:match.start("secret")], MASK]
            done = match.end("secret")
        found = text.find("://", max(found + 3, done))
    return "".join(parts) + text[done:] if parts else text


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


class ExternalCommandError(ChatbenchError):
    """An external program (a migration command, pgbench, initdb, pg_ctl) could not run or failed."""


class CommandTimedOut(ExternalCommandError):
    """An external program ran longer than its timeout and was stopped (with everything it started)."""
