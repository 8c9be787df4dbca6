"""``signoff.json``: the whole sign-off, machine-readable (verdict, failing lines, fingerprints, raw samples)."""

from __future__ import annotations

import json
import math
from typing import Any

from chatbench.convert import to_plain
from chatbench.reports.compare import Comparison
from chatbench.reports.signoff import Signoff

COMPARISON_FORMAT = 2
"""Version of ``compare.json``. History: 1 (2026-11-24) first version; 2 (2026-11-25) a scenario status
``inconclusive`` and verdict ``INCONCLUSIVE`` (an effect not clear of the noise measured in both runs),
each scenario's ``basis`` (CPU time or wall time), the runs' measured noise in ``notes``."""


def render_signoff(signoff: Signoff, *, indent: int | None = 1) -> str:
    return _dump(to_plain(signoff), indent)


def render_comparison(comparison: Comparison, *, indent: int | None = 1) -> str:
    return _dump({"kind": "chatbench-comparison", "format_version": COMPARISON_FORMAT, **to_plain(comparison)}, indent)


def _dump(data: Any, indent: int | None) -> str:
    # NaN is not JSON: a statistic that could not be computed is written as null.
    return json.dumps(_finite(data), indent=indent, ensure_ascii=False, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
