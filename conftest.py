"""Shared test set-up. In CI (CI=true) a skipped test is a failure: nothing is silently left out."""
import os

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which is not allowed (CI=true): {reason}"
