"""Writing a rehearsal's report files (Markdown, HTML, JSON, JUnit), each through the one secret scrub."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from chatbench.convert import to_plain
from chatbench.rehearse.result import Rehearsal
from chatbench.reports import rehearsal_html, rehearsal_junit, rehearsal_markdown
from chatbench.reports.output import write_set
from chatbench.reports.render_json import _dump

REHEARSAL_FILES = ("rehearsal.md", "rehearsal.html", "rehearsal.json", "rehearsal.junit.xml")


def render_json(r: Rehearsal) -> str:
    """``rehearsal.json``; a round trip through ``json`` first turns tuples into lists, where ``_dump``
    writes a value that could not be computed (NaN) as null."""
    return _dump(json.loads(json.dumps(to_plain(r))), 1)


def write_rehearsal(r: Rehearsal, out_dir: Path, *, secrets: Iterable[str] = ()) -> dict[str, Path]:
    """The four files as one set (staged, then renamed into place), scrubbed of ``secrets``."""
    texts = dict(zip(REHEARSAL_FILES, (rehearsal_markdown.render_rehearsal(r), rehearsal_html.render_rehearsal(r),
                                       render_json(r), rehearsal_junit.render_rehearsal(r)), strict=True))
    return write_set(texts, out_dir, tuple(secrets), REHEARSAL_FILES)
