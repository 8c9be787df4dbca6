"""pytest-benchmark's own flags under chatbench's suite: each one works, or is refused in one line.

The suite times a fixed number of rounds per scenario with ``benchmark.pedantic`` (the profile's rounds
and warm-up, or ``--chatbench-rounds`` / ``--chatbench-warmup``), so pytest-benchmark's calibration
flags would be silently ignored: they are refused instead, naming the setting that does that job.
The others work as pytest-benchmark documents them (``--benchmark-json``, ``--benchmark-save``,
``--benchmark-compare``, ``--benchmark-disable``, ``--benchmark-timer``, ...). ``--benchmark-histogram``
works where its optional dependency (pygal) is installed and is refused up front where it is not,
instead of failing with a traceback after every benchmark has run. pytest-xdist is refused too: under it
pytest-benchmark disables itself, and the suite would pass having timed nothing.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from importlib.util import find_spec
from typing import Any

from chatbench.settings import pytest_option

_ROUNDS = f"{pytest_option('rounds')} N (timed rounds per scenario)"
_WARMUP = f"{pytest_option('warmup')} N (warm-up rounds per scenario)"
IGNORED_BY_THE_SUITE = {
    "--benchmark-min-rounds": _ROUNDS,
    "--benchmark-max-time": _ROUNDS,
    "--benchmark-min-time": _ROUNDS,
    "--benchmark-precision": _ROUNDS,
    "--benchmark-confidence": _ROUNDS,
    "--benchmark-calibration-precision": _ROUNDS,
    "--benchmark-warmup": _WARMUP,
    "--benchmark-warmup-iterations": _WARMUP,
}
"""pytest-benchmark's calibration flags, which pedantic mode does not read, and what to use instead."""


def _given(words: Iterable[str]) -> set[str]:
    return {word.split("=", 1)[0] for word in words if word.startswith("--benchmark-")}


def given_flags(config: Any) -> set[str]:
    """The ``--benchmark-*`` flags given: command line, ``PYTEST_ADDOPTS`` and the ini file's addopts."""
    words = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", "")),
             *config.getini("addopts")]
    return _given(str(word) for word in words)


def refusal(config: Any) -> str | None:
    """The one line refusing a flag the suite cannot honour, or None when every flag given works."""
    for flag in sorted(given_flags(config) & set(IGNORED_BY_THE_SUITE)):
        return (f"{flag}: chatbench's suite times a fixed number of rounds per scenario and would ignore it; "
                f"use {IGNORED_BY_THE_SUITE[flag]}")
    xdist = config.getoption("dist", "no") != "no" or os.environ.get("PYTEST_XDIST_WORKER")
    if xdist and not config.getoption("benchmark_disable", False):
        return ("pytest-xdist (-n, --dist, or a PYTEST_XDIST_WORKER inherited from an outer pytest run) turns "
                "pytest-benchmark's timing off, so nothing would be measured; run the suite without -n")
    if config.getoption("benchmark_histogram", None) and (find_spec("pygal") is None or find_spec("pygaljs") is None):
        return ("--benchmark-histogram needs pygal, which is not installed: pip install 'pytest-benchmark[histogram]'; "
                "chatbench signoff draws its own latency plots (out/signoff.html)")
    return None
