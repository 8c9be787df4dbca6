"""Deterministic, Faker-driven chat history, loaded by binary COPY close to the server's limit.

``load_spec`` reads a profile or TOML spec, ``seed`` fills a database (or restores it from the
seeded-snapshot cache) and returns a ``SeedResult``, ``check_integrity`` verifies a seeded database,
``check_space`` (``chatbench.loadgen.size``) says before any work whether a spec fits on this machine.

Names are imported on first use: a command that only checks a spec (and refuses it in a fraction of a
second) does not pay for numpy, Faker's providers and the COPY machinery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatbench.loadgen.cache import TemplateStore, cache_key
    from chatbench.loadgen.integrity import (
        IntegrityCheck,
        IntegrityError,
        IntegrityReport,
        check_integrity,
        content_checksum,
    )
    from chatbench.loadgen.result import (
        ConversationRef,
        SeedParameters,
        SeedResult,
        TieCursor,
        UserRef,
        seed_result_from_json,
        seed_result_to_json,
    )
    from chatbench.loadgen.seeder import seed
    from chatbench.loadgen.size import check_space
    from chatbench.loadgen.spec import Spec, load_spec, profiles

_WHERE = {
    "TemplateStore": "cache", "cache_key": "cache",
    "IntegrityCheck": "integrity", "IntegrityError": "integrity", "IntegrityReport": "integrity",
    "check_integrity": "integrity", "content_checksum": "integrity",
    "ConversationRef": "result", "SeedParameters": "result", "SeedResult": "result", "TieCursor": "result",
    "UserRef": "result", "seed_result_from_json": "result", "seed_result_to_json": "result",
    "seed": "seeder", "check_space": "size", "Spec": "spec", "load_spec": "spec", "profiles": "spec",
}

__all__ = [
    "ConversationRef", "IntegrityCheck", "IntegrityError", "IntegrityReport", "SeedParameters", "SeedResult",
    "Spec", "TemplateStore", "TieCursor", "UserRef", "cache_key", "check_integrity", "check_space",
    "content_checksum", "load_spec", "profiles", "seed", "seed_result_from_json", "seed_result_to_json",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:  # a submodule (``loadgen.spec``) not imported yet
        try:
            return importlib.import_module(f"chatbench.loadgen.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module 'chatbench.loadgen' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"chatbench.loadgen.{module}"), name)
    globals()[name] = value
    return value
