"""Message texts as an AI chat writes them: per-role length distributions, markdown, code, JSON, pastes.

The history a chat product stores is not uniform prose. Assistant answers are markdown (headings,
lists, tables, fenced code) with a long tail into tens of kilobytes; a share of assistant turns are
tool calls (a JSON payload); tool messages carry JSON results of very different sizes; user turns
are short, except the occasional pasted document, log or source file; system prompts are a few
paragraphs of instructions. Lengths are lognormal in UTF-8 bytes per role (``ContentSpec``: median,
sigma, maximum), calibrated against public corpora of real conversations (README, "Message
content"), so that a share of the rows crosses PostgreSQL's TOAST threshold (~2 kB) the way
production rows do, and the history pages, budgets and compression are measured on that.

Everything is built from a fixed vocabulary (Faker sentences and words, numpy's seeded RNG), so the
texts are deterministic in (sentences, words, spec, RNG) and compress as real text does: not random
bytes (incompressible), not one repeated sentence (compresses to nothing). The generator builds
*pools* of texts once (``chatbench.loadgen.pools``); rows only pick pool entries.

``python -m chatbench.loadgen.content [--profile ci] [--json]`` prints the distribution per role of
the texts a profile's seed holds (pool lengths weighted by how often each role is drawn) and how
much of it PostgreSQL stores out of line; with ``--url`` it reads a seeded database instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from chatbench.errors import ChatbenchError
from chatbench.loadgen.spec import ContentSpec, Spec, load_spec

TOAST_THRESHOLD_BYTES = 2032
"""PostgreSQL's TOAST_TUPLE_THRESHOLD with 8 kB pages: a row wider than this has its long values
compressed, then moved out of line while it is still wider."""

_LANGS = ("python", "typescript", "sql", "bash", "json", "go")
_TOOLS = ("web_search", "code_interpreter", "file_search", "calculator", "weather", "calendar", "sql_query",
          "read_url")
_SYSTEM_OPENERS = ("You are a helpful assistant for {w}.", "You are {w}, an AI assistant that answers concisely.",
                   "You are a senior {w} engineer reviewing code.", "You are a support agent for the {w} product.")


@dataclass(frozen=True)
class Vocabulary:
    """What every text is built from: sentences (several locales, some emoji) and identifier words."""

    sentences: tuple[str, ...]
    words: tuple[str, ...]  # lower-case ASCII words for identifiers, headings and JSON keys


def lengths(rng: np.random.Generator, count: int, median: int, sigma: float, top: int, low: int = 1) -> np.ndarray:
    """``count`` lognormal byte lengths (median, sigma), clipped to ``low .. top``."""
    drawn = rng.lognormal(np.log(max(median, 1)), sigma, count)
    return np.clip(np.rint(drawn), low, max(low, top)).astype(np.int64)


class _Blocks:
    """Pre-built markdown blocks, each with its UTF-8 size, from which long texts are assembled fast."""

    def __init__(self, vocab: Vocabulary, rng: np.random.Generator, count: int = 2048) -> None:
        self.vocab = vocab
        self.rng = rng
        self.paragraphs = [self._paragraph() for _ in range(count)]
        self.lists = [self._list() for _ in range(count // 4)]
        self.headings = [self._heading() for _ in range(count // 4)]
        self.tables = [self._table() for _ in range(count // 16)]
        self.code = [self._code_block() for _ in range(count // 2)]
        self.log_lines = [self._log_line(k) for k in range(count)]

    def pick(self, items: Sequence[str], n: int = 1) -> list[str]:
        return [items[int(k)] for k in self.rng.integers(0, len(items), n)]

    def word(self) -> str:
        return self.vocab.words[int(self.rng.integers(0, len(self.vocab.words)))]

    def ident(self, parts: int = 2) -> str:
        return "_".join(self.word() for _ in range(parts))

    def _paragraph(self) -> str:
        text = " ".join(self.pick(self.vocab.sentences, int(self.rng.integers(2, 7))))
        if self.rng.random() < 0.4:  # inline markup as answers use it
            word = self.word()
            text = text.replace(f" {word} ", f" **{word}** ", 1) if f" {word} " in text else f"{text} `{self.ident()}`"
        return text

    def _list(self) -> str:
        numbered = self.rng.random() < 0.4
        items = self.pick(self.vocab.sentences, int(self.rng.integers(3, 8)))
        return "\n".join(f"{k + 1}. {s}" if numbered else f"- {s}" for k, s in enumerate(items))

    def _heading(self) -> str:
        words = " ".join(self.word() for _ in range(int(self.rng.integers(2, 6))))
        return f"{'#' * int(self.rng.integers(2, 4))} {words.capitalize()}"

    def _table(self) -> str:
        cols = [self.word() for _ in range(int(self.rng.integers(2, 5)))]
        rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for _ in range(int(self.rng.integers(2, 7))):
            cells = [self.word() if self.rng.random() < 0.6 else f"{self.rng.integers(0, 10_000)}" for _ in cols]
            rows.append("| " + " | ".join(cells) + " |")
        return "\n".join(rows)

    def code_lines(self, lang: str, n: int) -> list[str]:
        r, w, ident = self.rng, self.word, self.ident
        templates: dict[str, list[Callable[[], str]]] = {
            "python": [
                lambda: f"def {ident()}({w()}, {w()}: int = {r.integers(0, 100)}) -> dict[str, int]:",
                lambda: f"    {w()} = {w()}.{ident()}({w()}, timeout={r.integers(1, 60)})",
                lambda: f"    if {w()} is None or len({w()}) > {r.integers(2, 500)}:",
                lambda: f"        raise ValueError(f\"{w()} {{{w()}!r}} is not {w()}\")",
                lambda: f"    for {w()} in range({r.integers(1, 1000)}):",
                lambda: f"        {w()}.append({{\"{w()}\": {w()}, \"{w()}\": {r.integers(0, 99)}}})",
                lambda: f"    return {{{w()!r}: {w()} for {w()} in {w()}s}}",
                lambda: f"from {w()}.{w()} import {w().capitalize()}{w().capitalize()}",
                lambda: f"class {w().capitalize()}{w().capitalize()}({w().capitalize()}):",
                lambda: f"    # {' '.join(w() for _ in range(6))}",
            ],
            "typescript": [
                lambda: f"export async function {w()}{w().capitalize()}({w()}: string): Promise<{w().capitalize()}> {{",
                lambda: f"  const {w()} = await fetch(`/api/{w()}/${{{w()}}}`);",
                lambda: f"  if (!{w()}.ok) throw new Error(\"{w()} {w()} failed\");",
                lambda: f"  return {w()}.map(({w()}) => ({{ ...{w()}, {w()}: {r.integers(0, 99)} }}));",
                lambda: f"interface {w().capitalize()} {{ {w()}: string; {w()}?: number }}",
                lambda: "}",
                lambda: f"// {' '.join(w() for _ in range(7))}",
            ],
            "sql": [
                lambda: f"SELECT {w()}.id, {w()}.{w()}, count(*) AS {w()}s",
                lambda: f"FROM {w()}s {w()[:1]} JOIN {w()}s USING ({w()}_id)",
                lambda: f"WHERE {w()}_at > now() - interval '{r.integers(1, 90)} days' AND {w()} = ${r.integers(1, 4)}",
                lambda: f"GROUP BY 1, 2 ORDER BY {w()}s DESC LIMIT {r.integers(10, 100)};",
                lambda: f"CREATE INDEX ON {w()}s ({w()}_id, created_at DESC);",
            ],
            "bash": [
                lambda: f"{w()} --{w()} {w()}.toml --{w()}={r.integers(1, 64)} | grep -v {w()}",
                lambda: f"export {w().upper()}_{w().upper()}=/var/lib/{w()}/{w()}",
                lambda: f"for f in {w()}/*.{w()[:3]}; do {w()} \"$f\"; done",
            ],
            "json": [
                lambda: f"  \"{w()}\": {{\"{w()}\": {r.integers(0, 5000)}, \"{w()}\": \"{w()}-{w()}\"}},",
                lambda: f"  \"{w()}\": [\"{w()}\", \"{w()}\", {str(bool(r.random() < 0.5)).lower()}],",
            ],
            "go": [
                lambda: f"func ({w()[:1]} *{w().capitalize()}) {w().capitalize()}(ctx context.Context) error {{",
                lambda: f"\t{w()}, err := {w()}.{w().capitalize()}(ctx, {r.integers(0, 100)})",
                lambda: "\tif err != nil {\n\t\treturn fmt.Errorf(\"%s: %w\", " + f"\"{w()}\", err)\n\t}}",
                lambda: "}",
            ],
        }
        options = templates[lang]
        return [options[int(k)]() for k in r.integers(0, len(options), n)]

    def _code_block(self) -> str:
        lang = _LANGS[int(self.rng.integers(0, len(_LANGS)))]
        lines = self.code_lines(lang, int(self.rng.integers(4, 30)))
        return f"```{lang}\n" + "\n".join(lines) + "\n```"

    def _log_line(self, k: int) -> str:
        level = ("INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG")[k % 6]
        return (f"2024-{1 + k % 12:02d}-{1 + k % 28:02d}T{k % 24:02d}:{k % 60:02d}:{(7 * k) % 60:02d}.{k % 1000:03d}Z "
                f"{level} [{self.word()}.{self.word()}] {self.pick(self.vocab.sentences)[0]} "
                f"{self.word()}_id={self.rng.integers(1, 10**6)} elapsed_ms={self.rng.integers(0, 5000)}")


def _fill(target: int, draw: Callable[[], str], separator: str = "\n\n", start: str = "") -> str:
    """Blocks from ``draw`` appended to ``start`` until the text holds ``target`` UTF-8 bytes, then cut there
    (at a space or line break when one is close, at a character boundary in any case; an open code fence
    is closed)."""
    parts = [start] if start else []
    size = len(start.encode())
    while size < target:
        block = draw()
        parts.append(block)
        size += len(block.encode()) + (len(separator) if len(parts) > 1 else 0)
    text = separator.join(parts)
    data = text.encode()
    if len(data) <= target:
        return text
    cut = data[:target].decode(errors="ignore")
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space > len(cut) - 80 and space > 0:
        cut = cut[:space]
    if cut.count("```") % 2 == 1:
        cut = cut.rstrip() + "\n```"
    return cut


def assistant_texts(blocks: _Blocks, spec: ContentSpec, count: int) -> list[str]:
    """Markdown answers (a ``code_share`` with fenced code) and a ``json_share`` of tool calls."""
    rng = blocks.rng
    sizes = lengths(rng, count, spec.assistant_median_bytes, spec.assistant_sigma, spec.assistant_max_bytes, 2)
    kinds = rng.random(count)
    coded = rng.random(count) < spec.code_share
    out = []
    for size, kind, code in zip(sizes.tolist(), kinds.tolist(), coded.tolist(), strict=True):
        if kind < spec.json_share:
            out.append(tool_call(blocks))
            continue
        opening = blocks.pick(blocks.paragraphs)[0]
        if code:  # a coded answer shows its code early: a sentence or two, then the block
            opening = opening.split(". ", 1)[0] + ".\n\n" + blocks.pick(blocks.code)[0]
        out.append(_fill(size, _answer_block(blocks, code), start=opening))
    return out


def _answer_block(blocks: _Blocks, code: bool) -> Callable[[], str]:
    rng = blocks.rng
    # weights of paragraph, list, heading + paragraph, table, code (code only in a coded answer)
    weights = np.array([0.45, 0.2, 0.15, 0.05, 0.15 if code else 0.0])
    weights /= weights.sum()
    cumulative = np.cumsum(weights)

    def draw() -> str:
        kind = int(np.searchsorted(cumulative, rng.random()))
        if kind == 0:
            return blocks.pick(blocks.paragraphs)[0]
        if kind == 1:
            return blocks.pick(blocks.lists)[0]
        if kind == 2:
            return blocks.pick(blocks.headings)[0] + "\n\n" + blocks.pick(blocks.paragraphs)[0]
        if kind == 3:
            return blocks.pick(blocks.tables)[0]
        return blocks.pick(blocks.code)[0]

    return draw


def tool_call(blocks: _Blocks) -> str:
    """An assistant turn that calls a tool: the OpenAI-style ``tool_calls`` payload."""
    rng, w = blocks.rng, blocks.word
    name = _TOOLS[int(rng.integers(0, len(_TOOLS)))]
    arguments = {"query": " ".join(w() for _ in range(int(rng.integers(2, 9)))), "limit": int(rng.integers(1, 20))}
    call = {"tool_calls": [{"id": f"call_{rng.integers(0, 2**48):012x}", "type": "function",
                            "function": {"name": name, "arguments": json.dumps(arguments)}}]}
    return json.dumps(call, ensure_ascii=False)


def tool_texts(blocks: _Blocks, spec: ContentSpec, count: int) -> list[str]:
    """Tool results as JSON: search hits, rows of a query, a fetched page; lognormal sizes."""
    rng, w = blocks.rng, blocks.word
    sizes = lengths(rng, count, spec.tool_median_bytes, spec.tool_sigma, spec.tool_max_bytes, 40)
    out = []
    for size in sizes.tolist():
        name = _TOOLS[int(rng.integers(0, len(_TOOLS)))]
        doc: dict[str, object] = {"tool_call_id": f"call_{rng.integers(0, 2**48):012x}", "name": name,
                                  "status": "ok" if rng.random() < 0.95 else "error"}
        items: list[dict[str, object]] = []
        doc["results"] = items
        encoded = len(json.dumps(doc, ensure_ascii=False).encode())
        while encoded < size:
            item: dict[str, object] = {
                "title": blocks.pick(blocks.headings)[0].lstrip("# "),
                "url": f"https://{w()}.example/{w()}/{rng.integers(1, 10**5)}",
                "score": round(float(rng.random()), 3),
                "snippet": blocks.pick(blocks.paragraphs)[0],
            }
            items.append(item)
            last = len(json.dumps(item, ensure_ascii=False).encode()) + 2
            encoded += last
        if len(items) > 1 and (encoded - size > size - (encoded - last) or encoded > spec.tool_max_bytes):
            items.pop()  # without the last item the document is closer to the drawn size (or within the cap)
        out.append(json.dumps(doc, ensure_ascii=False))
    return out


def user_texts(blocks: _Blocks, spec: ContentSpec, count: int) -> list[str]:
    """Short questions; a ``paste_share`` carry a pasted document, log or source file after them."""
    rng = blocks.rng
    sizes = lengths(rng, count, spec.user_median_bytes, spec.user_sigma, spec.user_max_bytes, 2)
    pasted = rng.random(count) < spec.paste_share
    paste_sizes = lengths(rng, count, spec.paste_median_bytes, spec.paste_sigma, spec.paste_max_bytes, 64)
    out = []
    for size, paste, paste_size in zip(sizes.tolist(), pasted.tolist(), paste_sizes.tolist(), strict=True):
        question = _fill(size, lambda: blocks.pick(blocks.vocab.sentences)[0], " ")
        if not paste:
            out.append(question)
            continue
        kind = int(rng.integers(0, 3))
        if kind == 0:  # a document
            body = _fill(paste_size, lambda: blocks.pick(blocks.paragraphs)[0])
        elif kind == 1:  # a log
            body = "```\n" + _fill(paste_size, lambda: blocks.pick(blocks.log_lines)[0], "\n") + "\n```"
        else:  # a source file
            lang = _LANGS[int(rng.integers(0, len(_LANGS)))]
            body = f"```{lang}\n" + _fill(paste_size, functools.partial(_source_lines, blocks, lang), "\n") + "\n```"
        out.append(f"{question}\n\n{body}")
    return out


def _source_lines(blocks: _Blocks, lang: str) -> str:
    return "\n".join(blocks.code_lines(lang, 8))


def system_texts(blocks: _Blocks, spec: ContentSpec, count: int) -> list[str]:
    rng = blocks.rng
    sizes = lengths(rng, count, spec.system_median_bytes, spec.system_sigma, spec.system_max_bytes, 20)
    out = []
    for size in sizes.tolist():
        opener = _SYSTEM_OPENERS[int(rng.integers(0, len(_SYSTEM_OPENERS)))].format(w=blocks.word())
        out.append(_fill(size, lambda: blocks.pick(blocks.lists + blocks.paragraphs)[0], start=opener))
    return out


def ai_texts(vocab: Vocabulary, spec: ContentSpec, counts: dict[str, int], rng: np.random.Generator
             ) -> dict[str, list[str]]:
    """The ``ai`` style's texts per role (``counts``: entries per role), deterministic in the RNG's state."""
    blocks = _Blocks(vocab, rng)
    return {
        "user": user_texts(blocks, spec, counts["user"]),
        "assistant": assistant_texts(blocks, spec, counts["assistant"]),
        "system": system_texts(blocks, spec, counts["system"]),
        "tool": tool_texts(blocks, spec, counts["tool"]),
    }


@dataclass(frozen=True)
class RoleStats:
    """One role's content lengths in UTF-8 bytes (of pool entries, or of a seeded database's rows)."""

    role: str
    count: int
    p50: int
    p90: int
    p99: int
    max: int
    mean: int
    over_threshold: float  # share longer than TOAST_THRESHOLD_BYTES (compressed, then out of line if still long)
    out_of_line: int = -1  # rows stored in the TOAST table (a database only; -1: not measured)
    stored_bytes: int = -1  # bytes as stored (after compression; a database only)


def _stats(role: str, sizes: np.ndarray) -> RoleStats:
    if sizes.size == 0:
        return RoleStats(role, 0, 0, 0, 0, 0, 0, 0.0)
    p50, p90, p99 = (int(v) for v in np.percentile(sizes, [50, 90, 99], method="inverted_cdf"))
    return RoleStats(role, int(sizes.size), p50, p90, p99, int(sizes.max()), int(sizes.mean()),
                     float((sizes > TOAST_THRESHOLD_BYTES).mean()))


def pool_distribution(spec: Spec, seed: int = 0) -> tuple[RoleStats, ...]:
    """Per role, the lengths of the pool a seed of ``spec`` picks its texts from, uniformly."""
    from chatbench.loadgen.pools import ROLES, build_pools  # lazy: import cycle (pools imports this module)

    pools = build_pools(spec.locales, spec.non_ascii_share, seed, spec.content)
    out = []
    for k, role in enumerate(ROLES):
        first, size = pools.role_offsets[k], pools.role_sizes[k]
        out.append(_stats(role, np.array([len(t.encode()) for t in pools.contents[first : first + size]])))
    return tuple(out)


def measure_database(conn: psycopg.Connection[Any], table: str = "messages") -> tuple[RoleStats, ...]:
    """Per role, the content lengths a seeded database holds, how many rows are out of line, stored bytes.

    Out of line: ``pg_column_toast_chunk_id`` on PostgreSQL 17+; on 15/16 a stored (compressed) size
    above the threshold, which only an out-of-line value can have.
    """
    external = ("pg_column_toast_chunk_id(content) IS NOT NULL" if conn.info.server_version >= 170000
                else f"pg_column_size(content) > {TOAST_THRESHOLD_BYTES}")
    query = sql.SQL("SELECT role, octet_length(content), " + external + ", pg_column_size(content) FROM {}").format(
        sql.Identifier(table))
    by_role: dict[str, list[tuple[Any, ...]]] = {}
    for row in conn.execute(query):
        by_role.setdefault(row[0], []).append(row)
    order = ("user", "assistant", "system", "tool")
    return tuple(
        dataclasses.replace(_stats(role, np.array([r[1] for r in mine])), out_of_line=sum(bool(r[2]) for r in mine),
                            stored_bytes=sum(int(r[3]) for r in mine))
        for role, mine in sorted(by_role.items(), key=lambda item: (*order, item[0]).index(item[0]))
    )


def distribution_table(stats: Sequence[RoleStats]) -> str:
    """A Markdown table of the distribution (what the README quotes and the command prints)."""
    database = any(s.out_of_line >= 0 for s in stats)
    head = "| role | texts | p50 B | p90 B | p99 B | max B | mean B | > 2 kB |"
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|"
    if database:
        head += " out of line | stored MB |"
        rule += "---:|---:|"
    lines = [head, rule]
    for s in stats:
        line = (f"| {s.role} | {s.count:,} | {s.p50:,} | {s.p90:,} | {s.p99:,} | {s.max:,} | {s.mean:,} | "
                f"{s.over_threshold:.1%} |")
        if database:
            line += f" {s.out_of_line:,} | {s.stored_bytes / 1e6:,.1f} |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatbench.loadgen.content",
                                     description="chatbench's message content distribution per role")
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--spec", default=None, help="a spec TOML file instead of --profile")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--url", default=None, help="measure a seeded database instead (read only)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.url:
            with psycopg.connect(args.url) as conn:
                conn.read_only = True
                stats = measure_database(conn)
                row = conn.execute("SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 'messages'"
                                   ).fetchone()
            where = f"database (TOAST table of messages: {int(row[0]) / 1e6 if row else 0:,.1f} MB)"
        else:
            spec = load_spec(args.profile, path=args.spec)
            stats = pool_distribution(spec, args.seed)
            where = f"profile {spec.name}, content style {spec.content.style}, seed {args.seed} (the seed's pools)"
    except ChatbenchError as exc:
        print(f"error: {exc}")
        return 2
    if args.json:
        print(json.dumps([dataclasses.asdict(s) for s in stats], indent=2))
    else:
        print(f"message content in UTF-8 bytes per role: {where}")
        print(distribution_table(stats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
