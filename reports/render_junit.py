"""JUnit XML for CI systems: one test suite per stage (per server), one test case per judged item.

CI dashboards (GitLab, Jenkins, GitHub test reporters) then show each failing check, missed
target or regression by name. A stage that errored is an ``<error>``; a failing item a ``<failure>``
whose message is the same one line the Markdown shows (a stage's own one line, e.g. what the confirm stage
re-measured, is the suite's ``detail`` property); an item the measured noise left undecided
(INCONCLUSIVE) is ``<skipped>`` with that line as its reason: not a failure, and not a pass; so is an item
skipped by design (a canonical query on a schema whose roles the map renames), with why.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict

from chatbench.reports.signoff import CheckItem, ClusterComparison, Signoff, TargetSignoff


def render_signoff(signoff: Signoff) -> str:
    root = ET.Element("testsuites", name="chatbench sign-off")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for target in signoff.targets:
        for suite in _suites(target, signoff.multi):
            root.append(suite)
            for key in totals:
                totals[key] += int(suite.get(key, "0"))
    cluster = signoff.cluster_comparison()
    if cluster is not None:
        root.append(_cluster_suite(cluster))
        totals["tests"] += len(cluster.queries)
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{sum(t.seconds for t in signoff.targets):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _suites(target: TargetSignoff, multi: bool) -> list[ET.Element]:
    prefix = f"{target.label} / " if multi else ""
    by_stage: dict[str, list[CheckItem]] = defaultdict(list)
    for check in target.checks:
        by_stage[check.stage].append(check)
    suites = []
    for stage in target.stages:
        suite = ET.Element("testsuite", name=f"{prefix}{stage.stage}", time=f"{stage.seconds:.3f}")
        if stage.detail:  # what the stage did as a whole (the confirm stage: what it re-measured, what agreed)
            ET.SubElement(ET.SubElement(suite, "properties"), "property", name="detail", value=stage.detail)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        items = by_stage.pop(stage.stage, [])
        if stage.status in ("error", "skipped") or not items:
            case = ET.SubElement(
                suite, "testcase", classname=f"{prefix}{stage.stage}", name=stage.stage, time=f"{stage.seconds:.3f}"
            )
            counts["tests"] += 1
            if stage.status == "error":
                ET.SubElement(case, "error", message=stage.detail or "stage error").text = stage.detail
                counts["errors"] += 1
            elif stage.status == "skipped":
                ET.SubElement(case, "skipped", message=stage.detail or "skipped")
                counts["skipped"] += 1
            elif stage.status == "failed":
                ET.SubElement(case, "failure", message=stage.detail or "stage failed").text = stage.detail
                counts["failures"] += 1
        for check in items:
            _case(suite, f"{prefix}{stage.stage}", check, counts)
        for key, value in counts.items():
            suite.set(key, str(value))
        suites.append(suite)
    for stage_name, items in by_stage.items():  # checks of a stage with no timing row
        suite = ET.Element("testsuite", name=f"{prefix}{stage_name}", time="0")
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for check in items:
            _case(suite, f"{prefix}{stage_name}", check, counts)
        for key, value in counts.items():
            suite.set(key, str(value))
        suites.append(suite)
    return suites


def _cluster_suite(cluster: ClusterComparison) -> ET.Element:
    """The side-by-side as evidence, not judgement: one passed case per scenario, its figures as properties
    and in ``system-out`` (the line a CI dashboard shows)."""
    name = "Citus cluster against a single node"
    suite = ET.Element("testsuite", name=name, tests=str(len(cluster.queries)), failures="0", errors="0",
                       skipped="0", time="0")
    if cluster.distribution:  # the variant the cluster's tables were distributed as
        ET.SubElement(ET.SubElement(suite, "properties"), "property", name="distribution", value=cluster.distribution)
    for row in cluster.rows():
        case = ET.SubElement(suite, "testcase", classname=name, name=row[0])
        props = ET.SubElement(case, "properties")
        for key, value in zip(ClusterComparison.HEADER[1:], row[1:], strict=True):
            ET.SubElement(props, "property", name=key, value=value)
        ET.SubElement(case, "system-out").text = ", ".join(
            f"{key} {value}" for key, value in zip(ClusterComparison.HEADER[1:], row[1:], strict=True))
    return suite


def _case(suite: ET.Element, classname: str, check: CheckItem, counts: dict[str, int]) -> None:
    case = ET.SubElement(suite, "testcase", classname=classname, name=check.name)
    counts["tests"] += 1
    if check.failing:
        ET.SubElement(case, "failure", message=check.message).text = check.message
        counts["failures"] += 1
    elif check.undecided:  # not a failure: the measured noise hid the answer
        ET.SubElement(case, "skipped", message=f"INCONCLUSIVE: {check.message}")
        counts["skipped"] += 1
    elif check.outcome == "skipped":  # not run by design; the message says why
        ET.SubElement(case, "skipped", message=check.message)
        counts["skipped"] += 1
    elif not check.passed:
        ET.SubElement(case, "system-out").text = f"{check.severity}: {check.message}"
