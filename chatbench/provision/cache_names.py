"""The names the seed cache gives what it makes, in the base layer: the cache (``chatbench.loadgen.cache``,
a stage) builds them and the janitor (``chatbench.provision.janitor``) parses them to remove what a
killed run left half-made, so both read one definition instead of agreeing by hand.

- Seeded snapshots: ``<key>`` when published, ``<key>.partial-<run_id>-<token>`` while being made;
  the run id names the owner record that says whether the run is still alive.
- Template databases: ``cbtpl_<key>`` when published, ``cbtpl_<key>_p<token>`` while being made
  (its owner is in the database's comment).
"""

from __future__ import annotations

import re
import secrets

TEMPLATE_PREFIX = "cbtpl_"
KEY_PATTERN = "[0-9a-f]{16}"  # the seed's cache key (``chatbench.loadgen.cache.cache_key``)
PARTIAL_MARK = ".partial-"
PARTIAL_GLOB = f"*{PARTIAL_MARK}*"
TEMPLATE = re.compile(f"^{TEMPLATE_PREFIX}{KEY_PATTERN}$")
TEMPLATE_PARTIAL_PATTERN = f"{TEMPLATE_PREFIX}{KEY_PATTERN}_p[0-9a-f]+"
_RUN_ID = re.compile("[0-9a-f]{8}")


def snapshot_partial(key: str, run_id: str) -> str:
    """The folder a run fills before publishing the snapshot ``key``: named by its run, for the janitor."""
    return f"{key}{PARTIAL_MARK}{run_id}-{secrets.token_hex(2)}"


def snapshot_partial_run(name: str) -> str:
    """The run id in a snapshot partial's name; "" for a name an older chatbench gave (no run id)."""
    run_id = name.rsplit(PARTIAL_MARK, 1)[-1].split("-", 1)[0]
    return run_id if _RUN_ID.fullmatch(run_id) else ""


def template_database(key: str) -> str:
    return f"{TEMPLATE_PREFIX}{key}"


def template_partial(key: str) -> str:
    """The database a run fills before renaming it to ``template_database(key)``."""
    return f"{template_database(key)}_p{secrets.token_hex(4)}"
