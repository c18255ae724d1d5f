"""Helpers for tests that run a notebook's exercise cells outside Jupyter."""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import nbformat

from lecture13 import release

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"


def read(path: Path):
    return nbformat.read(path, as_version=4)


def cell_by_id(nb, cell_id: str):
    for cell in nb.cells:
        if cell.get("id") == cell_id:
            return cell
    raise KeyError(cell_id)


def exercises(nb) -> list[tuple[str, str, str]]:
    """(grade_id, answer source, test source) for every answer cell of a notebook."""
    out = []
    tests = {release.nbgrader(c)["grade_id"]: c.source for c in nb.cells if release.is_test_cell(c)}
    for cell in nb.cells:
        if release.is_answer_cell(cell) and cell.cell_type == "code":
            grade_id = release.nbgrader(cell)["grade_id"]
            out.append((grade_id, cell.source, tests[grade_id + "-test"]))
    return out


def run_exercise(nb, answer_source: str, test_source: str, grading: bool) -> str:
    """Run the imports cell, an answer and a test cell in a fresh namespace; return what it printed.
    With ``grading`` the check raises instead of falling back (as the grader runs it)."""
    namespace: dict = {"__name__": "__exercise__"}
    out = io.StringIO()
    previous = os.environ.get("LECTURE13_GRADING")
    os.environ["LECTURE13_GRADING"] = "1" if grading else "0"
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(cell_by_id(nb, "imports").source, "imports", "exec"), namespace)
            exec(compile(answer_source, "answer", "exec"), namespace)
            exec(compile(test_source, "test", "exec"), namespace)
    finally:
        if previous is None:
            os.environ.pop("LECTURE13_GRADING", None)
        else:
            os.environ["LECTURE13_GRADING"] = previous
    return out.getvalue()


def assert_check_catches(nb, answer_source: str, test_source: str) -> None:
    """A planted wrong answer: the visible check reports it (and says what failed), and in grading
    mode the test cell, hidden tests included, fails."""
    import pytest

    visible = test_source.split(release.BEGIN_HIDDEN)[0]
    out = run_exercise(nb, answer_source, visible, grading=False)
    assert "❌" in out and ("expected" in out or "raised" in out or "failed" in out), out
    with pytest.raises(AssertionError):
        run_exercise(nb, answer_source, test_source, grading=True)
