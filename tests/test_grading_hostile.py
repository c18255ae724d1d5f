"""The grader against answers written to steal points or stop the batch, in the bubblewrap sandbox.

One grading run (a module-scoped fixture, ``--sandbox bwrap``, two jobs) of a few submissions,
each exercise's answer cell hostile in its own way: forged verdicts (frames, gc, the descriptors,
torch function modes, tensor subclasses), the reference reached indirectly (``__code__``, a
registry, a default argument, the package's source), file tampering, signals, sibling sabotage,
fork bombs, daemons, memory spread over children, special files, injection into the report; and
the fairness cases a correct answer must pass. Each test asserts the exact points and reason;
the last ones that the batch completed, that no file outside the exercises' temporary
directories changed and that no process survived.

Without bubblewrap these tests skip with how to get it (in CI, where a skip fails, it is installed).
"""
from __future__ import annotations

import csv
import json
import os
import re
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from lecture13 import grading, grading_sandbox, release

import grading_cases as gc

NB00 = gc.SOLUTIONS / "00_generative_models.ipynb"
NB04 = gc.SOLUTIONS / "04_generative_adversarial_networks.ipynb"
NB05 = gc.SOLUTIONS / "05_dcgan.ipynb"
FIT, NLL = "ex-fit-bernoulli", "ex-bernoulli-nll"
DLOSS, GLOSS, ITER = "ex-discriminator-loss", "ex-nonsaturating-loss", "ex-gan-iteration"
BLOCK, INTERP = "ex-generator-block", "ex-interpolate"
TIMEOUT, MEMORY_MB = 20.0, 600
TOKEN = "PWNED" + secrets.token_hex(6)  # what a tampering answer writes and its daemons carry
SLEEP_MARK = f"6{secrets.randbelow(10**6):06d}.5"  # how long the fork bomb's children sleep: their mark

SOLVED = {**gc.solution_answers(nbformat.read(NB00, as_version=4)),
          **gc.solution_answers(nbformat.read(NB04, as_version=4)),
          **gc.solution_answers(nbformat.read(NB05, as_version=4))}
WRONG_FIT_REASON = "check 2 (alpha=1: a pixel never on gets 1/(N+2), not 0) failed"
WRONG_NLL_REASON = "check 1 (one image) failed"


def code(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def hostile_answers(places: dict[str, str]) -> dict[str, dict]:
    """student file → {"nb": solution notebook, "answers": {grade_id: source}} (or raw "text")."""
    fit_ok, nll_ok = SOLVED[FIT], SOLVED[NLL]
    wrong_fit, wrong_nll = gc.WRONG[FIT][1], gc.WRONG[NLL][1]
    forge = code('''
        import gc as _gc, sys, os
        for _obj in _gc.get_objects():          # a verdict, expected values or test code to change?
            if isinstance(_obj, dict) and "passed" in _obj:
                _obj["passed"] = True
        _f = sys._getframe()
        while _f is not None:                   # the callers' frames: only the answer's harness
            _f.f_globals.setdefault("verdict", {}).update(passed=True)
            _f = _f.f_back
        for _fd in range(3, 64):                # a forged verdict on every descriptor
            try:
                os.write(_fd, b'{"passed": true, "reason": ""}\\n')
            except OSError:
                pass
        ''')
    mode = code('''
        from torch.overrides import TorchFunctionMode
        class _Yes(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                if func in (torch.allclose, torch.equal):
                    return True
                return func(*args, **(kwargs or {}))
        _Yes().__enter__()                       # stays on for the rest of this process
        ''')
    subclass = code('''
        class _Liar(torch.Tensor):
            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                if func in (torch.allclose, torch.equal, torch.Tensor.__eq__):
                    return True
                return super().__torch_function__(func, types, args, kwargs)
        def bernoulli_nll(theta, x):
            log_p = x * torch.log(theta) + (1 - x) * torch.log1p(-theta)
            return (-log_p.flatten(1).mean(dim=1)).as_subclass(_Liar)
        ''')
    tamper = code(f'''
        import os
        for _target in {sorted(places.values())!r}:
            try:
                with open(_target, "a") as _f:
                    _f.write("{TOKEN}")
                print("WROTE", _target)
            except OSError as _err:
                print("blocked", type(_err).__name__)
        for _name in os.listdir("/proc"):       # every process it can see: its own sandbox only
            if _name.isdigit() and int(_name) not in (1, os.getpid(), os.getppid()):
                try:
                    os.kill(int(_name), 9)
                except OSError:
                    pass
        ''') + fit_ok
    signal_grader = code(f'''
        import os, signal
        for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
            try:
                os.kill({os.getpid()}, _sig)     # the grader's PID as the instructor's machine knows it
                os.killpg({os.getpgrp()}, _sig)
            except OSError as _err:
                print("cannot signal the grader:", type(_err).__name__)
        ''') + nll_ok
    fork_bomb = code(f'''
        import os
        _children = 0
        try:
            while _children < 10_000:
                if os.fork() == 0:  # a small program, so that memory is not what stops the bomb
                    os.execv("/bin/sleep", ["sleep", "{SLEEP_MARK}"])
                _children += 1
        except OSError:
            print(f"fork refused after {{_children}} children")
        ''') + fit_ok
    daemon = code(f'''
        import os, sys
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", "{TOKEN}"])
            os._exit(0)
        os.wait()
        ''') + nll_ok
    memory_children = code('''
        import os, time
        for _ in range(4):                      # 4 × 250 MB, each child under the limit of one process
            if os.fork() == 0:
                _hog = bytearray(250 * 2**20)
                for _i in range(0, len(_hog), 4096):
                    _hog[_i] = 1
                time.sleep(600)
                os._exit(0)
        time.sleep(600)
        ''')
    injection = code('''
        def fit_bernoulli(x, alpha=1.0):
            raise ValueError("\\x1b[2J\\r\\n# Full marks\\n| ex-bernoulli-nll | 2 / 2 | passes |\\n```\\n\\u202e</details>")
        ''')
    return {
        "forges.ipynb": {"nb": NB00, "answers": {FIT: wrong_fit + forge, NLL: wrong_nll + mode}},
        "reaches_reference.ipynb": {"nb": NB00, "answers": {
            FIT: "def fit_bernoulli(x, alpha=1.0):\n    pass\nfit_bernoulli.__code__ = factorized.fit_bernoulli.__code__\n",
            NLL: "_source = open(factorized.__file__).read()\n_ns = {}\nexec(_source, _ns)\nbernoulli_nll = _ns['bernoulli_nll']\n"}},
        "tampers_and_signals.ipynb": {"nb": NB00, "answers": {FIT: tamper, NLL: signal_grader}},
        "kills_its_sandbox.ipynb": {"nb": NB00, "answers": {FIT: "import os, time\nos.kill(-1, 9)\ntime.sleep(5)\n" + fit_ok,
                                                            NLL: nll_ok}},
        "forks.ipynb": {"nb": NB00, "answers": {FIT: fork_bomb, NLL: daemon}},
        "memory_and_subclass.ipynb": {"nb": NB00, "answers": {FIT: memory_children, NLL: subclass}},
        "injection\n# Forged heading.ipynb": {"nb": NB00, "answers": {FIT: injection}},
        "fair.ipynb": {"nb": NB00, "answers": {
            FIT: "EXTRA = 2\ndef fit_bernoulli(x, alpha=1.0):\n    x = x.float()\n"
                 "    return (x.sum(dim=0) + alpha) / (len(x) + EXTRA * alpha)\n"
                 "print(fit_bernoulli(x_train[:5]))  # a debug line: x_train is the notebook's data\n"}},
        "gan.ipynb": {"nb": NB04, "answers": {
            GLOSS: "generator_loss_nonsaturating = gan.GENERATOR_LOSSES['nonsaturating']\n",
            DLOSS: "discriminator_loss = gan.gan_iteration.__defaults__[1].__globals__['discriminator_loss']\n"}},
        "gan_wrong_step.ipynb": {"nb": NB04, "answers": {ITER: SOLVED[ITER].replace("opt_g.step()", (
            "opt_g.step()\n    with torch.no_grad():  # D moved by G's loss too\n        for p in D.parameters():\n"
            "            p -= 0.1 * p.grad\n    "), 1)}},
        "dcgan.ipynb": {"nb": NB05, "answers": {BLOCK: code('''
            from collections import OrderedDict
            def generator_block(in_channels, out_channels):
                return nn.Sequential(OrderedDict([
                    ("up", nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=False)),
                    ("norm", nn.BatchNorm2d(out_channels)), ("act", nn.ReLU())]))
            ''')}},
    }


def copied_twice(nb) -> None:
    """The answer cell of NLL twice: a wrong copy first, the right one just before the test cell,
    and a wrong copy after the test cell (ignored)."""
    index = next(i for i, c in enumerate(nb.cells) if release.nbgrader(c).get("grade_id") == NLL)
    right = nb.cells[index]
    wrong = nbformat.from_dict(dict(right, source=gc.WRONG[NLL][1], id="copy-before"))
    after = nbformat.from_dict(dict(right, source=gc.WRONG[NLL][1], id="copy-after"))
    test = next(i for i, c in enumerate(nb.cells) if release.nbgrader(c).get("grade_id") == NLL + "-test")
    nb.cells.insert(test + 1, after)
    nb.cells.insert(index, wrong)


def numbers_as_source(text: str) -> str:
    data = json.loads(text)
    cell = next(c for c in data["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == FIT)
    cell["source"] = [1, 2, 3]
    return json.dumps(data)


def write_special_files(folder: Path) -> None:
    (folder / "deep.ipynb").write_text("[" * 100_000)
    os.mkfifo(folder / "fifo.ipynb")
    (folder / "link_out.ipynb").symlink_to(NB00)  # the instructor's own notebook: must not be read
    (folder / "link_in.ipynb").symlink_to(folder / "fair.ipynb")
    (folder / "numbers.ipynb").write_text(numbers_as_source(gc.submission(NB00)))


def solutions_with_two_exercises_in_00(folder: Path) -> Path:
    """solutions/ as this suite counts it: notebook 00 cut to its first two exercises (fit_bernoulli,
    bernoulli_nll), so the expected points below stay those of two exercises however many notebook 00
    gets; every other notebook as it is (every exercise of every notebook is graded in course_run)."""
    folder.mkdir()
    for path in gc.SOLUTIONS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        if path == NB00:
            keep = {FIT, NLL, FIT + "-test", NLL + "-test"}
            nb.cells = [c for c in nb.cells if release.nbgrader(c).get("grade_id", FIT) in keep]
        nbformat.write(nb, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    if grading_sandbox.probe():
        pytest.skip(f"needs the bubblewrap sandbox: {grading_sandbox.probe()}")
    root = tmp_path_factory.mktemp("hostile")
    solutions = solutions_with_two_exercises_in_00(root / "solutions")
    folder, out, feedback = root / "submitted", root / "out" / "grades.csv", root / "out" / "feedback"
    folder.mkdir()
    out.parent.mkdir()
    places = {"package": grading.__file__, "solutions": str(NB00), "submissions": str(folder / "fair.ipynb"),
              "new in submissions": str(folder / f"{TOKEN}.ipynb"), "csv": str(out),
              "output folder": str(out.parent / TOKEN), "tmp": f"/tmp/{TOKEN}", "repository": str(gc.ROOT / TOKEN)}
    for name, spec in hostile_answers(places).items():
        edit = copied_twice if name == "fair.ipynb" else None
        gc.write(folder, name, gc.submission(spec["nb"], spec["answers"], edit=edit))
    write_special_files(folder)
    hosts_before = set(processes("grading_answer"))
    grades = grading.grade([folder], solutions, out=out, feedback=feedback, jobs=2, progress=False, sandbox="bwrap",
                           limits=grading.Limits(timeout=TIMEOUT, memory_mb=MEMORY_MB, output_limit=5000))
    return {g.student: g for g in grades}, out, feedback, places, folder, hosts_before


def points(grade) -> dict:
    return {r.grade_id: r.points for r in grade.results}


def reason(grade, grade_id) -> str:
    return next(r.reason for r in grade.results if r.grade_id == grade_id)


def output(grade, grade_id) -> str:
    return next(r.output for r in grade.results if r.grade_id == grade_id)


# ----------------------------------------------------------------------------- forged verdicts
def test_verdicts_cannot_be_forged_from_the_answers_process(hostile):
    g = hostile[0]["forges.ipynb"]  # gc, frames, descriptors; a TorchFunctionMode left on
    assert points(g) == {FIT: 0, NLL: 0}
    assert reason(g, FIT) == ("the answer wrote to the grading channel itself (what came back is not a message of "
                              "the grader's)")  # its forged verdict went to the only descriptor it has: the channel
    assert reason(g, NLL).startswith(WRONG_NLL_REASON)


def test_a_tensor_subclass_result_is_compared_as_plain_data(hostile):
    g = hostile[0]["memory_and_subclass.ipynb"]
    assert points(g)[NLL] == 0 and reason(g, NLL).startswith(WRONG_NLL_REASON)


# ----------------------------------------------------------------------------- the reference
def test_the_reference_reached_indirectly_earns_nothing(hostile):
    g = hostile[0]["reaches_reference.ipynb"]
    assert points(g) == {FIT: 0, NLL: 0}
    assert reason(g, FIT) == "calls the reference implementation lecture13.factorized.fit_bernoulli"
    assert reason(g, NLL) == ("FileNotFoundError: [Errno 2] No such file or directory: "  # its source is not in the sandbox
                              "'/lecture13-sandbox/pkg/lecture13/factorized.py'")
    g = hostile[0]["gan.ipynb"]  # a registry (gan.GENERATOR_LOSSES), a default argument's globals
    assert points(g) == {DLOSS: 0, "ex-optimal-discriminator": 3, GLOSS: 0, ITER: 6, "ex-mode-shares": 4}
    assert reason(g, GLOSS) == "calls the reference implementation lecture13.gan.generator_loss_nonsaturating"
    assert reason(g, DLOSS) == "calls the reference implementation lecture13.gan.discriminator_loss"


# ----------------------------------------------------------------------------- isolation
def test_no_file_outside_the_exercise_folder_can_be_written(hostile):
    grades, out, feedback, places, folder, _ = hostile
    g = grades["tampers_and_signals.ipynb"]
    assert points(g) == {FIT: 2, NLL: 2}  # the answers are right; their attacks failed harmlessly
    printed = output(g, FIT)
    assert "WROTE" not in printed and printed.count("blocked") == len(places)
    for place in places.values():
        path = Path(place)
        assert not (path.exists() and TOKEN in path.read_text(errors="replace")), place
    for tree in (gc.ROOT / "lecture13", folder, out.parent, Path("/tmp")):
        assert not [p for p in tree.rglob(f"*{TOKEN}*")], tree


def test_the_grader_cannot_be_signalled(hostile):
    g = hostile[0]["tampers_and_signals.ipynb"]
    assert "cannot signal the grader: ProcessLookupError" in output(g, NLL)


def test_an_answer_that_kills_everything_it_can_see_loses_only_that_exercise(hostile):
    g = hostile[0]["kills_its_sandbox.ipynb"]  # kill(-1): its host, hence its whole sandbox, dies; no one else's
    assert points(g) == {FIT: 0, NLL: 2}, g.reasons()  # the next exercise gets a new sandbox
    assert reason(g, FIT) == ("the answer's process ended before the tests finished (its sandbox was killed: did the "
                              "answer kill its parent?; os._exit()?)")


def test_fork_bombs_are_capped_and_daemons_do_not_survive(hostile):
    g = hostile[0]["forks.ipynb"]
    assert points(g) == {FIT: 2, NLL: 2}
    refused = re.search(r"fork refused after (\d+) children", output(g, FIT))
    assert refused and int(refused.group(1)) < 64


def test_memory_spread_over_child_processes_is_limited(hostile):
    g = hostile[0]["memory_and_subclass.ipynb"]
    assert points(g)[FIT] == 0 and reason(g, FIT) == f"memory limit exceeded ({MEMORY_MB} MB)"


def processes(marker: str) -> list[str]:
    """Processes whose command line or name (``comm``, 15 characters) carries ``marker``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if marker in cmdline or name == marker[:15]:
            found.append(pid)
    return found


def parent(pid: str) -> str:
    """The parent's pid ('0' once the process is gone): field 4 of /proc/PID/stat, after the name."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
    except (OSError, IndexError):
        return "0"


def descends_from(pid: str, ancestors: set[str]) -> bool:
    while pid not in ("0", "1"):
        pid = parent(pid)
        if pid in ancestors:
            return True
    return False


def other_test_workers() -> set[str]:
    """The other pytest-xdist workers (our siblings): a grader they run at the same time has answer
    hosts of its own, which are not this run's. An escaped host of this run is re-parented to init,
    so it never descends from them."""
    me, boss = str(os.getpid()), str(os.getppid())
    return {pid for pid in filter(str.isdigit, os.listdir("/proc")) if pid != me and parent(pid) == boss}


def test_no_process_of_an_answer_survives(hostile):
    assert not processes(TOKEN) and not processes(SLEEP_MARK)  # the daemon's and the fork bomb's marks
    others = other_test_workers()
    survivors = [pid for pid in processes("grading_answer")
                 if pid not in hostile[5] and not descends_from(pid, others)]
    assert not survivors, f"answer hosts of this run still alive: {survivors}"  # every answer host is gone


def test_a_host_left_alive_would_be_seen():
    """The check above can fail: a process named like a host, re-parented to init, is found."""
    marker = "grading_answer"
    child = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(60)  # {marker}"],
                             start_new_session=True)
    try:
        assert str(child.pid) in processes(marker)
        assert not descends_from(str(child.pid), other_test_workers())
    finally:
        child.kill()
        child.wait()


# ----------------------------------------------------------------------------- the batch
def test_special_and_malformed_files_get_their_row(hostile):
    grades = hostile[0]
    assert grades["deep.ipynb"].reasons() == "not valid notebook JSON (nested deeper than 200 levels)"
    assert grades["fifo.ipynb"].reasons() == "not a regular file (a FIFO, a device or a socket: refused)"
    assert grades["link_out.ipynb"].reasons() == "a symbolic link that leaves the submissions folder (refused)"
    assert points(grades["link_in.ipynb"]) == {FIT: 2, NLL: 2}
    numbers = grades["numbers.ipynb"]
    assert points(numbers) == {FIT: 0, NLL: 2} and reason(numbers, FIT) == "the answer cell's source is not text (refused)"


def test_the_batch_completes_with_a_valid_csv(hostile):
    grades, out, feedback, _, folder, _ = hostile
    rows = list(csv.DictReader(out.open(newline="")))
    assert len(rows) == len(grades) == len(list(folder.iterdir()))
    assert all(row["sandbox"] == "bwrap" for row in rows)
    for row in rows:
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", "".join(row.values())), row


# ----------------------------------------------------------------------------- clean output
def test_injection_cannot_forge_rows_or_headings(hostile):
    grades, out, feedback, _, _, _ = hostile
    g = grades["injection # Forged heading.ipynb"]
    assert points(g) == {FIT: 0, NLL: 2}
    assert reason(g, FIT) == "check 1 (no smoothing: the plain mean) raised ValueError: — # Full marks"
    report = (feedback / grading.feedback_filename(g.student)).read_text()
    outside = outside_fences(report)
    assert [line for line in outside if line.startswith("#")] == [
        "# Feedback: injection \\# Forged heading.ipynb",
        f"## ex\\-fit\\-bernoulli: check 1 \\(no smoothing: the plain mean\\) raised ValueError: — \\# Full marks"]
    assert [line for line in outside if line.startswith("|")][2:] == [  # no forged row
        "| ex\\-fit\\-bernoulli | 0 / 2 | check 1 \\(no smoothing: the plain mean\\) raised ValueError: — \\# Full marks |",
        "| ex\\-bernoulli\\-nll | 2 / 2 | passes (visible and hidden tests) |"]
    assert "\x1b" not in report and "\u202e" not in report and "\r" not in report


def outside_fences(markdown: str) -> list[str]:
    """The lines of a Markdown text that are not inside a fenced block (a fence closes only with
    a run of backticks at least as long as the one that opened it)."""
    lines, fence = [], None
    for line in markdown.splitlines():
        run = re.match(r"^(`{3,})", line)
        if fence is None and run:
            fence = run.group(1)
        elif fence is not None and run and len(run.group(1)) >= len(fence) and not line.strip("`"):
            fence = None
        elif fence is None:
            lines.append(line)
    return lines


# ----------------------------------------------------------------------------- fairness
def test_fair_to_correct_answers(hostile):
    grades = hostile[0]
    g = grades["fair.ipynb"]  # a module-level constant, a debug line on the notebook's data, a copied cell
    assert points(g) == {FIT: 2, NLL: 2}, g.reasons()
    assert "line 5 of the answer cell raised NameError" in output(g, FIT)


def test_a_sequential_of_a_named_ordered_dict_scores(hostile):
    g = hostile[0]["dcgan.ipynb"]
    assert points(g) == {BLOCK: 3, "ex-discriminator": 4, "ex-nearest-neighbours": 3, INTERP: 2,
                         "ex-frechet-distance": 4}, g.reasons()


def test_property_checks_still_see_what_the_answer_did(hostile):
    g = hostile[0]["gan_wrong_step.ipynb"]  # opt_d.step() after the generator's loss: D changes in G's step
    assert points(g) == {DLOSS: 2, "ex-optimal-discriminator": 3, GLOSS: 2, ITER: 0, "ex-mode-shares": 4}
    assert reason(g, ITER).startswith("check 3 failed: D's parameters changed after its k=3 steps")
