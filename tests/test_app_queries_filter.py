"""``chatbench bench -k EXPR`` selects the application's scenarios (``app:QUERY/ROLE``) as it selects the canonical
ones: by pytest's keyword rule over their names. The application's scenarios are named only once bound to the
seeded data, so ``-k`` is checked before any server starts against every role each query could take, and applied
to the scenarios bound.

Real commands on the local backend with the smoke profile and the tenant schema of the corpus
(``tests/app_queries/chat_tenant``); asserted on the scenarios measured and exit codes, never on timings.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from app_queries_support import CORPUS
from commandline import chatbench, in_process

from chatbench.benchmarks.results import read

TENANT = CORPUS / "chat_tenant"
FAST = ("--backend", "local", "--profile", "smoke", "--rounds", "20", "--warmup", "2", "--retries", "0")


def test_k_matching_no_canonical_nor_app_scenario_is_one_line_naming_both(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Before any server: an expression no scenario matches is one line naming the application's queries too."""
    done = in_process(capsys, "bench", *FAST, "-k", "no_such_query", "--queries", str(TENANT / "queries.sql"),
                      "--results", str(tmp_path / "out.json"))
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "-k no_such_query: matches no scenario" in lines[0], lines
    assert "the application's are app:QUERY/ROLE of history_numeric, history_numeric_fixed," in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.json").exists()


def test_k_selects_app_scenarios_beside_canonical_ones(tmp_path: Path) -> None:
    """``-k 'latest_page or (history_numeric_fixed and whale)'``: the canonical ``latest_page`` and one of the
    application's scenarios are measured; every other canonical and application scenario is left out, as
    ``-k`` leaves out a canonical one (not listed as skipped either)."""
    results = tmp_path / "run.json"
    done = chatbench("bench", *FAST, "-k", "latest_page or (history_numeric_fixed and whale)",
                     "--schema-from", str(TENANT / "schema.sql"), "--queries", str(TENANT / "queries.sql"),
                     "--results", str(results), "--json", str(tmp_path / "bench.json"), timeout=600)
    assert done.returncode in (0, 1, 3), done.stdout[-3000:] + done.stderr[-3000:]  # a verdict, not an error
    run = read(results)
    assert {r.scenario for r in run.scenarios} == {"latest_page", "app:history_numeric_fixed/whale"}, run.skipped
    assert not [name for name in run.skipped if name.startswith("app:")], run.skipped
