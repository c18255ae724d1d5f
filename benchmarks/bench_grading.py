"""How long `python -m lecture13 grade` takes for a class: 20 copies of a correct submission of
notebook 00 and of the notebook with the most exercises, graded with the default limits and
--jobs 2; write the section "Grading" of benchmarks/results.md.

    python benchmarks/bench_grading.py              # 20 copies, 2 jobs
    python benchmarks/bench_grading.py --copies 5
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from lecture13 import grading, release
from lecture13.benchmarking import REPO_ROOT, markdown_table, write_section


def correct_submission(solution: Path) -> str:
    """The student release with the solutions' answers put back: what a perfect student hands in."""
    source = nbformat.read(solution, as_version=4)
    answers = {release.nbgrader(c)["grade_id"]: c.source for c in source.cells if release.is_answer_cell(c)}
    nb = release.student_version(source, solution.name)
    for cell in nb.cells:
        if release.is_answer_cell(cell):
            cell.source = answers[release.nbgrader(cell)["grade_id"]]
    return nbformat.writes(nb)


def notebooks_to_time(course: list[grading.CourseNotebook]) -> list[grading.CourseNotebook]:
    first = next(nb for nb in course if nb.name.startswith("00"))
    largest = max(course, key=lambda nb: (len(nb.exercises), nb.name))
    return [first] if largest is first else [first, largest]


def time_grading(notebook: grading.CourseNotebook, copies: int, jobs: int) -> dict:
    solution = REPO_ROOT / "solutions" / notebook.name
    text = correct_submission(solution)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "submitted"
        for i in range(copies):
            (folder / f"student{i:03d}").mkdir(parents=True)
            (folder / f"student{i:03d}" / notebook.name).write_text(text)
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        grades = grading.grade([folder], out=Path(tmp) / "grades.csv", jobs=jobs, progress=False)
        seconds = time.perf_counter() - started
        load_after = os.getloadavg()[0]
    full = sum(g.total == g.max_points for g in grades)
    exercise_seconds = [r.seconds for g in grades for r in g.results]
    return {"notebook": notebook.name, "exercises": len(notebook.exercises), "copies": copies, "jobs": jobs,
            "full_marks": f"{full}/{copies}", "seconds": round(seconds, 1),
            "submissions_per_minute": round(copies / seconds * 60, 1),
            "mean_exercise_s": round(sum(exercise_seconds) / len(exercise_seconds), 3),
            "load_1min_before_after": f"{load_before:.1f} / {load_after:.1f}"}


def time_worker_start(course: list[grading.CourseNotebook]) -> float:
    """One worker: a fresh interpreter loading what the notebooks import (paid once per job)."""
    started = time.perf_counter()
    worker = grading.Worker(course)
    seconds = time.perf_counter() - started
    worker.close()
    if worker.error:
        raise SystemExit(worker.error)
    return round(seconds, 2)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    course = grading.load_course()
    rows = []
    for notebook in notebooks_to_time(course):
        row = time_grading(notebook, args.copies, args.jobs)
        row["worker_start_s"] = time_worker_start(course)
        print(json.dumps(row), flush=True)
        rows.append(row)
    command = "python benchmarks/bench_grading.py" + (" " + " ".join(argv) if argv else "")
    md = (markdown_table(rows) + "\n\n"
          "`seconds`: wall clock of `grading.grade(...)` for all copies, including starting one worker per job "
          "(a fresh Python that loads what the notebooks import; `worker_start_s`, measured on its own afterwards). "
          "Every exercise of every copy runs in its own forked, time- and memory-limited process: the notebook's "
          "imports cell, the answer, the instructor's tests with the hidden ones. The machine was shared with other jobs (see the load average), so the times are pessimistic.")
    write_section("Grading", md, {"rows": rows}, command)


if __name__ == "__main__":
    main(sys.argv[1:])
