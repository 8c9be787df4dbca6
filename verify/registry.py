"""Registered checks over one ``VerificationContext`` (the alembic-autogenerate comparator pattern).

A check is a function ``(ctx) -> Iterable[Finding]`` registered under a dotted name whose first part
is its group (``drift``, ``health``, ``plans``). ``verify`` runs them in registration order; adding a
check is one decorated function, and no check knows about rendering or the verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatbench.verify.findings import Finding

if TYPE_CHECKING:
    from chatbench.verify.context import VerificationContext

CheckFn = Callable[["VerificationContext"], Iterable[Finding]]


@dataclass(frozen=True)
class RegisteredCheck:
    name: str
    doc: str
    fn: CheckFn

    @property
    def group(self) -> str:
        return self.name.split(".", 1)[0]


CHECKS: dict[str, RegisteredCheck] = {}


def check(name: str) -> Callable[[CheckFn], CheckFn]:
    """Register ``fn`` as the check ``name`` (``group.what``); its docstring is its description."""

    def decorate(fn: CheckFn) -> CheckFn:
        if name in CHECKS:
            raise ValueError(f"check {name!r} registered twice")
        CHECKS[name] = RegisteredCheck(name, (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "", fn)
        return fn

    return decorate
