"""A release's migration judged against the schema the release must reach (issue 22).

``rehearse --migration add_column.sql`` (a lock-safe ``ADD COLUMN edited_at``) passes: without
``--models`` the migrated database is judged in contract mode against the canonical schema, where an
extra nullable column is what applications add. With ``--models app.models:Base`` it is judged exactly
against the application's models: it passes when they declare the column and fails, naming it, when they
do not. Real servers, real live load (smoke profile, smoke_fifth as the second size), through the command line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_models import ADD_COLUMN, REFERENCE, forget_app, write_app

from chatbench import schema
from chatbench.cli import main

pytestmark = pytest.mark.slow  # whole sign-offs, rehearsals or a Citus cluster: not in the fast tier


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The application's project folder as the working directory: before.sql (the previous release, the
    canonical schema) and add_column.sql; ``app`` is forgotten after the test (each test writes its own)."""
    (tmp_path / "before.sql").write_text(schema.ddl() + "\n")
    (tmp_path / "add_column.sql").write_text(ADD_COLUMN)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    forget_app()


def _rehearse(project: Path, *options: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, dict[str, Any]]:
    out = project / "out"
    # no long transaction: the queue behind one is test_rehearse_queue's; these judge the migrated schema
    code = main(["rehearse", "--backend", "local", "--profile", "smoke", *options, "--migration", "add_column.sql",
                 "--rate", "40", "--clients", "2", "--baseline-seconds", "0.3", "--long-transaction", "0",
                 "--out", str(out)])
    err = capsys.readouterr().err
    return code, err, json.loads((out / "rehearsal.json").read_text())


def test_add_column_passes_in_contract_mode(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, report = _rehearse(project, capsys=capsys)
    assert code == 0, err
    assert report["verdict"] in ("PASS", "WARN"), report["failing"]
    verification = report["verification"]
    assert verification["passed"], report["failing"]
    assert (verification["mode"], verification["expected"]) == ("contract", "canonical")
    extra = [f for f in verification["findings"] if f["object"].endswith("edited_at")]
    assert extra and all(f["severity"] != "error" for f in extra), verification["findings"]  # seen, not drift


def test_models_that_declare_the_column_pass(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_app(project, declares_edited_at=True)
    code, err, report = _rehearse(project, "--models", REFERENCE, "--from", "before.sql", capsys=capsys)
    assert code == 0, err
    assert report["verdict"] in ("PASS", "WARN"), report["failing"]
    verification = report["verification"]
    assert verification["passed"], report["failing"]
    assert (verification["mode"], verification["expected"]) == ("exact", "app.models:Base")
    assert "verified exact against app.models:Base" in err


def test_models_that_lack_the_column_fail_naming_it(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_app(project, declares_edited_at=False)
    code, err, report = _rehearse(project, "--models", REFERENCE, "--from", "before.sql", capsys=capsys)
    assert code == 1, err
    assert report["verdict"] == "FAIL"
    errors = [f for f in report["verification"]["findings"] if f["severity"] == "error"]
    assert errors and all("edited_at" in f["object"] for f in errors), errors
    assert any(f["kind"] == "extra_column" for f in errors), errors
    assert "edited_at" in next(line for line in err.splitlines() if "FAIL verification" in line)
