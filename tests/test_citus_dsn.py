"""``--backend dsn`` against an existing Citus coordinator takes the cluster's path: chatbench's database is made
on every node and distributed, readiness is judged, a single local node runs beside it, and every copy of the
database is dropped afterwards. The same cluster signs off ``--citus-distribution by_user`` with ``--load``
(history pages fan out: the readiness fails them; Citus refuses ``append_message`` there, so the load reports
it once as not measurable instead of counting errors). A DSN user who could not distribute a database of
chatbench's is refused in one line before anything is created.

The coordinator is a local cluster provisioned as ``--backend citus`` does (``citus_support``) with Citus
enabled in its own database, as an operator sets one up; the sign-offs run through the real CLI. What is
asserted is deterministic (routing, rows, databases, exit codes), never a latency.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from citus_support import citus_server
from commandline import chatbench

from chatbench.provision import Server
from chatbench.provision.citus import enable_citus
from chatbench.reports.signoff import EXIT_CODES

# One worker for the module: its cluster and its two sign-offs (about 35 s each) run once, not once per worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("citus-dsn")]

QUICK = ("--profile", "smoke", "--rounds", "20", "--warmup", "2", "--retries", "0", "--scaling", "none")
RUN_PREFIX = "chatbench_run_"


@pytest.fixture(scope="module")
def coordinator() -> Iterator[Server]:
    """An existing Citus coordinator: its database has the extension and names its two workers."""
    with citus_server() as server:
        enable_citus(server)
        yield server


def databases(server: Server) -> dict[int, set[str]]:
    """The databases of every node of the cluster (coordinator first)."""
    ports = [int(server.url.port or 0), *(int(p) for p in server.details["worker_ports"].split(","))]
    found = {}
    for port in ports:
        node = server.url.set(drivername="postgresql", port=port).render_as_string(hide_password=False)
        with psycopg.connect(node, autocommit=True) as conn:
            found[port] = {str(r[0]) for r in conn.execute("SELECT datname FROM pg_database")}
    return found


def _signoff(coordinator: Server, out: Path, *argv: str) -> tuple[dict[str, Any], str, int, dict[int, set[str]]]:
    done = chatbench("signoff", "--backend", "dsn", "--dsn", coordinator.conninfo(), *QUICK, "--out", str(out), *argv,
                     merged=True, timeout=600)
    data = json.loads((out / "signoff.json").read_text()) if (out / "signoff.json").exists() else {}
    return data, done.stdout, done.returncode, databases(coordinator)


@pytest.fixture(scope="module")
def by_conversation(coordinator: Server, tmp_path_factory: pytest.TempPathFactory
                    ) -> tuple[dict[str, Any], str, int, dict[int, set[str]], Path]:
    out = tmp_path_factory.mktemp("dsn-citus")
    return (*_signoff(coordinator, out), out)


@pytest.fixture(scope="module")
def by_user(coordinator: Server, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[dict[str, Any], str, int, dict[int, set[str]]]:
    # Every history page fans out here (tens of ms each): half a second of rounds per scenario shows it.
    return _signoff(coordinator, tmp_path_factory.mktemp("dsn-citus-by-user"), "--citus-distribution", "by_user",
                    "--budget", "0.5", "--load", "--duration", "1", "--clients", "1")


def test_a_dsn_coordinator_signs_off_as_a_cluster_beside_a_single_node(
        by_conversation: tuple[dict[str, Any], str, int, dict[int, set[str]], Path]) -> None:
    data, log, code, _after, _out = by_conversation
    assert data.get("verdict") in ("PASS", "FAIL", "INCONCLUSIVE"), log[-3000:]  # it ran to the end on both
    assert code == EXIT_CODES[data["verdict"]]
    cluster, single = data["targets"]
    assert (cluster["server"]["backend"], single["server"]["backend"]) == ("dsn", "local")
    assert cluster["server"]["details"]["distribution"] == "by_conversation"
    assert cluster["server"]["details"]["workers"] == "2"
    assert cluster["seed"]["checksum"] == single["seed"]["checksum"]  # the same rows on both
    stages = {s["stage"]: s for s in cluster["stages"]}
    assert "distributed by_conversation" in stages["seed"]["detail"]
    assert "the empty schema placed" in stages["seed"]["detail"]  # seeded into the shards where they stand
    assert stages["drift"]["status"] == "ok" and stages["readiness"]["status"] != "skipped"
    assert data["citus"] == {"distribution": "by_conversation", "no_comparison": None}
    findings = {(f["kind"], f["object"]): f for f in cluster["verification"]["readiness"]["findings"]}
    assert findings[("history_router_share", "history pagination")]["actual"] == "100% router"
    assert findings[("routing", "list_conversations_first")]["actual"] == "multi-shard (32 tasks)"
    comparison = data["cluster_comparison"]
    assert comparison["distribution"] == "by_conversation"
    routes = {q["scenario"]: (q["router"], q["tasks"]) for q in comparison["queries"]}
    assert routes["latest_page"] == (True, 1) and routes["conversation_list_first"] == (False, 32)


def test_the_reports_show_the_cluster_and_its_variant(
        by_conversation: tuple[dict[str, Any], str, int, dict[int, set[str]], Path]) -> None:
    out = by_conversation[4]
    markdown, html = (out / "signoff.md").read_text(), (out / "signoff.html").read_text()
    for text in (markdown, html):
        assert "Distribution readiness (Citus), on the Citus cluster, distributed by_conversation" in text
        assert "Distribution readiness (Citus), a preview on a single node against by_conversation" in text
    assert "### Citus cluster against a single node" in markdown and "(distributed by_conversation)" in markdown


def test_every_copy_of_chatbench_database_is_dropped(
        coordinator: Server, by_conversation: tuple[dict[str, Any], str, int, dict[int, set[str]], Path]) -> None:
    after = by_conversation[3]
    assert len(after) == 3
    assert all(not any(name.startswith(RUN_PREFIX) for name in names) for names in after.values()), after
    assert all("chatbench" in names for names in after.values())  # the DSN's own database stays


def test_by_user_history_pages_fan_out_and_the_load_leaves_the_refused_append_out(
        by_user: tuple[dict[str, Any], str, int, dict[int, set[str]]]) -> None:
    data, log, code, after = by_user
    assert data.get("verdict") == "FAIL", log[-3000:]  # history pagination misses its 100 % router target
    assert code == EXIT_CODES["FAIL"]
    cluster = data["targets"][0]
    assert cluster["server"]["details"]["distribution"] == "by_user" and data["citus"]["distribution"] == "by_user"
    findings = {(f["kind"], f["object"]): f for f in cluster["verification"]["readiness"]["findings"]}
    history = findings[("history_router_share", "history pagination")]
    assert (history["severity"], history["actual"]) == ("error", "0% router")
    assert "latest_messages" in history["detail"]
    assert findings[("routing", "list_conversations_first")]["actual"] == "router (1 shard)"
    assert any("citus/history_router_share" in line for line in data["failing"])
    assert not any("] drift:" in line for line in data["failing"])  # the variant's keys are on purpose
    load = cluster["benchmark"]["load"]
    assert load["errors"] == 0 and load["total"] > 0
    assert load["not_measured"]["append_message"].startswith("not measurable on this cluster: ")
    assert "append_message" not in {op["operation"] for op in load["operations"]}
    assert any(c["stage"] == "load" and c["name"] == "append_message" and c["severity"] == "warning"
               for c in cluster["checks"])
    assert all(not any(name.startswith(RUN_PREFIX) for name in names) for names in after.values()), after


def test_a_user_who_cannot_distribute_chatbench_database_is_one_line(coordinator: Server, tmp_path: Path) -> None:
    with psycopg.connect(coordinator.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE ROLE cbs_plain LOGIN CREATEDB")  # Citus creates the role on the workers too
    try:
        before = databases(coordinator)
        dsn = coordinator.url.set(drivername="postgresql", username="cbs_plain").render_as_string(hide_password=False)
        out = tmp_path / "out"
        done = chatbench("signoff", "--backend", "dsn", "--dsn", dsn, *QUICK, "--out", str(out))
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert "--dsn" in lines[0] and "cbs_plain is not a superuser" in lines[0], lines[0]
        assert "--use-dsn-database" in lines[0]
        assert databases(coordinator) == before and not out.exists()  # refused before anything was created
    finally:
        with psycopg.connect(coordinator.conninfo(), autocommit=True) as conn:
            conn.execute("DROP ROLE cbs_plain")
