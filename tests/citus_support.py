"""What the Citus tests share: the pinned source tarball, and one Citus cluster per test module.

The tarball comes from the ``citus_tarball`` setting's environment variable (``CHATBENCH_CITUS_TARBALL``),
else from the ``shared/citus`` folder beside the checkout (where CI has it). Without one the tests skip,
and fail under ``CI=true``. Citus is built once per machine (the build cache is keyed by tarball hash and
PostgreSQL build, the same in every virtualenv with the same wheel), so only the first module to start a
cluster pays the build (about a minute).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from servers import unavailable

from chatbench import schema
from chatbench.provision import Server
from chatbench.provision.choice import provision_from
from chatbench.settings import SERVER_SETTINGS, env_var, resolve

REPO = Path(__file__).resolve().parents[1]
VARIANTS = Path(__file__).resolve().parent / "citus_variants"
HISTORY_DATA = VARIANTS / "history_data.sql"
WHALE_CONVERSATION = 7  # history_data.sql's largest conversation
TARBALL_ENV = env_var("citus_tarball")


def citus_tarball() -> Path:
    """The tarball (also exported in the environment, for the commands the tests run); skips without one."""
    given = os.environ.get(TARBALL_ENV)
    if given:
        return Path(given)
    found = sorted((REPO.parent / "shared" / "citus").glob("citus-*.tar.gz"))
    if not found:
        unavailable(f"no Citus source tarball ({TARBALL_ENV} unset, none in shared/citus beside the checkout)",
                    f".ci/run must export {TARBALL_ENV}")
    os.environ[TARBALL_ENV] = str(found[-1])
    return found[-1]


@contextlib.contextmanager
def citus_server(workers: int = 2) -> Iterator[Server]:
    """A Citus cluster (coordinator + ``workers``), as ``--backend citus`` provisions it."""
    citus_tarball()
    settings = resolve("seed", {"backend": "citus", "citus_workers": workers}, names=SERVER_SETTINGS)
    with provision_from(settings, announce=lambda _m: None) as server:
        yield server


def load_history(server: Server) -> None:
    """The canonical schema with the small whale-shaped history of ``history_data.sql``."""
    schema.apply(server.url)
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute(HISTORY_DATA.read_text())  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def citus() -> Iterator[Server]:
    with citus_server() as server:
        yield server
