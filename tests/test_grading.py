"""`python -m lecture13 grade`: exact points for planted submissions, a reason for every lost point,
and a batch that survives infinite loops, memory bombs, floods, exits, tampering and broken files.

Two grading runs (module-scoped fixtures) cover everything: the adversarial submissions of
notebook 00 (short limits), and for every notebook of solutions/ the correct submission, the
untouched release and one plausible wrong answer per exercise (tests/grading_cases.py).
"""
import csv
import json
import os
import re
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from lecture13 import grading, grading_harness, grading_sandbox, release
from lecture13.__main__ import main

import grading_cases as gc

NB00 = gc.SOLUTIONS / "00_generative_models.ipynb"
FIT, NLL = "ex-fit-bernoulli", "ex-bernoulli-nll"
TIMEOUT, MEMORY_MB, OUTPUT_LIMIT = 15.0, 600, 5000  # 15 s: room for a loaded CI machine

FIT_OK = gc.solution_answers(nbformat.read(NB00, as_version=4))[FIT]
WRONG_FIT = gc.WRONG[FIT][1]
WRONG_NLL = gc.WRONG[NLL][1]


def adversarial_submissions() -> dict[str, str]:
    """student file name → notebook JSON text (or any bytes)."""
    def no_nll_answer(nb):
        nb.cells = [c for c in nb.cells if release.nbgrader(c).get("grade_id") != NLL]
        gc.drop_test_cells_and_reorder(nb)

    def student_edits_test_cell(nb):
        for cell in nb.cells:
            if release.nbgrader(cell).get("grade_id") == FIT + "-test":
                cell.source = "fit_bernoulli_ok = fit_bernoulli  # my own 'test'"

    sub = gc.submission
    return {
        "correct.ipynb": sub(NB00),
        "untouched.ipynb": gc.submission(NB00, correct=False),
        "infinite_loop.ipynb": sub(NB00, {FIT: "def fit_bernoulli(x, alpha=1.0):\n    while True:\n        pass\n"}),
        "memory_bomb.ipynb": sub(NB00, {FIT: "def fit_bernoulli(x, alpha=1.0):\n    hog = []\n    while True:\n"
                                              "        hog.append(torch.ones(2**24))\n"}),
        "output_flood.ipynb": sub(NB00, {
            FIT: FIT_OK.replace("### BEGIN SOLUTION", "print('flood ' * 4_000_000)"),  # 24 MB, then correct
            NLL: "def bernoulli_nll(theta, x):\n    while True:\n        print('x' * 10_000)\n"}),
        "overwrites_checks.ipynb": sub(NB00, {
            FIT: WRONG_FIT + "\ncheck = lambda fn, reference=None, **kw: fn\nassert_passes = lambda *a, **kw: None\n",
            NLL: WRONG_NLL + "\nimport lecture13.exercises as E\nE.compare = lambda *a, **kw: None\n"}),
        "patches_while_tested.ipynb": sub(NB00, {
            FIT: "import os\ndef fit_bernoulli(x, alpha=1.0):\n    os.environ['LECTURE13_GRADING'] = '0'\n"
                 "    return x.mean(dim=0)\n",
            NLL: WRONG_NLL + "\ntorch.allclose = lambda *a, **kw: True\n"}),
        "swaps_code.ipynb": sub(NB00, {
            FIT: WRONG_FIT + "\nfrom lecture13 import exercises\n"
                             "exercises.compare.__code__ = (lambda expected, got, atol, rtol, path='r': None).__code__\n",
            NLL: WRONG_NLL + "\nimport lecture13.grading_harness as h\nh.changed = lambda before: []\n"
                             "import builtins\nbuiltins.print = lambda *a, **k: None\n"}),
        "calls_reference.ipynb": sub(NB00, {
            FIT: "def fit_bernoulli(x, alpha=1.0):\n    return factorized.fit_bernoulli(x, alpha)\n",
            NLL: "from lecture13.factorized import bernoulli_nll\n"}),
        "calls_reference_sneakily.ipynb": sub(NB00, {
            FIT: "fit_bernoulli = eval('lambda x, alpha=1.0: factorized.fit_bernoulli(x, alpha)')\n",
            NLL: "import functools\nbernoulli_nll = functools.partial(factorized.bernoulli_nll)\n"}),
        "corrupt.ipynb": '{"cells": [ {"cell_type": "code", "sou',
        "00_generative_models_corrupt.ipynb": "\x00\x01 not json at all",
        "cells_deleted.ipynb": sub(NB00, edit=no_nll_answer),
        "edits_test_cell.ipynb": sub(NB00, {FIT: WRONG_FIT}, edit=student_edits_test_cell),
        "exits.ipynb": sub(NB00, {FIT: "import sys\nsys.exit(0)\n" + FIT_OK,
                                  NLL: "import os\ndef bernoulli_nll(theta, x):\n    os._exit(0)\n"}),
        "raises_at_import_and_magics.ipynb": sub(NB00, {
            FIT: "import a_module_that_does_not_exist\n" + FIT_OK,
            NLL: "%load_ext autoreload\n!ls -l\n" + gc.solution_answers(nbformat.read(NB00, as_version=4))[NLL]}),
        "kills_the_grader.ipynb": sub(NB00, {FIT: "import os, signal, time\nos.kill(os.getppid(), signal.SIGKILL)\n"
                                                   "time.sleep(5)  # its sandbox (or itself) dies meanwhile\n" + FIT_OK}),
        "writes_files.ipynb": sub(NB00, {FIT: "import os\nprint('CWD=' + os.getcwd())\n"
                                              "open('scratch.txt', 'w').write('hello')\n" + FIT_OK}),
        "uses_an_earlier_helper.ipynb": sub(NB00, {
            FIT: FIT_OK + "\ndef my_log(t):\n    return torch.log(t)\nwhile True:\n    pass\n",
            NLL: "def bernoulli_nll(theta, x):\n    log_p = x * my_log(theta) + (1 - x) * torch.log1p(-theta)\n"
                 "    return -log_p.flatten(1).sum(dim=1)\n"}),
        "other_course.ipynb": nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])),
    }


@pytest.fixture(scope="module")
def two(tmp_path_factory) -> Path:
    """solutions/ as the tests of the grader's machinery count it: notebook 00 with only its first two
    exercises (fit_bernoulli, bernoulli_nll, 2 points each), so that their expected points and CSV columns
    stay those of two exercises however many notebook 00 has (every exercise is graded in course_run)."""
    folder = tmp_path_factory.mktemp("two-exercises")
    nb = nbformat.read(NB00, as_version=4)
    keep = {FIT, NLL, FIT + "-test", NLL + "-test"}
    nb.cells = [c for c in nb.cells if release.nbgrader(c).get("grade_id", FIT) in keep]
    nbformat.write(nb, folder / NB00.name)
    return folder


@pytest.fixture(scope="module")
def adversarial(tmp_path_factory, two):
    folder = tmp_path_factory.mktemp("submissions")
    for name, text in adversarial_submissions().items():
        gc.write(folder, name, text)
    out, feedback = folder.parent / "grades.csv", folder.parent / "feedback"
    grades = grading.grade([folder], two, out=out, feedback=feedback, jobs=2, progress=False,
                           limits=grading.Limits(timeout=TIMEOUT, memory_mb=MEMORY_MB, output_limit=OUTPUT_LIMIT))
    return {g.student: g for g in grades}, out, feedback


def points(grade) -> dict:
    return {r.grade_id: r.points for r in grade.results}


def reason(grade, grade_id) -> str:
    return next(r.reason for r in grade.results if r.grade_id == grade_id)


def test_correct_submission_gets_full_marks(adversarial):
    grades, _, _ = adversarial
    assert points(grades["correct.ipynb"]) == {FIT: 2, NLL: 2}
    assert grades["correct.ipynb"].reasons() == ""


def test_untouched_release_gets_zero_with_not_implemented(adversarial):
    g = adversarial[0]["untouched.ipynb"]
    assert points(g) == {FIT: 0, NLL: 0}
    assert all(r.reason == "not implemented (NotImplementedError)" for r in g.results)


def test_infinite_loop_times_out_and_the_rest_is_graded(adversarial):
    g = adversarial[0]["infinite_loop.ipynb"]
    assert points(g) == {FIT: 0, NLL: 2}
    assert reason(g, FIT) == f"timed out after {TIMEOUT:g} s"


def test_memory_bomb_is_stopped(adversarial):
    g = adversarial[0]["memory_bomb.ipynb"]
    assert points(g) == {FIT: 0, NLL: 2}
    assert reason(g, FIT) == f"memory limit exceeded ({MEMORY_MB} MB)"


def test_output_flood_is_truncated_and_an_endless_one_times_out(adversarial):
    g = adversarial[0]["output_flood.ipynb"]
    assert points(g) == {FIT: 2, NLL: 0}
    flood = next(r for r in g.results if r.grade_id == FIT)
    assert OUTPUT_LIMIT <= len(flood.output) < OUTPUT_LIMIT + 200
    printed = int(re.search(r"output truncated: ([\d,]+) bytes", flood.output).group(1).replace(",", ""))
    assert printed > 6 * 24_000_000  # printed at each of the 6 calls (3 visible, 3 hidden cases)
    assert reason(g, NLL) == f"timed out after {TIMEOUT:g} s"


# The checks run in another process than the answer: what an answer overwrites, patches or swaps
# is its own copy. The wrong answers below fail on their merits, with the real failing case.
WRONG_FIT_REASON = "check 2 (alpha=1: a pixel never on gets 1/(N+2), not 0) failed"
WRONG_NLL_REASON = "check 1 (one image) failed"


def test_overwriting_the_checks_gains_nothing(adversarial):
    g = adversarial[0]["overwrites_checks.ipynb"]
    assert points(g) == {FIT: 0, NLL: 0}
    assert reason(g, FIT).startswith(WRONG_FIT_REASON) and reason(g, NLL).startswith(WRONG_NLL_REASON)


def test_patching_while_being_tested_gains_nothing(adversarial):
    g = adversarial[0]["patches_while_tested.ipynb"]
    assert points(g) == {FIT: 0, NLL: 0}
    assert reason(g, FIT).startswith(WRONG_FIT_REASON) and reason(g, NLL).startswith(WRONG_NLL_REASON)


def test_replacing_code_in_place_or_the_grading_module_gains_nothing(adversarial):
    g = adversarial[0]["swaps_code.ipynb"]
    assert points(g) == {FIT: 0, NLL: 0}
    assert reason(g, FIT).startswith(WRONG_FIT_REASON) and reason(g, NLL).startswith(WRONG_NLL_REASON)


def test_calling_the_reference_earns_nothing(adversarial):
    for student in ("calls_reference.ipynb", "calls_reference_sneakily.ipynb"):
        g = adversarial[0][student]
        assert points(g) == {FIT: 0, NLL: 0}, student
        assert reason(g, FIT) == "calls the reference implementation lecture13.factorized.fit_bernoulli"
        assert reason(g, NLL) == "calls the reference implementation lecture13.factorized.bernoulli_nll"


def test_corrupt_files_get_a_row_with_the_reason(adversarial):
    grades, out, _ = adversarial
    unknown = grades["corrupt.ipynb"]
    assert unknown.notebook == "" and unknown.total == 0 and unknown.reasons().startswith("not valid notebook JSON")
    named = grades["00_generative_models_corrupt.ipynb"]  # recognised by its file name: its exercises score 0
    assert named.notebook == NB00.name and points(named) == {FIT: 0, NLL: 0}
    assert reason(named, FIT).startswith("not valid notebook JSON")
    other = grades["other_course.ipynb"]
    assert other.notebook == "" and other.reasons().startswith("not a notebook of this course")


def test_deleted_cells_cost_only_the_missing_answer(adversarial):
    g = adversarial[0]["cells_deleted.ipynb"]  # also: no test cells at all, cells reversed
    assert points(g) == {FIT: 2, NLL: 0}
    assert reason(g, NLL) == "answer cell missing"


def test_the_students_own_test_cells_are_ignored(adversarial):
    g = adversarial[0]["edits_test_cell.ipynb"]
    assert points(g) == {FIT: 0, NLL: 2}
    assert "check 2 (alpha=1" in reason(g, FIT)


def test_exits_and_import_errors_cost_only_their_exercise(adversarial):
    g = adversarial[0]["exits.ipynb"]
    assert points(g) == {FIT: 0, NLL: 0}
    assert reason(g, FIT) == "the answer called sys.exit(0)"
    assert reason(g, NLL).startswith("the answer's process ended before the tests finished (exit status 0")
    g = adversarial[0]["raises_at_import_and_magics.ipynb"]
    assert points(g) == {FIT: 0, NLL: 2}  # IPython magics and shell lines are skipped
    assert reason(g, FIT) == "ModuleNotFoundError: No module named 'a_module_that_does_not_exist'"


def test_a_later_answer_may_use_a_function_defined_in_an_earlier_answer(adversarial):
    g = adversarial[0]["uses_an_earlier_helper.ipynb"]  # only the earlier cell's definitions run, not its loop
    assert points(g) == {FIT: 0, NLL: 2}
    assert reason(g, FIT) == f"timed out after {TIMEOUT:g} s"


def test_killing_the_grader_costs_that_exercise_only(adversarial):
    g = adversarial[0]["kills_the_grader.ipynb"]
    assert points(g) == {FIT: 0, NLL: 2}
    assert reason(g, FIT).startswith("the answer's process ended before the tests finished")


def test_temporary_working_directory_is_removed(adversarial):
    g = adversarial[0]["writes_files.ipynb"]
    assert points(g) == {FIT: 2, NLL: 2}
    output = next(r.output for r in g.results if r.grade_id == FIT)
    cwd = Path(output.split("CWD=")[1].split()[0])  # inside the sandbox: /lecture13-sandbox/work/exercise-N
    assert cwd.name.startswith(("lecture13-grade-", "exercise-")) and not cwd.exists()
    assert not list(Path(tempfile.gettempdir()).glob("lecture13-worker-*/lecture13-sandbox-*/work/exercise-*"))


def test_csv_has_a_row_per_student_and_a_reason_per_lost_point(adversarial):
    grades, out, _ = adversarial
    rows = list(csv.DictReader(out.open()))
    assert [r["student"] for r in rows] == sorted(adversarial_submissions())
    assert list(rows[0]) == ["student", "notebook", FIT, NLL, "total", "max", "reasons", "copies", "sandbox"]
    by_student = {r["student"]: r for r in rows}
    assert by_student["correct.ipynb"] | {"student": "", "copies": "", "sandbox": ""} == {
        "student": "", "notebook": NB00.name, FIT: "2", NLL: "2", "total": "4", "max": "4", "reasons": "",
        "copies": "", "sandbox": ""}
    assert by_student["correct.ipynb"]["copies"].startswith(f"{FIT}: same as the published solution")
    assert {r["sandbox"] for r in rows} == {gc.sandbox_column()}
    for row in rows:
        lost = [gid for gid in (FIT, NLL) if row[gid] not in ("2", "")]
        if row["notebook"]:
            assert float(row["total"]) == sum(float(row[g]) for g in (FIT, NLL))
        for gid in lost:  # every lost point has its reason, naming the exercise (or the file's problem)
            assert f"{gid}: -2 " in row["reasons"] or row["reasons"].startswith("not valid notebook JSON"), row
        if not row["notebook"]:
            assert row["reasons"] and row["total"] == "0"
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_feedback_report_per_student(adversarial):
    _, _, feedback = adversarial
    assert len(list(feedback.glob("*.md"))) == len(adversarial_submissions())
    text = (feedback / "infinite_loop.md").read_text()
    assert "**2 / 4 points**" in text and f"timed out after {TIMEOUT:g} s" in text
    assert "passes (visible and hidden tests)" in text
    detail = (feedback / "edits_test_cell.md").read_text()
    assert "expected" in detail and "got" in detail  # the failing case with expected vs. got


# ----------------------------------------------------------------------------- every exercise of the course
def test_every_exercise_has_a_planted_wrong_answer():
    missing = [gid for path in gc.solution_notebooks() for gid in gc.exercise_ids(nbformat.read(path, as_version=4))
               if gid not in gc.WRONG]
    assert not missing, f"add a plausible wrong answer for {missing} to tests/grading_cases.py WRONG"


@pytest.fixture(scope="module")
def course_run(tmp_path_factory):
    """One grading run of the whole course: per notebook, two submissions that hold the planted wrong
    answer (tests/grading_cases.py WRONG) of every other exercise — the even-numbered ones in one, the
    odd-numbered in the other — and the solution's answer elsewhere. So every wrong answer must score 0,
    every exercise must score full marks once with its right answer (next to wrong neighbours), and
    nothing leaks from one exercise to the next. (Each notebook's solution, untouched release and other
    wrong answers are graded by its own exercise tests: tests/test_*_exercises.py, grading_cases.grade_planted.)"""
    folder = tmp_path_factory.mktemp("course")
    expected = {}
    for path in gc.solution_notebooks():
        ids = gc.exercise_ids(nbformat.read(path, as_version=4))
        full = {gid: _points(path, gid) for gid in ids}
        stem = path.stem
        for parity in (0, 1):
            wrong = [gid for i, gid in enumerate(ids) if i % 2 == parity and gid in gc.WRONG]
            if wrong:
                gc.write(folder, f"{stem}/wrong-{parity}.ipynb", gc.submission(path, {g: gc.WRONG[g][1] for g in wrong}))
                expected[f"{stem}/wrong-{parity}.ipynb"] = full | dict.fromkeys(wrong, 0)
    grades = grading.grade([folder], gc.SOLUTIONS, jobs=2, progress=False)
    return {g.student: g for g in grades}, expected


def _points(path, grade_id):
    nb = nbformat.read(path, as_version=4)
    return next(float(release.nbgrader(c)["points"]) for c in nb.cells if release.nbgrader(c).get("grade_id") == grade_id + "-test")


def test_each_wrong_answer_scores_zero_there_only_and_its_neighbours_full_marks(course_run):
    grades, expected = course_run
    assert set(grades) == set(expected)
    wrong_somewhere = {gid for student, want in expected.items() if "wrong" in student for gid, v in want.items() if v == 0}
    right_somewhere = {gid for student, want in expected.items() if "wrong" in student for gid, v in want.items() if v > 0}
    assert wrong_somewhere == set(gc.WRONG) and right_somewhere >= set(gc.WRONG) - {
        gid for path in gc.solution_notebooks() if len(ids := gc.exercise_ids(nbformat.read(path, as_version=4))) == 1
        for gid in ids}   # each exercise is graded wrong once and (unless alone in its notebook) right once
    for student, want in expected.items():
        g = grades[student]
        assert points(g) == want, (student, g.reasons())
        for r in g.results:
            if r.points == 0:
                assert r.reason and not r.reason.startswith(("tampered", "calls the reference", "grader error")), (student, r.reason)


# ----------------------------------------------------------------------------- pieces, without child processes
def test_magics_are_dropped_only_when_the_cell_does_not_parse():
    assert grading_harness.without_magics("%time x = 1\n  !ls\ny = 2") == "pass\n  pass\ny = 2"
    code = grading_harness.compile_cell("x = (7\n     % 4)\n", "<t>")  # a modulo line is Python: kept
    namespace = {}
    exec(code, namespace)
    assert namespace["x"] == 3


def test_test_cell_names_finds_the_student_function_and_the_reference():
    students, refs, names = grading_harness.test_cell_names(
        "ok = check(fit, reference=factorized.fit_bernoulli, cases=[])\nassert_passes(fit, likelihood.bits_per_dim)\n")
    assert students == ["fit"] and refs == ["factorized.fit_bernoulli", "likelihood.bits_per_dim"]
    assert {"check", "assert_passes", "factorized", "likelihood"} <= names


def test_hidden_test_lines_and_course_loading(two):
    course = grading.load_course(two)
    nb00 = next(nb for nb in course if nb.name == NB00.name)
    assert [e.grade_id for e in nb00.exercises] == [FIT, NLL] and nb00.max_points == 4
    fit = nb00.exercises[0]
    (start, end), = fit.hidden_lines
    lines = fit.test.split("\n")
    assert lines[start - 1] == release.BEGIN_HIDDEN and lines[end - 1] == release.END_HIDDEN


def test_a_submission_is_matched_by_its_grade_ids_not_its_name(tmp_path):
    course = grading.load_course(gc.SOLUTIONS)
    path = gc.write(tmp_path, "homework.ipynb", gc.submission(NB00))
    notebook, answers, problem = grading.read_submission(path, course)
    assert notebook.name == NB00.name and set(answers) >= {FIT, NLL} and problem == ""
    path = gc.write(tmp_path, "cells.ipynb", gc.json_without_nbformat(gc.submission(NB00)))
    assert grading.read_submission(path, course) == (None, {}, "not a Jupyter notebook (no list of cells)")


def test_csv_is_written_atomically(tmp_path, monkeypatch):
    out = tmp_path / "grades.csv"
    grading.write_atomically(out, "student,total\nalice,4\n")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        grading.write_atomically(out, "student,total\nal")
    assert out.read_text() == "student,total\nalice,4\n" and [p.name for p in tmp_path.iterdir()] == ["grades.csv"]


def test_grade_command_is_registered_and_handles_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["grade", "--help"])
    help_text = capsys.readouterr().out
    assert exit_.value.code == 0 and "--memory-mb" in help_text and "{auto,bwrap,none}" in help_text
    assert main(["grade", str(tmp_path / "nothing-here")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    gc.write(tmp_path / "in", "broken.ipynb", "not json")
    gc.write(tmp_path / "in", "notes.ipynb", json.dumps(json.loads(nbformat.writes(nbformat.v4.new_notebook()))))
    out = tmp_path / "g.csv"
    assert main(["grade", str(tmp_path / "in"), "--out", str(out), "--no-progress"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["student"], r["total"]) for r in rows] == [("broken.ipynb", "0"), ("notes.ipynb", "0")]
    assert rows[0]["reasons"].startswith("not valid notebook JSON")
    assert rows[1]["reasons"].startswith("not a notebook of this course")


def test_an_interrupted_run_leaves_a_valid_csv_of_what_was_graded(tmp_path, monkeypatch, two):
    for name in ("a.ipynb", "b.ipynb", "c.ipynb"):
        gc.write(tmp_path / "in", name, gc.submission(NB00))
    calls, out = [], tmp_path / "grades.csv"

    def fake_grade_submission(submission, course, slot, limits):
        calls.append(submission.student)
        if len(calls) == 2:
            for _ in range(500):  # until a's row is on disk
                if out.exists():
                    break
                time.sleep(0.01)
            raise KeyboardInterrupt
        return grading.Grade(submission.student, NB00.name,
                             [grading.ExerciseResult(FIT, 2, 2), grading.ExerciseResult(NLL, 0, 2, "x")])

    monkeypatch.setattr(grading, "grade_submission", fake_grade_submission)
    with pytest.raises(KeyboardInterrupt):
        grading.grade([tmp_path / "in"], two, out=out, jobs=1, progress=False)
    assert calls[:2] == ["a.ipynb", "b.ipynb"]
    sandbox = gc.sandbox_column()
    assert out.read_text() == (f"student,notebook,{FIT},{NLL},total,max,reasons,copies,sandbox\n"
                               f"a.ipynb,{NB00.name},2,0,2,4,{NLL}: -2 x,,{sandbox}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grades.csv", "in"]


def test_only_definitions_of_earlier_answers_are_kept():
    statements = grading_harness.definitions_only(
        "import math\nx = 1 / 0\ndef f(t):\n    return t\nwhile True:\n    pass\n%time f(1)\nclass C:\n    pass\n", "<answer e>")
    namespace = {}
    for statement in statements:
        exec(statement, namespace)
    assert {"math", "f", "C"} <= set(namespace) and "x" not in namespace
    assert grading_harness.definitions_only("def broken(:\n", "<answer e>") == []


def test_why_an_exercise_is_not_run():
    exercise = grading.Exercise(FIT, 2.0, "pass", [])
    assert grading.skip_reason(exercise, {FIT: "x = 1"}, "", 5.0, 12) == ""
    assert grading.skip_reason(exercise, {}, "", 5.0, 12) == "answer cell missing"
    assert grading.skip_reason(exercise, {FIT: "x = 1"}, "", 0.0, 12) == "not run: the submission's time limit (12 s) was used up"
    assert grading.skip_reason(exercise, {FIT: "x = 1"}, "not valid notebook JSON (…)", 5.0, 12) == "not valid notebook JSON (…)"


def test_a_worker_that_dies_is_replaced_and_its_submission_graded_again(tmp_path, two):
    """Without the sandbox an answer can reach the trusted worker (its host's parent): the first
    time it kills it; the submission is graded once more, by a fresh worker, and scores."""
    marker = tmp_path / "killed-once"
    killer = (f"import os, signal\nif not os.path.exists({str(marker)!r}):\n    open({str(marker)!r}, 'w').close()\n"
              "    host = os.getppid()\n    worker = int(open(f'/proc/{host}/stat').read().rsplit(')', 1)[1].split()[1])\n"
              "    os.kill(worker, signal.SIGKILL)\n") + FIT_OK
    gc.write(tmp_path / "in", "kills_the_worker.ipynb", gc.submission(NB00, {FIT: killer}))
    grades = grading.grade([tmp_path / "in"], two, jobs=1, progress=False, sandbox="none",
                           limits=grading.Limits(timeout=TIMEOUT, memory_mb=MEMORY_MB))
    assert marker.exists() and points(grades[0]) == {FIT: 2, NLL: 2}, grades[0].reasons()
    assert grades[0].sandbox.startswith("none (--sandbox none)")
