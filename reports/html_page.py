"""What every chatbench HTML report shares: the inline stylesheet and the one escaping function.

Every report is one self-contained file (no script, font, stylesheet or image fetched from anywhere),
so the stylesheet travels inline in each; every text from a run goes through ``e``.
"""

from __future__ import annotations

import html
from typing import Any

CSS = """
:root { --pass:#047857; --fail:#b91c1c; --error:#b45309; --undecided:#a16207; --muted:#6b7280; --line:#e5e7eb; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:#111827;
       margin: 0 auto; max-width: 1100px; padding: 24px; background:#fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom:1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
.banner { padding: 14px 18px; border-radius: 8px; color: #fff; margin-bottom: 16px; }
.banner.PASS { background: var(--pass); }
.banner.FAIL { background: var(--fail); } .banner.ERROR { background: var(--error); }
.banner.INCONCLUSIVE { background: var(--undecided); }
.banner.PASS, .banner.FAIL, .banner.ERROR, .banner.INCONCLUSIVE { color: #fff; }
.banner .verdict { font-size: 28px; font-weight: 700; letter-spacing: .04em; }
.failing { border-left: 4px solid var(--fail); background:#fef2f2; padding: 8px 12px 8px 28px; margin: 8px 0; }
.failing li { margin: 2px 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; }
.warnings { border-left: 4px solid var(--error); background:#fffbeb; padding: 8px 12px 8px 28px; }
.undecided-list { border-left: 4px solid var(--undecided); background:#fefce8; padding: 8px 12px 8px 28px; }
.undecided-list li { margin: 2px 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; }
.inconclusive, .INCONCLUSIVE { color: var(--undecided); font-weight: 600; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f9fafb; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok, .PASS, .improved, .unchanged { color: var(--pass); }
.failed, .FAIL, .regressed { color: var(--fail); font-weight: 600; }
.error, .ERROR { color: var(--error); font-weight: 600; }
.skipped, .muted, .new, .missing, .changed { color: var(--muted); }
.tag { display:inline-block; padding: 0 6px; border-radius: 4px; font-size: 12px; background:#f3f4f6; }
figure { margin: 12px 0 20px; } figcaption { color: var(--muted); font-size: 12px; }
svg.plot { width: 100%; height: auto; max-width: 1000px; display: block; }
pre { background:#f9fafb; border:1px solid var(--line); padding: 8px; overflow-x: auto; font-size: 12px; }
details summary { cursor: pointer; } code { font-size: 12.5px; }
.env { color: var(--error); }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 12px; }
footer { color: var(--muted); font-size: 12px; margin-top: 32px; border-top: 1px solid var(--line); padding-top: 8px; }
"""


def e(value: Any) -> str:
    return html.escape(str(value), quote=True)
