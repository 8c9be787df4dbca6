"""JUnit XML of a rehearsal: one test case per statement (failure: its FAIL finding), and one for the
verification of the migrated schema, so CI dashboards name the blocking statement. A finding that could
not judge (severity ERROR: the lock sampler stopped early) is an ``<error>`` of the migration's case."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from chatbench.rehearse.result import Rehearsal, StatementRun
from chatbench.rehearse.rules import attempts_text, queue_text, wal_size


def _measured(run: StatementRun) -> str:
    """What the statement's case shows even when it passed: its tries, the queue behind it, its WAL."""
    parts = []
    if run.attempts:
        parts.append(f"tries: {attempts_text(run)}")
    if run.queue:
        parts.append(f"queued behind its waiting lock ({run.waited_s:.3f} s): {queue_text(run.queue)}")
    if run.wal_bytes is not None:
        parts.append(f"WAL: {wal_size(run.wal_bytes)}")
    return "\n".join(parts)


def render_rehearsal(r: Rehearsal) -> str:
    suite = ET.Element("testsuite", name="chatbench rehearsal", time=f"{sum(s.migration_s for s in r.sizes):.3f}")
    failures = errors = 0
    cases: list[tuple[int | None, str]] = [(run.index, run.sql) for run in r.measured.statements]
    runs = {run.index: run for run in r.measured.statements}
    if not cases or any(f.statement not in runs for f in r.findings) or r.measured.command_tries:
        cases.append((None, r.migration))
    for index, sql in cases:
        name = f"statement {index}: {sql[:120]}" if index is not None else f"migration: {sql[:120]}"
        case = ET.SubElement(suite, "testcase", classname="rehearsal", name=name)
        out = [_measured(runs[index])] if index in runs and _measured(runs[index]) else []
        if index is None:
            out += [f"run {a.number} of the command: {a.outcome} after {a.duration_s:.2f} s"
                    + (f", waiting for {a.waited_for}" if a.waited_for else "") for a in r.measured.command_tries]
        for finding in (f for f in r.findings if f.statement == index or (index is None and f.statement not in runs)):
            if finding.severity == "FAIL":
                ET.SubElement(case, "failure", message=finding.evidence).text = finding.line()
                failures += 1
            elif finding.severity == "ERROR":
                ET.SubElement(case, "error", message=finding.evidence).text = finding.line()
                errors += 1
            else:
                out.append(finding.line())
        if out:
            ET.SubElement(case, "system-out").text = "\n".join(out)
    case = ET.SubElement(suite, "testcase", classname="rehearsal", name="verification of the migrated schema")
    if r.verification is None:
        ET.SubElement(case, "skipped", message="the migration did not complete")
    elif not r.verification.passed:
        text = "\n".join(f.message() for f in r.verification.errors)
        ET.SubElement(case, "failure", message=text.splitlines()[0]).text = text
        failures += 1
    suite.set("tests", str(len(suite)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
