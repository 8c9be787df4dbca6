"""Deterministic, Faker-driven chat history, loaded by binary COPY close to the server's limit.

``load_spec`` reads a profile or TOML spec, ``seed`` fills a database (or restores it from the
seeded-snapshot cache) and returns a ``SeedResult``, ``check_integrity`` verifies a seeded database.
"""

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
from chatbench.loadgen.spec import Spec, load_spec, profiles

__all__ = [
    "ConversationRef",
    "IntegrityCheck",
    "IntegrityError",
    "IntegrityReport",
    "SeedParameters",
    "SeedResult",
    "Spec",
    "TemplateStore",
    "TieCursor",
    "UserRef",
    "cache_key",
    "check_integrity",
    "content_checksum",
    "load_spec",
    "profiles",
    "seed",
    "seed_result_from_json",
    "seed_result_to_json",
]
