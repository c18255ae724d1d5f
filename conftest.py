"""Shared test set-up.

* In CI (CI=true) a skipped test is a failure: nothing is silently left out.
* Each test item keeps its reports (``item.report_setup``, ``item.report_call``), so a fixture can
  save diagnostics when its test failed (tests/test_browser.py saves screenshots and logs).
* At the end, the run names the folder where failing tests left artifacts, if any did.
"""
import os
import time
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ARTIFACTS = Path(os.environ.get("LECTURE13_ARTIFACTS", Path(__file__).resolve().parent / "test-artifacts"))
STARTED = time.time()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which is not allowed (CI=true): {reason}"
    setattr(item, f"report_{report.when}", report)


def pytest_terminal_summary(terminalreporter):
    fresh = sorted(p for p in ARTIFACTS.glob("*/*") if p.is_dir() and p.stat().st_mtime >= STARTED)
    if fresh:
        terminalreporter.section("test artifacts")
        terminalreporter.write_line(f"failing tests saved screenshots and logs under {ARTIFACTS}:")
        for folder in fresh:
            terminalreporter.write_line(f"  {folder}")
