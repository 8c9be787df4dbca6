"""Message content as AI chat writes it: deterministic, calibrated, stored out of line, and counted.

* the pools are a function of (locales, share, seed, content spec) only;
* each role's lengths follow the profile's ``[content]`` distribution, and the README's table is what
  ``python -m chatbench.loadgen.content --profile ci`` prints;
* the ``ci`` seed has a non-empty TOAST table for ``messages``;
* the buffers of a history page with out-of-line content count the detoasting, on PostgreSQL 18
  (``EXPLAIN ... SERIALIZE``) and on 15 (the whole-row probe), through ``assert_plan`` and the
  verifier's own plan measurement.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from content_fixtures import LOCALES, ToastedConversation, pg15_server, toasted_conversation
from loadgen_fixtures import seeded_database

from chatbench import loadgen
from chatbench.errors import ConfigError
from chatbench.loadgen import content
from chatbench.loadgen import pools as pools_module
from chatbench.loadgen.pools import ROLES, _build_pools
from chatbench.loadgen.spec import ContentSpec
from chatbench.provision import Server
from chatbench.schema.queries import QUERIES_BY_NAME
from chatbench.testing.databases import ChatDatabase
from chatbench.testing.plan_assert import assert_plan
from chatbench.verify.plans import _explain
from chatbench.verify.scenarios import Scenario
from chatbench.verify.serialize import SERIALIZE_VERSION_NUM

README = Path(__file__).resolve().parents[1] / "README.md"


def _role_lengths(pools: Any, role: str) -> np.ndarray:
    k = ROLES.index(role)
    first, size = pools.role_offsets[k], pools.role_sizes[k]
    return np.array([len(t.encode()) for t in pools.contents[first : first + size]])


@pytest.fixture(scope="session")
def ci_pools() -> tuple[ContentSpec, Any]:
    """The ``ci`` profile's content spec and pools built from it (uncached, ``_build_pools``: seconds of
    text generation), for the test that judges their distributions."""
    spec = loadgen.load_spec("ci").content
    return spec, _build_pools(LOCALES, 0.2, 0, spec)


def test_pools_are_deterministic_in_their_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Built four times, so from an eighth of the entries: determinism does not depend on how many."""
    monkeypatch.setattr(pools_module, "AI_ENTRIES", {role: n // 8 for role, n in pools_module.AI_ENTRIES.items()})
    spec = loadgen.load_spec("ci").content
    first = _build_pools(LOCALES, 0.2, 0, spec)
    again = _build_pools(LOCALES, 0.2, 0, spec)
    assert first.message_fields == again.message_fields
    other_seed = _build_pools(LOCALES, 0.2, 1, spec)
    assert other_seed.message_fields != first.message_fields
    shorter = _build_pools(LOCALES, 0.2, 0, replace(spec, assistant_median_bytes=700))
    assert spec.assistant_median_bytes > 700
    assert np.median(_role_lengths(shorter, "assistant")) < np.median(_role_lengths(first, "assistant"))


def test_the_pools_kept_on_disk_are_the_most_recently_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pools are cached on disk per seed; past ``POOLS_KEPT`` files the least recently used go (a hit counts as a
    use), the one just written never."""
    import os

    monkeypatch.setenv("CHATBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(pools_module, "AI_ENTRIES", {role: n // 16 for role, n in pools_module.AI_ENTRIES.items()})
    monkeypatch.setattr(pools_module, "POOLS_KEPT", 3)
    pools_module.build_pools.cache_clear()
    spec = loadgen.load_spec("ci").content
    folder = tmp_path / "pools"
    stamps: dict[int, Path] = {}
    try:
        for seed in (101, 102, 103):
            pools_module.build_pools(LOCALES, 0.2, seed, spec)
            (stamps[seed],) = set(folder.glob("*.pickle")) - set(stamps.values())
            os.utime(stamps[seed], (1_000_000 + seed, 1_000_000 + seed))  # written in seed order
        assert len(list(folder.glob("*.pickle"))) == 3
        pools_module.build_pools.cache_clear()
        pools_module.build_pools(LOCALES, 0.2, 101, spec)  # a hit: 101 is now the most recently used
        pools_module.build_pools(LOCALES, 0.2, 104, spec)  # a fourth: the least recently used (102) goes
        left = set(folder.glob("*.pickle"))
        assert len(left) == 3 and stamps[102] not in left and {stamps[101], stamps[103]} <= left
        assert not list(folder.glob("*.partial"))
    finally:
        pools_module.build_pools.cache_clear()


def test_each_role_follows_its_configured_distribution(ci_pools: tuple[ContentSpec, Any]) -> None:
    spec, pools = ci_pools
    for role in ("assistant", "user", "system", "tool"):
        sizes = _role_lengths(pools, role)
        median, top = getattr(spec, f"{role}_median_bytes"), getattr(spec, f"{role}_max_bytes")
        if role == "user":  # pasted documents sit above their own cap
            top = spec.paste_max_bytes + spec.user_max_bytes + 2
        assert sizes.max() <= top, role
        # tool calls (assistant) and the JSON framing (tool) move the median a little, not more
        assert 0.75 * median <= np.median(sizes) <= 1.3 * median, (role, np.median(sizes), median)
    answers = pools.contents[pools.role_offsets[1] : pools.role_offsets[1] + pools.role_sizes[1]]
    assistant = _role_lengths(pools, "assistant")
    assert np.percentile(assistant, 99) > 10_000, "the assistant tail reaches tens of kB"
    assert (assistant > content.TOAST_THRESHOLD_BYTES).mean() > 0.2
    calls = sum(a.startswith('{"tool_calls"') for a in answers) / len(answers)
    coded = sum("```" in a for a in answers if not a.startswith("{")) / len(answers)
    prose = 1 - spec.json_share
    assert abs(calls - spec.json_share) < 0.02
    assert abs(coded - spec.code_share * prose) < 0.03
    users = pools.contents[pools.role_offsets[0] : pools.role_offsets[0] + pools.role_sizes[0]]
    pasted = sum("\n\n" in u for u in users) / len(users)
    assert abs(pasted - spec.paste_share) < 0.015
    # real text: compresses, but not to nothing (neither random bytes nor one repeated sentence)
    import zlib

    sample = "".join(answers[:200]).encode()
    assert 1.5 < len(sample) / len(zlib.compress(sample)) < 6


def test_the_human_style_keeps_short_messages() -> None:
    pools = _build_pools(LOCALES, 0.2, 0, ContentSpec(style="human"))
    assert _role_lengths(pools, "assistant").max() < content.TOAST_THRESHOLD_BYTES


def test_a_bad_content_field_is_one_line_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"content.style = 'prose': must be one of ai, human"):
        loadgen.load_spec("smoke", overrides={"content.style": "prose"})
    with pytest.raises(ConfigError, match=r"content.user_median_bytes = 9000: must be <= content.user_max_bytes"):
        loadgen.load_spec("smoke", overrides={"content.user_median_bytes": 9000})


def test_the_readme_table_is_what_the_command_prints() -> None:
    printed = content.distribution_table(content.pool_distribution(loadgen.load_spec("ci")))
    section = README.read_text().split("## Message content", 1)[1]
    for line in printed.splitlines()[2:]:  # the rows, below the header
        assert line in section, f"README's content table is stale; run python -m chatbench.loadgen.content: {line}"


@pytest.mark.xdist_group("ci_seed_0")  # with test_verify_cli's ci test: the worker's server seeds ci once (template)
@pytest.mark.slow  # the ci profile (200,000 messages): its seed is most of the pair's 7.5 core-seconds
def test_the_ci_seed_stores_messages_out_of_line(pg: Server) -> None:
    with seeded_database(pg, "ci") as (db, _), psycopg.connect(db.conninfo()) as conn:
        row = conn.execute("SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 'messages'").fetchone()
        assert row is not None and row[0] > 1_000_000, f"TOAST table of messages holds {row} bytes"
        measured = content.measure_database(conn)
        assistant = next(r for r in measured if r.role == "assistant")
        assert assistant.out_of_line > 0 and assistant.p99 > 10_000


def _page_buffers(toasted: ToastedConversation) -> tuple[int, int, int]:
    """(plain EXPLAIN buffers, assert_plan's custom-plan buffers, the verifier's custom-plan buffers)."""
    query = QUERIES_BY_NAME["latest_messages"]
    params = {"user_id": toasted.user_id, "conversation_id": toasted.conversation_id, "limit": 50}
    db = toasted.db
    chat = ChatDatabase(db.database, "canonical", "", db.database, db.conninfo(), "", db)
    check = assert_plan(chat, query.sql(), params, modes=("custom",), no_seq_scan=())  # a toy table
    with psycopg.connect(db.conninfo()) as conn:
        cur = psycopg.ClientCursor(conn)
        row = cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query.sql(), params).fetchone()
        assert row is not None
        plain = row[0][0]["Plan"]
        scenario = Scenario("toast-latest", "latest page of long answers", "latest_messages", "page", params)
        verified = _explain(conn, scenario, "custom")
    return int(plain["Shared Hit Blocks"]) + int(plain.get("Shared Read Blocks", 0)), check.plans[0].buffers, \
        verified.buffers


def _assert_detoasting_counted(server: Server) -> None:
    with toasted_conversation(server) as toasted:
        assert toasted.out_of_line >= 50, "the page's answers must be stored out of line"
        plain, asserted, verified = _page_buffers(toasted)
    # each of the 50 out-of-line answers costs at least a toast index descent and a toast heap page
    assert asserted >= plain + 2 * 50, (plain, asserted)
    assert verified >= plain + 2 * 50, (plain, verified)


def test_page_buffers_include_detoasting_on_18(pg: Server) -> None:
    assert pg.version_num >= SERIALIZE_VERSION_NUM
    _assert_detoasting_counted(pg)


@pytest.mark.pg15
def test_page_buffers_include_detoasting_on_15() -> None:
    with pg15_server() as server:
        assert server.version_num < SERIALIZE_VERSION_NUM
        _assert_detoasting_counted(server)
