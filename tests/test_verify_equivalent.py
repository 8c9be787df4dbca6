"""Equivalent schemas pass: an application's own migrations, other names and spellings, same meaning.

Each schema in ``tests/equivalent_schemas/`` builds the canonical schema's meaning its own way (SQLAlchemy
models without a naming convention, an Alembic-autogenerate migration, Django's names, hand-written SQL
with other spellings, bigserial and text + length CHECKs). ``chatbench verify`` builds it on a throwaway
server, seeds it, and must pass with no error finding, on PostgreSQL 18 (embedded) and 15 (Debian):
names are at most one info line per object, spellings are judged by the behaviour probes.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections import Counter
from pathlib import Path

import pytest
from servers import DEBIAN_PG15

from chatbench.cli import main

CORPUS = Path(__file__).parent / "equivalent_schemas"
SCHEMAS = sorted(p.name for p in CORPUS.iterdir() if p.suffix in (".sql", ".py"))
VERSIONS = {"pg18": None, "pg15": DEBIAN_PG15}


def test_the_corpus_has_the_five_kinds() -> None:
    assert {
        "sqlalchemy_models.py",
        "alembic_autogenerate.sql",
        "django_style.sql",
        "handwritten.sql",
        "varchar_text_bigserial.sql",
    } <= set(SCHEMAS)


def _verify(schema: str, pg_bin: Path | None, out: Path) -> int:
    path = CORPUS / schema
    build = (
        ["--schema-from", str(path)]
        if path.suffix == ".sql"
        else ["--schema-from-cmd", f"{shlex.quote(sys.executable)} {shlex.quote(str(path))}"]
    )
    server = ["--backend", "local"] + (["--pg-bin", str(pg_bin)] if pg_bin is not None else [])
    return main(["verify", *server, "--profile", "smoke", *build, "--json", str(out)])


@pytest.mark.parametrize("version", [pytest.param(v, marks=pytest.mark.pg15) if v == "pg15" else v
                                     for v in sorted(VERSIONS)])
@pytest.mark.parametrize("schema", SCHEMAS)
def test_equivalent_schema_passes(schema: str, version: str, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    code = _verify(schema, VERSIONS[version], out)
    data = json.loads(out.read_text())
    errors = [f for f in data["findings"] if f["severity"] == "error"]
    assert code == 0 and data["passed"], "\n".join(f"{f['kind']} {f['object']}: {f['actual']}" for f in errors)
    assert not errors
    drift = [f for f in data["findings"] if f["check"] == "drift"]
    # a name or a spelling is one line per object, never repeated
    repeated = [obj for obj, n in Counter(f["object"] for f in drift).items() if n > 1]
    assert not repeated, repeated
    assert not [f for f in drift if f["kind"].startswith(("missing_", "extra_check")) and f["severity"] == "error"]
    # every behaviour contract was probed, on a schema-only copy of the built database
    probed = {c["name"] for c in data["checks"] if c["name"].startswith("drift.behaviour.")}
    assert len(probed) >= 12 and all(c["passed"] for c in data["checks"])
    assert "schema-only copy" in data["probes_site"]
    # the seeded rows went into the application's schema and the plan contracts were judged on them
    assert data["plans"]


def test_equivalent_spellings_are_info_and_type_spellings_warnings(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    assert _verify("varchar_text_bigserial.sql", None, out) == 0
    found = {(f["kind"], f["object"]): f for f in json.loads(out.read_text())["findings"]}
    title = found[("column_type", "conversations.title")]
    assert title["severity"] == "warning" and "char_length(title) <= 255" in title["actual"]
    assert "title_length holds" in title["detail"]
    identity = found[("identity", "messages.id")]
    assert identity["severity"] == "warning" and "nextval" in identity["actual"]
    check = found[("equivalent_check", "messages.ck_messages_role_allowed")]
    assert check["severity"] == "info" and "role_allowed holds" in check["detail"]
    unique = found[("unique_as_index", "users.uq_users_email")]
    assert unique["severity"] == "info"
    assert not any(kind == "extra_check" for kind, _ in found), "a length CHECK is part of its column's type line"


def test_django_default_foreign_key_indexes_pass_with_a_warning(tmp_path: Path) -> None:
    """Django indexes every foreign key by default: for a one-message conversation the planner reads the
    single-column index and sorts one row. The order-delivering index exists, the Sort is tiny: no plan
    error; the redundant prefix index is a health warning (it costs every write)."""
    sql = (CORPUS / "django_style.sql").read_text().replace("COMMIT;", (
        'CREATE INDEX "messages_conversation_id_7c5a1f3e" ON "messages" ("conversation_id");\n'
        'CREATE INDEX "conversations_user_id_4e2b9d10" ON "conversations" ("user_id");\nCOMMIT;'), 1)
    schema = tmp_path / "django_default_fk_indexes.sql"
    schema.write_text(sql)
    out = tmp_path / "result.json"
    code = main(["verify", "--backend", "local", "--profile", "smoke", "--schema-from", str(schema),
                 "--json", str(out)])
    findings = json.loads(out.read_text())["findings"]
    assert code == 0, [f"{f['kind']} {f['object']}: {f['actual']}" for f in findings if f["severity"] == "error"]
    redundant = {f["object"] for f in findings if f["kind"] == "redundant_index"}
    assert any("messages_conversation_id_7c5a1f3e" in o for o in redundant)
    assert all(f["severity"] == "warning" for f in findings if f["kind"] == "redundant_index")


def test_an_extension_type_is_carried_into_the_behaviour_probes_copy(tmp_path: Path) -> None:
    """The email as citext (the extension's case-insensitive text) with the same length CHECK: the probes' copy
    is dumped with ``--schema=public``, which leaves extensions out, so without them users did not restore and
    every probe on it failed. It passes like the text spelling it is built from."""
    source = (CORPUS / "varchar_text_bigserial.sql").read_text()
    assert "email text NOT NULL" in source
    schema = tmp_path / "citext_email.sql"
    schema.write_text("CREATE EXTENSION IF NOT EXISTS citext;\n" + source.replace("email text NOT NULL",
                                                                                  "email citext NOT NULL"))
    out = tmp_path / "result.json"
    code = main(["verify", "--backend", "local", "--profile", "smoke", "--schema-from", str(schema),
                 "--json", str(out)])
    data = json.loads(out.read_text())
    errors = [f"{f['kind']} {f['object']}: {f['actual']}" for f in data["findings"] if f["severity"] == "error"]
    assert code == 0 and not errors, errors
    assert not [f for f in data["findings"] if f["kind"] in ("copy_incomplete", "probe_error")]
    email = next(f for f in data["findings"] if (f["kind"], f["object"]) == ("column_type", "users.email"))
    assert email["severity"] == "warning" and "email_length holds" in email["detail"], email
