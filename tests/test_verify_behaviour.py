"""The behavioural contracts: complete over what drift judges by behaviour, true of the canonical schema,
rolled back, and a probe that cannot run is a failure on one line, never a pass."""

from __future__ import annotations

import psycopg

from chatbench.provision import Server
from chatbench.schema.behaviour import BEHAVIOUR_CONTRACTS
from chatbench.schema.models import TRIGGERS
from chatbench.verify import verify
from chatbench.verify.catalog import read_catalog
from chatbench.verify.context import canonical_facts
from chatbench.verify.probes import run_probes


def test_every_spelling_drift_leaves_to_behaviour_is_judged_by_a_contract(schema_db: Server) -> None:
    """CHECK columns, defaults, identities, string lengths and triggers of the canonical schema: each has a contract.

    Drift reports a spelling difference there as info or warning only because a contract judges it;
    without one it would stay an error, so a new canonical CHECK or default needs a contract too.
    """
    with psycopg.connect(schema_db.conninfo()) as conn:
        facts = read_catalog(conn)
    covered = {c for contract in BEHAVIOUR_CONTRACTS.values() for c in contract.covers}
    judged_triggers = {t for contract in BEHAVIOUR_CONTRACTS.values() for t in contract.triggers}
    for check in (c for c in facts.constraints.values() if c.kind == "CHECK"):
        assert {f"{check.table}.{col}" for col in check.columns} & covered, check.name
    for column in facts.columns.values():
        if column.default or column.identity or column.type.startswith("character varying"):
            assert f"{column.table}.{column.name}" in covered, f"{column.table}.{column.name}"
    assert judged_triggers == set(TRIGGERS)
    assert all(contract.probes for contract in BEHAVIOUR_CONTRACTS.values())


def test_the_canonical_schema_keeps_every_contract_and_the_probes_leave_nothing(schema_db: Server) -> None:
    with psycopg.connect(schema_db.conninfo(), autocommit=True) as conn:
        run = run_probes(conn, BEHAVIOUR_CONTRACTS.values(), site="test")
        left = conn.execute(
            "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM conversations) "
            "+ (SELECT count(*) FROM messages)"
        ).fetchone()
        status = conn.info.transaction_status
    assert run.failed is None and run.not_run is None
    assert [o for o in run.outcomes if o.status != "holds"] == []
    assert len(run.outcomes) == sum(len(c.probes) for c in BEHAVIOUR_CONTRACTS.values())
    assert left == (0,), "every probe is rolled back"
    assert status == psycopg.pq.TransactionStatus.IDLE


def test_a_probe_that_errors_unexpectedly_is_one_line_per_contract_and_fails(schema_db: Server) -> None:
    with psycopg.connect(schema_db.conninfo(), autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION audit_message() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO audit_log VALUES (NEW.id); RETURN NULL; END $$"
        )
        conn.execute("CREATE TRIGGER audit AFTER INSERT ON messages FOR EACH ROW EXECUTE FUNCTION audit_message()")
    # Contract mode: the extra trigger is judged by what it does (exact mode would also name it as drift).
    result = verify(schema_db, None, only=["drift"], canonical=canonical_facts(schema_db, read_only=False),
                    mode="contract")
    assert not result.passed
    errors = result.errors
    assert errors and all(f.kind == "probe_error" for f in errors), [f.message() for f in errors]
    assert all('UndefinedTable: relation "audit_log" does not exist' in f.actual for f in errors)
    assert all("\n" not in f.message() for f in errors)
    failing = [c.name for c in result.checks if not c.passed]
    assert len(failing) == len(errors), "one line per contract, whatever the number of its probes"
    assert "drift.behaviour.append_moves_updated_at" in failing
    assert "drift.behaviour.title_length" not in failing, "contracts that insert no message still judge"
