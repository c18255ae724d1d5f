"""The grader's trusted worker: it runs the instructor's test cells, never the student's code.

A worker is one fresh Python per parallel job. It loads what the notebooks' imports cells
import and starts an *answer host* (:mod:`lecture13.grading_answer`), inside bubblewrap where
that works (:mod:`lecture13.grading_sandbox`), which runs the students' answers. For each
exercise the worker

1. makes a fresh channel (a socket pair) and hands one end, with the answer's part of the job
   (imports cell, earlier definitions, answer cell, the reference names to neuter, limits), to
   the answer host, which forks the answer's process;
2. forks a *tester* from its own pristine state, with the other end: it runs the notebook's
   imports cell and the instructor's test cell (hidden tests included, ``LECTURE13_GRADING=1``),
   where the student's functions are proxies that call into the answer's process through the
   channel (:mod:`lecture13.grading_channel`): plain data crosses, never code, and nothing of
   the test cell, the expected values or the reference is in the answer's process;
3. computes the verdict there and only there: the exercise passes when the test cell runs to
   its end; the answer host's report (limits hit, output) can only take points away.

The tester has its own wall clock (killed at the exercise's time limit); the answer host enforces
the answer's limits and ends all its processes after each exercise. A host that dies (killed by
the answer it ran) is started again for the next exercise.
"""
from __future__ import annotations

import ast
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import grading_sandbox as sandbox
from .grading_answer import (definitions_only, import_statements, parse_cell, recv_msg, send_msg,  # noqa: F401
                             without_magics)

IMPORTS_FILE = "<imports cell>"
CHECK_NAMES = ("check", "assert_passes")
HOST_CODE = "import sys; from lecture13.grading_answer import serve_host; serve_host(int(sys.argv[1]))"
HOST_START_TIMEOUT = 300.0


def compile_cell(source: str, filename: str):
    try:
        return compile(source, filename, "exec")
    except SyntaxError:
        cleaned = without_magics(source)
        if cleaned == source:
            raise
        return compile(cleaned, filename, "exec")


def test_cell_names(test_source: str) -> tuple[list[str], list[str], set[str]]:
    """From the instructor's test cell: the student's function names (first argument of
    ``check``/``assert_passes``), the reference expressions (``reference=`` or the second
    argument) and every name the cell reads."""
    tree = ast.parse(test_source)
    students, references, names = [], [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CHECK_NAMES:
            if node.args and isinstance(node.args[0], ast.Name):
                students.append(node.args[0].id)
            ref = next((k.value for k in node.keywords if k.arg == "reference"), None)
            if ref is None and len(node.args) > 1:
                ref = node.args[1]
            if ref is not None and isinstance(ref, (ast.Name, ast.Attribute)):
                references.append(ast.unparse(ref))
    return list(dict.fromkeys(students)), list(dict.fromkeys(references)), names


# ----------------------------------------------------------------------------- the tester (trusted)
def _walk_tb(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


def failure_reason(err: BaseException, job: dict) -> tuple[str, str]:
    """(short reason for the CSV, longer detail for the feedback report)."""
    from lecture13.exercises import ExerciseFailed

    from .grading_channel import ReferenceUsed

    name, text = type(err).__name__, str(err).strip()
    if isinstance(err, ReferenceUsed):
        return reference_reason(text, job), text
    if isinstance(err, MemoryError) or "can't allocate memory" in text:
        return f"memory limit exceeded ({job['memory_mb']} MB)", f"{name}: {text[:500]}"
    if isinstance(err, ExerciseFailed):
        first = text.split("\n")[0]
        if first.endswith("(NotImplementedError)"):
            return "not implemented (NotImplementedError)", text
        if "MemoryError" in text or "can't allocate memory" in text:
            return f"memory limit exceeded ({job['memory_mb']} MB)", text
        if "ReferenceUsed" in first:
            return reference_reason(first, job), text
        line = next((tb.tb_lineno for tb in _walk_tb(err.__traceback__) if tb.tb_frame.f_code.co_filename == job["test_file"]), None)
        hidden = any(a <= (line or -1) <= b for a, b in job.get("hidden_lines", []))
        short = " — ".join(part.strip() for part in text.split("\n")[:2])
        return ("hidden test: " if hidden else "") + short, text
    if isinstance(err, NameError) and job.get("students") and any(f"'{s}'" in text for s in job["students"]):
        return f"the answer cell does not define {job['students'][0]} ({name}: {text})", text
    return f"{name}: {text}", "".join(traceback.format_exception(type(err), err, err.__traceback__)[-6:])


def reference_reason(text: str, job: dict) -> str:
    """The reference's name as the trusted side knows it (the answer's message is not trusted)."""
    known = job.get("reference_names") or ["the reference"]
    where = next((k for k in known if k in text), known[0])
    return f"calls the reference implementation {where}"


def answer_cell_failure(error: dict, job: dict) -> str:
    name, message = str(error.get("type", "Error"))[:80], str(error.get("message", ""))[:400]
    if name == "SyntaxError":
        return f"the answer cell is not valid Python (SyntaxError: {message})"
    if name == "SystemExit":
        return f"the answer called sys.exit({'' if message in ('', 'None') else message})"
    if name == "ReferenceUsed":
        return reference_reason(message, job)
    return f"{name}: {message}"


def run_imports_cell(source: str) -> dict:
    namespace: dict = {"__name__": "__main__"}
    exec(compile(source, IMPORTS_FILE, "exec"), namespace)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    return namespace


def run_tests(job: dict, channel: socket.socket) -> dict:
    """In the tester: bind the answer's names to proxies, run the test cell, return the verdict."""
    verdict = {"passed": False, "reason": "", "detail": ""}
    try:
        namespace = run_imports_cell(job["imports"])
    except BaseException as err:
        verdict["reason"] = f"grader error: the course's imports cell failed: {type(err).__name__}: {err}"
        return verdict
    test_file = job["test_file"] = f"<tests {job['grade_id']}>"
    students, references, names = test_cell_names(job["test"])
    job["students"] = students
    from .grading_channel import CLOSED, Answer, AnswerGone, ChannelError, receive  # (torch: after the start-up)

    answer = Answer(channel)
    try:

        ready = receive(channel)
    except ChannelError as err:
        verdict.update(answer_gone=True, broken=str(err) != CLOSED, detail=str(err))
        return verdict
    ready = ready if isinstance(ready, dict) else {}
    if "error" in ready:
        verdict["reason"] = answer_cell_failure(ready["error"] if isinstance(ready["error"], dict) else {}, job)
        return verdict
    defined = ready.get("names") if isinstance(ready.get("names"), dict) else {}
    for name in names:
        handle = defined.get(name)
        if name not in namespace and type(handle) is int:
            namespace[name] = answer.proxy(handle, name)
    try:
        exec(compile(job["test"], test_file, "exec"), namespace)
        verdict["passed"] = True
    except AnswerGone as err:
        verdict.update(answer_gone=True, broken=err.broken, detail=str(err))
    except BaseException as err:
        verdict["reason"], verdict["detail"] = failure_reason(err, job)
    return verdict


def tester_process(job: dict, channel: socket.socket, verdict_w: int) -> None:
    """The body of the forked tester; never returns."""
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)  # what the test cell prints ("✅ ...") is not the verdict
        verdict = run_tests(job, channel)
    except BaseException as err:
        verdict = {"passed": False, "reason": f"grader error: {type(err).__name__}: {err}", "detail": ""}
    data = (json.dumps(verdict, default=str) + "\n").encode()
    try:
        while data:
            data = data[os.write(verdict_w, data):]
    finally:
        os._exit(0)


# ----------------------------------------------------------------------------- the answer host
class AnswerHost:
    """The process that runs answers: inside bubblewrap (``mode="bwrap"``) or a plain child."""

    def __init__(self, imports: list[str], mode: str):
        self.imports, self.mode = imports, mode
        self.proc = self.control = None
        self.home = Path(tempfile.mkdtemp(prefix="lecture13-sandbox-", dir=os.getcwd()))  # in the worker's folder
        self.error = ""

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the host's interpreter (it loads the imports meanwhile: see :meth:`wait_ready`)."""
        self.stop()
        self.home = Path(tempfile.mkdtemp(prefix="lecture13-sandbox-", dir=os.getcwd()))  # in the worker's folder
        ours, theirs = socket.socketpair()
        if self.mode == "bwrap":
            sandbox.prepare_home(self.home)
            command = sandbox.sandbox_command(self.home, ["-c", HOST_CODE, str(theirs.fileno())])
            env = None
        else:
            (self.home / "work").mkdir()
            command = [sys.executable, "-c", HOST_CODE, str(theirs.fileno())]
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parent.parent)]
                                                                + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        self.log = tempfile.TemporaryFile()
        os.set_inheritable(theirs.fileno(), True)
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     pass_fds=(theirs.fileno(),), cwd=self.home / "work", env=env,
                                     start_new_session=True)
        theirs.close()
        self.control = ours
        send_msg(ours, {"imports": self.imports})

    def wait_ready(self) -> None:
        self.control.settimeout(HOST_START_TIMEOUT)
        try:
            recv_msg(self.control)
            self.error = ""
        except (OSError, EOFError, ValueError):
            self.error = f"the answer host did not start: {self.log_tail()}"
        self.control.settimeout(None)
        if self.mode == "bwrap":
            sandbox.seal(self.home)

    def log_tail(self, limit: int = 400) -> str:
        self.log.seek(0)
        return " ".join(self.log.read().decode(errors="replace")[-limit:].split()) or "no output"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and not self.error

    def submit(self, job: dict, channel: socket.socket) -> None:
        send_msg(self.control, job, fds=(channel.fileno(),))

    def report(self, timeout: float) -> dict | None:
        self.control.settimeout(max(timeout, 0.1))
        try:
            return recv_msg(self.control)[0]
        except (OSError, EOFError, ValueError):
            return None
        finally:
            if self.control is not None:
                self.control.settimeout(None)

    def stop(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            self.proc = None
        if self.control is not None:
            self.control.close()
            self.control = None
        import shutil

        shutil.rmtree(self.home, ignore_errors=True)


# ----------------------------------------------------------------------------- one exercise
def answer_job(job: dict, cwd: str, sandboxed: bool) -> dict:
    """What the answer's process gets: no test code, no hidden lines, no expected values."""
    _, references, _ = test_cell_names(job["test"])
    return {"id": job["id"], "grade_id": job["grade_id"], "imports": job["imports"], "answer": job["answer"],
            "earlier": job["earlier"], "references": references, "cwd": cwd, "timeout": job["timeout"],
            "memory_mb": job["memory_mb"], "output_limit": job["output_limit"], "sandboxed": sandboxed,
            "max_processes": job.get("max_processes", 64)}


def fork_tester(job: dict, channel: socket.socket) -> tuple[int, int]:
    verdict_r, verdict_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(verdict_r)
        tester_process(job, channel, verdict_w)
    os.close(verdict_w)
    return pid, verdict_r


def wait_tester(pid: int, verdict_r: int, timeout: float) -> tuple[dict | None, bool]:
    """(the tester's verdict or None, whether it was killed at the time limit)."""
    deadline, data = time.monotonic() + timeout, b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            _kill(pid)
            os.waitpid(pid, 0)
            return None, True
        ready, _, _ = select.select([verdict_r], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(verdict_r, 1 << 20)
            if not chunk:
                break
            data += chunk
    os.waitpid(pid, 0)
    try:
        return json.loads(data.decode().splitlines()[-1]), False
    except (ValueError, IndexError):
        return None, False


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def combine(job: dict, verdict: dict | None, timed_out: bool, report: dict | None) -> dict:
    """The exercise's verdict: the tester's, unless a limit of the answer was hit."""
    if timed_out:
        result = {"passed": False, "reason": f"timed out after {job['timeout']:g} s", "detail": ""}
    elif report and report.get("killed"):
        result = {"passed": False, "reason": report["killed"], "detail": ""}
    elif verdict is None:
        result = {"passed": False, "reason": "grader error: the test process died", "detail": ""}
    elif verdict.get("broken"):
        result = {"passed": False, "reason": "the answer wrote to the grading channel itself (what came back is not "
                                             "a message of the grader's)", "detail": verdict.get("detail", "")}
    elif verdict.get("answer_gone"):
        how = (report or {}).get("status") or "its sandbox was killed: did the answer kill its parent?"
        result = {"passed": False, "reason": f"the answer's process ended before the tests finished ({how}; os._exit()?)",
                  "detail": verdict.get("detail", "")}
    else:
        result = verdict
    result["output"] = (report or {}).get("output", "")
    result["output_bytes"] = (report or {}).get("output_bytes", 0)
    return result


def run_job(job: dict, host: AnswerHost) -> dict:
    """One exercise: the answer in the host, the tests in a forked tester; their verdict. A host
    that did not survive the exercise is started again at once, so that the next exercise (maybe
    another student's) neither waits for it nor pays for it."""
    if not host.alive:
        host.start()
        if host.error:
            return {"passed": False, "reason": f"grader error: {host.error}", "detail": ""}
    result = exercise(job, host)
    if not host.alive:
        restarted = time.monotonic()
        host.start()
        result["restart_seconds"] = round(time.monotonic() - restarted, 3)  # not the submission's time
    return result


def exercise(job: dict, host: AnswerHost) -> dict:
    started = time.monotonic()
    outside, inside = (sandbox.make_exercise_dir(host.home, f"exercise-{job['id']}") if host.mode == "bwrap"
                       else (Path(job["cwd"]), Path(job["cwd"])))
    ours, theirs = socket.socketpair()
    try:
        host.submit(answer_job(job, str(inside), host.mode == "bwrap"), theirs)
    except OSError:
        host.error = "the answer host stopped"
    theirs.close()
    pid, verdict_r = fork_tester(job, ours)
    ours.close()
    verdict, timed_out = wait_tester(pid, verdict_r, job["timeout"] + 5)
    os.close(verdict_r)
    report = host.report(timeout=job["timeout"] + 10 - (time.monotonic() - started)) if not host.error else None
    if report is None or report.get("id") != job["id"]:
        host.stop()  # it died or is stuck: a fresh one for the next exercise
        report = None
    if host.mode == "bwrap":
        sandbox.clear_work(host.home)
    result = combine(job, verdict, timed_out, report)
    result["wall_seconds"] = round(time.monotonic() - started, 3)
    return result


# ----------------------------------------------------------------------------- the worker
def send(fd: int, message: dict) -> None:
    data = (json.dumps(message, default=str) + "\n").encode()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


def serve(report_fd: int) -> None:
    """Worker main loop. First line of stdin: {"imports": [...], "sandbox": "bwrap" | "none"};
    then one exercise job per line, each answered on ``report_fd``."""
    os.environ["LECTURE13_GRADING"] = "1"
    _die_with_parent()
    header = json.loads(sys.stdin.readline())
    host = AnswerHost(header["imports"], header.get("sandbox", "none"))
    host.launch()  # the host loads its imports while this worker loads its own
    from .grading_answer import run_import_statements, warm_up

    failed = run_import_statements(header["imports"])

    warm_up()
    host.wait_ready()
    import gc

    gc.freeze()  # the forked testers then do not copy the pages a garbage collection would touch
    send(report_fd, {"ready": True, "import_errors": failed, "host_error": host.error})
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            job = json.loads(line)
            job["reference_names"] = _reference_names(job)
            try:
                verdict = run_job(job, host)
            except Exception as err:  # a failure of this worker's own: that exercise's row says so, the worker lives on
                verdict = {"passed": False, "reason": f"grader error: {type(err).__name__}: {err}", "detail": ""}
            verdict["id"] = job["id"]
            send(report_fd, verdict)
    finally:
        host.stop()


def _reference_names(job: dict) -> list[str]:
    """The test cell's references as dotted names of their home (lecture13.factorized.fit_bernoulli)."""
    _, references, _ = test_cell_names(job["test"])
    try:
        namespace = run_imports_cell_names(job["imports"])
    except Exception:
        return references
    names = []
    for expression in references:
        try:
            obj = eval(expression, dict(namespace))
            names.append(f"{obj.__module__}.{obj.__qualname__}")
        except Exception:
            names.append(expression)
    return names


def run_imports_cell_names(source: str) -> dict:
    """The names the imports cell's import statements bind (no seeding: for naming only)."""
    namespace: dict = {}
    for statement in import_statements(source):
        exec(statement, namespace)
    return namespace


if __name__ == "__main__":
    serve(int(sys.argv[1]))
