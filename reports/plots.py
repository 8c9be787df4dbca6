"""The sign-off's plots as inline SVG text (matplotlib, Agg): nothing external, nothing to fetch.

Each function returns an ``<svg>`` element ready to paste into HTML, or ``None`` when the data has
nothing to plot (the HTML then says why instead of showing an empty axis). matplotlib's SVG carries
an XML prolog, a DOCTYPE with a URL, namespace URLs and RDF metadata: all stripped, so the report
holds no ``http(s)://`` at all; element ids are salted per plot so several SVGs share one page.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from chatbench.benchmarks.results import BenchmarkRun
from chatbench.reports.signoff import ScalingPoint

PALETTE = ("#2563eb", "#d97706", "#059669", "#7c3aed", "#0891b2", "#be185d", "#4b5563", "#65a30d")
TARGET_COLOR = "#dc2626"
_PLAIN = FuncFormatter(lambda value, _pos: f"{value:g}")
_STRIP = (
    re.compile(r"<\?xml[^>]*\?>\s*"),
    re.compile(r"<!DOCTYPE[^>]*>\s*", re.DOTALL),
    re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL),
    re.compile(r"<!--.*?-->\s*", re.DOTALL),
    re.compile(r'\s+xmlns(:\w+)?="[^"]*"'),
)


def to_svg(fig: Figure, salt: str) -> str:
    """Serialise a figure as a self-contained inline ``<svg>`` (no URLs), then close it."""
    buffer = io.StringIO()
    with plt.rc_context({"svg.hashsalt": salt, "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    for pattern in _STRIP:
        text = pattern.sub("", text)
    # Responsive: let CSS size it, keep the aspect ratio through the viewBox.
    text = re.sub(r'(<svg[^>]*?)\s+width="[^"]*"\s+height="[^"]*"', r"\1", text, count=1)
    return text.replace("<svg ", f'<svg role="img" aria-label="{salt}" class="plot" ', 1).strip()


def _figure(width: float, height: float) -> tuple[Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    ax.grid(True, axis="x", color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def latency_vs_target(runs: Sequence[tuple[str, BenchmarkRun]]) -> str | None:
    """Horizontal bars: p50 bar, p95 and p99 marks per scenario, the p95 target as a red tick.

    Several runs (server versions) are grouped per scenario, one colour each.
    """
    names: list[str] = []
    for _, run in runs:
        names += [s.scenario for s in run.scenarios if s.scenario not in names]
    if not names:
        return None
    fig, ax = _figure(9.0, 0.9 + 0.42 * len(names) * max(1, len(runs)) ** 0.6)
    height = 0.8 / max(1, len(runs))
    target_labelled = False
    for index, (label, run) in enumerate(runs):
        by = {s.scenario: s for s in run.scenarios}
        color = PALETTE[index % len(PALETTE)]
        labelled = False
        for row, name in enumerate(names):
            result = by.get(name)
            if result is None:
                continue
            y = row + (index - (len(runs) - 1) / 2) * height
            first, labelled = not labelled, True
            ax.barh(
                y,
                result.stats.p50,
                height=height * 0.9,
                color=color,
                alpha=0.55,
                label=f"{label} p50" if first else None,
            )
            ax.plot(
                [result.stats.p95],
                [y],
                marker="D",
                color=color,
                markersize=5,
                linestyle="none",
                label=f"{label} p95" if first else None,
            )
            ax.plot(
                [result.stats.p99],
                [y],
                marker="|",
                color=color,
                markersize=10,
                linestyle="none",
                label=f"{label} p99" if first else None,
            )
            target = result.target.p95_ms if result.target is not None else None
            if target is not None:
                ax.plot(
                    [target],
                    [y],
                    marker="|",
                    color=TARGET_COLOR,
                    markersize=16,
                    markeredgewidth=2.5,
                    linestyle="none",
                    label=None if target_labelled else "p95 target",
                )
                target_labelled = True
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(_PLAIN)
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_title("Latency by scenario vs target (bar p50, ◆ p95, | p99, red | p95 target)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.9)
    return to_svg(fig, "latency-by-scenario")


def keyset_vs_offset(runs: Sequence[tuple[str, BenchmarkRun]]) -> str | None:
    """p50 latency and buffers by page depth, keyset cursor vs OFFSET (OFFSET is expected to grow)."""
    series = []
    for label, run in runs:
        for prefix, name in (("keyset_page", "keyset"), ("offset_page", "OFFSET")):
            curve = run.depth_scaling.get(prefix)
            if curve is not None and curve.depths:
                series.append((f"{name}" + (f" ({label})" if len(runs) > 1 else ""), curve, name))
    if not series:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4), dpi=100)
    for index, (label, curve, kind) in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        style = "-" if kind == "keyset" else "--"
        depths = list(curve.depths)
        left.plot(depths, list(curve.p50_ms), style, marker="o", color=color,
                  label=f"{label}: {curve.latency.growth_class}")
        if curve.buffer_growth is not None and curve.buffers:
            right.plot(depths, list(curve.buffers), style, marker="o", color=color,
                       label=f"{label}: {curve.buffer_growth.growth_class}")
    for ax, what in ((left, "p50 latency (ms)"), (right, "buffers per page")):
        ax.set_xlabel("page depth (pages already shown)")
        ax.set_ylabel(what)
        ax.grid(True, color="#e5e7eb", linewidth=0.8)
        ax.legend(fontsize=7)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    fig.suptitle("Keyset vs OFFSET by depth (growth class in the legend)", fontsize=10)
    fig.tight_layout()
    return to_svg(fig, "keyset-vs-offset")


def scaling_by_size(points: Sequence[ScalingPoint]) -> str | None:
    """p50 per scenario against the number of messages in the database (log-log)."""
    if not points:
        return None
    fig, ax = _figure(9.0, 3.6)
    scenarios = list(dict.fromkeys(p.scenario for p in points))
    for index, name in enumerate(scenarios):
        mine = sorted((p for p in points if p.scenario == name), key=lambda p: p.messages)
        ax.plot(
            [p.messages for p in mine],
            [p.p50_ms for p in mine],
            marker="o",
            color=PALETTE[index % len(PALETTE)],
            label=name,
        )
    sizes = sorted({p.messages for p in points})
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes], fontsize=8)
    ax.minorticks_off()
    ax.yaxis.set_major_formatter(_PLAIN)
    ax.set_xlabel("messages in the database")
    ax.set_ylabel("p50 latency (ms)")
    ax.grid(True, color="#e5e7eb", linewidth=0.8)
    title = "Scaling by data size" + ("" if len(sizes) > 1 else " (one data size measured)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return to_svg(fig, "scaling-by-size")


def distributions(run: BenchmarkRun, label: str = "") -> str | None:
    """Latency distributions from the raw samples: one violin per scenario (log scale), p50/p95 marked."""
    results = [s for s in run.scenarios if len(s.samples_ms) >= 2]
    if not results:
        return None
    fig, ax = _figure(9.0, 0.9 + 0.38 * len(results))
    data = [np.log10(np.clip(np.asarray(s.samples_ms), 1e-4, None)) for s in results]
    parts = ax.violinplot(data, positions=range(len(results)), orientation="horizontal", widths=0.85, showextrema=False)
    for body in parts["bodies"]:  # type: ignore[attr-defined]
        body.set_facecolor(PALETTE[0])
        body.set_alpha(0.45)
    for row, result in enumerate(results):
        ax.plot([np.log10(result.stats.p50)], [row], marker="o", color="#111827", markersize=3.5)
        ax.plot([np.log10(result.stats.p95)], [row], marker="D", color=TARGET_COLOR, markersize=3.5)
    ax.set_yticks(range(len(results)), [s.scenario for s in results], fontsize=8)
    ax.invert_yaxis()
    lo, hi = ax.get_xlim()
    ticks = [t for t in range(int(np.floor(lo)), int(np.ceil(hi)) + 1)]
    ax.set_xticks(ticks, [f"{10.0**t:g}" for t in ticks])
    ax.set_xlabel("latency (ms, log scale) — ● p50, ◆ p95")
    ax.set_title(f"Latency distributions from the raw samples{f' ({label})' if label else ''}", fontsize=10)
    return to_svg(fig, f"distributions-{_slug(label) or 'run'}")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
