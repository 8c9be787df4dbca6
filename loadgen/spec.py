"""The data spec: what history to generate, from a named profile or a TOML file, plus overrides.

Every field is declared once in ``FIELDS`` (section, name, type, bounds, help); loading checks unknown
keys, types and bounds field by field, then the relations between fields (a whale count larger than
the conversation count, ``min > max``, a message total the conversations cannot hold, ...). Each
failure is a one-line ``ConfigError`` naming the field, its value and what is allowed.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from faker.config import AVAILABLE_LOCALES

from chatbench import convert
from chatbench.convert import fields_plain
from chatbench.errors import ConfigError

PROFILES_DIR = Path(__file__).with_name("profiles")
WHALE_MIN_MESSAGES = 1000  # the mission's central case: a conversation of 1000+ messages


@dataclass(frozen=True)
class UsersSpec:
    count: int
    heavy: int  # users owning ``heavy_share`` of the conversations (hundreds each at ci and above)
    heavy_share: float


@dataclass(frozen=True)
class ConversationsSpec:
    count: int  # including the whales
    messages_median: float  # lognormal median of messages per (non-whale) conversation
    messages_sigma: float
    messages_max: int  # cap for non-whale conversations (below whales.min_messages)
    untitled_share: float
    long_title_share: float  # titles of exactly the maximum length (255 characters)


@dataclass(frozen=True)
class WhalesSpec:
    count: int
    min_messages: int
    max_messages: int  # the largest whale has exactly this many messages


@dataclass(frozen=True)
class MessagesSpec:
    count: int  # exact total, whales included
    system_share: float  # conversations that open with a system message
    tool_share: float  # assistant turns that are tool messages instead
    tie_share: float  # share of message blocks whose messages share one created_at
    tie_size: int
    session_length: int  # messages per burst; long gaps between bursts


@dataclass(frozen=True)
class ContentSpec:
    """What message texts look like, per role (``chatbench.loadgen.content`` generates them).

    Lengths are lognormal in UTF-8 bytes (median, sigma), capped at a maximum: heavy-tailed like the
    public corpora of AI conversations the defaults are calibrated against (README, "Message content").
    ``style = "human"`` keeps the short team-chat texts of earlier versions (the length fields are unused).
    The section is optional: a spec without it, or without some of its fields, gets these defaults.
    """

    style: str = "ai"  # "ai" | "human"
    assistant_median_bytes: int = 1400
    assistant_sigma: float = 1.0
    assistant_max_bytes: int = 49152
    user_median_bytes: int = 160
    user_sigma: float = 1.0
    user_max_bytes: int = 4096  # a typed turn; pasted documents are apart (paste_*)
    system_median_bytes: int = 700
    system_sigma: float = 0.7
    system_max_bytes: int = 8192
    tool_median_bytes: int = 600
    tool_sigma: float = 1.2
    tool_max_bytes: int = 32768
    code_share: float = 0.35  # assistant answers with at least one fenced code block
    json_share: float = 0.08  # assistant turns that are a tool call (a JSON payload) rather than prose
    paste_share: float = 0.04  # user turns carrying a pasted document, log or source file
    paste_median_bytes: int = 4000
    paste_sigma: float = 0.8
    paste_max_bytes: int = 65536


CONTENT_STYLES = ("ai", "human")


@dataclass(frozen=True)
class TimeSpec:
    start: str  # ISO 8601, UTC
    days: int


@dataclass(frozen=True)
class Spec:
    """A validated spec; its document (``chatbench.convert.to_plain``) is what the cache key and
    ``SeedResult.spec`` hold."""

    name: str
    locales: tuple[str, ...]
    non_ascii_share: float
    users: UsersSpec
    conversations: ConversationsSpec
    whales: WhalesSpec
    messages: MessagesSpec
    time: TimeSpec
    content: ContentSpec = ContentSpec()
    # [tables.NAME] per_parent = R: rows of a table beyond the three history tables per row of the table
    # its first foreign key references (default: ``CHILD_ROWS_PER_PARENT``).
    tables: tuple[tuple[str, float], ...] = ()

    def rows_per_parent(self, table: str, parent: str | None) -> float:
        """Rows of ``table`` per row of ``parent``: the spec's, else the default for that parent."""
        given = dict(self.tables).get(table)
        if given is not None:
            return given
        return CHILD_ROWS_PER_PARENT.get(parent or "", CHILD_ROWS_PER_PARENT[""])

    @property
    def start_datetime(self) -> datetime:
        return _parse_start(self.time.start)

    def whale_sizes(self) -> tuple[int, ...]:
        """Whale sizes, largest first: geometric from ``max_messages`` down to ``min_messages``."""
        w = self.whales
        if w.count == 0:
            return ()
        if w.count == 1:
            return (w.max_messages,)
        ratio = (w.min_messages / w.max_messages) ** (1 / (w.count - 1))
        sizes = [round(w.max_messages * ratio**i) for i in range(w.count)]
        sizes[-1] = w.min_messages
        return tuple(max(w.min_messages, s) for s in sizes)


def _spec_document(spec: Spec) -> dict[str, Any]:
    """What the cache key hashes: ``tables`` as ``{name: {per_parent: R}}`` (its TOML shape), and no ``tables``
    key for the three-table spec, whose document (and so cache key) predates the key."""
    data = fields_plain(spec)
    data["tables"] = {name: {"per_parent": ratio} for name, ratio in spec.tables}
    if not spec.tables:
        del data["tables"]
    return data


convert.register(Spec, write=_spec_document)


@dataclass(frozen=True)
class Field:
    kind: type
    low: float | None = None
    high: float | None = None


_SECTIONS: dict[str, type] = {
    "users": UsersSpec,
    "conversations": ConversationsSpec,
    "whales": WhalesSpec,
    "messages": MessagesSpec,
    "time": TimeSpec,
    "content": ContentSpec,
}
_OPTIONAL_SECTIONS = frozenset({"content"})  # a missing field takes the dataclass default

_SHARE = Field(float, 0.0, 1.0)
CHILD_ROWS_PER_PARENT = {"messages": 0.1, "conversations": 1.0, "users": 1.0, "": 1.0}
"""A table the history does not define gets this many rows per row of the table it references: an
attachment on one message in ten, a tag or a setting per conversation and user; other tables one per row."""

# Every field once: (section or "" for top level, name) -> type and bounds.
FIELDS: dict[tuple[str, str], Field] = {
    ("", "name"): Field(str),
    ("", "locales"): Field(list),
    ("", "non_ascii_share"): _SHARE,
    ("users", "count"): Field(int, 1),
    ("users", "heavy"): Field(int, 0),
    ("users", "heavy_share"): _SHARE,
    ("conversations", "count"): Field(int, 1),
    ("conversations", "messages_median"): Field(float, 1.0),
    ("conversations", "messages_sigma"): Field(float, 0.0, 5.0),
    ("conversations", "messages_max"): Field(int, 1),
    ("conversations", "untitled_share"): _SHARE,
    ("conversations", "long_title_share"): _SHARE,
    ("whales", "count"): Field(int, 1),
    ("whales", "min_messages"): Field(int, WHALE_MIN_MESSAGES),
    ("whales", "max_messages"): Field(int, WHALE_MIN_MESSAGES),
    ("messages", "count"): Field(int, 1),
    ("messages", "system_share"): _SHARE,
    ("messages", "tool_share"): _SHARE,
    ("messages", "tie_share"): _SHARE,
    ("messages", "tie_size"): Field(int, 2, 1000),
    ("messages", "session_length"): Field(int, 1),
    ("time", "start"): Field(str),
    ("time", "days"): Field(int, 1, 36500),
    ("content", "style"): Field(str),
    ("content", "assistant_median_bytes"): Field(int, 1, 1 << 20),
    ("content", "assistant_sigma"): Field(float, 0.0, 3.0),
    ("content", "assistant_max_bytes"): Field(int, 1, 1 << 20),
    ("content", "user_median_bytes"): Field(int, 1, 1 << 20),
    ("content", "user_sigma"): Field(float, 0.0, 3.0),
    ("content", "user_max_bytes"): Field(int, 1, 1 << 20),
    ("content", "system_median_bytes"): Field(int, 1, 1 << 20),
    ("content", "system_sigma"): Field(float, 0.0, 3.0),
    ("content", "system_max_bytes"): Field(int, 1, 1 << 20),
    ("content", "tool_median_bytes"): Field(int, 1, 1 << 20),
    ("content", "tool_sigma"): Field(float, 0.0, 3.0),
    ("content", "tool_max_bytes"): Field(int, 1, 1 << 20),
    ("content", "code_share"): _SHARE,
    ("content", "json_share"): _SHARE,
    ("content", "paste_share"): _SHARE,
    ("content", "paste_median_bytes"): Field(int, 1, 1 << 20),
    ("content", "paste_sigma"): Field(float, 0.0, 3.0),
    ("content", "paste_max_bytes"): Field(int, 1, 1 << 20),
}


def profiles() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))


def _parse_start(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{what} {str(path)!r}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {str(path)!r}: invalid TOML ({exc})") from None


def _set_override(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "tables" and all(parts):  # tables.NAME.per_parent
        data.setdefault("tables", {}).setdefault(parts[1], {})[parts[2]] = value
        return
    if len(parts) > 2 or not all(parts):
        raise ConfigError(f"spec override {key!r}: use 'field' or 'section.field' (e.g. messages.count)")
    if len(parts) == 1:
        data[parts[0]] = value
        return
    section = data.setdefault(parts[0], {})
    if not isinstance(section, dict):
        raise ConfigError(f"spec field {parts[0]} = {section!r}: must be a table")
    section[parts[1]] = value


def _flatten_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            for sub, subvalue in value.items():
                flat[f"{key}.{sub}"] = subvalue
        else:
            flat[key] = value
    return flat


def _check_field(section: str, name: str, value: Any) -> Any:
    label = f"{section}.{name}" if section else name
    rule = FIELDS[(section, name)]
    if rule.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, rule.kind):
        raise ConfigError(f"spec field {label} = {value!r}: must be {rule.kind.__name__}")
    number: float = value if isinstance(value, int | float) else 0.0
    if rule.low is not None and number < rule.low:
        allowed = f">= {rule.low}" if rule.high is None else f"between {rule.low} and {rule.high}"
        raise ConfigError(f"spec field {label} = {value!r}: must be {allowed}")
    if rule.high is not None and number > rule.high:
        raise ConfigError(f"spec field {label} = {value!r}: must be between {rule.low} and {rule.high}")
    return value


def _check_locales(value: list[Any]) -> tuple[str, ...]:
    if not value:
        raise ConfigError("spec field locales = []: must list at least one Faker locale, e.g. ['en_US']")
    for locale in value:
        if not isinstance(locale, str) or locale not in AVAILABLE_LOCALES:
            raise ConfigError(
                f"spec field locales contains {locale!r}: not a Faker locale (e.g. en_US, fr_FR, ja_JP)"
            )
    return tuple(value)


def validate(data: Mapping[str, Any]) -> Spec:
    """Check every field (unknown keys, types, bounds) and the relations between them."""
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    tables: list[tuple[str, float]] = []
    for key, value in data.items():
        if key == "tables":
            tables = _check_tables(value)
        elif key in _SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"spec field {key} = {value!r}: must be a table ([{key}])")
            for name, item in value.items():
                if (key, name) not in FIELDS:
                    known = ", ".join(n for s, n in FIELDS if s == key)
                    raise ConfigError(f"spec field {key}.{name} is unknown; [{key}] allows: {known}")
                sections[key][name] = _check_field(key, name, item)
        elif ("", key) in FIELDS:
            top[key] = _check_field("", key, value)
        else:
            known = ", ".join(n for s, n in FIELDS if s == "") + ", " + ", ".join(f"[{s}]" for s in _SECTIONS)
            raise ConfigError(f"spec field {key} is unknown; allowed: {known}")
    for section, name in FIELDS:
        holder = sections[section] if section else top
        if name not in holder and section not in _OPTIONAL_SECTIONS:
            label = f"{section}.{name}" if section else name
            raise ConfigError(f"spec field {label} is missing; every spec sets it (see loadgen/profiles/)")
    top["locales"] = _check_locales(top["locales"])
    try:
        _parse_start(sections["time"]["start"])
    except ValueError:
        raise ConfigError(
            f"spec field time.start = {sections['time']['start']!r}: must be an ISO 8601 date-time, "
            "e.g. 2024-01-01T00:00:00Z"
        ) from None
    spec = Spec(
        name=top["name"],
        locales=top["locales"],
        non_ascii_share=top["non_ascii_share"],
        **{name: cls(**sections[name]) for name, cls in _SECTIONS.items()},
        tables=tuple(tables),
    )
    _check_relations(spec)
    _check_content(spec.content)
    return spec


def _check_content(content: ContentSpec) -> None:
    if content.style not in CONTENT_STYLES:
        raise ConfigError(f"spec field content.style = {content.style!r}: must be one of {', '.join(CONTENT_STYLES)}")
    for role in ("assistant", "user", "system", "tool", "paste"):
        median, top = getattr(content, f"{role}_median_bytes"), getattr(content, f"{role}_max_bytes")
        if median > top:
            raise ConfigError(f"spec field content.{role}_median_bytes = {median}: must be <= "
                              f"content.{role}_max_bytes ({top})")


def _check_tables(value: Any) -> list[tuple[str, float]]:
    """``[tables.NAME] per_parent = R`` for any number of tables."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"spec field tables = {value!r}: must be a table of tables ([tables.NAME] per_parent = R)")
    out = []
    for name, options in sorted(value.items()):
        if not isinstance(options, Mapping) or set(options) != {"per_parent"}:
            raise ConfigError(f"spec field tables.{name} = {options!r}: set exactly per_parent, e.g. "
                              f"[tables.{name}] per_parent = 0.5")
        ratio = options["per_parent"]
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1000:
            raise ConfigError(f"spec field tables.{name}.per_parent = {ratio!r}: must be a number from 0 to 1000")
        out.append((str(name), float(ratio)))
    return out


PLAN_BYTES_PER_ROW = 16
"""A floor for what the plan holds in memory per user, conversation and message (an int64 id and an
int64 timestamp at least): a spec above ``memory / 16`` rows certainly cannot be planned here."""


def _memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 2**40


def _check_size(spec: Spec) -> None:
    """Counts bounded by what the machine can hold: refused in one line, not by numpy's MemoryError."""
    memory = _memory_bytes()
    for label, count in (("users.count", spec.users.count), ("conversations.count", spec.conversations.count),
                         ("messages.count", spec.messages.count)):
        if count * PLAN_BYTES_PER_ROW > memory:
            raise ConfigError(
                f"spec field {label} = {count}: more rows than this machine can hold (at least "
                f"{count * PLAN_BYTES_PER_ROW / 2**30:,.0f} GiB to plan, {memory / 2**30:,.0f} GiB of memory); lower it"
            )


def _check_relations(spec: Spec) -> None:
    _check_size(spec)
    u, c, w, m = spec.users, spec.conversations, spec.whales, spec.messages
    if u.heavy > u.count:
        raise ConfigError(f"spec field users.heavy = {u.heavy}: must be <= users.count ({u.count})")
    if w.count > c.count:
        raise ConfigError(f"spec field whales.count = {w.count}: must be <= conversations.count ({c.count})")
    if w.min_messages > w.max_messages:
        raise ConfigError(
            f"spec field whales.min_messages = {w.min_messages}: must be <= whales.max_messages ({w.max_messages})"
        )
    if c.messages_max >= w.min_messages:
        raise ConfigError(
            f"spec field conversations.messages_max = {c.messages_max}: must be < whales.min_messages "
            f"({w.min_messages}) so that only whales have 1000+ messages"
        )
    whales_total = sum(spec.whale_sizes())
    others = c.count - w.count
    low, high = whales_total + others, whales_total + others * c.messages_max
    if others == 0:
        low = high = whales_total
    if not low <= m.count <= high:
        raise ConfigError(
            f"spec field messages.count = {m.count}: must be between {low} and {high} "
            f"(whales hold {whales_total}; {others} other conversations hold 1 to {c.messages_max} each)"
        )
    if c.untitled_share + c.long_title_share > 1:
        raise ConfigError(
            f"spec field conversations.long_title_share = {c.long_title_share}: untitled_share + "
            "long_title_share must be <= 1"
        )


def load_spec(
    profile: str = "smoke",
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Spec:
    """The spec of a named profile, or of a TOML file (``path`` wins), with ``overrides`` applied.

    Overrides use dotted keys (``{"messages.count": 50000}``) or nested tables.
    """
    if path is not None:
        data = _read_toml(Path(path), "--spec")
    else:
        file = PROFILES_DIR / f"{profile}.toml"
        if not file.is_file():
            raise ConfigError(f"--profile {profile!r} is not a profile; use one of {', '.join(profiles())}")
        data = _read_toml(file, "profile")
    for key, value in _flatten_overrides(overrides or {}).items():
        _set_override(data, key, value)
    return validate(data)
