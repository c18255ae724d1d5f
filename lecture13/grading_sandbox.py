"""The OS sandbox of the student's process: bubblewrap, where it works.

``sandbox_command(home)`` builds the command that starts an answer host
(:mod:`lecture13.grading_answer`) inside ``bwrap`` with

* a read-only view of the system (``/usr``, ``/etc``, the Python installation and its packages)
  and of a copy of the package's ``*.py`` files, which the worker deletes as soon as the host has
  loaded them (so the reference implementations cannot be re-executed from their source);
* nothing of the repository, the instructor's ``solutions/``, the submissions or the output folder;
* one writable directory, where the worker makes each exercise's temporary directory;
* no network, its own PID, IPC and UTS namespaces (no process of the grader can be seen or
  signalled; every process of an exercise is ended with it), a fresh ``/proc`` and ``/dev``;
* an unprivileged user: the current one (in a user namespace of its own), or, when the grader
  runs as root, a user id of the worker's own (so the process limit, ``RLIMIT_NPROC``, applies:
  root is exempt from it, and one sandbox's processes do not count against another's).

Where bubblewrap cannot run (macOS, no user namespaces) :func:`probe` says why in one line and
the grader uses its plain isolation (separate processes, limits, a temporary directory).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

MODES = ("auto", "bwrap", "none")
INSIDE = Path("/lecture13-sandbox")  # where the package copy and the work directory appear inside


def sandbox_uid() -> int:
    """The unprivileged user a root grader runs the answers of this worker as: one of its own per
    worker (the process limit counts per user: a fork bomb in one sandbox must not starve another)."""
    return 100_000 + os.getpid() % 100_000


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def _python_roots() -> list[Path]:
    """What the interpreter needs: its installation (base prefix) and the environment (prefix),
    and the real location of the executable (a symlinked venv points elsewhere)."""
    roots = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(sys.executable).resolve().parent.parent}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(Path(path).resolve())
    kept = []
    for root in sorted(roots, key=lambda p: len(p.parts)):
        if not any(root == k or k in root.parents for k in kept) and root != Path("/"):
            kept.append(root)
    return [r for r in kept if not any(str(r).startswith(s) for s in ("/usr/", "/etc/"))]


def system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


def parents(path: Path, made: set[Path]) -> list[str]:
    """Directories above a mount point, made world-readable (bwrap would make them 0700, which
    the sandbox's unprivileged user could not cross)."""
    args = []
    for parent in reversed(path.parents):
        if parent != Path("/") and parent not in made:
            made.add(parent)
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def drops_to_nobody() -> bool:
    return os.geteuid() == 0


def sandbox_command(home: Path, python_args: list[str]) -> list[str]:
    """The ``bwrap`` command for an answer host whose package copy is ``home/pkg`` and whose
    writable directory is ``home/work``."""
    args = [bwrap_path() or "bwrap", "--die-with-parent", "--new-session",
            "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--tmpfs", "/"]
    args += system_binds()
    made: set[Path] = set()
    for root in _python_roots():
        args += parents(root, made) + ["--ro-bind", str(root), str(root)]
    args += parents(INSIDE / "pkg", made) + ["--ro-bind", str(home / "pkg"), str(INSIDE / "pkg"),
                                           "--bind", str(home / "work"), str(INSIDE / "work"), "--dev", "/dev", "--proc", "/proc", "--remount-ro", "/", "--chdir", str(INSIDE / "work"),
             "--clearenv"]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(INSIDE / "pkg"), "HOME": str(INSIDE / "work"),
           "TMPDIR": str(INSIDE / "work" / ".startup"), "MPLCONFIGDIR": str(INSIDE / "work" / ".startup"),
           "LECTURE13_GRADING": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "PYTHONDONTWRITEBYTECODE": "1", "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1", "PYTHONNOUSERSITE": "1",
           "USER": "student", "LOGNAME": "student"}  # the sandbox's user has no passwd entry
    for key, value in env.items():
        args += ["--setenv", key, value]
    python = [sys.executable, *python_args]
    if drops_to_nobody():
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", setpriv, f"--reuid={sandbox_uid()}",
                 f"--regid={sandbox_uid()}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    else:
        args += ["--unshare-user"]
    return args + python


def prepare_home(home: Path) -> None:
    """``home/pkg/lecture13``: a copy of the package's Python files (its subpackages' too); ``home/work``: writable by
    the sandbox's user."""
    package = Path(__file__).resolve().parent
    target = home / "pkg" / "lecture13"
    target.mkdir(parents=True)
    for path in package.glob("*.py"):
        shutil.copy2(path, target / path.name)
    for path in package.glob("*.json"):
        shutil.copy2(path, target / path.name)
    for init in package.glob("*/__init__.py"):   # subpackages (lecture13.checks): their Python files
        (target / init.parent.name).mkdir()
        for path in init.parent.glob("*.py"):
            shutil.copy2(path, target / init.parent.name / path.name)
    (home / "work").mkdir()
    (home / "work" / ".startup").mkdir()
    for path in [home, home / "pkg", home / "work", target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    if drops_to_nobody():  # only the host's start-up cache is writable, and the exercise folders later
        os.chown(home / "work" / ".startup", sandbox_uid(), sandbox_uid())


def seal(home: Path) -> None:
    """Once the host has loaded the package: the sandbox then sees an empty, read-only package
    folder, and (as root) nothing writable but the exercise folders made later."""
    shutil.rmtree(home / "pkg" / "lecture13", ignore_errors=True)
    if drops_to_nobody():
        cache = home / "work" / ".startup"
        for path in [cache, *cache.rglob("*")]:
            os.chown(path, 0, 0, follow_symlinks=False)


def make_exercise_dir(home: Path, name: str) -> tuple[Path, Path]:
    """(the folder outside, the same folder as the sandbox sees it)."""
    outside = home / "work" / name
    outside.mkdir()
    if drops_to_nobody():
        os.chown(outside, sandbox_uid(), sandbox_uid())
    return outside, INSIDE / "work" / name


def clear_work(home: Path) -> None:
    """After each exercise: nothing it wrote survives, in its folder or anywhere else the sandbox's
    user could write (where the grader is not root, that user owns the whole work folder)."""
    work = home / "work"
    for path in (work.iterdir() if work.is_dir() else []):
        if path.name == ".startup":
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


_probed: dict[str, str] = {}


def probe() -> str:
    """"" when bubblewrap can run the sandbox here, else one line saying why not."""
    if "result" in _probed:
        return _probed["result"]
    if sys.platform != "linux":
        why = f"bubblewrap needs Linux (this is {sys.platform})"
    elif bwrap_path() is None:
        why = "bubblewrap (bwrap) is not installed (Debian/Ubuntu: sudo apt-get install bubblewrap)"
    else:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="lecture13-probe-") as tmp:
            home = Path(tmp)
            (home / "pkg").mkdir()
            (home / "work").mkdir()
            if drops_to_nobody():
                os.chmod(home, 0o755)
                os.chown(home / "work", sandbox_uid(), sandbox_uid())
            command = sandbox_command(home, ["-c", "import os, sys; open('probe', 'w').write('ok'); print(os.getpid())"])
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=60)
                ok = done.returncode == 0 and (home / "work" / "probe").exists()
                why = "" if ok else f"bubblewrap cannot run here ({(done.stderr or done.stdout).strip()[:200] or done.returncode})"
            except (OSError, subprocess.TimeoutExpired) as err:
                why = f"bubblewrap cannot run here ({err})"
    _probed["result"] = why
    return why


def choose(mode: str) -> tuple[str, str]:
    """(the mode used, "bwrap" or "none"; the line to print when it is not the sandbox)."""
    if mode not in MODES:
        raise ValueError(f"--sandbox must be one of {', '.join(MODES)}")
    if mode == "none":
        return "none", "sandbox: none (--sandbox none): answers run as separate, limited processes without an OS sandbox"
    why = probe()
    if not why:
        return "bwrap", ""
    if mode == "bwrap":
        raise RuntimeError(f"--sandbox bwrap: {why}")
    return "none", f"sandbox: none ({why}); answers run as separate, limited processes without an OS sandbox"
