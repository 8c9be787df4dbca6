"""A ci-profile sign-off on a real Citus cluster, as CI runs it: one verdict, the readiness section and the
single-node comparison in Markdown, HTML, JSON and JUnit.

The Citus build is the one every Citus test shares (``citus_support``: built once per machine, cached by
tarball hash and PostgreSQL build). Rounds are cut to keep the run short; what is asserted is
deterministic (rows, routing, the shape of every report), never a latency.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from citus_support import citus_tarball
from commandline import chatbench

from chatbench.reports.signoff import EXIT_CODES

# One worker for the module: its fixture (a whole Citus sign-off, ~40 s) runs once, not once per worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("citus-signoff")]

HISTORY = ("latest_page", "keyset_page_1", "offset_page_1", "newer_than", "message_count")


@pytest.fixture(scope="module")
def signoff(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, int]:
    citus_tarball()  # exported for the child process; skips (fails under CI=true) without a tarball
    out = tmp_path_factory.mktemp("citus-signoff")
    done = chatbench("signoff", "--backend", "citus", "--profile", "ci", "--rounds", "100", "--warmup", "10",
                     "--retries", "0", "--out", str(out), merged=True, timeout=600)
    return out, done.stdout, done.returncode


def test_one_verdict_for_the_cluster_and_the_single_node_beside_it(signoff: tuple[Path, str, int]) -> None:
    out, log, code = signoff
    data = json.loads((out / "signoff.json").read_text())
    assert data["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE"), log[-3000:]  # it ran to the end on both servers
    assert code == EXIT_CODES[data["verdict"]]
    assert log.strip().splitlines()[-1].startswith(f"{data['verdict']}: ")
    cluster, single = data["targets"]
    assert (cluster["server"]["backend"], single["server"]["backend"]) == ("citus", "local")
    assert cluster["seed"]["checksum"] == single["seed"]["checksum"]  # the same rows on both
    stages = {s["stage"]: s for s in cluster["stages"]}
    assert "distributed by_conversation" in stages["seed"]["detail"]
    assert stages["drift"]["status"] == "ok"  # the re-keyed messages primary key is the variant's, on purpose
    assert stages["plans"]["status"] == stages["scaling"]["status"] == "skipped"
    assert stages["benchmarks"]["status"] != "error"
    # Citus refuses the canonical append_message: a readiness error that fails the verdict, with its fix.
    assert any("citus/unplannable: append_message" in line and "fix:" in line for line in data["failing"])


def test_the_readiness_section_in_every_format(signoff: tuple[Path, str, int]) -> None:
    out, _log, _code = signoff
    data = json.loads((out / "signoff.json").read_text())
    cluster, single = data["targets"]
    findings = {(f["kind"], f["object"]): f for f in cluster["verification"]["readiness"]["findings"]}
    assert findings[("history_router_share", "history pagination")]["actual"] == "100% router"
    assert findings[("routing", "list_conversations_first")]["actual"] == "multi-shard (32 tasks)"
    assert ("shard_skew", "messages (32 shards)") in findings
    preview = {(f["kind"], f["object"], f["severity"]) for f in single["verification"]["readiness"]["findings"]}
    assert ("unique_without_distribution_column", "messages.pk_messages", "info") in preview
    markdown, html = (out / "signoff.md").read_text(), (out / "signoff.html").read_text()
    for text in (markdown, html):
        assert "Distribution readiness (Citus), on the Citus cluster" in text
        assert "Distribution readiness (Citus), a preview on a single node" in text
        assert "history_router_share" in text and "unplannable" in text
    suites = {s.get("name"): s for s in ET.parse(out / "signoff.junit.xml").getroot()}
    readiness = next(s for name, s in suites.items() if name.endswith("(citus) / readiness"))
    failed = [c.get("name") for c in readiness if c.find("failure") is not None]
    assert failed == ["append_message"]


def test_the_single_node_comparison_in_every_format(signoff: tuple[Path, str, int]) -> None:
    out, _log, _code = signoff
    data = json.loads((out / "signoff.json").read_text())
    queries = {q["scenario"]: q for q in data["cluster_comparison"]["queries"]}
    for name in HISTORY:
        q = queries[name]
        assert (q["router"], q["tasks"]) == (True, 1), q
        for side in (q["single"], q["cluster"]):
            assert side["p50_ms"] > 0 and side["p95_ms"] >= side["p50_ms"] and side["buffers"] > 0
    assert (queries["conversation_list_first"]["router"], queries["conversation_list_first"]["tasks"]) == (False, 32)
    header = "| scenario | query | route on Citus | p50 ms single | p50 ms Citus | p95 ms single | p95 ms Citus |"
    markdown, html = (out / "signoff.md").read_text(), (out / "signoff.html").read_text()
    assert "### Citus cluster against a single node" in markdown and header in markdown
    assert "| latest_page | latest_messages | router |" in markdown
    assert "<h2>Citus cluster against a single node</h2>" in html and "<th>buffers Citus</th>" in html
    suites = {s.get("name"): s for s in ET.parse(out / "signoff.junit.xml").getroot()}
    cases = {c.get("name"): c for c in suites["Citus cluster against a single node"]}
    assert set(HISTORY) <= set(cases)
    props = {p.get("name"): p.get("value") for p in cases["latest_page"].iter("property")}
    assert props["route on Citus"] == "router" and float(props["p95 ms Citus"]) > 0
