"""Time each notebook in solutions/ top to bottom in a fresh kernel, and measure the kernel's peak
resident memory (children included); write the section "Course: notebook run times" of
benchmarks/results.md (the same as ``python -m lecture13 bench --only notebooks [--notebooks ...]``,
which keeps the rows of the notebooks not re-run).

    python benchmarks/bench_notebooks.py                 # every notebook
    python benchmarks/bench_notebooks.py 00 01           # those whose names start so
"""
from __future__ import annotations

import sys
import tempfile
import shutil
from pathlib import Path

from lecture13.bench import NOTEBOOK_MEMORY_TARGET_MB
from lecture13.benchmarking import REPO_ROOT, markdown_table, run_notebook, write_section

TARGETS = {"00": 60}   # seconds; every other notebook: 90 (COURSE.md, issues 3-7)
DEFAULT_TARGET = 90


def time_notebooks(prefixes: list[str] | None = None) -> list[dict]:
    rows = []
    for path in sorted((REPO_ROOT / "solutions").glob("*.ipynb")):
        if prefixes and not any(path.name.startswith(p) for p in prefixes):
            continue
        with tempfile.TemporaryDirectory() as tmp:  # run a copy: the source keeps its stored outputs
            copy = Path(tmp) / path.name
            shutil.copy(path, copy)
            run = run_notebook(copy, store=False, cwd=REPO_ROOT / "solutions")
        seconds, target = run.seconds, TARGETS.get(path.name[:2], DEFAULT_TARGET)
        memory = None if run.peak_rss_bytes is None else round(run.peak_rss_bytes / 1e6)
        rows.append({"notebook": path.name, "seconds": round(seconds, 1), "target_s": target,
                     "within_target": seconds <= target, "peak_memory_mb": memory})
        print(f"{path.name}: {seconds:.1f} s (target ≤ {target} s), kernel peak "
              f"{'not measured (no /proc)' if memory is None else f'{memory} MB'} (target ≤ {NOTEBOOK_MEMORY_TARGET_MB} MB)", flush=True)
    return rows


def main(argv: list[str]) -> None:
    from lecture13 import bench

    command = "python benchmarks/bench_notebooks.py" + (" " + " ".join(argv) if argv else "")
    bench.run(["notebooks"], bench.Sizes(notebooks=argv or None), command=command)


if __name__ == "__main__":
    main(sys.argv[1:])
