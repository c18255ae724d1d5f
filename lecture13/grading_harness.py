"""The grader's worker: it runs *inside* a child process, never inside ``python -m lecture13 grade``.

A worker is one fresh Python interpreter per parallel job. It loads the modules that the
notebooks' ``imports`` cells import (trusted code from ``solutions/``; only their import
statements), then reads exercise jobs, one JSON line each, from its stdin. For every job it forks
an *exercise process* from that pristine state, which runs the notebook's whole imports cell, so
each exercise of each submission starts from what a fresh kernel has after the imports cell
(same names, same RNG state) and nothing one answer does can reach another. In the exercise
process:

1. limits: its own process group, ``RLIMIT_AS`` = address space at the fork + the memory limit
   (a memory bomb gets ``MemoryError`` at once), a CPU-time backstop, a file-size limit;
   stdout/stderr go to a pipe the worker reads and truncates; it dies with the worker; then the
   notebook's imports cell (one torch thread);
2. the exercise's reference implementation (the ``reference=`` of the test cell) is replaced,
   wherever it is bound, by a guard that raises :class:`ReferenceUsed` when it is called from
   the student's code (their function is on the call stack);
3. a snapshot of every attribute of the modules the checks rely on (``lecture13.*``, torch,
   builtins, os, sys.exit …);
4. the ``def``/``class``/``import`` statements of the student's earlier answer cells (so a helper
   or an earlier exercise's function they call is there; nothing else of those cells runs), then
   the student's answer cell (IPython magics and shell lines are dropped if they do not parse);
5. names of the imports cell that the test cell uses are put back to the pristine objects: a
   rebinding of them, or a changed module attribute (snapshot compared before and after the
   test cell), is "tampered with the checks" and scores nothing;
6. the instructor's test cell, hidden tests included, with ``LECTURE13_GRADING=1`` so
   :func:`lecture13.exercises.check` raises instead of falling back to the reference.

The verdict goes back on a pipe that is not the student's stdout, tagged with a random nonce,
and the worker watches the wall clock and the resident memory and kills the process group
when either limit is passed. The worker forwards the verdict to the grader on its own file
descriptor (closed in the exercise process before any student code runs).
"""
from __future__ import annotations

import ast
import builtins
import copy
import ctypes
import json
import math
import os
import resource
import secrets
import select
import signal
import sys
import time
import traceback
import types

# Private references taken before any student code runs (an answer may replace the public ones).
_exit, _write, _close, _dup2, _kill = os._exit, os.write, os.close, os.dup2, os.kill
_dumps, _monotonic, _getframe = json.dumps, time.monotonic, sys._getframe
_BaseException, _isinstance = BaseException, isinstance

PAGE = os.sysconf("SC_PAGE_SIZE")
IMPORTS_FILE = "<imports cell>"
CHECK_NAMES = ("check", "assert_passes")


class ReferenceUsed(BaseException):
    """Raised when the student's code calls the reference implementation it is graded against.
    A ``BaseException`` so that neither ``check`` nor a bare ``except Exception`` swallows it."""


# ----------------------------------------------------------------------------- small helpers
def memory_of(pid: int | str = "self") -> tuple[int, int]:
    """(address space, resident set) in bytes of a process, from /proc; (0, 0) where there is no
    /proc (macOS: there only the time limits and the output limit apply)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            size, resident = f.read().split()[:2]
    except FileNotFoundError:
        return 0, 0
    return int(size) * PAGE, int(resident) * PAGE


def set_limit(kind: int, value: int) -> None:
    try:
        resource.setrlimit(kind, (value, value))
    except (ValueError, OSError):  # not supported here (e.g. RLIMIT_AS on macOS)
        pass


def without_magics(source: str) -> str:
    """The cell as plain Python: IPython line magics (``%time``), cell magics (``%%time``) and
    shell lines (``!ls``) become ``pass`` at their indent. Used only when the cell does not parse."""
    lines = []
    for line in source.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            lines.append(line[: len(line) - len(stripped)] + "pass")
        else:
            lines.append(line)
    return "\n".join(lines)


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


def definitions_only(source: str, filename: str) -> list:
    """The ``def``, ``class`` and ``import`` statements of an answer cell, each compiled on its
    own (none if it does not parse): what a later exercise may use from an earlier one, without
    running the rest of that cell."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        try:
            tree = ast.parse(without_magics(source))
        except SyntaxError:
            return []
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    return [compile(ast.Module(body=[node], type_ignores=[]), filename, "exec") for node in tree.body
            if isinstance(node, kinds)]


# ----------------------------------------------------------------------------- tamper detection
def watched_modules() -> list:
    """The modules (and their classes) whose attributes the checks rely on."""
    import torch
    import torch.nn.functional

    mods = [builtins, copy, math, os, json, torch, torch.nn, torch.nn.functional, torch.optim, sys.modules[__name__]]
    mods += [m for name, m in sorted(sys.modules.items())
             if m is not None and (name == "lecture13" or name.startswith("lecture13."))]
    return list({id(m): m for m in mods}.values())


def snapshot() -> dict:
    """Identity of every attribute of the watched modules, of the classes they define, of
    ``torch.Tensor`` / ``nn.Module`` / ``Optimizer``, of ``sys.exit`` and ``sys.modules``."""
    import torch

    snap: dict = {}
    classes = [torch.Tensor, torch.nn.Module, torch.optim.Optimizer]
    for module in watched_modules():
        name = module.__name__
        snap[("sys.modules", name)] = sys.modules.get(name)
        for key, value in list(vars(module).items()):
            snap[(name, key)] = value
            if isinstance(value, type) and getattr(value, "__module__", None) == name:
                classes.append(value)
    for cls in classes:
        for key, value in list(vars(cls).items()):
            snap[(f"{cls.__module__}.{cls.__qualname__}", key)] = value
    snap[("sys", "exit")] = sys.exit
    for (owner, key), value in list(snap.items()):  # a function changed in place keeps its identity
        if isinstance(value, types.FunctionType):
            snap[(owner, f"{key}.__code__")] = value.__code__
            snap[(owner, f"{key}.__defaults__")] = value.__defaults__
            snap[(owner, f"{key}.__kwdefaults__")] = value.__kwdefaults__
    return snap


def changed(before: dict, _snapshot=snapshot) -> list[str]:
    """What the answer replaced or deleted since ``before``. New attributes are ignored (torch
    adds submodules lazily) and so is a ``None`` that became something (a lazily filled cache)."""
    after = _snapshot()
    missing = object()
    found = [f"{owner}.{key}" for (owner, key), value in before.items()
             if value is not None and after.get((owner, key), missing) is not value]
    if os.environ.get("LECTURE13_GRADING") != "1":  # check() would fall back to the reference
        found.append("os.environ['LECTURE13_GRADING']")
    return found


# ----------------------------------------------------------------------------- reference guard
class Guard:
    """Knows when the student's code is running: while their function (as the test cell passes
    it) is being called, or when a frame of their answer cell is on the stack."""

    def __init__(self, answer_file: str):
        self.answer_file, self.depth, self.used = answer_file, [0], []

    def student_on_stack(self) -> bool:
        if self.depth[0] > 0:
            return True
        frame = _getframe(2)
        while frame is not None and frame.f_code is not _BOUNDARY[0]:  # stop at the harness
            filename = frame.f_code.co_filename
            if filename.startswith("<answer ") or filename == "<string>":
                return True
            frame = frame.f_back
        return False

    def wrap_student(self, fn):
        depth = self.depth

        def student_call(*args, **kwargs):
            depth[0] += 1
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1

        student_call.__name__ = getattr(fn, "__name__", "answer")
        student_call.__qualname__ = getattr(fn, "__qualname__", student_call.__name__)
        student_call.__doc__ = getattr(fn, "__doc__", None)
        return student_call

    def wrap_reference(self, original, where: str):
        guard = self

        def reference_guard(*args, **kwargs):
            if guard.student_on_stack():
                guard.used.append(where)
                raise ReferenceUsed(f"calls the reference implementation {where}")
            return original(*args, **kwargs)

        for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
            setattr(reference_guard, attr, getattr(original, attr, None))
        return reference_guard


def guard_references(expressions: list[str], namespace: dict, guard: Guard) -> list[tuple[object, str]]:
    """Replace each reference function, wherever it is bound (its module, any lecture13 module,
    the notebook namespace), by a guard. Returns [(reference object, dotted name)] for classes,
    which are checked by identity/subclass instead."""
    classes = []
    for expression in expressions:
        try:
            obj = eval(expression, dict(namespace))  # a dotted name of the imports cell: no side effects
        except Exception:
            continue
        where = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', expression)}"
        if isinstance(obj, type):
            classes.append((obj, where))
            continue
        if not callable(obj):
            continue
        wrapped = guard.wrap_reference(obj, where)
        homes = [m for n, m in list(sys.modules.items()) if m is not None and (n == "lecture13" or n.startswith("lecture13."))]
        for home in homes:
            for key, value in list(vars(home).items()):
                if value is obj:
                    setattr(home, key, wrapped)
        for key, value in list(namespace.items()):
            if value is obj:
                namespace[key] = wrapped
    return classes


# ----------------------------------------------------------------------------- one exercise
def failure_reason(err: BaseException, job: dict) -> tuple[str, str]:
    """(short reason for the CSV, longer detail for the feedback report)."""
    from lecture13.exercises import ExerciseFailed

    name = type(err).__name__
    text = str(err).strip()
    if isinstance(err, ReferenceUsed):
        return text, text
    if isinstance(err, SystemExit):
        return f"the answer called sys.exit({err.code if err.code is not None else ''})", f"SystemExit: {err.code!r}"
    if isinstance(err, MemoryError) or "can't allocate memory" in text:
        return f"memory limit exceeded ({job['memory_mb']} MB)", f"{name}: {text[:500]}"
    if isinstance(err, ExerciseFailed):
        first = text.split("\n")[0]
        if first.endswith("(NotImplementedError)"):
            return "not implemented (NotImplementedError)", text
        if "MemoryError" in text or "can't allocate memory" in text:
            return f"memory limit exceeded ({job['memory_mb']} MB)", text
        line = next((tb.tb_lineno for tb in _walk_tb(err.__traceback__) if tb.tb_frame.f_code.co_filename == job["test_file"]), None)
        hidden = any(a <= (line or -1) <= b for a, b in job.get("hidden_lines", []))
        short = " — ".join(part.strip() for part in text.split("\n")[:2])
        return ("hidden test: " if hidden else "") + short, text
    if isinstance(err, NameError) and job.get("students") and any(f"'{s}'" in text for s in job["students"]):
        return f"the answer cell does not define {job['students'][0]} ({name}: {text})", text
    return f"{name}: {text}", "".join(traceback.format_exception(type(err), err, err.__traceback__)[-6:])


def _walk_tb(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


def run_imports_cell(source: str) -> dict:
    """The notebook's namespace after its imports cell (the modules are already loaded by the
    worker, so this only binds names and seeds); one torch thread, as the grader runs in parallel."""
    namespace: dict = {"__name__": "__main__"}
    exec(compile(source, IMPORTS_FILE, "exec"), namespace)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    return namespace


def grade_exercise(job: dict, *, _changed=changed, _snapshot=snapshot,
                   _failure_reason=failure_reason, _exec=exec, _compile=compile) -> dict:
    """Run imports + answer + test cell in this (forked) process; return the verdict. The helpers
    are bound as defaults, so an answer that replaces them in this module changes nothing."""
    verdict = {"passed": False, "reason": "", "detail": ""}
    try:
        namespace = run_imports_cell(job["imports"])
    except BaseException as err:  # the course's own cell: say so, it is not the student's fault
        verdict["reason"] = f"grader error: the course's imports cell failed: {type(err).__name__}: {err}"
        return verdict
    answer_file, test_file = f"<answer {job['grade_id']}>", f"<tests {job['grade_id']}>"
    job["test_file"] = test_file
    guard = Guard(answer_file)
    students, references, test_names = test_cell_names(job["test"])
    job["students"] = students
    pristine = dict(namespace)
    ref_classes = guard_references(references, namespace, guard)
    pristine = {k: namespace[k] for k in pristine}  # the guarded versions count as pristine
    before = _snapshot()
    try:
        code = compile_cell(job["answer"], answer_file)
    except SyntaxError as err:
        verdict["reason"] = f"the answer cell is not valid Python (SyntaxError: {err.msg}, line {err.lineno})"
        return verdict
    try:
        for earlier_id, earlier in job.get("earlier", []):  # helpers the student defined in earlier answers
            for statement in definitions_only(earlier, f"<answer {earlier_id}>"):
                try:
                    _exec(statement, namespace)
                except Exception:
                    pass
        _exec(code, namespace)
        tampered = _changed(before)
        rebound = sorted(k for k in pristine if k in test_names and namespace.get(k) is not pristine[k])
        if tampered or rebound:
            raise _Tampered(", ".join((tampered + [f"rebinds {k}" for k in rebound])[:3]))
        namespace.update(pristine)
        for ref, where in ref_classes:
            for name in students:
                obj = namespace.get(name)
                if obj is ref or (isinstance(obj, type) and issubclass(obj, ref)):
                    raise ReferenceUsed(f"calls the reference implementation {where}")
        for name in students:
            if callable(namespace.get(name)):
                namespace[name] = guard.wrap_student(namespace[name])
        _exec(_compile(job["test"], test_file, "exec"), namespace)
        tampered = _changed(before)
        if tampered:
            raise _Tampered(", ".join(tampered[:3]))
        if guard.used:
            raise ReferenceUsed(f"calls the reference implementation {guard.used[0]}")
        verdict["passed"] = True
    except _Tampered as err:
        verdict["reason"] = f"tampered with the checks ({err})"
    except _BaseException as err:  # anything the student's code raised, SystemExit included
        try:
            tampered = _changed(before)
        except _BaseException:
            tampered = []
        if tampered:  # the failure may come from the tampering itself: report that
            verdict["reason"] = f"tampered with the checks ({', '.join(tampered[:3])})"
            return verdict
        if guard.used and not _isinstance(err, ReferenceUsed):
            err = ReferenceUsed(f"calls the reference implementation {guard.used[0]}")
        verdict["reason"], verdict["detail"] = _failure_reason(err, job)
    return verdict


class _Tampered(Exception):
    pass


_BOUNDARY = [grade_exercise.__code__]


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def exercise_process(job: dict, result_w: int, output_w: int, nonce: str) -> None:
    """The body of the forked exercise process; never returns."""
    try:
        os.setpgid(0, 0)
        _die_with_parent()
        devnull = os.open(os.devnull, os.O_RDONLY)
        _dup2(devnull, 0)
        _dup2(output_w, 1)
        _dup2(output_w, 2)
        _close(output_w)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.reconfigure(line_buffering=True)
            except Exception:
                pass
        size, _ = memory_of()
        if size:
            set_limit(resource.RLIMIT_AS, size + job["memory_mb"] * 2**20)
        set_limit(resource.RLIMIT_CPU, int(job["timeout"] * 2) + 5)  # a backstop: the worker kills at the timeout
        set_limit(resource.RLIMIT_FSIZE, 64 * 2**20)
        set_limit(resource.RLIMIT_CORE, 0)
        os.chdir(job["cwd"])
        started = _monotonic()
        verdict = grade_exercise(job)
        verdict["seconds"] = round(_monotonic() - started, 3)
    except _BaseException as err:  # a failure of the harness itself, reported as such
        verdict = {"passed": False, "reason": f"grader error: {type(err).__name__}: {err}", "detail": ""}
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except _BaseException:
        pass
    message = (nonce + _dumps(verdict, default=str) + "\n").encode()
    try:
        view = memoryview(message)
        while view:
            view = view[_write(result_w, view):]
    finally:
        _exit(0)


def kill_group(pid: int) -> None:
    for target in (-pid, pid):
        try:
            _kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def run_job(job: dict, report_fd: int) -> dict:
    """Fork an exercise process for ``job``; watch its wall clock, memory and output."""
    result_r, result_w = os.pipe()
    output_r, output_w = os.pipe()
    nonce = secrets.token_hex(16)
    sys.stdout.flush()
    sys.stderr.flush()
    _, baseline_rss = memory_of()
    pid = os.fork()
    if pid == 0:
        os.close(result_r)
        os.close(output_r)
        os.close(report_fd)
        exercise_process(job, result_w, output_w, nonce)
    os.close(result_w)
    os.close(output_w)
    started = _monotonic()
    limit, output_limit = job["memory_mb"] * 2**20, job["output_limit"]
    output, output_total, result = bytearray(), 0, bytearray()
    status, killed = None, None
    open_fds = {result_r, output_r}
    while True:
        ready, _, _ = select.select(list(open_fds), [], [], 0.05)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.discard(fd)
            elif fd == output_r:
                output_total += len(chunk)
                if len(output) < output_limit:
                    output += chunk[: output_limit - len(output)]
            elif len(result) < 2**20:
                result += chunk
        if status is None:
            done, status_code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = status_code
                kill_group(pid)  # anything it started that still holds the pipes open
        if status is not None and (not open_fds or _monotonic() - started > job["timeout"] + 1):
            break
        if status is None and killed is None:
            if _monotonic() - started > job["timeout"]:
                killed = f"timed out after {job['timeout']:g} s"
            else:
                try:
                    if baseline_rss and memory_of(pid)[1] - baseline_rss > limit:
                        killed = f"memory limit exceeded ({job['memory_mb']} MB)"
                except (OSError, ValueError):
                    pass
            if killed:
                kill_group(pid)
    kill_group(pid)  # whatever the answer left running in its process group
    for fd in (result_r, output_r):
        os.close(fd)
    seconds = round(_monotonic() - started, 3)
    verdict = None
    for line in bytes(result).decode(errors="replace").splitlines():
        if line.startswith(nonce):  # the last line with our nonce: the harness writes last
            try:
                verdict = json.loads(line[len(nonce):])
            except ValueError:
                pass
    if killed:
        verdict = {"passed": False, "reason": killed, "detail": ""}
    elif verdict is None:
        how = (f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exit status {os.WEXITSTATUS(status)}")
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU:
            how = "CPU time limit exceeded"
        verdict = {"passed": False, "reason": f"the process ended before the tests finished ({how}; os._exit()?)",
                   "detail": ""}
    verdict.setdefault("seconds", seconds)
    verdict["wall_seconds"] = seconds
    text = bytes(output).decode(errors="replace")
    if output_total > len(output):
        text += f"\n… output truncated: {output_total:,} bytes in all, the first {len(output):,} kept"
    verdict["output"] = text
    verdict["output_bytes"] = output_total
    return verdict


# ----------------------------------------------------------------------------- the worker
def send(fd: int, message: dict) -> None:
    data = (json.dumps(message, default=str) + "\n").encode()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def import_statements(source: str) -> list:
    """The top-level ``import`` statements of a cell, each compiled on its own."""
    kinds = (ast.Import, ast.ImportFrom)
    return [compile(ast.Module(body=[node], type_ignores=[]), IMPORTS_FILE, "exec")
            for node in ast.parse(source).body if isinstance(node, kinds)]


def serve(report_fd: int) -> None:
    """Worker main loop. The first line of stdin is {"imports": [the imports cell of every
    notebook]}: their import statements are run once here (only the imports: no seeding, no
    settings), so that an exercise process, which runs its notebook's whole imports cell, finds
    torch, matplotlib and lecture13 loaded. Each further line is a job, answered on ``report_fd``."""
    os.environ["LECTURE13_GRADING"] = "1"
    _die_with_parent()  # a grader killed outright takes its workers (and their exercise processes) along
    header = json.loads(sys.stdin.readline())
    failed = []
    for source in header["imports"]:
        for statement in import_statements(source):
            try:
                exec(statement, {"__name__": "__main__"})
            except Exception as err:  # reported again, per exercise, when its imports cell runs
                failed.append(f"{type(err).__name__}: {err}")
    send(report_fd, {"ready": True, "import_errors": failed})
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        verdict = run_job(job, report_fd)
        verdict["id"] = job["id"]
        send(report_fd, verdict)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
