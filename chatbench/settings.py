"""Run settings, each declared once, resolved with one precedence, validated before any work.

Every setting is one field of ``Settings`` below: its name, type, default (and per-command defaults
where commands differ on purpose), help, allowed values and range. Everything else is derived from
that one declaration, so the forms cannot drift apart:

- command-line option ``--name-with-hyphens`` (``chatbench.cli`` builds the parsers from it),
- pytest option ``--chatbench-name-with-hyphens`` (``chatbench.pytest_plugin``),
- environment variable ``CHATBENCH_NAME``,
- file key ``name`` or ``name-with-hyphens`` in ``chatbench.toml`` or ``[tool.chatbench]`` of
  ``pyproject.toml`` in the working directory (``chatbench.toml`` wins when both exist).

Precedence, for every setting: argument > environment > file > default; absence is tested with
``is None``, never ``or``, so a falsy value given on purpose is kept. Values from every source go
through the same parser and checks, and an error names the source in the form the user wrote it
(``--rounds 0``, ``CHATBENCH_ROUNDS=0``, ``pyproject.toml [tool.chatbench] rounds = 0``) with the fix:
one line, exit 2, before any server starts. An unknown key is the same error in both files.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

from chatbench.errors import ConfigError, redact, register_secret

Kind = Literal["str", "int", "float", "bool", "path", "list"]
BACKENDS = ("auto", "container", "local", "dsn", "citus")
PinMode = Literal["same-core", "off"]
Driver = Literal["psycopg", "libpq"]
PIN_MODES: tuple[str, ...] = get_args(PinMode)
DRIVERS: tuple[str, ...] = get_args(Driver)
ROW_ORDERS = ("time", "conversation")
DriftMode = Literal["exact", "contract"]
DRIFT_MODES: tuple[str, ...] = ("auto", *get_args(DriftMode))
"""``auto`` picks the mode from where the schema comes from (``chatbench.commands.schema_choice``)."""
OUTPUT_FORMATS = ("text", "json")
CITUS_DISTRIBUTIONS = ("by_conversation", "by_user")
"""The distribution variants a sign-off on Citus chooses from: ``chatbench.schema.distributed`` declares each
(and checks at import that it declares exactly these; the base layer cannot import the schema package)."""
DEFAULT_SEED = 1
"""One default seed everywhere (seed, bench, load, verify, signoff), so every command means the same data."""
MIN_FREE_BYTES_FOR_REPORTS = 20 * 1024 * 1024
"""An output folder needs room for a sign-off's files (about 2 MB with plots) and more besides."""
ENV_PREFIX = "CHATBENCH_"
SERVER_SETTINGS = ("backend", "pg_bin", "image", "dsn", "use_dsn_database", "allow_destructive", "start_timeout",
                   "citus_workers", "citus_tarball")
"""The settings of everything that starts or uses a server (commands, the benchmark suite, fixtures)."""


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class Declaration:
    """How one setting is spelled, parsed and checked (everything but its name and default)."""

    help: str
    kind: Kind = "str"
    defaults: Mapping[str, Any] = field(default_factory=dict)  # command -> default where it differs
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    above: float | None = None  # exclusive lower bound
    maximum: Callable[[], float] | float | None = None
    why_maximum: str = ""
    must_exist: Literal["file", "dir"] | None = None
    output: Literal["dir", "file"] | None = None
    flag: str | None = None  # the option when it is not --name (e.g. --no-cache, -k)
    metavar: str | None = None
    cli: bool = True  # machine-level settings (run_dir, cache_dir, ...) come from environment/file only
    check: Callable[[Any], str | None] | None = None  # extra check: returns the problem, or None

    @property
    def negated(self) -> bool:
        return self.kind == "bool" and self.flag is not None and self.flag.startswith("--no-")


def setting(default: Any, help: str, **spec: Any) -> Any:
    """A ``Settings`` field carrying its ``Declaration`` (the one declaration of a setting)."""
    return field(default=default, metadata={"spec": Declaration(help=help, **spec)})


def _result_file_or_history(value: str) -> str | None:
    """``--baseline``: a result file chatbench wrote, or ``history:BRANCH`` (that branch's runs in the store)."""
    if value.startswith("history:"):
        return None if value.removeprefix("history:") else "give the branch after history:, e.g. history:main"
    path = Path(value)
    if not path.is_file():
        return "no such file; give an existing signoff.json or results JSON, or history:BRANCH"
    if not os.access(path, os.R_OK):
        return "not readable; fix its permissions"
    return None


def _shell_words(value: str) -> str | None:
    try:
        words = shlex.split(value)
    except ValueError as exc:
        return f"cannot be split into words ({exc}); check the quoting"
    if not words:
        return "is empty; give the command to run, e.g. 'alembic upgrade head'"
    if shutil.which(words[0]) is None and not Path(words[0]).is_file():
        return f"runs {words[0]!r}, which is not on PATH; install it or give its full path"
    return None


def _database_url(value: str) -> str | None:
    from sqlalchemy.engine import make_url  # lazy: start-up, sqlalchemy +0.2 s on --version/--help's 0.07 s
    from sqlalchemy.exc import ArgumentError  # lazy: start-up, sqlalchemy +0.2 s on the pytest plugin's 0.17 s

    try:
        url = make_url(value)
    except ArgumentError:
        return ("is not a database URL; use postgresql://user@host:5432/dbname "
                "(password in the URL, PGPASSWORD or ~/.pgpass)")
    register_secret(url.password)  # from here on, no output carries it in any encoding
    if not url.drivername.startswith("postgresql"):
        return f"names {url.drivername!r}, not PostgreSQL; use a postgresql:// URL"
    return None


def profile_names() -> tuple[str, ...]:
    """The data profiles shipped with chatbench (``loadgen/profiles/*.toml``), found without importing loadgen."""
    found = importlib.util.find_spec("chatbench.loadgen")
    folders = [] if found is None or found.submodule_search_locations is None else found.submodule_search_locations
    return tuple(sorted({p.stem for folder in folders for p in (Path(folder) / "profiles").glob("*.toml")}))


def _models_reference(value: str) -> str | None:
    """The shape of ``MODULE:ATTR`` (importing it is the resolver's job, before any server starts)."""
    module, sep, attribute = value.partition(":")
    if not sep or not module.strip() or not attribute.strip():
        return "is not MODULE:ATTR; name the models' MetaData or declarative base, e.g. app.models:Base"
    return None


def _profile(value: str) -> str | None:
    names = profile_names()
    return None if value in names else f"not a profile; use one of {', '.join(names)} (or --spec FILE for seed)"


def _profiles(value: tuple[str, ...]) -> str | None:
    names = profile_names()
    bad = [v for v in value if v not in names]
    return f"not a profile: {', '.join(bad)}; use profiles among {', '.join(names)}, or none" if bad else None


def _pg_versions(value: tuple[str, ...]) -> str | None:
    bad = [v for v in value if not v.isdigit() or not 10 <= int(v) <= 99]
    return f"{', '.join(bad)} not a major version; e.g. 15,18" if bad else None


def _key_values(value: tuple[str, ...]) -> str | None:
    bad = [v for v in value if "=" not in v or not v.partition("=")[0].strip()]
    return f"{bad[0]!r} is not FIELD=VALUE; e.g. messages.count=50000" if bad else None


@dataclass(frozen=True)
class Settings:
    """Every setting of every command, resolved (``resolve``) and read by attribute.

    ``sources`` says where each value came from: argument, environment, file or default.
    """

    # -- servers ------------------------------------------------------------------------------
    backend: str = setting("auto", "where the server comes from", choices=BACKENDS)
    pg_bin: tuple[str, ...] = setting(
        (), "PostgreSQL bin dir for the local backend (default: the embedded wheel); signoff: repeat for "
        "several versions side by side", kind="list", must_exist="dir", metavar="DIR")
    image: tuple[str, ...] = setting(
        (), "container image for the container backend (default $HARNESS_PG_IMAGE or postgres:18); signoff: "
        "repeat for several", kind="list", metavar="IMAGE")
    pg_versions: tuple[str, ...] = setting(
        (), "signoff: major versions side by side, e.g. 15,18 (local binaries or postgres:N images)",
        kind="list", metavar="LIST", check=_pg_versions)
    dsn: str | None = setting(
        None, "an existing server; chatbench creates and drops its own database there",
        metavar="URL", check=_database_url)
    use_dsn_database: bool = setting(
        False, "work in the DSN's own database instead of creating one (read-only unless --allow-destructive)",
        kind="bool")
    allow_destructive: bool = setting(
        False, "allow seeding, schema changes and drops in a database chatbench did not create", kind="bool")
    start_timeout: float = setting(
        60.0, "seconds a throwaway server may take to accept connections", kind="float", above=0,
        maximum=3600, metavar="SECONDS")
    command_timeout: float = setting(
        600.0, "seconds an external command (--schema-from-cmd, --from-cmd, --migration-cmd, pgbench, initdb) or "
        "a migration may run", kind="float",
        above=0, maximum=86400, metavar="SECONDS")
    # -- machine (environment or file only) -------------------------------------------------------
    run_dir: str | None = setting(
        None, "parent of live cluster directories (default /dev/shm/chatbench, else the temp dir)", kind="path",
        cli=False)
    cache_dir: str | None = setting(
        None, "persistent cache: pristine data dirs, relocated binaries, seeded snapshots "
        "(default /var/tmp/chatbench as root, else ~/.cache/chatbench)", kind="path", cli=False)
    pg_os_user: str | None = setting(
        None, "OS user that runs PostgreSQL when chatbench runs as root (default postgres, else nobody)", cli=False)
    copy_stall_seconds: float = setting(
        120.0, "a parallel COPY with no progress for this long fails instead of hanging", kind="float", above=0,
        cli=False)
    progress_seconds: float = setting(
        5.0, "in a log (output not a terminal): at least this many seconds between two 'still running' lines "
        "of a long stage", kind="float", minimum=0.1, maximum=3600, cli=False)
    seed_snapshots: int = setting(
        6, "seeded snapshots kept on disk, and seed templates kept on each server (least recently used go first)",
        kind="int", minimum=1, maximum=1000,
        cli=False)
    # -- data ---------------------------------------------------------------------------------
    profile: str = setting(
        "ci", "data profile: smoke_fifth (4k messages), smoke (20k), ci (200k), release (1M), scale (10M)",
        defaults={"signoff": "release", "seed": "smoke", "fixtures": "smoke"}, metavar="NAME", check=_profile)
    spec: str | None = setting(None, "a TOML data spec file (instead of --profile)", kind="path",
                               must_exist="file", metavar="FILE")
    set: tuple[str, ...] = setting(
        (), "override one spec field, e.g. --set messages.count=50000 (repeatable)", kind="list",
        metavar="FIELD=VALUE", check=_key_values)
    seed: int = setting(DEFAULT_SEED, "data seed: the same seed gives byte-identical data", kind="int", minimum=0,
                        maximum=2**63 - 1)
    workers: int | None = setting(
        None, "COPY worker processes (default: the cores, at most 4)", kind="int", minimum=1,
        maximum=lambda: 2 * _cores(), why_maximum="twice the cores this process may use")
    order: str = setting("time", "physical row order of messages (time: as a live product writes them)",
                         choices=ROW_ORDERS)
    cache: bool = setting(True, "seed afresh instead of reusing (and filling) the seeded-snapshot cache",
                          kind="bool", flag="--no-cache")
    # -- schema source --------------------------------------------------------------------------
    schema_from: str | None = setting(
        None, "build the schema by running this SQL file (the application's migrations) instead of the models",
        kind="path", must_exist="file", metavar="FILE.sql")
    schema_from_cmd: str | None = setting(
        None, "build the schema with this command (e.g. 'alembic upgrade head'); DATABASE_URL is set",
        metavar="CMD", check=_shell_words)
    models: str | None = setting(
        None, "the application's SQLAlchemy MetaData or declarative base: the schema the database must equal "
        "(seeded from it unless --schema-from/--schema-from-cmd builds it)", metavar="MODULE:ATTR",
        check=_models_reference)
    drift_mode: str = setting(
        "auto", "exact: the database equals the models; contract: it gives everything the canonical queries and "
        "behaviours rely on, extras judged by what they do; auto: exact for the schema chatbench builds from the "
        "models, contract when the application's schema comes from --schema-from, --schema-from-cmd, --url or a "
        "migration (with --models: exact against them)", choices=DRIFT_MODES, metavar="MODE")
    queries: str | None = setting(
        None, "the application's own queries (-- name: blocks, :role parameters): judged by plan contracts, "
        "page walks, benchmarks and scaling beside the canonical ones, and run in a rehearsal's live load; a "
        "missing index comes with a proven fix",
        kind="path", must_exist="file", metavar="FILE.sql")
    # -- migration rehearsal -------------------------------------------------------------------------
    from_file: str | None = setting(
        None, "the schema before the release's migration, built by this SQL file (default: the canonical schema)",
        kind="path", must_exist="file", flag="--from", metavar="FILE.sql")
    from_cmd: str | None = setting(
        None, "the schema before the release's migration, built by this command; DATABASE_URL is set",
        metavar="CMD", check=_shell_words)
    migration: str | None = setting(
        None, "the release's migration as a SQL file, rehearsed under live load (statements run one by one in "
        "autocommit, unless the file has its own BEGIN/COMMIT)", kind="path", must_exist="file", metavar="FILE.sql")
    migration_cmd: str | None = setting(
        None, "the release's migration as a command (e.g. 'alembic upgrade head'), rehearsed under live load; "
        "DATABASE_URL is set",
        metavar="CMD", check=_shell_words)
    production_messages: float = setting(
        1e9, "messages in production; a migration's blocking times measured at two sizes are extrapolated "
        "linearly to it", kind="float", minimum=1, maximum=1e13, metavar="N")
    baseline_seconds: float = setting(
        1.0, "seconds of live load measured before the migration starts and again after it ends",
        kind="float", minimum=0.2, maximum=3600, metavar="SECONDS")
    # Why a long transaction: production always has one (an analytics query, pg_dump, a session idle in
    # transaction), and a metadata-only ALTER waiting behind it queues every app query on the table.
    long_transaction: float = setting(
        3.0, "seconds a session that has read the app's tables stays open across the migration's start (0: none); "
        "app queries queued behind the migration's waiting lock are measured", kind="float", minimum=0,
        maximum=3600, metavar="SECONDS")
    lock_retries: int = setting(
        5, "times a migration statement (or a --migration-cmd) that gave up on its lock_timeout is retried, with "
        "backoff, as deploy tools do (inside the migration file's BEGIN ... COMMIT block: the whole block, from its "
        "BEGIN; 0: never)", kind="int", minimum=0, maximum=100)
    url: str | None = setting(None, "an existing database: postgresql://user:password@host:port/db", metavar="URL",
                              check=_database_url)
    apply_schema: bool = setting(False, "create the canonical schema in the server's database", kind="bool")
    # -- benchmarks -------------------------------------------------------------------------------
    targets: str | None = setting(None, "targets TOML (default: the targets.toml shipped with chatbench)",
                                  kind="path", must_exist="file", metavar="FILE")
    rounds: int | None = setting(None, "timed rounds per scenario (default: the profile's)", kind="int", minimum=1,
                                 maximum=10_000_000)
    warmup: int | None = setting(None, "warm-up rounds per scenario (default: the profile's)", kind="int",
                                 minimum=0, maximum=10_000_000)
    # Why a budget: a schema that lost its history index turns a 0.2 ms page into a 100 ms scan, and
    # 1000 rounds of each would make the FAIL take half an hour; the rounds taken are in every result.
    budget: float = setting(
        3.0, "at most this many seconds of timed rounds per scenario (0: every round, however long)",
        kind="float", minimum=0, maximum=86400, metavar="SECONDS")
    # Why re-measure: an undecided latency target (its interval holds the target) is often a burst of
    # other work; measuring again decides most of them. Bounded, so a machine that stays busy costs seconds.
    retries: int = setting(2, "re-measure a scenario whose latency verdict is undecided up to this many times "
                           "(0: never); still undecided: INCONCLUSIVE", kind="int", minimum=0, maximum=10)
    retry_budget: float = setting(
        30.0, "at most this many seconds of re-measurement per run", kind="float", minimum=0, maximum=3600,
        metavar="SECONDS")
    pin: PinMode = setting("same-core", "CPU placement of client and server backend", choices=PIN_MODES)
    driver: Driver = setting("psycopg", "psycopg: what the app pays; libpq: what the database costs (pgbench-like)",
                          choices=DRIVERS)
    select: str | None = setting(None, "only scenarios matching this pytest -k expression", flag="-k",
                                 metavar="EXPR")
    scaling: tuple[str, ...] | None = setting(
        None, "profiles re-measured for the scaling plot, comma-separated (default: every profile below "
        "--profile; 'none' to skip)", kind="list", metavar="PROFILES", check=_profiles)
    fidelity: bool = setting(False, "compare harness p50 with pgbench -M prepared per query instead of the suite",
                             kind="bool")
    # -- load -----------------------------------------------------------------------------------
    load: bool = setting(False, "signoff: also run a short concurrent load (chatbench load)", kind="bool")
    clients: int = setting(1, "concurrent client processes", kind="int", minimum=1,
                           defaults={"signoff": 2, "rehearse": 3},
                           maximum=lambda: 8 * _cores(), why_maximum="eight per core")
    duration: float = setting(10.0, "measured seconds of load", kind="float", above=0, maximum=86400,
                              defaults={"signoff": 5.0}, metavar="SECONDS")
    warmup_seconds: float = setting(1.0, "warm-up seconds of load, not recorded", kind="float", minimum=0,
                                    maximum=3600, metavar="SECONDS")
    rate: float | None = setting(None, "open loop: total arrivals per second (default: closed loop)",
                                 kind="float", above=0, maximum=1_000_000, defaults={"rehearse": 150.0})
    mix: str | None = setting(None, "operation weights NAME=W,... (default: the read-heavy chat mix)",
                              metavar="NAME=W,...")
    # -- outputs ----------------------------------------------------------------------------------
    format: str = setting(
        "text", "text: for people (tables on a terminal, one whole line per finding in a log); json: the result "
        "document alone on stdout, the report for people and the progress on stderr", choices=OUTPUT_FORMATS)
    out: str | None = setting("out", "folder for the reports", kind="path", output="dir", metavar="DIR",
                              defaults={"compare": None})
    json: str | None = setting(None, "also write the result as JSON to this file", kind="path", output="file",
                               defaults={"bench": "out/bench.json"}, metavar="FILE")
    results: str | None = setting(
        None, "chatbench results JSON", kind="path", output="file", metavar="FILE",
        defaults={"bench": "out/bench-run.json", "load": "out/load-run.json"})
    baseline: str | None = setting(
        None, "compare with this signoff.json or results JSON, or history:BRANCH (the median of the branch's "
        "last runs in --history)", check=_result_file_or_history, metavar="FILE|history:BRANCH")
    label: str | None = setting(None, "with a multi-server signoff.json: the server label to compare")
    min_effect: float = setting(0.10, "smallest relative change called a regression or improvement",
                                kind="float", above=0, maximum=10)
    alpha: float = setting(0.01, "Mann-Whitney significance level", kind="float", above=0, maximum=0.5)
    allow_different_sizes: bool = setting(
        False, "compare runs of different data sizes (another profile or spec): latency is then compared, "
        "buffers and rows are not", kind="bool")

    # -- citus (--backend citus) -------------------------------------------------------------------
    citus_workers: int = setting(
        2, "--backend citus: worker nodes beside the coordinator", kind="int", minimum=1, maximum=16,
        why_maximum="each worker is a PostgreSQL server on this machine")
    citus_tarball: str | None = setting(
        None, "--backend citus: the Citus source tarball it is built from (once; cached by tarball hash and "
        "PostgreSQL version)", kind="path", must_exist="file", metavar="FILE")
    citus_distribution: str = setting(
        "by_conversation", "on a Citus cluster (--backend citus, or a --dsn Citus coordinator): how the sign-off "
        "distributes the tables: by_conversation (history pages on one shard) or by_user (a user's conversation "
        "list on one shard)", choices=CITUS_DISTRIBUTIONS, metavar="VARIANT")
    # -- performance history (chatbench.history) ------------------------------------------------------
    history: str | None = setting(
        None, "results store: a SQLite file (default history.sqlite in the cache dir) or a postgresql:// URL "
        "for a team", metavar="PATH|URL")
    commit: str | None = setting(None, "the commit a run measured (default: $GITHUB_SHA, else git in the "
                                 "working directory)", metavar="SHA")
    branch: str | None = setting(None, "the branch a run measured (default: $GITHUB_HEAD_REF/$GITHUB_REF_NAME, "
                                 "else git); history show/detect/export: only this branch", metavar="NAME")

    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def source(self, name: str) -> str:
        """Where ``name`` came from: argument | environment | file | default."""
        return self.sources.get(name, "default")


DECLARATIONS: dict[str, Declaration] = {f.name: f.metadata["spec"] for f in fields(Settings) if "spec" in f.metadata}
MACHINE_SETTINGS = tuple(name for name, spec in DECLARATIONS.items() if not spec.cli)
"""Settings of the machine (environment or file only), read where needed: every command checks them up front."""
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Settings) if "spec" in f.metadata}


def option(name: str) -> str:
    spec = DECLARATIONS[name]
    return spec.flag if spec.flag is not None else "--" + name.replace("_", "-")


def pytest_option(name: str) -> str:
    spec = DECLARATIONS[name]
    base = spec.flag[2:] if spec.flag is not None and spec.flag.startswith("--") else name.replace("_", "-")
    return "--chatbench-" + base


def env_var(name: str) -> str:
    return ENV_PREFIX + name.upper()


def default(name: str, command: str | None = None) -> Any:
    spec = DECLARATIONS[name]
    if command is not None and command in spec.defaults:
        return spec.defaults[command]
    return _DEFAULTS[name]


# -- reading the file ---------------------------------------------------------------------------


FILE_TABLES = ("map",)
"""Sub-tables of the settings file that are data, not settings: ``[tool.chatbench.map]`` names the
application's tables and columns for the canonical roles (``chatbench.schema.rolemap``)."""


@dataclass(frozen=True)
class FileSettings:
    """The settings table of the working directory's file, keys normalised to setting names."""

    path: Path | None
    label: str  # how errors name it: "chatbench.toml" or "pyproject.toml [tool.chatbench]"
    values: Mapping[str, Any]
    tables: Mapping[str, Any] = field(default_factory=dict)  # FILE_TABLES: sub-tables that are not settings


def read_file(cwd: Path | None = None) -> FileSettings:
    base = Path.cwd() if cwd is None else cwd
    for path, label, pick in (
        (base / "chatbench.toml", "chatbench.toml", lambda d: d),
        (base / "pyproject.toml", "pyproject.toml [tool.chatbench]", lambda d: d.get("tool", {}).get("chatbench")),
    ):
        if not path.is_file():
            continue
        try:
            table = pick(tomllib.loads(path.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path.name}: not valid TOML ({exc}); fix the file") from None
        except OSError as exc:
            raise ConfigError(f"{path.name}: cannot be read ({exc.strerror}); fix its permissions") from None
        if table is None:
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"{label}: must be a table of settings; e.g. profile = \"ci\"")
        values: dict[str, Any] = {}
        tables: dict[str, Any] = {}
        for key, value in table.items():
            name = key.replace("-", "_")
            if name in FILE_TABLES and isinstance(value, dict):
                tables[name] = value
                continue
            if name == "tool" and label == "chatbench.toml" and isinstance(value, dict) and "chatbench" in value:
                raise ConfigError("chatbench.toml: [tool.chatbench...] is pyproject.toml's spelling; in chatbench.toml "
                                  "the settings are top-level: write profile = \"ci\" and [map], not "
                                  "[tool.chatbench] and [tool.chatbench.map]")
            if name not in DECLARATIONS:
                raise ConfigError(f"{label}: unknown key {key!r}; allowed: {', '.join(sorted(DECLARATIONS))}, "
                                  f"and the tables [{'], ['.join(sorted(FILE_TABLES))}]")
            if name in values:
                raise ConfigError(f"{label}: {key!r} is given twice (hyphen and underscore spelling); keep one")
            values[name] = value
        return FileSettings(path, label, values, tables)
    return FileSettings(None, "", {})


# -- parsing and checking ------------------------------------------------------------------------


def _where(name: str, source: str, raw: Any, file: FileSettings, spelling: Callable[[str], str] = option) -> str:
    text = ",".join(map(str, raw)) if isinstance(raw, list | tuple) else raw if isinstance(raw, str) else repr(raw)
    shown = redact(text)
    if source == "argument":
        return spelling(name) if DECLARATIONS[name].kind == "bool" else f"{spelling(name)} {shown}"
    if source == "environment":
        return f"{env_var(name)}={shown}"
    if source == "file":
        return f"{file.label} {name} = {shown}"
    return f"{name} (default {shown})"


def _fix(name: str) -> str:
    return f"see `{option(name)}` in --help" if DECLARATIONS[name].cli else f"see {env_var(name)} in the README"


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _parse(name: str, raw: Any, where: str) -> Any:
    """Turn a raw value (a string from the command line or environment, a TOML value) into its type."""
    spec = DECLARATIONS[name]
    kind = spec.kind
    if kind == "list":
        if isinstance(raw, str):
            items = [part.strip() for part in raw.split(",")]
        elif isinstance(raw, list | tuple) and all(isinstance(item, str) for item in raw):
            items = [item.strip() for text in raw for item in text.split(",")]
        else:
            raise ConfigError(f"{where}: give a list of strings or one comma-separated string")
        return tuple(item for item in items if item)
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE + _FALSE:
            return raw.strip().lower() in _TRUE
        raise ConfigError(f"{where}: not true or false; use true/false (or 1/0)")
    if kind in ("int", "float"):
        if isinstance(raw, bool):
            raise ConfigError(f"{where}: a number is needed, not true/false")
        try:
            number = int(raw) if kind == "int" and not isinstance(raw, float) else float(raw)
        except (TypeError, ValueError):
            whole = "a whole number" if kind == "int" else "a number"
            raise ConfigError(f"{where}: not {whole}; {_fix(name)}") from None
        if kind == "int" and isinstance(number, float):
            raise ConfigError(f"{where}: not a whole number; {_fix(name)}")
        if number != number or number in (float("inf"), float("-inf")):
            raise ConfigError(f"{where}: not a finite number; {_fix(name)}")
        return number
    if not isinstance(raw, str):
        raise ConfigError(f"{where}: give a string")
    return raw


def _check(name: str, value: Any, where: str) -> None:
    spec = DECLARATIONS[name]
    if value is None:
        return
    if spec.choices and value not in spec.choices:
        raise ConfigError(f"{where}: not one of {', '.join(spec.choices)}")
    if spec.kind in ("int", "float"):
        if spec.minimum is not None and value < spec.minimum:
            raise ConfigError(f"{where}: must be at least {spec.minimum:g}")
        if spec.above is not None and value <= spec.above:
            raise ConfigError(f"{where}: must be more than {spec.above:g}")
        ceiling = spec.maximum() if callable(spec.maximum) else spec.maximum
        if ceiling is not None and value > ceiling:
            why = f" ({spec.why_maximum})" if spec.why_maximum else ""
            raise ConfigError(f"{where}: must be at most {ceiling:g}{why}")
    paths = value if spec.kind == "list" and spec.must_exist else (value,) if spec.kind == "path" else ()
    for item in paths:
        _check_path(Path(item), spec, where)
    if spec.check is not None:
        problem = spec.check(value)
        if problem is not None:
            raise ConfigError(f"{where}: {problem}")


def _check_path(path: Path, spec: Declaration, where: str) -> None:
    if spec.must_exist == "file":
        if not path.is_file():
            raise ConfigError(f"{where}: no such file; give an existing file")
        if not os.access(path, os.R_OK):
            raise ConfigError(f"{where}: not readable; fix its permissions")
    elif spec.must_exist == "dir" and not path.is_dir():
        raise ConfigError(f"{where}: no such directory; give an existing directory")
    if spec.output is not None:
        check_writable(path, spec.output, where)


def check_writable(path: Path, kind: Literal["dir", "file"], where: str) -> None:
    """An output folder (or a file's folder) that can be created and written, with room to spare."""
    if kind == "dir" and path.exists() and not path.is_dir():
        raise ConfigError(f"{where}: exists and is not a folder; give a folder (it is created if missing)")
    if kind == "file" and path.is_dir():
        raise ConfigError(f"{where}: is a folder; give a file name")
    folder = path if kind == "dir" else path.parent
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{where}: {existing} is not a folder; give a path inside a writable folder")
    if not os.access(existing, os.W_OK | os.X_OK) or str(existing.resolve()).startswith(("/proc", "/sys")):
        raise ConfigError(f"{where}: {existing} is not writable; give a folder you can write to")
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES_FOR_REPORTS:
        raise ConfigError(f"{where}: only {free // 1024} KiB free on {existing}; free some space or write elsewhere")


# -- resolving -------------------------------------------------------------------------------------


def resolve(
    command: str | None = None,
    given: Mapping[str, Any] | None = None,
    *,
    names: Iterable[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    spelling: Callable[[str], str] = option,
) -> Settings:
    """Settings for ``command``: argument > environment > file > default, each value parsed and checked.

    ``given`` holds raw values from the command line (None: not given). Only ``names`` (default: every
    setting) are resolved and checked; the others keep their defaults, so a bad value in the
    environment for an option a command does not take does not stop it. ``spelling`` names an argument
    in errors the way its command line spells it (``--profile``; pytest: ``--chatbench-profile``).
    """
    environ = os.environ if env is None else env
    given = {} if given is None else given
    unknown = sorted(set(given) - set(DECLARATIONS))
    if unknown:
        raise ValueError(f"not settings: {unknown}")  # a programming error, not a user's
    file = read_file(cwd)
    wanted = list(DECLARATIONS) if names is None else list(names)
    values: dict[str, Any] = {name: default(name, command) for name in DECLARATIONS}
    sources: dict[str, str] = {}
    for name in wanted:
        if given.get(name) is not None:
            source, raw = "argument", given[name]
        elif environ.get(env_var(name)) is not None:
            source, raw = "environment", environ[env_var(name)]
        elif file.values.get(name) is not None:
            source, raw = "file", file.values[name]
        else:
            sources[name] = "default"
            continue
        values[name] = _parsed_and_checked(name, raw, _where(name, source, raw, file, spelling))
        sources[name] = source
    if command is not None:  # a command's settings, once; not each machine-level lookup (``current``)
        check_unused_file_values(file, used={name for name, source in sources.items() if source == "file"})
    return Settings(**values, sources=sources)


def check_unused_file_values(file: FileSettings, used: Iterable[str]) -> None:
    """Parse and check the file's values this command did not take.

    The settings file is written once for every command; a typo in a value one command does not read
    (``citus_distribution = "nope"`` under ``verify``) would otherwise pass until the day another
    command meets it, far from the edit that made it. The environment stays unchecked outside a
    command's own names: a shell's variables are shared with other tools and runs.
    """
    taken = set(used)
    for name, raw in file.values.items():
        if name in taken or raw is None:
            continue
        _parsed_and_checked(name, raw, _where(name, "file", raw, file))


def _parsed_and_checked(name: str, raw: Any, where: str) -> Any:
    """One raw value as its setting's type, checked against its declaration (``where`` names it in errors)."""
    value = _parse(name, raw, where)
    if name == "scaling" and value in ((), ("none",)):
        value = ()
    _check(name, value, where)
    return value


def current(name: str, *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Any:
    """One machine-level setting (environment > file > default), read when it is needed, not at import."""
    return getattr(resolve(None, names=(name,), env=env, cwd=cwd), name)


def where(settings: Settings, name: str, spelling: Callable[[str], str] = option) -> str:
    """How to name a resolved setting in a message: in the form its value came from (``spelling``: how an
    argument is spelled, ``option`` on the command line, ``pytest_option`` in the pytest plugin)."""
    source = settings.source(name)
    value = getattr(settings, name)
    shown = ",".join(value) if isinstance(value, tuple) else value
    file = read_file() if source == "file" else FileSettings(None, "", {})
    return _where(name, source, shown, file, spelling) if source != "default" else spelling(name)


def refuse_both(settings: Settings, first: str, second: str, *, spelling: Callable[[str], str] = option,
                hint: str = "") -> None:
    """Two settings that give one thing two ways (a file or a command): refused when both are set, each
    named in the form it was given (``where``: an option, a CHATBENCH_* variable, a file's key), so the
    user sees which two to choose between even when one came from the environment. ``hint`` follows
    "not both"."""
    if getattr(settings, first) is not None and getattr(settings, second) is not None:
        raise ConfigError(f"{where(settings, first, spelling)} and {where(settings, second, spelling)}: "
                          f"give one of them, not both{hint}")


def with_values(settings: Settings, **values: Any) -> Settings:
    """A copy with some values replaced (recorded as arguments), for callers that build settings in code."""
    sources = {**settings.sources, **dict.fromkeys(values, "argument")}
    return replace(settings, **values, sources=sources)


# -- pytest options ----------------------------------------------------------------------------------


def add_pytest_options(parser: Any, names: Iterable[str]) -> None:
    """``--chatbench-*`` options for ``names`` on a pytest parser (raw values; ``resolve`` parses them)."""
    group = parser.getgroup("chatbench", "chatbench (also from CHATBENCH_* variables, chatbench.toml or "
                                         "[tool.chatbench] in pyproject.toml)")
    for name in names:
        spec = DECLARATIONS[name]
        text = f"{spec.help.replace('%', '%%')}; env {env_var(name)}"
        dest = f"chatbench_{name}"
        if spec.kind == "bool":
            group.addoption(pytest_option(name), dest=dest, action="store_const", const=not spec.negated,
                            default=None, help=text)
        elif spec.kind == "list":
            group.addoption(pytest_option(name), dest=dest, action="append", default=None, help=text)
        else:
            group.addoption(pytest_option(name), dest=dest, default=None, metavar=spec.metavar or "VALUE", help=text)


def resolve_pytest(config: Any, command: str, names: Iterable[str]) -> Settings:
    """Settings from ``--chatbench-*`` options (registered by ``add_pytest_options``) > env > file > default."""
    wanted = tuple(names)
    given = {name: config.getoption(f"chatbench_{name}", default=None) for name in wanted}
    return resolve(command, given, names=wanted, spelling=pytest_option)
