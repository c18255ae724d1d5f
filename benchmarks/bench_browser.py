"""Time the browser tests (tests/test_browser.py: JupyterLab in Chromium runs every student
notebook and moves every widget panel); used by ``python -m lecture13 bench --only browser``.

    python benchmarks/bench_browser.py        # prints the per-test times
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from lecture13.benchmarking import REPO_ROOT


def rows_from_junit(report: Path) -> list[dict]:
    """One row per test case of a JUnit XML report: its name, seconds and outcome."""
    def outcome(case) -> str:
        if case.find("failure") is not None or case.find("error") is not None:
            return "failed"
        return "skipped" if case.find("skipped") is not None else "passed"

    return [{"test": case.get("name"), "seconds": round(float(case.get("time", 0)), 1), "outcome": outcome(case)}
            for case in ET.parse(report).getroot().iter("testcase")]


def time_browser_tests() -> dict:
    """Run ``pytest -m browser`` in a subprocess (one BLAS thread, as ``make test`` runs it) and
    read each test's time from its JUnit report. Raises if a test failed or was skipped: a time of
    a failing run is not a measurement."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "browser.xml"
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-m", "browser", "-p", "no:cacheprovider", "-q",
                               f"--junitxml={report}", "tests/test_browser.py"],
                              cwd=REPO_ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if not report.exists():
            raise RuntimeError(f"pytest wrote no report (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        rows = rows_from_junit(report)
    bad = [r for r in rows if r["outcome"] != "passed"]
    if done.returncode != 0 or bad or not rows:
        raise RuntimeError(f"the browser tests did not all pass ({bad or 'exit ' + str(done.returncode)}):\n"
                           f"{done.stdout[-3000:]}")
    return {"rows": rows, "wall_seconds": round(wall, 1)}


if __name__ == "__main__":
    result = time_browser_tests()
    for row in result["rows"]:
        print(f"{row['seconds']:7.1f} s  {row['test']}")
    print(f"{result['wall_seconds']:7.1f} s  in all (pytest -m browser, including JupyterLab and Chromium start-up)")
