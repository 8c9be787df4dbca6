"""The application's queries on the sign-off's scaling curves: re-measured on the smaller seeded databases, which
are built with the application's own schema (``--schema-from``), as the main database is.

Asserted on which points exist and that the smaller run refused none of the application's queries (before, the
smaller databases had the canonical schema, and the queries' columns did not exist there); never on timings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from app_queries_support import CORPUS
from commandline import chatbench

TENANT = CORPUS / "chat_tenant"
QUERIES = ("history_numeric", "history_numeric_fixed")


def _queries(names: tuple[str, ...]) -> str:
    parts = re.split(r"(?m)^(?=-- name: )", (TENANT / "queries.sql").read_text())
    return "".join(p for p in parts if p.split("\n", 1)[0].removeprefix("-- name: ").strip() in names)


@pytest.mark.slow
def test_scaling_curves_carry_the_application_queries_on_its_schema(tmp_path: Path) -> None:
    (tmp_path / "app.sql").write_text(_queries(QUERIES))
    out = tmp_path / "out"
    done = chatbench("signoff", "--backend", "local", "--profile", "smoke", "--scaling", "smoke_fifth",
                     "--rounds", "20", "--warmup", "2", "--retries", "0", "--schema-from", str(TENANT / "schema.sql"),
                     "--queries", str(tmp_path / "app.sql"), "--out", str(out), timeout=900)
    assert done.returncode == 1, done.stderr[-3000:]  # history_numeric's implicit cast fails its contract
    (target,) = json.loads((out / "signoff.json").read_text())["targets"]
    points = {(p["scenario"], p["profile"]) for p in target["scaling"]}
    for query in QUERIES:
        for role in ("whale", "small"):
            assert {(f"app:{query}/{role}", "smoke"), (f"app:{query}/{role}", "smoke_fifth")} <= points, sorted(points)
    assert ("latest_page", "smoke_fifth") in points
    scaling = next(s for s in target["stages"] if s["stage"] == "scaling")
    assert scaling["status"] == "ok" and "9 scenarios re-measured on smoke_fifth" in scaling["detail"], scaling
    # nothing of the smaller run was refused: its database has the application's columns (tenant_id, raw)
    assert not [c for c in target["checks"] if c["stage"] == "scaling"], target["checks"]
