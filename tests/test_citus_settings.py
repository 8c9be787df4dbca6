"""The Citus sign-off's choices that need no cluster: the ``citus_distribution`` setting (declared once, refused
in one line before anything starts), the single node beside a ``--dsn`` coordinator of another major, and what
the reports say about both (the variant in the readiness headings and the side-by-side, or why there is none).

The cluster runs of the same choices are ``test_citus_dsn.py`` and ``test_citus_signoff.py``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from commandline import in_process
from reports_fixtures import make_run, make_signoff, make_target

from chatbench.provision.choice import ServerChoice
from chatbench.provision.dsn import CitusCoordinator
from chatbench.reports import render_html, render_json, render_markdown
from chatbench.reports.signoff import CitusRun, ServerSummary, readiness_title
from chatbench.schema import distributed
from chatbench.settings import CITUS_DISTRIBUTIONS, default
from chatbench.signoff.options import beside_coordinator


@pytest.mark.parametrize(("argv", "env", "named"), [
    (("--citus-distribution", "by_shard"), {}, "--citus-distribution by_shard"),
    ((), {"CHATBENCH_CITUS_DISTRIBUTION": "by_shard"}, "CHATBENCH_CITUS_DISTRIBUTION"),
], ids=["argument", "environment"])
def test_an_unknown_distribution_is_one_line_before_anything_starts(
        argv: tuple[str, ...], env: dict[str, str], named: str, tmp_path: Path, run_dir: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    for name, value in {**env, "CHATBENCH_RUN_DIR": str(run_dir)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    done = in_process(capsys, "signoff", "--backend", "citus", "--profile", "smoke", "--out", str(out), *argv)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert named in lines[0] and "by_conversation, by_user" in lines[0], lines[0]
    assert not out.exists() and not run_dir.exists()  # refused before any server or report folder
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_setting_offers_exactly_the_declared_variants() -> None:
    assert tuple(distributed.VARIANTS) == CITUS_DISTRIBUTIONS
    assert default("citus_distribution") == distributed.DEFAULT_VARIANT == "by_conversation"
    assert distributed.variant("by_conversation").conversations_colocated
    assert not distributed.variant("by_user").conversations_colocated  # seeded first, distributed after


def _coordinator(version_num: int) -> CitusCoordinator:
    return CitusCoordinator("14.0-1", version_num, ("10.0.0.1", 5432), (("10.0.0.2", 5432), ("10.0.0.3", 5432)),
                            superuser=True)


def test_a_coordinator_of_the_local_major_gets_a_single_node_beside_it() -> None:
    cluster = beside_coordinator(_coordinator(180006), 18)
    assert cluster.beside == ServerChoice("local") and cluster.why_alone == ""


def test_a_coordinator_of_another_major_runs_alone_and_says_why() -> None:
    cluster = beside_coordinator(_coordinator(160004), 18)
    assert cluster.beside is None
    assert "PostgreSQL 16" in cluster.why_alone and "is 18" in cluster.why_alone


def _cluster_signoff(no_comparison: str | None) -> tuple[str, str, dict[str, object]]:
    cluster = make_target(make_run(seed=1), label="PostgreSQL 16.4 (dsn)")
    cluster = replace(cluster, server=ServerSummary("dsn", "postgresql://u@coordinator/db", "16.4", 160004, "db",
                                                    details={"citus": "14.0-1", "distribution": "by_user"}))
    signoff = replace(make_signoff(cluster), citus=CitusRun("by_user", no_comparison))
    return (render_markdown.render_signoff(signoff), render_html.render_signoff(signoff),
            json.loads(render_json.render_signoff(signoff)))


def test_without_a_single_node_the_reports_say_why() -> None:
    why = "no single node beside the cluster: the coordinator runs PostgreSQL 16 and the embedded one is 18"
    markdown, html, data = _cluster_signoff(why)
    assert f"### Citus cluster against a single node\n\n{why}." in markdown
    assert "<h2>Citus cluster against a single node</h2>" in html and why in html
    assert data["citus"] == {"distribution": "by_user", "no_comparison": why}
    assert data["cluster_comparison"] is None


def test_the_readiness_headings_name_the_variant() -> None:
    single = make_target(make_run(seed=1))
    cluster = replace(single, server=replace(single.server, backend="dsn", details={"citus": "14.0-1"}))
    run = CitusRun("by_user")
    assert readiness_title(cluster, run) == "Distribution readiness (Citus), on the Citus cluster, distributed by_user"
    assert readiness_title(single, run).startswith(
        "Distribution readiness (Citus), a preview on a single node against by_user: ")
