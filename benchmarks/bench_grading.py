"""How long `python -m lecture13 grade` takes for a class: 20 and 100 copies of a correct
submission of notebook 00 and of the notebook with the most exercises, graded with the default
limits and --jobs 2, with the bubblewrap sandbox and without it (side by side, in one run); write
the section "Grading" of benchmarks/results.md.

    python benchmarks/bench_grading.py              # 20 and 100 copies, 2 jobs, --sandbox bwrap and none
    python benchmarks/bench_grading.py --copies 5
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from lecture13 import grading, grading_sandbox, release
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


def time_grading(notebook: grading.CourseNotebook, copies: int, jobs: int, sandbox: str = "auto") -> dict:
    solution = REPO_ROOT / "solutions" / notebook.name
    text = correct_submission(solution)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "submitted"
        for i in range(copies):
            (folder / f"student{i:03d}").mkdir(parents=True)
            (folder / f"student{i:03d}" / notebook.name).write_text(text)
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        grades = grading.grade([folder], out=Path(tmp) / "grades.csv", jobs=jobs, progress=False, sandbox=sandbox)
        seconds = time.perf_counter() - started
        load_after = os.getloadavg()[0]
    full = sum(g.total == g.max_points for g in grades)
    exercise_seconds = [r.seconds for g in grades for r in g.results]
    # Once the workers run: each job grades one submission every median(seconds per submission)
    # (the first of each job also waits for its worker to start, hence the median).
    per_submission = statistics.median(g.seconds for g in grades)
    return {"notebook": notebook.name, "sandbox": grading_sandbox.choose(sandbox)[0], "exercises": len(notebook.exercises), "copies": copies, "jobs": jobs,
            "full_marks": f"{full}/{copies}", "seconds": round(seconds, 1),
            "submissions_per_minute": round(copies / seconds * 60, 1),
            "once_started_per_minute": round(jobs * 60 / per_submission, 1),
            "mean_exercise_s": round(sum(exercise_seconds) / len(exercise_seconds), 3),
            "load_1min_before_after": f"{load_before:.1f} / {load_after:.1f}"}


def time_worker_start(course: list[grading.CourseNotebook], sandbox: str) -> float:
    """One worker and its answer host: two fresh interpreters loading what the notebooks import
    (paid once per job)."""
    started = time.perf_counter()
    worker = grading.Worker(course, sandbox)
    seconds = time.perf_counter() - started
    worker.close()
    if worker.error:
        raise SystemExit(worker.error)
    return round(seconds, 2)


SECTION = "Grading throughput"
TARGET_PER_MINUTE, TARGET_CLASS = 100, 100  # submissions per minute with the sandbox, for a class of 100


def measure(class_sizes: list[int], jobs: int = 2, largest: bool = True, quick: bool = False) -> tuple[str, dict]:
    """Time grading of each class size, with the sandbox and without, side by side; (Markdown, data)."""
    course = grading.load_course()
    modes = ["bwrap", "none"] if not grading_sandbox.probe() else ["none"]
    if quick:   # a smoke run (tests, `bench --quick`): the sandboxed mode only, no separate worker start
        modes = modes[:1]
    notebooks = notebooks_to_time(course) if largest else course[:1]
    rows = []
    for notebook in notebooks:
        for copies in class_sizes:
            for mode in modes:
                row = time_grading(notebook, copies, jobs, mode)
                row["worker_start_s"] = None if quick else time_worker_start(course, mode)
                print(json.dumps(row), flush=True)
                rows.append(row)
    at_target = [r for r in rows if r["sandbox"] == "bwrap" and r["copies"] == TARGET_CLASS]
    slowest = min(at_target, key=lambda r: r["submissions_per_minute"], default=None)
    met = None if slowest is None else slowest["submissions_per_minute"] >= TARGET_PER_MINUTE
    md = (markdown_table(rows) + "\n\n"
          "`seconds`: wall clock of `grading.grade(...)` for all copies of a correct submission, hidden tests included, "
          f"with {jobs} jobs and the default limits, including starting one worker per job: two fresh Pythons, the "
          "trusted worker and its answer host, that load what the notebooks import (torch, matplotlib, the package; "
          "`worker_start_s`: one worker on its own, measured afterwards; two jobs start four such processes on the two "
          "cores). `once_started_per_minute`: the rate once the workers run (jobs × 60 s / the median seconds per "
          "submission), which a large class approaches. Every exercise of every copy runs in two forked processes: the "
          "answer's (imports cell, the answer; time- and memory-limited; with `sandbox` bwrap inside the worker's "
          "bubblewrap sandbox) and the trusted tester's (imports cell, the instructor's tests), which calls the answer "
          "through the grading channel. "
          + ("" if len(modes) == 2 else "Quick run: only the first mode was timed. " if quick else
             f"bubblewrap could not run here ({grading_sandbox.probe()}): only `--sandbox none` was timed. ")
          + "A 1-minute load average above the 2 cores means other jobs shared the machine: the times are then pessimistic."
          + ("" if quick else f"\n\nTarget: ≥ {TARGET_PER_MINUTE} submissions per minute with the sandbox for a class of "
             f"{TARGET_CLASS}, on every notebook timed: **" + ("not measured" if met is None else "met" if met else "NOT MET")
             + "**" + ("" if slowest is None else f" (slowest: {slowest['notebook']}, {slowest['submissions_per_minute']} per minute)")
             + "."))
    return md, {"rows": rows, "target_per_minute": TARGET_PER_MINUTE, "target_class": TARGET_CLASS, "met": met,
                "slowest_at_target": slowest}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", default="20,100", help="class sizes to time, comma-separated (default 20,100)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    md, data = measure([int(n) for n in str(args.copies).split(",") if n.strip()], args.jobs)
    command = "python benchmarks/bench_grading.py" + (" " + " ".join(argv) if argv else "")
    write_section(SECTION, md, data, command)


if __name__ == "__main__":
    main(sys.argv[1:])
