"""Measured numbers go to one results file: ``benchmarks/results.md`` (and ``results.json``).

Each benchmark owns a *section* and rewrites only that section, so benchmarks of different
model families can be re-run independently. Every section records the machine it ran on, the
date and the command that produced it; tests never assert on these times.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_MD = REPO_ROOT / "benchmarks" / "results.md"
RESULTS_JSON = REPO_ROOT / "benchmarks" / "results.json"
TITLE = "# Measured results\n\nWritten by the benchmarks in `benchmarks/` (see each section's command). " \
        "Times are wall-clock on the machine named in the section.\n"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    load = f", load average {os.getloadavg()[0]:.1f} at the time" if hasattr(os, "getloadavg") else ""
    return (f"{os.cpu_count()} CPU cores ({cpu}){gpu}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}{load}")


def write_section(name: str, markdown: str, data: dict, command: str,
                  md_path: Path = RESULTS_MD, json_path: Path = RESULTS_JSON) -> None:
    """Replace section ``name`` of the results files with ``markdown`` / ``data``."""
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    body = (f"<!-- section:{name} -->\n## {name}\n\n*Measured {stamp} on {machine()}; command: `{command}`*\n\n"
            f"{markdown.strip()}\n<!-- /section:{name} -->\n")
    md_path.parent.mkdir(parents=True, exist_ok=True)
    text = md_path.read_text() if md_path.exists() else TITLE
    pattern = re.compile(rf"<!-- section:{re.escape(name)} -->.*?<!-- /section:{re.escape(name)} -->\n", re.S)
    text = pattern.sub(lambda _: body, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + body
    md_path.write_text(text)
    results = json.loads(json_path.read_text()) if json_path.exists() else {}
    results[name] = {"measured": stamp, "machine": machine(), "command": command, **data}
    json_path.write_text(json.dumps(dict(sorted(results.items())), indent=2) + "\n")


@dataclass
class NotebookRun:
    seconds: float
    peak_rss_bytes: int | None   # the kernel's resident memory at its peak, children included (None: no /proc)


def run_notebook(path: str | Path, store: bool = False, timeout: int = 600, cwd: str | Path | None = None) -> NotebookRun:
    """Run a notebook top to bottom in a fresh kernel of this environment: the seconds it took and the
    kernel's peak resident memory (see :class:`PeakMemory`). With ``store`` the executed notebook
    (with outputs) is written back."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd or path.parent)}})
    with PeakMemory() as memory:
        started = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - started
    if store:
        for cell in nb.cells:
            cell.metadata.pop("execution", None)
        nbformat.write(nb, path)
    return NotebookRun(seconds, memory.peak_bytes)


def execute_notebook(path: str | Path, store: bool = False, timeout: int = 600, cwd: str | Path | None = None) -> float:
    """:func:`run_notebook`, returning only the seconds it took."""
    return run_notebook(path, store=store, timeout=timeout, cwd=cwd).seconds


class PeakMemory:
    """The peak resident memory of the processes this process starts while in the ``with`` block (a
    notebook's kernel and whatever the kernel starts), in bytes: the largest sum of their resident
    sets, sampled every ``interval`` seconds from /proc, or the largest high-water mark one of them
    reached (VmHWM, which catches a peak between two samples), whichever is more. ``peak_bytes`` is
    None where there is no /proc (macOS, Windows)."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak_bytes = interval, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "PeakMemory":
        if Path("/proc/self/status").exists():
            self.peak_bytes = 0
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()

    def _watch(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                self.sample()
                return

    def sample(self) -> None:
        total = 0
        for pid in descendants(os.getpid()):
            rss, hwm = _resident(pid)
            total += rss
            self.peak_bytes = max(self.peak_bytes, hwm)
        self.peak_bytes = max(self.peak_bytes, total)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()   # the name, in parentheses, may hold spaces
        except (OSError, IndexError):
            continue                                          # it ended while we looked
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children.get(child, [])
    return found


def _resident(pid: int) -> tuple[int, int]:
    """(resident set now, its high-water mark) of a process in bytes; (0, 0) once it has ended."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(value.split()[0]) * 1024    # reported in kB
    except (OSError, ValueError):
        return 0, 0
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """Rows as a Markdown table; the columns are every key of the rows, in order of appearance."""
    columns = columns or list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)
