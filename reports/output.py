"""Writing the report files: scrubbed of secrets, atomically, and as one set.

Renderers only ever see redacted data (``Server.describe()``), but a password can still hide in an
error message or a setting, and a renderer escapes it on the way (``&lt;`` in HTML, ``\\"`` in JSON):
``scrub`` masks URL passwords, ``password=`` pairs and every known secret of the run in each of its
encodings (``chatbench.errors.redact``), so no output file can carry one.

A run owns its output folder's chatbench files: the new set is written into a hidden staging folder
beside them, then the previous run's set is removed and the new files are renamed into place (a
rename in one file system is atomic). A reader, or a run killed halfway, never sees a mix of two
runs' files or a truncated file; a killed run leaves at most its staging folder, which the next
write or ``chatbench clean`` removes (an owner record in the run directory names it). A write error
is one line naming the file and the fix.
"""

from __future__ import annotations

import contextlib
import os
import secrets as random
import shutil
from collections.abc import Iterable
from pathlib import Path

from chatbench.errors import redact
from chatbench.faults import checkpoint
from chatbench.files import write_error
from chatbench.provision.owner import STAGING_PREFIX, Lease
from chatbench.provision.process import pid_alive
from chatbench.reports import render_html, render_json, render_junit, render_markdown
from chatbench.reports.compare import Comparison
from chatbench.reports.signoff import Signoff

SIGNOFF_FILES = ("signoff.md", "signoff.html", "signoff.json", "signoff.junit.xml")
COMPARE_FILES = ("compare.md", "compare.html", "compare.json")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    return redact(text, tuple(secrets))


def write_signoff(signoff: Signoff, out_dir: str | Path, *, secrets: Iterable[str] = ()) -> dict[str, Path]:
    """Write signoff.md/.html/.json and JUnit XML into ``out_dir``; returns name -> path."""
    texts = {
        "signoff.md": render_markdown.render_signoff(signoff),
        "signoff.html": render_html.render_signoff(signoff),
        "signoff.json": render_json.render_signoff(signoff),
        "signoff.junit.xml": render_junit.render_signoff(signoff),
    }
    return write_set(texts, out_dir, tuple(secrets), SIGNOFF_FILES)


def write_comparison(comparison: Comparison, out_dir: str | Path, *, secrets: Iterable[str] = ()) -> dict[str, Path]:
    texts = {
        "compare.md": render_markdown.render_comparison(comparison),
        "compare.html": render_html.render_comparison(comparison),
        "compare.json": render_json.render_comparison(comparison),
    }
    return write_set(texts, out_dir, tuple(secrets), COMPARE_FILES)


def write_set(texts: dict[str, str], out_dir: str | Path, secrets: tuple[str, ...],
              family: tuple[str, ...]) -> dict[str, Path]:
    """Replace the ``family`` of files in ``out_dir`` by ``texts`` (scrubbed), as one set."""
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(folder, exc, "--out") from None
    _remove_dead_staging(folder)
    token = random.token_hex(3)
    staging = folder / f"{STAGING_PREFIX}{os.getpid()}-{token}"
    lease = Lease(f"out-{token}", staging=staging).acquire()  # so `chatbench clean` finds it after a SIGKILL
    try:
        try:
            staging.mkdir()
            for name, text in texts.items():
                (staging / name).write_text(scrub(text, secrets), encoding="utf-8")
        except OSError as exc:
            raise write_error(folder, exc, "--out") from None
        checkpoint("report.write")  # the crash tests stop here: new set staged, old set in place
        try:
            for name in family:  # the previous run's set goes first: never a mix of two runs
                with contextlib.suppress(FileNotFoundError):
                    (folder / name).unlink()
            written = {}
            for name in texts:
                os.replace(staging / name, folder / name)
                written[name] = folder / name
        except OSError as exc:
            raise write_error(folder, exc, "--out") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        lease.release()
    return written


def _remove_dead_staging(folder: Path) -> None:
    """Report staging folders (``<STAGING_PREFIX><pid>-<token>``) of runs that died while writing. Other
    folders a lease owns under the same prefix (a seed's spilled skeleton) are the janitor's to judge."""
    for stale in folder.glob(f"{STAGING_PREFIX}*"):
        pid, _, token = stale.name[len(STAGING_PREFIX):].partition("-")
        if pid.isdigit() and token and not pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
