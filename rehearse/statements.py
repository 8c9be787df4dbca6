"""A migration file split into statements the way a migration tool runs them.

pglast (PostgreSQL's own parser) splits the file, so dollar-quoted function bodies, strings and
comments with semicolons stay whole, and each statement is classified: transaction control (the
file's own ``BEGIN``/``COMMIT``), and statements that cannot run inside a transaction block
(``CREATE INDEX CONCURRENTLY``, ``VACUUM``, ...), which must run in autocommit exactly as written.
A file that does not parse is a usage error naming the file, the line and PostgreSQL's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pglast import parser
from pglast.parser import ParseError

from chatbench.errors import ConfigError


@dataclass(frozen=True)
class Statement:
    """One statement of a migration (1-based ``index`` in the file, ``line`` where it starts)."""

    index: int
    sql: str
    line: int
    kind: str  # the parse node, e.g. IndexStmt, AlterTableStmt, TransactionStmt
    transaction_control: str | None  # "begin" | "commit" | "rollback" for BEGIN/COMMIT/ROLLBACK, else None
    no_transaction_block: bool  # must run outside a transaction block (CONCURRENTLY, VACUUM, ...)

    def short(self, width: int = 100) -> str:
        """The statement on one line, cut to about ``width`` characters between words (an identifier is
        never shown in part): how reports and progress lines name it."""
        text = " ".join(self.sql.split())
        if len(text) <= width:
            return text
        head = text[: width - 1]
        return (head.rsplit(" ", 1)[0] if " " in head else head) + " …"


_BEGIN = {"TRANS_STMT_BEGIN", "TRANS_STMT_START"}
_END = {"TRANS_STMT_COMMIT": "commit", "TRANS_STMT_ROLLBACK": "rollback", "TRANS_STMT_PREPARE": "commit"}


def _no_transaction_block(node: object) -> bool:
    """Statements PostgreSQL refuses inside a transaction block (PreventInTransactionBlock callers)."""
    name = type(node).__name__
    if name in ("VacuumStmt", "CreatedbStmt", "DropdbStmt", "AlterSystemStmt", "CreateTableSpaceStmt",
                "DropTableSpaceStmt", "CreateSubscriptionStmt", "DropSubscriptionStmt"):
        return True
    if name == "IndexStmt":
        return bool(getattr(node, "concurrent", False))
    if name == "DropStmt":
        return bool(getattr(node, "concurrent", False))
    if name == "ReindexStmt":
        params = getattr(node, "params", None) or ()
        return any(getattr(p, "defname", "") == "concurrently" for p in params) or bool(
            getattr(node, "concurrent", False)
        )
    if name == "AlterTableStmt":
        for cmd in getattr(node, "cmds", None) or ():
            partition = getattr(getattr(cmd, "def_", None), "concurrent", False)
            if partition:
                return True
    return False


def _transaction_control(node: object) -> str | None:
    if type(node).__name__ != "TransactionStmt":
        return None
    kind = getattr(getattr(node, "kind", None), "name", str(getattr(node, "kind", "")))
    if kind in _BEGIN:
        return "begin"
    return _END.get(kind)


def split_sql(text: str, source: str) -> tuple[Statement, ...]:
    """The statements of ``text`` (a migration); ``source`` names it in errors."""
    try:
        raw = parser.parse_sql(text)
    except ParseError as exc:
        position = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
        line = text.encode()[:position].decode(errors="ignore").count("\n") + 1 if position else None
        where = f" line {line}" if line else ""
        raise ConfigError(f"{source}{where}: not valid SQL ({exc.args[0]}); fix the migration") from None
    encoded = text.encode()
    statements = []
    for number, item in enumerate(raw, start=1):
        start = item.stmt_location or 0
        length = item.stmt_len or len(encoded) - start
        chunk = encoded[start: start + length].decode()
        leading = len(chunk) - len(chunk.lstrip())
        line = encoded[: start].decode().count("\n") + chunk[:leading].count("\n") + 1
        statements.append(Statement(number, chunk.strip(), line, type(item.stmt).__name__,
                                    _transaction_control(item.stmt), _no_transaction_block(item.stmt)))
    if not statements:
        raise ConfigError(f"{source}: holds no SQL statement; give the migration's SQL")
    return tuple(statements)


def read_migration(path: Path, option: str = "--migration") -> tuple[Statement, ...]:
    """The statements of a migration file, checked before any server starts."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{option} {path}: cannot be read ({exc}); give a UTF-8 SQL file") from None
    return split_sql(text, f"{option} {path}")


def kind_of(sql: str) -> str:
    """The parse node of one statement's text (a command's sampled statement), or '' if it does not parse."""
    try:
        raw = parser.parse_sql(sql)
    except ParseError:
        return ""
    return type(raw[0].stmt).__name__ if raw else ""
