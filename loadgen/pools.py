"""Faker-seeded text pools: Faker runs once per pool entry, rows are assembled from the pools.

A Faker call costs 10 to 80 µs; a million rows would take a minute. So Faker (seeded, one instance
per locale) fills a few thousand sentences, words, names and titles once, numpy's RNG combines them
into larger pools of message texts, and the generator only picks pool indexes per row. Pool entries
are stored already encoded as binary-COPY fields, so assembling a row is a list lookup whatever the
texts' lengths.

The message texts follow the spec's ``[content]`` section (``chatbench.loadgen.content``): the
``ai`` style (the default) draws heavy-tailed lengths per role, markdown and code in assistant
answers, JSON tool calls and results, pasted documents in user turns; the ``human`` style keeps the
short team-chat texts (a few sentences per message) of earlier versions.

A share of the texts comes from non-English locales (accents, CJK) and carries emoji, so that the
database round-trips non-ASCII text.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import faker
import numpy as np
from faker import Faker

from chatbench.loadgen.content import Vocabulary, ai_texts
from chatbench.loadgen.fields import text_field
from chatbench.loadgen.spec import ContentSpec
from chatbench.provision.paths import cache_root
from chatbench.schema.models import TITLE_MAX_LENGTH

ROLES: tuple[str, ...] = ("user", "assistant", "system", "tool")
EMOJI = ("😀", "🚀", "👍", "🎉", "🤖", "✨", "🙏", "🔥", "💡", "📎")
SENTENCES = 1500  # Faker sentences in total
MESSAGES_PER_ROLE = 4096
# ai style: entries per role; the assistant pool is larger so its long tail (p99, max) is resolved.
AI_ENTRIES = {"user": 4096, "assistant": 8192, "system": 1024, "tool": 4096}
WORDS = 1200  # Faker words for identifiers, headings and JSON keys (ai style)
TITLES = 2048  # short titles; LONG_TITLES more of exactly TITLE_MAX_LENGTH characters follow
LONG_TITLES = 64
NAMES = 2048
# (min, max) sentences per message text, per role: assistant turns are the long ones.
_SENTENCES_PER_ROLE = {"user": (1, 3), "assistant": (3, 10), "system": (2, 4), "tool": (1, 2)}
_TOOLS = ("search", "calculator", "code_interpreter", "weather", "calendar")

@dataclass(frozen=True)
class Pools:
    """Encoded pools; ``message_fields[k]`` is the (role, content) field pair of entry ``k``."""

    message_fields: tuple[bytes, ...]  # role field + content field, role blocks in ROLES order
    role_offsets: tuple[int, ...]  # first entry of each role in ``message_fields``
    role_sizes: tuple[int, ...]
    title_fields: tuple[bytes, ...]  # encoded titles (short ones and exactly-255-character ones)
    short_titles: int  # title_fields[:short_titles] are short, the rest long
    names: tuple[str, ...]
    email_domains: tuple[str, ...]
    contents: tuple[str, ...]  # decoded message texts, same order (tests, sanity checks)


def _faker(locale: str, seed: int) -> Faker:
    fake = Faker(locale)
    fake.seed_instance(seed)
    return fake


def _sentences(locales: tuple[str, ...], non_ascii_share: float, seed: int, rng: np.random.Generator) -> list[str]:
    """English-ish sentences plus a ``non_ascii_share`` from the other locales, some with emoji."""
    others = locales[1:]
    n_other = round(SENTENCES * non_ascii_share) if others else 0
    fakers = [_faker(locale, seed + i) for i, locale in enumerate(locales)]
    words = rng.integers(4, 18, SENTENCES)
    out = [fakers[0].sentence(nb_words=int(words[i])) for i in range(SENTENCES - n_other)]
    for i in range(n_other):
        fake = fakers[1 + i % len(others)]
        sentence = fake.sentence(nb_words=int(words[SENTENCES - n_other + i]))
        if i % 3 == 0:
            sentence = f"{sentence} {EMOJI[i % len(EMOJI)]}"
        out.append(sentence)
    return out


def _compose(sentences: list[str], count: int, low: int, high: int, rng: np.random.Generator) -> list[str]:
    lengths = rng.integers(low, high + 1, count)
    picks = rng.integers(0, len(sentences), int(lengths.sum())).tolist()
    out, at = [], 0
    for n in lengths.tolist():
        out.append(" ".join(sentences[k] for k in picks[at : at + n]))
        at += n
    return out


def _tool_results(sentences: list[str], count: int, rng: np.random.Generator) -> list[str]:
    tools = rng.integers(0, len(_TOOLS), count).tolist()
    hits = rng.integers(0, 50, count).tolist()
    picks = rng.integers(0, len(sentences), count).tolist()
    return [
        json.dumps({"tool": _TOOLS[t], "results": h, "summary": sentences[p]}, ensure_ascii=False)
        for t, h, p in zip(tools, hits, picks, strict=True)
    ]


def _long_title(sentences: list[str], rng: np.random.Generator) -> str:
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < TITLE_MAX_LENGTH:
        parts.append(sentences[int(rng.integers(0, len(sentences)))])
    return " ".join(parts)[:TITLE_MAX_LENGTH]


DEFAULT_CONTENT = ContentSpec()
POOLS_VERSION = 3  # bump when the pools' contents change for the same inputs
POOLS_KEPT = 16
"""Pool files kept on disk, the most recently used: each is 10-50 MB (one per seed, locales, content and
Faker/numpy version), so a CI that seeds with many seeds, or upgrades Faker, would otherwise fill the
cache without end (5 GB over a few hundred seeds). A pool evicted is built again in about a second."""


def _disk_path(locales: tuple[str, ...], non_ascii_share: float, seed: int, content: ContentSpec) -> Path:
    material = json.dumps([POOLS_VERSION, faker.VERSION, np.__version__, list(locales), non_ascii_share, seed,
                           asdict(content)], sort_keys=True)
    return cache_root() / "pools" / f"{hashlib.sha256(material.encode()).hexdigest()[:16]}.pickle"


@functools.lru_cache(maxsize=4)
def build_pools(locales: tuple[str, ...], non_ascii_share: float, seed: int,
                content: ContentSpec = DEFAULT_CONTENT) -> Pools:
    """Deterministic in (locales, share, seed, content) for given Faker and numpy versions (part of the key).

    Building costs about a second of Faker calls and text assembly, so pools are also kept on disk (in
    the chatbench cache, keyed by the inputs and the versions) and loaded in milliseconds next time.
    """
    path = _disk_path(locales, non_ascii_share, seed, content)
    try:
        with path.open("rb") as file:
            cached = pickle.load(file)
        if isinstance(cached, Pools):
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used: evicted last
            return cached
    except (OSError, pickle.PickleError, EOFError, AttributeError, TypeError, ImportError):
        pass  # unreadable, or pickled by an older layout of the classes: rebuild
    pools = _build_pools(locales, non_ascii_share, seed, content)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        with partial.open("wb") as file:
            pickle.dump(pools, file, protocol=pickle.HIGHEST_PROTOCOL)
        partial.replace(path)
        evict_pools(path.parent, keep=path, kept=POOLS_KEPT)
    except OSError:
        pass  # a read-only cache only costs the rebuild
    return pools


def evict_pools(folder: Path, *, keep: Path, kept: int) -> None:
    """Remove all but the ``kept`` most recently used pool files of ``folder`` (never ``keep``, just written).
    A reader that loses a file it was about to open builds the pools again; one that has it open reads on."""
    def used(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return -1.0  # gone already

    files = sorted((p for p in folder.glob("*.pickle") if p != keep), key=used, reverse=True)
    for stale in files[max(kept - 1, 0):]:
        with contextlib.suppress(OSError):
            stale.unlink()


def _human_texts(sentences: list[str], rng: np.random.Generator) -> dict[str, list[str]]:
    """The ``human`` style: a few sentences per message, tool results as small JSON documents."""
    return {
        role: _tool_results(sentences, MESSAGES_PER_ROLE, rng) if role == "tool"
        else _compose(sentences, MESSAGES_PER_ROLE, *_SENTENCES_PER_ROLE[role], rng)
        for role in ROLES
    }


def _words(locale: str, seed: int) -> tuple[str, ...]:
    fake = _faker(locale, seed + 200)
    words = sorted({w.lower() for w in fake.words(nb=WORDS) if w.isascii() and w.isalpha()})
    if len(words) < 50:  # a locale whose lorem words are not ASCII: fall back on English ones
        words = sorted({w.lower() for w in _faker("en_US", seed + 200).words(nb=WORDS)})
    return tuple(words)


def _build_pools(locales: tuple[str, ...], non_ascii_share: float, seed: int, content: ContentSpec) -> Pools:
    rng = np.random.default_rng([seed, 0x504F4F4C])  # "POOL"
    sentences = _sentences(locales, non_ascii_share, seed, rng)
    if content.style == "human":
        by_role = _human_texts(sentences, rng)
    else:
        vocab = Vocabulary(tuple(sentences), _words(locales[0], seed))
        by_role = ai_texts(vocab, content, AI_ENTRIES, np.random.default_rng([seed, 0x434F4E54]))  # "CONT"
    fields: list[bytes] = []
    contents: list[str] = []
    offsets: list[int] = []
    sizes: list[int] = []
    for role in ROLES:
        texts = by_role[role]
        offsets.append(len(fields))
        sizes.append(len(texts))
        role_field = text_field(role)
        fields.extend(role_field + text_field(t) for t in texts)
        contents.extend(texts)
    short = [s.rstrip(".。")[:80] for s in _compose(sentences, TITLES, 1, 1, rng)]
    long = [_long_title(sentences, rng) for _ in range(LONG_TITLES)]
    fakers = [_faker(locale, seed + 100 + i) for i, locale in enumerate(locales)]
    n_other = round(NAMES * non_ascii_share) if len(locales) > 1 else 0
    names = [fakers[0].name() for _ in range(NAMES - n_other)]
    names += [fakers[1 + i % (len(locales) - 1)].name() for i in range(n_other)]
    domains = tuple(sorted({fakers[0].free_email_domain() for _ in range(40)}))
    return Pools(
        message_fields=tuple(fields),
        role_offsets=tuple(offsets),
        role_sizes=tuple(sizes),
        title_fields=tuple(text_field(t) for t in short + long),
        short_titles=len(short),
        names=tuple(names),
        email_domains=domains,
        contents=tuple(contents),
    )
