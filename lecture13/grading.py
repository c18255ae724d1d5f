"""Grade a folder of student notebooks: ``python -m lecture13 grade SUBMISSIONS... --out grades.csv``.

What is graded, per exercise (an answer cell with nbgrader ``grade_id`` G and the test cell
``G-test`` worth ``points``):

    the imports cell of solutions/NB.ipynb        (the course's, trusted)
  + the def/class/import statements of the student's earlier answer cells (their helpers)
  + the student's answer cell G                  (found by grade_id; missing → 0)
  + the test cell G-test of solutions/NB.ipynb   (the instructor's, hidden tests included)

run with ``LECTURE13_GRADING=1``, so a failing :func:`lecture13.exercises.check` raises instead of
falling back to the reference. The student's own test cells are never run. An exercise scores
all its points when that program runs to the end, else zero with a one-line reason.

Student code never runs in this process, nor in any process that computes a verdict. For each
parallel job a trusted *worker* (:mod:`lecture13.grading_harness`) runs the instructor's test cells
in processes forked from it, and an *answer host* (:mod:`lecture13.grading_answer`; inside the
bubblewrap sandbox of :mod:`lecture13.grading_sandbox` where it works, ``--sandbox``) runs each
answer in a process of its own; the test cell calls the answer through the narrow channel of
:mod:`lecture13.grading_channel`, where only plain data crosses. Every file found gets a row, with
a reason when it cannot be graded; the CSV is rewritten atomically after every submission, so an
interrupted run leaves a valid file with what was graded; reasons and feedback are cleaned of
control characters and escaped (:func:`clean_text`, :func:`markdown_inline`); the copy report
(:mod:`lecture13.copies`) flags answers that match the published solution or another submission.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from . import copies, grading_sandbox
from .release import BEGIN_HIDDEN, END_HIDDEN, is_answer_cell, is_test_cell, nbgrader

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOLUTIONS = REPO_ROOT / "solutions"
DEFAULT_TIMEOUT, DEFAULT_MEMORY_MB, DEFAULT_OUTPUT_LIMIT = 60.0, 2048, 20_000
WORKER_START_TIMEOUT = 300.0  # the imports cell: torch, matplotlib, the data (slow on a busy laptop)
WORKER_COMMAND = "import sys; from lecture13.grading_harness import serve; serve(int(sys.argv[1]))"


class GradingError(ValueError):
    """The grader cannot start (no solutions, no submissions): says what to do."""


class WorkerDied(Exception):
    """The trusted worker died while it graded a submission: that submission is graded again."""


# ----------------------------------------------------------------------------- the course
@dataclass
class Exercise:
    grade_id: str
    points: float
    test: str
    hidden_lines: list[tuple[int, int]]
    solution: str = ""  # the published answer (for the copy report)


@dataclass
class CourseNotebook:
    name: str
    imports: str
    exercises: list[Exercise]

    @property
    def max_points(self) -> float:
        return sum(e.points for e in self.exercises)


def hidden_line_ranges(source: str) -> list[tuple[int, int]]:
    """1-based line ranges of the hidden tests in a test cell."""
    ranges, start = [], None
    for number, line in enumerate(source.split("\n"), 1):
        if line.strip() == BEGIN_HIDDEN:
            start = number
        elif line.strip() == END_HIDDEN and start is not None:
            ranges.append((start, number))
            start = None
    return ranges


def cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def load_course(solutions: Path | str = DEFAULT_SOLUTIONS) -> list[CourseNotebook]:
    """Every notebook of ``solutions/`` that has exercises: its imports cell and its exercises."""
    solutions = Path(solutions)
    paths = sorted(solutions.glob("*.ipynb"))
    if not paths:
        raise GradingError(f"no notebooks in {solutions}/: pass the instructor's source folder with --solutions")
    course = []
    for path in paths:
        nb = json.loads(path.read_text())
        cells = nb["cells"]
        imports = next((cell_source(c) for c in cells if c.get("id") == "imports"), None)
        tests = {nbgrader(c)["grade_id"]: c for c in cells if is_test_cell(c)}
        published = {nbgrader(c)["grade_id"]: cell_source(c) for c in cells if is_answer_cell(c)}
        exercises = []
        for cell in cells:
            if cell.get("cell_type") == "code" and is_answer_cell(cell) and not nbgrader(cell).get("grade"):
                grade_id = nbgrader(cell)["grade_id"]
                test = tests.get(grade_id + "-test")
                if test is None:
                    raise GradingError(f"{path}: answer cell {grade_id} has no test cell {grade_id}-test")
                source = cell_source(test)
                exercises.append(Exercise(grade_id, float(nbgrader(test).get("points", 0)), source,
                                          hidden_line_ranges(source), published.get(grade_id, "")))
        if exercises:
            if imports is None:
                raise GradingError(f"{path}: no cell with id 'imports' (see CONTRIBUTING.md)")
            course.append(CourseNotebook(path.name, imports, exercises))
    if not course:
        raise GradingError(f"no exercises (nbgrader answer cells) in {solutions}/*.ipynb")
    return course


# ----------------------------------------------------------------------------- submissions
@dataclass
class Submission:
    student: str  # the file name (relative to the folder it was found in)
    path: Path
    root: Path | None = None  # the folder it was found in (symbolic links must stay inside)


MAX_NOTEBOOK_BYTES = 64 * 2**20  # a bigger file is not read (its row says so)
MAX_JSON_DEPTH = 200  # nesting a notebook never needs; deeper JSON is refused before it is parsed


def find_submissions(paths: list[Path | str]) -> list[Submission]:
    """Files as given; folders searched recursively for *.ipynb (checkpoints skipped). Symbolic
    links are not followed into other folders; what cannot be graded still gets its row
    (:func:`read_submission` says why)."""
    found: list[Submission] = []
    for given in map(Path, paths):
        if given.is_dir():
            for folder, dirs, files in os.walk(given, followlinks=False):
                dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints")
                for name in sorted(files):
                    if name.endswith(".ipynb"):
                        path = Path(folder) / name
                        found.append(Submission(str(path.relative_to(given)), path, root=given))
        elif given.exists() or given.is_symlink():
            found.append(Submission(str(given) if given.parent != Path(".") else given.name, given))
        else:
            raise GradingError(f"{given}: no such file or folder")
    if not found:
        raise GradingError(f"no .ipynb files in {', '.join(map(str, paths))}")
    return found


def read_bytes_safely(path: Path, root: Path | None) -> tuple[bytes | None, str]:
    """(the file's bytes, "") or (None, why not): only regular files, never blocking on a FIFO or
    a device, no symbolic link that leaves the submissions folder, no file above the size limit."""
    import stat

    try:
        if path.is_symlink():
            target = path.resolve()
            if root is None or not target.is_relative_to(Path(root).resolve()):
                return None, "a symbolic link that leaves the submissions folder (refused)"
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as err:
        return None, f"cannot read the file ({err.strerror})"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, "not a regular file (a FIFO, a device or a socket: refused)"
        if info.st_size > MAX_NOTEBOOK_BYTES:
            return None, f"the file is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB (refused)"
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > MAX_NOTEBOOK_BYTES:
                return None, f"the file is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB (refused)"
            chunks.append(chunk)
        return b"".join(chunks), ""
    except OSError as err:
        return None, f"cannot read the file ({err.strerror})"
    finally:
        os.close(fd)


def json_depth(text: str, limit: int) -> bool:
    """Whether the JSON text nests deeper than ``limit`` (brackets outside strings), without
    parsing it (a parser would recurse that deep)."""
    depth, in_string, escaped = 0, False, False
    for match in re.finditer(r'[\[\]{}"\\]', text):
        ch = match.group()
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if escaped:
            escaped = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def cell_text(cell: dict) -> str | None:
    """A cell's source as text: a string or a list of strings; None for anything else."""
    source = cell.get("source", "")
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        return "".join(source)
    return None


def cell_grade_id(cell) -> str | None:
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    nb_meta = meta.get("nbgrader") if isinstance(meta, dict) else None
    grade_id = nb_meta.get("grade_id") if isinstance(nb_meta, dict) else None
    return grade_id if isinstance(grade_id, str) and 0 < len(grade_id) <= 200 else None


def answer_cells(cells: list) -> tuple[dict[str, str], dict[str, str]]:
    """({grade_id: answer source}, {grade_id: problem}). When a student copied an answer cell,
    the copy nearest *before* the test cell ``G-test`` counts (the last one when there is no
    test cell); a cell whose source is not text is a problem of that exercise, not of the file."""
    tests = {cell_grade_id(c): i for i, c in enumerate(cells) if isinstance(c, dict) and c.get("cell_type") == "code"}
    answers: dict[str, str] = {}
    problems: dict[str, str] = {}
    chosen: dict[str, int] = {}
    for index, cell in enumerate(cells):
        grade_id = cell_grade_id(cell)
        if grade_id is None or grade_id.endswith("-test") or cell.get("cell_type") != "code":
            continue
        limit = tests.get(grade_id + "-test")
        if limit is not None and index > limit and grade_id in chosen:
            continue  # a copy after the test cell: the one before it counts
        text = cell_text(cell)
        chosen[grade_id] = index
        if text is None:
            answers.pop(grade_id, None)
            problems[grade_id] = "the answer cell's source is not text (refused)"
        else:
            problems.pop(grade_id, None)
            answers[grade_id] = text
    return answers, problems


def read_submission(path: Path, course: list[CourseNotebook], root: Path | None = None
                    ) -> tuple[CourseNotebook | None, dict[str, str], str]:
    """(the course notebook it belongs to, {grade_id: answer source}, a problem with the whole file)."""
    by_name = next((nb for nb in course if Path(nb.name).stem in path.name), None)
    data, problem = read_bytes_safely(path, root)
    if data is None:
        return by_name, {}, problem
    try:
        text = data.decode("utf-8")
        if json_depth(text, MAX_JSON_DEPTH):
            return by_name, {}, f"not valid notebook JSON (nested deeper than {MAX_JSON_DEPTH} levels)"
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        return by_name, {}, f"not valid notebook JSON ({str(err)[:80]})"
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list):
        return by_name, {}, "not a Jupyter notebook (no list of cells)"
    cells = [c for c in cells if isinstance(c, dict)]
    answers, problems = answer_cells(cells)
    ids = set(answers) | set(problems)
    matches = [(len(ids & {e.grade_id for e in nb.exercises}), nb) for nb in course]
    count, best = max(matches, key=lambda m: m[0])
    notebook = best if count else by_name
    if notebook is None:
        return None, {}, "not a notebook of this course (none of its cells has an exercise's nbgrader grade_id)"
    answers.update({g: CellProblem(p) for g, p in problems.items()})
    return notebook, answers, ""


class CellProblem(str):
    """An answer that cannot be run, with the reason (a str, so the answers stay a dict of str)."""


# ----------------------------------------------------------------------------- results
@dataclass
class ExerciseResult:
    grade_id: str
    points: float
    max_points: float
    reason: str = ""
    detail: str = ""
    output: str = ""
    seconds: float = 0.0


@dataclass
class Grade:
    student: str
    notebook: str = ""
    results: list[ExerciseResult] = field(default_factory=list)
    problem: str = ""
    seconds: float = 0.0
    copies: str = ""  # the copy report: answers that match the published solution or another submission
    fingerprints: dict = field(default_factory=dict)  # grade_id → normalised answer (see copies.py)
    sandbox: str = ""

    @property
    def total(self) -> float:
        return sum(r.points for r in self.results)

    @property
    def max_points(self) -> float | None:
        return sum(r.max_points for r in self.results) if self.notebook else None

    def reasons(self) -> str:
        """One line: ``grade_id: -points reason`` for each exercise that lost points, joined by `` | ``
        (a problem with the whole file, e.g. not valid JSON, is said once)."""
        if self.problem:
            return one_line(self.problem)
        return " | ".join(f"{r.grade_id}: -{_num(r.max_points - r.points)} {r.reason}"
                          for r in self.results if r.points < r.max_points)


def _num(x: float | None) -> str:
    return "" if x is None else (f"{x:g}")


# Control characters (but newline and tab), ANSI escape sequences and the Unicode format characters
# that reorder or hide text: none of them may reach the CSV or the feedback.
_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-_])")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>()#+\-!|~=^$])")


def clean_text(text: str) -> str:
    """Text as the student's code printed or raised it, minus what could change how the CSV or
    the feedback is read (control characters, terminal escapes, bidirectional overrides)."""
    return _CONTROL.sub("", _ANSI.sub("", str(text).replace("\r\n", "\n").replace("\r", "\n")))


def one_line(text: str, limit: int = 240) -> str:
    text = re.sub(r"\s+", " ", clean_text(text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown_inline(text: str) -> str:
    """One line of text that reads as itself in Markdown: no heading, table cell, link, fence or
    emphasis can be forged by it."""
    return _MARKDOWN.sub(r"\\\1", one_line(text, 10_000))


def markdown_block(text: str, limit: int) -> list[str]:
    """A fenced block that its content cannot close: the fence is longer than any run of
    backticks (or tildes) inside."""
    body = clean_text(text).strip()[:limit]
    longest = max([len(m) for m in re.findall(r"`+|~+", body)] + [2])
    fence = "`" * (longest + 1)
    return [fence + "text", body, fence]


# ----------------------------------------------------------------------------- workers
def worker_env() -> dict:
    env = dict(os.environ)
    env.update(LECTURE13_GRADING="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg",
               PYTHONDONTWRITEBYTECODE="1", TQDM_DISABLE="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]))
    return env


class Worker:
    """A fresh interpreter that has loaded what the notebooks import and grades exercises on request."""

    def __init__(self, course: list[CourseNotebook], sandbox: str = "none", start_timeout: float = WORKER_START_TIMEOUT):
        self.home = tempfile.mkdtemp(prefix="lecture13-worker-")
        self.log = tempfile.TemporaryFile()
        reader, writer = os.pipe()
        self.reader, self.buffer = reader, b""
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER_COMMAND, str(writer)], stdin=subprocess.PIPE,
                                     stdout=self.log, stderr=self.log, pass_fds=(writer,), cwd=self.home,
                                     env=worker_env(), start_new_session=True)
        os.close(writer)
        self.error = ""
        self._send({"imports": [nb.imports for nb in course], "sandbox": sandbox})
        ready = self._receive(start_timeout)
        if ready is None:
            self.error = f"the grading worker did not start: {self._log_tail()}"
        elif ready.get("host_error"):
            self.error = ready["host_error"]

    def _log_tail(self, limit: int = 400) -> str:
        self.log.seek(0)
        return one_line(self.log.read().decode(errors="replace")[-limit:]) or "no output"

    def _send(self, message: dict) -> None:
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def _receive(self, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.reader], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self.reader, 65536)
                if not chunk:
                    return None
                self.buffer += chunk
            elif self.proc.poll() is not None and not select.select([self.reader], [], [], 0)[0]:
                return None
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    @property
    def alive(self) -> bool:
        return not self.error and self.proc.poll() is None

    def run(self, job: dict) -> dict:
        self._send(job)
        verdict = self._receive(job["timeout"] + 60 + WORKER_START_TIMEOUT)  # a backstop: the worker enforces the limit
        if verdict is None or verdict.get("id") != job["id"]:
            self.error = "the grading worker stopped"
            return {"passed": False, "worker_died": True, "reason": "the grading worker died while this answer ran",
                    "detail": self._log_tail()}
        return verdict

    def close(self) -> None:
        """Ask the worker to stop (it then stops its answer host), then make sure; its folder, where
        the host's sandbox folders are, goes in any case."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        for closing in (self.proc.stdin.close, self.log.close, lambda: os.close(self.reader)):
            try:
                closing()
            except OSError:
                pass
        shutil.rmtree(self.home, ignore_errors=True)


class WorkerSlot:
    """The worker of one parallel job (preloading what ``course``'s notebooks import), started when
    first needed and again if it dies."""

    def __init__(self, course: list[CourseNotebook], sandbox: str = "none"):
        self.course, self.sandbox, self.worker, self.closed = course, sandbox, None, False

    def get(self) -> Worker:
        if self.closed:
            raise GradingError("grading was stopped")
        if self.worker is not None and not self.worker.alive:
            self.worker.close()
            self.worker = None
        if self.worker is None:
            self.worker = Worker(self.course, self.sandbox)
        return self.worker

    def close(self) -> None:
        self.closed = True
        if self.worker is not None:
            self.worker.close()
            self.worker = None


# ----------------------------------------------------------------------------- grading
@dataclass
class Limits:
    timeout: float = DEFAULT_TIMEOUT  # seconds per exercise
    memory_mb: int = DEFAULT_MEMORY_MB
    submission_timeout: float | None = None  # default: exercises × timeout
    output_limit: int = DEFAULT_OUTPUT_LIMIT  # characters of output kept per exercise


_job_ids = itertools.count(1)
_job_lock = threading.Lock()


def skip_reason(exercise: Exercise, answers: dict[str, str], problem: str, seconds_left: float, budget: float) -> str:
    """Why an exercise scores zero without being run ("" when it is to be run)."""
    if problem:
        return problem
    if exercise.grade_id not in answers:
        return "answer cell missing"
    if isinstance(answers[exercise.grade_id], CellProblem):
        return str(answers[exercise.grade_id])
    if seconds_left <= 0:
        return f"not run: the submission's time limit ({budget:g} s) was used up"
    return ""


def exercise_job(notebook: CourseNotebook, index: int, answers: dict[str, str], workdir: str, timeout: float,
                 limits: Limits) -> dict:
    """What the worker needs to grade exercise ``index`` of a submission (see grading_harness)."""
    exercise = notebook.exercises[index]
    with _job_lock:
        job_id = next(_job_ids)
    earlier = [(e.grade_id, str(answers[e.grade_id])) for e in notebook.exercises[:index]
               if e.grade_id in answers and not isinstance(answers[e.grade_id], CellProblem)]
    return {"id": job_id, "grade_id": exercise.grade_id, "imports": notebook.imports,
            "answer": answers[exercise.grade_id], "earlier": earlier,
            "test": exercise.test, "hidden_lines": exercise.hidden_lines, "cwd": workdir, "timeout": timeout,
            "memory_mb": limits.memory_mb, "output_limit": limits.output_limit}


def grade_submission(submission: Submission, course: list[CourseNotebook], slot: WorkerSlot, limits: Limits) -> Grade:
    """Grade one notebook, exercise by exercise, in a temporary directory removed afterwards."""
    started = time.monotonic()
    notebook, answers, problem = read_submission(submission.path, course, submission.root)
    grade = Grade(one_line(submission.student, 400), notebook.name if notebook else "", problem=problem)
    if notebook is None:
        return grade
    grade.fingerprints = {e.grade_id: digest for e in notebook.exercises
                          if isinstance(answers.get(e.grade_id), str) and not isinstance(answers[e.grade_id], CellProblem)
                          and (digest := copies.fingerprint(answers[e.grade_id]))}
    if not problem and any(e.grade_id in answers for e in notebook.exercises):
        slot.get()  # start the worker first: its start-up is not the student's time
    budget = limits.submission_timeout or limits.timeout * len(notebook.exercises)
    deadline = time.monotonic() + budget
    workdir = tempfile.mkdtemp(prefix="lecture13-grade-")
    try:
        for index, exercise in enumerate(notebook.exercises):
            result = ExerciseResult(exercise.grade_id, 0.0, exercise.points)
            grade.results.append(result)
            left = deadline - time.monotonic()
            result.reason = skip_reason(exercise, answers, problem, left, budget)
            if result.reason:
                continue
            worker = slot.get()
            if worker.error:
                result.reason = f"grader error: {worker.error}"
                continue
            timeout = min(limits.timeout, left)
            verdict = worker.run(exercise_job(notebook, index, answers, workdir, timeout, limits))
            if verdict.get("worker_died"):
                raise WorkerDied(verdict.get("detail", ""))
            deadline += float(verdict.get("restart_seconds") or 0)  # a new sandbox's start-up is not the answer's time
            result.points = exercise.points if verdict.get("passed") else 0.0
            result.reason = one_line(verdict.get("reason", ""))
            if timeout < limits.timeout and result.reason.startswith("timed out"):
                result.reason = f"timed out: the submission's time limit ({budget:g} s) was used up"
            result.detail, result.output = clean_text(verdict.get("detail", "")), clean_text(verdict.get("output", ""))
            result.seconds = verdict.get("wall_seconds", 0.0)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    grade.seconds = round(time.monotonic() - started, 2)
    return grade


def csv_columns(grades: list[Grade], course: list[CourseNotebook]) -> list[str]:
    present = {g.notebook for g in grades}
    exercise_columns = [e.grade_id for nb in course if nb.name in present for e in nb.exercises]
    return ["student", "notebook", *exercise_columns, "total", "max", "reasons", "copies", "sandbox"]


def csv_text(grades: list[Grade], course: list[CourseNotebook]) -> str:
    columns = csv_columns(grades, course)
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    for grade in sorted(grades, key=lambda g: g.student):
        row = {"student": one_line(grade.student, 400), "notebook": grade.notebook, "total": _num(grade.total),
               "max": _num(grade.max_points), "reasons": grade.reasons(), "copies": one_line(grade.copies, 2000),
               "sandbox": grade.sandbox}
        row.update({r.grade_id: _num(r.points) for r in grade.results})
        writer.writerow(row)
    return out.getvalue()


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file next to ``path``, then rename it: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def feedback_markdown(grade: Grade) -> str:
    """The student's report. Everything that comes from the submission (its name, reasons,
    what it printed) is escaped or fenced, so it cannot forge a heading, a row or a verdict."""
    lines = [f"# Feedback: {markdown_inline(grade.student)}", ""]
    if not grade.notebook:
        return "\n".join(lines + [f"**0 points**: {markdown_inline(grade.problem)}.", ""])
    lines += [f"Notebook {markdown_inline(grade.notebook)}: **{_num(grade.total)} / {_num(grade.max_points)} points**.", ""]
    if grade.problem:
        lines += [f"The file could not be graded: {markdown_inline(grade.problem)}.", ""]
    lines += ["| exercise | points | |", "|---|---|---|"]
    for r in grade.results:
        verdict = "passes (visible and hidden tests)" if r.points == r.max_points else markdown_inline(r.reason)
        lines.append(f"| {markdown_inline(r.grade_id)} | {_num(r.points)} / {_num(r.max_points)} | {verdict} |")
    if grade.copies:
        lines += ["", "For your instructor (not a deduction): " + markdown_inline(grade.copies) + "."]
    for r in grade.results:
        if r.points < r.max_points and (r.detail or r.output):
            lines += ["", f"## {markdown_inline(r.grade_id)}: {markdown_inline(r.reason)}", ""]
            if r.detail:
                lines += markdown_block(r.detail, 3000)
            if r.output.strip():
                lines += ["", "What it printed (first lines):", ""] + markdown_block(r.output, 2000)
    lines += ["", "Each exercise is graded on its own: the course's imports, your answer cell, and the "
                  "instructor's tests (including hidden ones), in a fresh process.", ""]
    return "\n".join(lines)


def feedback_filename(student: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "__", student.removesuffix(".ipynb")) + ".md"


def grade(submissions: list[Path | str], solutions: Path | str = DEFAULT_SOLUTIONS, out: Path | str | None = None,
          feedback: Path | str | None = None, jobs: int | None = None, limits: Limits | None = None,
          progress: bool = True, sandbox: str = "auto") -> list[Grade]:
    """Grade every notebook in ``submissions`` (files or folders); write the CSV (atomically,
    after every submission) and the feedback reports; return the grades."""
    from tqdm.auto import tqdm

    course = load_course(solutions)
    found = find_submissions(submissions)
    limits = limits or Limits()
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(found)))
    grades: list[Grade] = []
    lock = threading.Lock()
    present = {getattr(read_submission(s.path, course, s.root)[0], "name", None) for s in found}
    preload = [nb for nb in course if nb.name in present]  # the workers load only what these notebooks import
    mode, note = grading_sandbox.choose(sandbox)
    sandbox_note = "bwrap" if mode == "bwrap" else note.removeprefix("sandbox: ")
    if note:
        print(note, file=sys.stderr)
    slots = [WorkerSlot(preload, mode) for _ in range(jobs)]
    free = list(slots)

    def one(submission: Submission) -> Grade:
        with lock:
            slot = free.pop()
        try:
            for attempt in (1, 2):  # a worker that died (killed from outside) costs a second try, not points
                try:
                    grade = grade_submission(submission, course, slot, limits)
                    break
                except WorkerDied:
                    if attempt == 2:
                        grade = Grade(one_line(submission.student, 400), problem="grader error: the grading worker died "
                                      "twice while grading this file (was it killed from outside?)")
            grade.sandbox = sandbox_note
            return grade
        except Exception as err:  # a bug of the grader must not stop the batch either
            return Grade(one_line(submission.student, 400), problem=f"grader error: {type(err).__name__}: {err}",
                         sandbox=sandbox_note)
        finally:
            with lock:
                free.append(slot)

    def record(g: Grade) -> None:
        grades.append(g)
        if out is not None:
            write_atomically(Path(out), csv_text(grades, course))
        if feedback is not None:
            write_atomically(Path(feedback) / feedback_filename(g.student), feedback_markdown(g))

    pool = ThreadPoolExecutor(max_workers=jobs)
    bar = tqdm(total=len(found), desc="grading", unit="notebook", disable=not progress)
    try:
        futures = [pool.submit(one, s) for s in found]
        for future in as_completed(futures):
            record(future.result())
            bar.update(1)
        pool.shutdown(wait=True)
    except BaseException:  # Ctrl-C: drop what has not started; the CSV so far is on disk
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        bar.close()
        for slot in slots:
            slot.close()
        if out is not None:  # always a CSV, even when interrupted: the rows graded so far
            write_atomically(Path(out), csv_text(grades, course))
    report_copies(grades, course)
    if out is not None:
        write_atomically(Path(out), csv_text(grades, course))
    if feedback is not None:
        for g in grades:
            if g.copies:
                write_atomically(Path(feedback) / feedback_filename(g.student), feedback_markdown(g))
    return sorted(grades, key=lambda g: g.student)


def report_copies(grades: list[Grade], course: list[CourseNotebook]) -> None:
    """Fill each grade's ``copies``: its answers that match the published solution or another
    submission (normalised; see :mod:`lecture13.copies`)."""
    published = {e.grade_id: digest for nb in course for e in nb.exercises if (digest := copies.fingerprint(e.solution))}
    report = copies.copy_report({g.student: g.fingerprints for g in grades if g.fingerprints}, published)
    for g in grades:
        g.copies = report.get(g.student, "")


# ----------------------------------------------------------------------------- command line
def add_grade_command(sub) -> None:
    p = sub.add_parser("grade", help="grade student notebooks with the hidden tests; write a CSV",
                       description="Grade filled-in student notebooks (files or folders) against the hidden tests "
                                   "of solutions/: each exercise in its own time- and memory-limited process.")
    p.add_argument("submissions", nargs="+", type=Path, help="notebooks, or folders searched for *.ipynb")
    p.add_argument("--out", type=Path, default=Path("grades.csv"), help="the CSV to write (default: grades.csv)")
    p.add_argument("--feedback", type=Path, metavar="DIR", help="write one Markdown report per student into DIR")
    p.add_argument("--solutions", type=Path, default=DEFAULT_SOLUTIONS,
                   help="the instructor's source notebooks (default: the course's solutions/)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="submissions graded in parallel (default: CPU cores)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per exercise (default: 60)")
    p.add_argument("--submission-timeout", type=float, help="seconds per submission (default: exercises × --timeout)")
    p.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB,
                   help="memory an answer may allocate, in MB (default: 2048)")
    p.add_argument("--output-limit", type=int, default=DEFAULT_OUTPUT_LIMIT,
                   help="characters of printed output kept per exercise (default: 20000)")
    p.add_argument("--sandbox", choices=grading_sandbox.MODES, default="auto",
                   help="run answers in a bubblewrap sandbox (bwrap), without one (none), or in one where it "
                        "works (auto, the default); the CSV's sandbox column says which")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=cmd_grade)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_grade(args) -> int:
    limits = Limits(args.timeout, args.memory_mb, args.submission_timeout, args.output_limit)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` cleans up like Ctrl-C: workers stopped, CSV written
    for other in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE):
        signal.signal(other, signal.SIG_IGN)  # a closed terminal or a stray signal does not stop the batch
    try:
        grades = grade(args.submissions, args.solutions, args.out, args.feedback, args.jobs, limits,
                       progress=not args.no_progress, sandbox=args.sandbox)
    except (GradingError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: {args.out} holds the notebooks graded so far", file=sys.stderr)
        return 130
    full = sum(1 for g in grades if g.notebook and g.total == g.max_points)
    print(f"graded {len(grades)} notebooks ({full} with full marks); wrote {args.out}"
          + (f" and feedback in {args.feedback}/" if args.feedback else ""))
    return 0
