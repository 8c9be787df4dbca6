"""The pieces the reliability guarantees rest on: owner records, external commands, redaction, the
template store's limit, atomic files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from chatbench import external
from chatbench.errors import ChatbenchError, ConfigError, redact, register_secret, secret_forms
from chatbench.files import write_atomically
from chatbench.provision import Server
from chatbench.provision.owner import Lease, OwnerTag, lease_state, owner_alive
from chatbench.provision.process import pid_alive


def test_a_lease_is_locked_while_its_process_lives_and_dead_after(tmp_path: Path) -> None:
    lease = Lease("0123abcd", tmp_path).acquire()
    assert lease_state(lease.path) == "alive" and owner_alive(lease.tag)
    assert json.loads(lease.path.read_text())["chatbench-run"] == "0123abcd"
    assert [p.name for p in tmp_path.iterdir()] == [lease.path.name]  # no temporary left beside it
    lease.release()
    assert lease_state(lease.path) == "missing"
    # Another process takes a lease and is SIGKILLed: the record stays, and nobody holds it.
    script = ("import os, sys, pathlib\nfrom chatbench.provision.owner import Lease\n"
              f"Lease('feedbeef', pathlib.Path({str(tmp_path)!r})).acquire()\nprint('ok', flush=True)\n"
              "os.kill(os.getpid(), 9)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok"
    record = tmp_path / "run-feedbeef.owner"
    assert lease_state(record) == "dead"
    assert not owner_alive(OwnerTag.parse(record.read_text()) or pytest.fail("no tag"))


def test_forked_children_do_not_keep_a_lease_alive(tmp_path: Path) -> None:
    """A COPY worker that outlives its killed parent must not make the run look alive."""
    script = ("import os, pathlib, time\nfrom chatbench.provision.owner import Lease\n"
              f"Lease('5eed5eed', pathlib.Path({str(tmp_path)!r})).acquire()\n"
              "child = os.fork()\n"
              "if child == 0:\n    os.close(1)\n    os.close(2)\n    time.sleep(30)\n    os._exit(0)\n"
              "print(child, flush=True)\nos.kill(os.getpid(), 9)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    orphan = int(done.stdout.strip())
    try:
        assert pid_alive(orphan)  # the forked child lives on ...
        assert lease_state(tmp_path / "run-5eed5eed.owner") == "dead"  # ... and does not hold the lease
    finally:
        os.kill(orphan, 9)


def test_external_commands_are_bounded_scrubbed_and_one_line(tmp_path: Path) -> None:
    register_secret("s3cr<&>t")
    done = external.run([sys.executable, "-c", "print('url postgresql://u:s3cr%3C%26%3Et@h/db s3cr<&>t')"],
                        what="echo")
    assert done.returncode == 0 and "s3cr" not in done.stdout and "***" in done.stdout
    with pytest.raises(ChatbenchError, match="not found"):
        external.run(["no-such-program-here"], what="--schema-from-cmd")
    with pytest.raises(ConfigError, match="quoting"):
        external.run("alembic 'upgrade", what="--schema-from-cmd")
    started = time.monotonic()
    marker = tmp_path / "grandchild.pid"
    with pytest.raises(ChatbenchError, match=r"longer than 0\.5 s"):
        external.run(["sh", "-c", f"sleep 60 & echo $! > {marker}; wait"], what="--schema-from-cmd", timeout=0.5)
    assert time.monotonic() - started < 10
    grandchild = int(marker.read_text())
    deadline = time.monotonic() + 5
    while pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(grandchild), "the command's own children must not outlive the timeout"


def test_redact_masks_every_encoding_of_a_known_secret() -> None:
    secret = "<&>\"'%@:/x"
    register_secret(secret)
    for form in secret_forms(secret):
        assert form not in redact(f"before {form} after"), form
    assert redact("postgresql://user:other@host/db") == "postgresql://user:***@host/db"
    assert redact("host=h password='a b' user=u") == "host=h password=*** user=u"
    assert redact("x" * 10) == "x" * 10


def test_write_atomically_leaves_no_partial_file(tmp_path: Path) -> None:
    target = write_atomically(tmp_path / "a" / "r.json", "{}")
    assert target.read_text() == "{}" and [p.name for p in target.parent.iterdir()] == ["r.json"]
    with pytest.raises(ChatbenchError, match="cannot write"):
        write_atomically(target / "under-a-file.json", "{}")  # one line, not an OSError traceback


def test_template_store_keeps_the_most_recently_used(pg: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from chatbench.loadgen.cache import TemplateStore

    names = [f"cbtpl_{n:016x}" for n in (0xA1, 0xA2, 0xA3)]
    pattern = "^cbtpl_[0-9a-f]{16}$"
    with psycopg.connect(pg.admin_conninfo(), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_database WHERE datistemplate AND datname ~ %s", (pattern,))
        existing = int(row.fetchone()[0])  # type: ignore[index]  # other tests' cache entries, all newer
        monkeypatch.setenv("CHATBENCH_SEED_SNAPSHOTS", str(existing + 2))
        for used, name in enumerate(names):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(json.dumps({"seed": {}, "used": -10.0 + used}))))
            conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE true").format(sql.Identifier(name)))
        try:
            dropped = TemplateStore().evict(conn, keep=names[0])  # just saved: kept though the oldest
            left = {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'cbtpl_%'")}
            assert dropped == [names[1]] and {names[0], names[2]} <= left and names[1] not in left
        finally:
            for name in names:
                if name in {r[0] for r in conn.execute("SELECT datname FROM pg_database")}:
                    conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(name)))
                    conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))


def test_the_janitor_knows_every_database_name_a_run_makes() -> None:
    """``chatbench clean --dsn`` drops only names it recognises: every prefix the code creates databases
    under (``create_database`` / ``temporary_database``, or a ``prefix=`` handed on to them, found in the
    sources) must be one of them, or a SIGKILLed run's databases (a rehearsal's ``cbr_*`` ones, say)
    would stay on the server for good."""
    import re

    from chatbench.provision.janitor import RUN_DATABASE

    root = Path(__file__).resolve().parents[1]
    call = re.compile(r"(?:create_database|temporary_database)\([^()\"]*?\"([a-z_]+)\"|\bprefix=\"([a-z_]+)\"")
    prefixes = {prefix for folder in ("chatbench", "schema", "loadgen", "verify", "benchmarks", "reports", "rehearse")
                for path in (root / folder).rglob("*.py") for found in call.findall(path.read_text())
                for prefix in found if prefix}
    assert {"cbr_run", "cbr_seed", "cbr_before", "cbv_canon"} <= prefixes, prefixes
    unknown = sorted(p for p in prefixes if not RUN_DATABASE.match(f"{p}_0123abcd"))
    assert not unknown, f"chatbench clean would never drop databases named {unknown}"
    from chatbench.provision.dsn import RUN_DATABASE_PREFIX
    from chatbench.testing.session import CLONE_PREFIX, TEMPLATE_PREFIX

    for fixture_prefix in (TEMPLATE_PREFIX, CLONE_PREFIX):  # the fixtures' databases on a DSN server
        assert RUN_DATABASE.match(f"{RUN_DATABASE_PREFIX}{fixture_prefix}_0123abcd"), fixture_prefix
