"""Reading a test run's reports: JUnit XML (pytest --junitxml) and Cobertura XML (coverage.py).

Pure functions over text, so the summary the CLI shows is unit-tested without running a suite.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass


class ReportError(ValueError):
    """A report exists but cannot be read."""


@dataclass(frozen=True)
class TestCounts:
    tests: int
    failures: int
    errors: int
    skipped: int
    __test__ = False  # not a pytest test class despite the name

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped

    @property
    def failed(self) -> int:
        return self.failures + self.errors


def _int(element: ET.Element, name: str) -> int:
    try:
        return int(float(element.get(name, "0") or 0))
    except ValueError:
        raise ReportError(f"<{element.tag}> attribute {name}={element.get(name)!r} is not a number") from None


def parse_junit(text: str | bytes) -> TestCounts:
    """Totals over every <testsuite> (pytest writes one inside <testsuites>; others write many)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ReportError(f"not XML: {exc}") from None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if root.tag not in ("testsuite", "testsuites"):
        raise ReportError(f"not a JUnit report (root element <{root.tag}>)")
    total = [0, 0, 0, 0]
    for suite in suites:
        for i, name in enumerate(("tests", "failures", "errors", "skipped")):
            total[i] += _int(suite, name)
    return TestCounts(*total)


def parse_coverage(text: str | bytes) -> float:
    """Total coverage in percent, as `coverage report` prints it: with branch coverage on,
    covered lines and branches over all lines and branches (not Cobertura's line-rate alone)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ReportError(f"not XML: {exc}") from None
    if root.tag != "coverage":
        raise ReportError(f"not a Cobertura report (root element <{root.tag}>)")
    if root.get("lines-valid") is None:
        return round(float(root.get("line-rate", "0")) * 100, 2)
    lines_valid, lines_covered = _int(root, "lines-valid"), _int(root, "lines-covered")
    branches_valid, branches_covered = _int(root, "branches-valid"), _int(root, "branches-covered")
    valid = lines_valid + branches_valid
    if valid == 0:
        return 100.0
    return round(100.0 * (lines_covered + branches_covered) / valid, 2)
