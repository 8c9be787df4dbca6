"""The rehearsal's timeline as inline SVG: the migration's locks on top, the app below, one time axis.

Top: one bar per (relation, lock mode) the migration held, red where it blocks the app's reads or
appends, amber while the migration was still waiting for it, grey otherwise; statement starts as
dotted lines. Middle: every app request's latency (log scale) at the time it was due, reads and
appends apart, failures as crosses. Bottom: app queries seen waiting behind the migration.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from chatbench.rehearse.locks import short
from chatbench.rehearse.result import SizeRun
from chatbench.reports.plots import PALETTE, to_svg


def timeline(size: SizeRun) -> str | None:
    if not size.app and not size.locks:
        return None
    labels = sorted({(s.relation, s.mode) for s in size.locks}, key=lambda k: (k[0], k[1]))
    fig, (top, middle, bottom) = plt.subplots(3, 1, sharex=True, figsize=(10, 2.2 + 0.3 * len(labels) + 3.4),
                                              gridspec_kw={"height_ratios": [max(1, len(labels)) * 0.35 + 0.6, 2.2,
                                                                             1.0]}, dpi=100)
    for row, key in enumerate(labels):
        for span in (s for s in size.locks if (s.relation, s.mode) == key):
            color = "#f59e0b" if not span.granted else "#dc2626" if span.blocks else "#9ca3af"
            top.barh(row, max(span.end_s - span.start_s, 0.002), left=span.start_s, color=color, height=0.6)
    top.set_yticks(range(len(labels)), [f"{r} {short(m)}" for r, m in labels], fontsize=8)
    top.set_title(f"migration at {size.messages:,} messages: locks (red blocks the app, amber waiting)", fontsize=9)
    for run in size.statements:
        for ax in (top, middle, bottom):
            ax.axvline(run.start_s, color="#6b7280", linestyle=":", linewidth=0.8)
    for index, access in enumerate(("reads", "appends")):
        points = [p for p in size.app if p.access == access and p.ok]
        if points:
            middle.scatter([p.t_s for p in points], [max(p.latency_ms, 0.01) for p in points], s=5,
                           color=PALETTE[index], label=access)
    failed = [p for p in size.app if not p.ok]
    if failed:
        middle.scatter([p.t_s for p in failed], [max(p.latency_ms, 0.01) for p in failed], marker="x", color="#dc2626",
                       label="errors")
    middle.set_yscale("log")
    middle.set_ylabel("app latency ms", fontsize=8)
    if middle.get_legend_handles_labels()[0]:  # a size whose load recorded no request has nothing to label
        middle.legend(fontsize=7, loc="upper left")
    if size.app:
        times = np.linspace(min(p.t_s for p in size.app), max(p.t_s for p in size.app), 400)
        waiting = [sum(1 for b in size.blocked if b.start_s <= t <= b.end_s) for t in times]
        bottom.step(times, waiting, where="post", color="#dc2626")
    bottom.set_ylabel("app queries\nblocked", fontsize=8)
    bottom.set_xlabel("seconds from the migration's start", fontsize=8)
    for ax in (top, middle, bottom):
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    fig.tight_layout()
    return to_svg(fig, f"rehearsal-timeline-{size.profile}")
