"""Writing the report files: every renderer's text passes one secret scrub before it touches disk.

Renderers only ever see redacted data (``Server.describe()``), but a password can still hide in an
error message or a setting; ``scrub`` masks URL passwords and ``password=`` pairs (``redact``) and
every known secret string of the run, so no output file can carry one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from chatbench.reports import render_html, render_json, render_junit, render_markdown
from chatbench.reports.compare import Comparison
from chatbench.reports.signoff import Signoff

from chatbench.errors import redact

SIGNOFF_FILES = ("signoff.md", "signoff.html", "signoff.json", "signoff.junit.xml")
COMPARE_FILES = ("compare.md", "compare.html", "compare.json")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    text = redact(text)
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def write_signoff(signoff: Signoff, out_dir: str | Path, *, secrets: Iterable[str] = ()) -> dict[str, Path]:
    """Write signoff.md/.html/.json and JUnit XML into ``out_dir``; returns name -> path."""
    texts = {
        "signoff.md": render_markdown.render_signoff(signoff),
        "signoff.html": render_html.render_signoff(signoff),
        "signoff.json": render_json.render_signoff(signoff),
        "signoff.junit.xml": render_junit.render_signoff(signoff),
    }
    return _write(texts, out_dir, tuple(secrets))


def write_comparison(comparison: Comparison, out_dir: str | Path, *, secrets: Iterable[str] = ()) -> dict[str, Path]:
    texts = {
        "compare.md": render_markdown.render_comparison(comparison),
        "compare.html": render_html.render_comparison(comparison),
        "compare.json": render_json.render_comparison(comparison),
    }
    return _write(texts, out_dir, tuple(secrets))


def _write(texts: dict[str, str], out_dir: str | Path, secrets: tuple[str, ...]) -> dict[str, Path]:
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, text in texts.items():
        path = folder / name
        path.write_text(scrub(text, secrets), encoding="utf-8")
        written[name] = path
    return written
