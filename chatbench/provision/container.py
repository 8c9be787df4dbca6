"""The ``container`` backend: a testcontainers ``PostgresContainer`` on whatever Docker engine answers.

Containers carry testcontainers' session labels (Ryuk reaps them if this process dies) plus
``org.chatbench.*`` labels naming the owning process, for ``chatbench clean``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import Any

import docker

try:
    from testcontainers.community.postgres import PostgresContainer
except ImportError:  # testcontainers < 4.10
    from testcontainers.postgres import PostgresContainer

from chatbench.errors import ProvisionError, register_secret
from chatbench.provision.owner import current_tag

DEFAULT_IMAGE = "postgres:18"
LABEL_MANAGED = "org.chatbench.managed"
LABEL_OWNER = "org.chatbench.owner"
LABEL_RUN = "org.chatbench.run"
LABEL_LEASE = "org.chatbench.lease"


def default_image() -> str:
    return os.environ.get("HARNESS_PG_IMAGE") or DEFAULT_IMAGE


def docker_client(timeout: float = 3.0) -> Any:
    """A docker SDK client that has answered a ping, or a ProvisionError saying how to get one."""
    try:
        client = docker.from_env(timeout=int(max(timeout, 1)))
        client.ping()
        return client
    except Exception as exc:
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise ProvisionError(
            f"--backend container: no Docker engine answers at {host} ({type(exc).__name__}); "
            "start one and export DOCKER_HOST, or use --backend local"
        ) from None


def docker_available(timeout: float = 2.0) -> bool:
    try:
        docker_client(timeout).close()
        return True
    except ProvisionError:
        return False


def start_container(run_id: str, image: str | None, settings: dict[str, str]) -> Any:
    """Start a PostgresContainer with benchmark settings; the caller must ``stop()`` it."""
    docker_client().close()
    password = secrets.token_urlsafe(18)
    register_secret(password)
    tag = current_tag(run_id)
    container = PostgresContainer(
        image=image or default_image(),
        username="chatbench",
        password=password,
        dbname="chatbench",
        driver="psycopg",
    )
    container.with_command("postgres " + " ".join(f"-c {key}={value}" for key, value in settings.items()))
    container.with_kwargs(
        labels={LABEL_MANAGED: "true", LABEL_OWNER: f"{tag.host}:{tag.pid}", LABEL_RUN: run_id, LABEL_LEASE: tag.lease},
        shm_size="1g",
    )
    try:
        container.start()
    except BaseException as exc:
        with contextlib.suppress(Exception):
            container.stop()
        if isinstance(exc, Exception):
            raise ProvisionError(
                f"--image {container.image}: the container did not start ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); check the image name and the engine"
            ) from None
        raise
    return container
