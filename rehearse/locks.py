"""PostgreSQL's table-level lock modes: their order and which pairs conflict (the documented matrix).

The migration's locks are judged against the locks the application's own queries take (measured,
see ``applocks``): a migration lock blocks the app's reads or appends on a relation exactly when
its mode conflicts with a mode the app takes there.
"""

from __future__ import annotations

MODES: tuple[str, ...] = (
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
)
"""Weakest first: the order in which a report calls one lock 'stronger' than another."""

_CONFLICTS: dict[str, frozenset[str]] = {
    "AccessShareLock": frozenset({"AccessExclusiveLock"}),
    "RowShareLock": frozenset({"ExclusiveLock", "AccessExclusiveLock"}),
    "RowExclusiveLock": frozenset({"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"}),
    "ShareUpdateExclusiveLock": frozenset(
        {"ShareUpdateExclusiveLock", "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"}
    ),
    "ShareLock": frozenset(
        {"RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareRowExclusiveLock", "ExclusiveLock",
         "AccessExclusiveLock"}
    ),
    "ShareRowExclusiveLock": frozenset(
        {"RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock",
         "AccessExclusiveLock"}
    ),
    "ExclusiveLock": frozenset(MODES[1:]),
    "AccessExclusiveLock": frozenset(MODES),
}


def conflicts(a: str, b: str) -> bool:
    """True when a lock of mode ``a`` and one of mode ``b`` on the same relation cannot both be held."""
    return b in _CONFLICTS.get(a, frozenset())


def strength(mode: str) -> int:
    """Rank of a mode (higher is stronger); unknown modes (advisory, page) rank lowest."""
    return MODES.index(mode) if mode in MODES else -1


def short(mode: str) -> str:
    """``ShareRowExclusiveLock`` -> ``SHARE ROW EXCLUSIVE``: how the SQL and the docs spell it."""
    words: list[str] = []
    for char in mode.removesuffix("Lock"):
        if char.isupper() and words:
            words.append(" ")
        words.append(char.upper())
    return "".join(words)
