"""Renderers: Markdown fits a PR comment with the verdict first, JSON and JUnit parse, and the HTML
renders in a real headless browser (Debian's chromium) with its plots and no external reference."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

from reports_fixtures import make_run, make_signoff, make_target
from servers import unavailable

from chatbench.reports import render_html, render_json, render_junit, render_markdown
from chatbench.reports.compare import compare_runs
from chatbench.reports.inputs import benchmark_runs_in
from chatbench.reports.output import scrub, write_signoff
from chatbench.reports.signoff import VerificationEvidence
from chatbench.verify.findings import Finding
from chatbench.verify.result import VerificationResult

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
EXTERNAL = re.compile(r"""(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|\b(src|href)\s*=\s*["'](?!#|data:)""", re.IGNORECASE)


def _failing_signoff():  # type: ignore[no-untyped-def]
    base = make_run(seed=1)
    current = make_run(seed=2, slow={"latest_page": 1.4})
    comparison = compare_runs(current, base)
    return make_signoff(make_target(current, failing=("keyset_page_20",), comparison=comparison))


def test_markdown_puts_the_verdict_first_then_one_line_per_failing_item() -> None:
    text = render_markdown.render_signoff(_failing_signoff())
    lines = text.splitlines()
    assert lines[0].startswith("## ❌") and "FAIL" in lines[0]
    failing = text.split("### Failing (1)", 1)[1].split("\n\n")[1].splitlines()
    assert failing == ["- plans: keyset_page_20: Seq Scan on messages (rows=20000)"]
    assert text.index("### Failing") < text.index("### Evidence")
    assert "| `latest_page` |" in text and "Against the baseline" in text


def test_markdown_passes_cleanly() -> None:
    text = render_markdown.render_signoff(make_signoff(make_target(make_run(seed=1))))
    assert text.startswith("## ✅ chatbench sign-off: **PASS**") and "### Failing" not in text


def test_markdown_fits_a_pr_comment_whatever_the_evidence() -> None:
    targets = [make_target(make_run(seed=i), label=f"PostgreSQL {i}") for i in range(1, 9)]
    text = render_markdown.render_signoff(make_signoff(*targets), max_chars=6000)
    assert len(text) <= 6000
    assert text.startswith("## ✅") and "Evidence shortened" in text


def test_json_is_strict_json_and_reads_back() -> None:
    signoff = _failing_signoff()
    data = json.loads(render_json.render_signoff(signoff))
    assert data["verdict"] == "FAIL" and data["failing"] == list(signoff.failing_lines())
    target = data["targets"][0]
    assert target["benchmark"]["environment"]["schema_fingerprint"] == "abc123"
    assert len(target["benchmark"]["scenarios"][0]["samples_ms"]) == 400
    assert target["comparison"]["verdict"] == "REGRESSION"
    [(label, run)] = benchmark_runs_in(data)
    assert label == "PostgreSQL 18.1 (local)" and len(run.scenarios) == 8


def test_junit_has_a_failure_per_failing_item() -> None:
    signoff = _failing_signoff()
    root = ET.fromstring(render_junit.render_signoff(signoff))
    failures = root.findall(".//failure")
    assert int(root.get("failures", "0")) == len(failures) == len(signoff.failing_lines())
    assert any(f.get("message", "").startswith("keyset_page_20: Seq Scan") for f in failures)
    assert {s.get("name") for s in root.findall("testsuite")} >= {"provision", "plans", "benchmarks"}


def test_junit_marks_a_stage_error() -> None:
    signoff = make_signoff(make_target(make_run(seed=1), error="load: could not start clients"))
    assert signoff.verdict == "ERROR" and signoff.exit_code == 2
    root = ET.fromstring(render_junit.render_signoff(signoff))
    assert root.get("errors") == "1"


def test_scrub_removes_passwords_and_known_secrets() -> None:
    text = "postgresql://u:hunter22@h/db password=abc123 token s3cr3t-value"
    cleaned = scrub(text, ["s3cr3t-value"])
    assert "hunter22" not in cleaned and "abc123" not in cleaned and "s3cr3t-value" not in cleaned


def test_html_is_self_contained() -> None:
    html = render_html.render_signoff(_failing_signoff())
    assert "http://" not in html and "https://" not in html
    assert not EXTERNAL.search(html), EXTERNAL.search(html)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r"url\((?!#)", html)  # only in-page references (SVG clip paths)
    assert html.count("<svg") == 4  # latency vs target, keyset vs OFFSET, scaling, distributions


def _chromium() -> str:
    # Debian's chromium here and in CI; GitHub's Ubuntu runners ship google-chrome.
    found = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if found is None:
        unavailable("chromium is not installed (apt-get install -y chromium)", ".ci/run must install it")
    return found


def _run_chromium(*args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chatbench-chromium-") as profile:
        return subprocess.run(
            [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def test_html_renders_in_a_headless_browser_with_its_plots(tmp_path: Path) -> None:
    base = make_run(seed=1)
    signoff = make_signoff(
        make_target(make_run(seed=2), comparison=compare_runs(make_run(seed=2), base)),
        make_target(base, label="PostgreSQL 15.8 (local)"),
    )
    page = write_signoff(signoff, tmp_path)["signoff.html"]
    dom = _run_chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = dom.stdout
    assert "<title>chatbench sign-off: PASS</title>" in rendered
    # Five plots: latency vs target, keyset vs OFFSET, scaling, one distribution per server.
    assert rendered.count("<svg") == 5
    assert len(re.findall(r"<(path|use|rect)\b", rendered)) > 100  # the plots hold drawn shapes
    assert "Side by side" in rendered and "PostgreSQL 15.8 (local)" in rendered
    assert not re.search(r"https?://", rendered)

    shot = tmp_path / "signoff.png"
    done = _run_chromium("--window-size=1200,2400", f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 2400)
    # A blank page has one colour; the banner, tables and plots give thousands.
    assert len(image.resize((300, 600)).getcolors(maxcolors=300 * 600) or ()) > 200


def test_markdown_caps_a_huge_failing_list_but_says_so() -> None:
    target = make_target(make_run(seed=1), failing=tuple(f"scenario_{i}" for i in range(400)))
    text = render_markdown.render_signoff(make_signoff(target), max_chars=8000)
    assert len(text) <= 8000 and text.startswith("## ❌")
    assert "more failing items (all of them in signoff.json)" in text


def _inconclusive_signoff():  # type: ignore[no-untyped-def]
    """A run whose latest_page target the machine's noise left undecided (CPU time well under the target)."""
    from dataclasses import replace

    import numpy as np

    from chatbench.benchmarks.results import ScenarioResult, Target

    run = make_run(seed=1)
    rng = np.random.default_rng(5)
    cpu = 0.1 + rng.exponential(0.01, 2000)
    waits = np.where(rng.random(2000) < 0.08, rng.uniform(2.0, 4.0, 2000), 0.0)
    busy = ScenarioResult.judge(scenario="latest_page", query="latest_messages", params_version="v-latest_page",
                                samples_ms=cpu + waits, cpu_ms=cpu, target=Target(p95_ms=1.0, p99_ms=3.0),
                                attempts=3)
    run = replace(run, scenarios=(busy, *run.scenarios[1:]))
    return make_signoff(make_target(run))


def test_inconclusive_is_its_own_state_in_every_rendering() -> None:
    signoff = _inconclusive_signoff()
    assert signoff.verdict == "INCONCLUSIVE" and signoff.exit_code == 3 and not signoff.failing_lines()
    [line] = signoff.inconclusive_lines()
    assert line.startswith("benchmarks: latest_page: p95 ") and "waiting for a CPU" in line
    md = render_markdown.render_signoff(signoff)
    assert md.startswith("## 🟡 chatbench sign-off: **INCONCLUSIVE**") and "### Inconclusive (1)" in md
    assert "### Failing" not in md and "the exit code is 3" in md
    row = next(r for r in md.splitlines() if r.startswith("| `latest_page` |"))
    judged = signoff.targets[0].benchmark.scenarios[0].judgement("p95")  # type: ignore[union-attr]
    assert judged is not None and f"{judged.value_ms:.3f} [{judged.low_ms:.3f}–{judged.high_ms:.3f}]" in row
    assert "INCONCLUSIVE (3 measurements)" in row and "PASS: high ≤ target" in md and "Noise" in md
    data = json.loads(render_json.render_signoff(signoff))
    assert data["verdict"] == "INCONCLUSIVE" and data["inconclusive"] == [line] and data["failing"] == []
    check = next(c for c in data["targets"][0]["checks"] if c["name"] == "latest_page")
    assert check["outcome"] == "inconclusive" and not check["failing"] and not check["passed"]
    root = ET.fromstring(render_junit.render_signoff(signoff))
    skipped = [s for s in root.findall(".//skipped") if s.get("message", "").startswith("INCONCLUSIVE: ")]
    assert len(skipped) == 1 and root.get("failures") == "0"
    html = render_html.render_signoff(signoff)
    assert 'class="banner INCONCLUSIVE"' in html and "Inconclusive (1)" in html


def test_a_proposed_index_is_shown_beside_the_failing_list_in_markdown_and_html() -> None:
    """The fix for a query that failed for want of an index is an info finding of the plans stage: without its
    own section it sat only in signoff.json, while the failing list named the missing index."""
    wanted = "an index that makes the contract pass"
    proposed = Finding("queries", "proposed_index", "messages.ix_cb_messages_user_id_created_at_id", wanted,
                       "CREATE INDEX CONCURRENTLY ix_cb_messages_user_id_created_at_id ON messages "
                       "(user_id, created_at)",
                       "info", query="feed_no_index", scenario="copy",
                       detail="before: 2 errors, 1601 buffers; after: 0")
    unfixable = Finding("queries", "no_index_fix", "history_numeric", wanted,
                        "CREATE INDEX CONCURRENTLY ix_cb ON messages (x) leaves 1 errors: fix the query "
                        "(implicit_cast)", "info", query="history_numeric", scenario="copy",
                        detail="before: 1 errors; after: 1 errors")
    plans = VerificationResult({}, "", "seed", False, "", (proposed, unfixable), (), (), (), {})
    target = replace(make_target(make_run(seed=1), failing=("feed_no_index",)),
                     verification=VerificationEvidence(health_plans=plans))
    signoff = make_signoff(target)
    markdown = render_markdown.render_signoff(signoff)
    section = markdown.split("### Proposed indexes (2)", 1)[1].split("###", 1)[0]
    assert "feed_no_index: CREATE INDEX CONCURRENTLY ix_cb_messages_user_id_created_at_id" in section
    assert "before: 2 errors, 1601 buffers" in section and "fix the query (implicit_cast)" in section
    assert markdown.index("### Failing") < markdown.index("### Proposed indexes") < markdown.index("### Evidence")
    html = render_html.render_signoff(signoff)
    assert "<h2>Proposed indexes (2)</h2>" in html and "ix_cb_messages_user_id_created_at_id" in html
