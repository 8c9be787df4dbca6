"""Seeded rows into a schema the application built its own way (``--schema-from``, ``--from``).

The seeder reads the pre-built schema from its catalog and fills every table of it directly
(``loadgen.seed(..., prebuilt=True)``), whatever its extra columns, tables, partitions or key types;
this module only wraps that in the callers' progress display.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from chatbench.loadgen.result import SeedResult

from chatbench.provision import Server


def seed_into_prebuilt(
    target: Server,
    seed: Callable[[Server], SeedResult],
    *,
    loading: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
) -> tuple[SeedResult, dict[str, int]]:
    """Fill ``target``'s pre-built schema: ``seed`` (a ``loadgen.seed(..., prebuilt=True)``) reads the
    schema the application built and fills every table of it directly, under ``loading`` (a progress
    display). Returns the seed and the rows per table."""
    with loading():
        result = seed(target)
    return result, dict(result.counts)
