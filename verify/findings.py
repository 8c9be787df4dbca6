"""The one result type every check emits: a frozen ``Finding``.

Checks never print and never decide the verdict: they describe what they saw (kind, object, expected,
actual, severity) and the renderers and ``VerificationResult`` do the rest. ``error`` fails the verdict,
``warning`` and ``info`` are reported only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One observation of one check about one object.

    ``object`` names the database object (``messages.ix_messages_conversation_id_created_at_id``,
    ``conversations.title``); ``query`` names the canonical query (or the queries a schema object
    serves); ``scenario`` the data scenario a plan finding was judged on; ``detail`` is the one-line
    evidence (for plans: the offending node, with relation, index, rows and buffers).
    """

    check: str
    kind: str
    object: str
    expected: str
    actual: str
    severity: Severity
    query: str | None = None
    scenario: str | None = None
    detail: str = ""
    # What the finding was judged against: "exact canonical", "contract canonical", "exact app.models:Base".
    # verify() stamps it, so findings of two verifications (exact and contract) can be shown together.
    against: str = ""

    def report_order(self) -> tuple[int, str, str, str, str, str]:
        """The order every result lists findings in: errors first, then by check, object, query and scenario."""
        return (SEVERITIES.index(self.severity), self.check, self.object, self.query or "", self.scenario or "",
                self.kind)

    def message(self) -> str:
        """One line naming the object, the query and what differs."""
        parts = [f"[{self.severity}] {self.check}/{self.kind}: {self.object}"]
        if self.query:
            parts.append(f"query {self.query}")
        if self.scenario:
            parts.append(f"scenario {self.scenario}")
        parts.append(f"expected {self.expected}, found {self.actual}")
        text = "; ".join(parts)
        return f"{text} ({self.detail})" if self.detail else text

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
