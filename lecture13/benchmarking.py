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
import time
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


def execute_notebook(path: str | Path, store: bool = False, timeout: int = 600, cwd: str | Path | None = None) -> float:
    """Run a notebook top to bottom in a fresh kernel of this environment; return the seconds
    it took. With ``store`` the executed notebook (with outputs) is written back."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd or path.parent)}})
    started = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - started
    if store:
        for cell in nb.cells:
            cell.metadata.pop("execution", None)
        nbformat.write(nb, path)
    return seconds


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)
