"""Parsing JUnit and Cobertura reports into the numbers of the test summary."""

from __future__ import annotations

import pytest

from deployctl.reports import ReportError, TestCounts, parse_coverage, parse_junit

PYTEST_JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">
<testsuite name="pytest" errors="1" failures="2" skipped="3" tests="20" time="1.2" timestamp="x" hostname="h">
<testcase classname="t" name="a" time="0.1"/></testsuite></testsuites>"""


def test_pytest_junit():
    counts = parse_junit(PYTEST_JUNIT)
    assert counts == TestCounts(tests=20, failures=2, errors=1, skipped=3)
    assert (counts.passed, counts.failed) == (14, 3)


def test_junit_with_several_suites_and_a_bare_testsuite_root():
    many = ('<testsuites><testsuite tests="2" failures="0" errors="0" skipped="1"/>'
            '<testsuite tests="3" failures="1" errors="0"/></testsuites>')
    assert parse_junit(many) == TestCounts(5, 1, 0, 1)
    assert parse_junit('<testsuite tests="4" failures="0" errors="0" skipped="0"/>').passed == 4


@pytest.mark.parametrize("text, message", [
    ("<testsuites", "not XML"),
    ("<coverage/>", "not a JUnit report"),
    ('<testsuite tests="many"/>', "is not a number"),
])
def test_bad_junit(text, message):
    with pytest.raises(ReportError, match=message):
        parse_junit(text)


def test_coverage_counts_lines_and_branches_like_coverage_report():
    # coverage.py: (lines covered + branches covered) / (lines + branches) = (90 + 10) / (100 + 20)
    xml = ('<coverage version="7" line-rate="0.9" branch-rate="0.5" lines-covered="90" lines-valid="100" '
           'branches-covered="10" branches-valid="20" complexity="0"><packages/></coverage>')
    assert parse_coverage(xml) == 83.33


def test_coverage_without_branches_and_old_style_reports():
    assert parse_coverage('<coverage lines-covered="45" lines-valid="50" branches-covered="0" '
                          'branches-valid="0"/>') == 90.0
    assert parse_coverage('<coverage line-rate="0.875"/>') == 87.5
    assert parse_coverage('<coverage lines-covered="0" lines-valid="0"/>') == 100.0


def test_bad_coverage():
    with pytest.raises(ReportError, match="not a Cobertura report"):
        parse_coverage("<testsuites/>")
