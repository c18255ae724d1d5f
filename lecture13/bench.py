"""``python -m lecture13 bench``: measure everything the course promises, into benchmarks/results.md.

    python -m lecture13 bench                          # everything (long: runs every notebook)
    python -m lecture13 bench --quick                  # tiny sizes, seconds; no notebook is run
    python -m lecture13 bench --only sampling comparison
    python -m lecture13 bench --quick --out-dir /tmp/b # write results.md/json elsewhere (the tests do)

Each part writes its own section through :func:`lecture13.benchmarking.write_section` (which adds
the machine, its load and the date), as soon as it is measured:

* ``notebooks``   every notebook of solutions/ run headless in a fresh kernel (a temporary copy,
                  by benchmarks/bench_notebooks.py): its time and the kernel's peak resident memory,
                  and the course total;
* ``training``    training throughput of every recipe in images/s: each recipe's own ``fit`` run
                  for a few steps and then for more steps, side by side in this process; the
                  difference of the two runs cancels the fixed costs (loading data, evaluation);
* ``sampling``    PixelCNN: naive vs cached sampler, same uniforms, at 64 images;
* ``comparison``  notebook 06's numbers (:func:`lecture13.comparison.measure`, the notebook's settings);
* ``grading``     submissions graded per minute (benchmarks/bench_grading.py, which calls
                  :func:`lecture13.grading.grade`);
* ``browser``     the browser tests (``pytest -m browser``: every student notebook run in JupyterLab
                  in Chromium, every widget panel moved), per test and in all (benchmarks/bench_browser.py);

and last "Targets": every target with the value measured for it, met or NOT MET.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shlex
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from . import comparison
from .benchmarking import REPO_ROOT, RESULTS_JSON, RESULTS_MD, markdown_table, write_section
from .checkpoints import read_manifest

PARTS = ("notebooks", "training", "sampling", "comparison", "grading", "browser")
NOTEBOOK_TARGET_S, FIRST_NOTEBOOK_TARGET_S, COURSE_TARGET_S, SAMPLER_TARGET = 90, 60, 8 * 60, 20
NOTEBOOK_MEMORY_TARGET_MB = 1500   # each kernel's resident peak (decimal MB): Binder gives 1-2 GB
SECTIONS = {"notebooks": "Course: notebook run times", "training": "Training throughput",
            "sampling": "PixelCNN sampling: naive vs cached", "comparison": "Model comparison (notebook 06)",
            "grading": "Grading throughput", "browser": "Browser tests (JupyterLab in Chromium)",
            "targets": "Targets"}


@dataclass
class Sizes:
    """How big each measurement is: :data:`FULL` for the record, :data:`QUICK` for tests."""

    notebooks: list[str] | None = None        # prefixes of solutions/ notebooks to run; None: all, []: none
    train_steps: tuple[int, int] = (5, 25)     # two runs of each recipe's fit; throughput from their difference
    recipes: tuple[str, ...] | None = None     # None: every registered recipe
    sampler_images: int = 64
    sampler_size: tuple[int, int] = (28, 28)
    comparison: comparison.Settings = field(default_factory=lambda: comparison.NOTEBOOK)
    grading_copies: tuple[int, ...] = (20, 100)  # class sizes
    grading_jobs: int = 2
    grading_largest: bool = True               # also the notebook with the most exercises
    quick: bool = False


FULL = Sizes()
QUICK = Sizes(notebooks=[], train_steps=(1, 2), recipes=("factorized", "pixelcnn", "vae"), sampler_images=4, sampler_size=(8, 8), comparison=comparison.QUICK,
              grading_copies=(1,), grading_jobs=1, grading_largest=False, quick=True)


def bench_script(name: str):
    """Import ``benchmarks/<name>.py`` (the scripts are not a package) so their functions are reused."""
    path = REPO_ROOT / "benchmarks" / f"{name}.py"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the bench from a checkout of the repository")
    spec = importlib.util.spec_from_file_location(f"lecture13_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- notebooks
def measure_notebooks(sizes: Sizes, previous=None) -> tuple[str, dict]:
    """Run the notebooks; with ``--notebooks`` only those, keeping the other rows of the previous
    run (each row says when it was measured), so the course total stays complete."""
    if sizes.notebooks == []:
        return ("*Not run in `--quick` mode (no notebook is executed); run `python -m lecture13 bench --only notebooks`.*",
                {"skipped": True, "rows": [], "total_seconds": 0.0, "course_target_s": COURSE_TARGET_S})
    stamp = time.strftime("%Y-%m-%d %H:%M")
    fresh = [{**r, "measured": stamp} for r in bench_script("bench_notebooks").time_notebooks(sizes.notebooks)]
    present = sorted(p.name for p in (REPO_ROOT / "solutions").glob("*.ipynb"))
    before = previous() if callable(previous) else (previous or {})  # read after the (long) run, not before
    kept = [r for r in before.get("rows", [])
            if sizes.notebooks is not None and r["notebook"] in present and r["notebook"] not in {f["notebook"] for f in fresh}]
    rows = sorted(fresh + kept, key=lambda r: r["notebook"])
    total = round(sum(r["seconds"] for r in rows), 1)
    complete = [r["notebook"] for r in rows] == present
    md = (markdown_table(rows) + f"\n\nCourse total: **{total:.1f} s** for {len(rows)} notebook(s)"
          + (f" (target ≤ {COURSE_TARGET_S} s: {'met' if total <= COURSE_TARGET_S else 'NOT MET'})." if complete
             else " (not every notebook of solutions/ has a time: no course total)."))
    md += ("\n\nEach notebook of `solutions/` runs top to bottom in a fresh kernel (a temporary copy, so the "
           "stored outputs are untouched). Targets: ≤ 90 s each, ≤ 60 s for notebook 00, ≤ 8 minutes in all. "
           "`peak_memory_mb`: the kernel's resident memory at its peak, the processes it starts included "
           "(sampled every 0.05 s from /proc, or the kernel's own high-water mark if higher; decimal MB), "
           f"target ≤ {NOTEBOOK_MEMORY_TARGET_MB} MB each, so a notebook fits Binder's 1-2 GB; — where not measured.")
    return md, {"skipped": False, "rows": rows, "total_seconds": total, "complete": complete,
                "course_target_s": COURSE_TARGET_S}


# --------------------------------------------------------------------------- training throughput
def recipe_options(name: str, steps: int) -> tuple[dict, dict]:
    """``(options, model_overrides)`` for a short run of a recipe's ``fit``: the recipe's defaults,
    the shipped checkpoint's batch size and architecture where one is shipped, the embedded subset."""
    from .checkpoints import CheckpointError, pretrained
    from .recipes import get_recipe

    recipe = get_recipe(name)
    options = {"epochs": 1, "batch_size": 128, "lr": 1e-3, "seed": 0, **recipe.defaults}
    overrides = {}
    try:
        _, meta = pretrained(name, with_meta=True)
        shipped = meta.get("options", {})
        options.update({k: shipped[k] for k in ("batch_size", "k") if k in shipped})
        overrides = meta.get("model_overrides", {}) or {}
    except CheckpointError:
        pass
    for key in ("minutes", "snapshot", "time_budget_s"):
        options.pop(key, None)
    options.update(epochs=1, max_steps=steps, subset="embedded", device="cpu", progress=False)
    return options, overrides


def images_per_step(name: str, options: dict) -> int:
    if name == "factorized":  # closed form: its one "step" is a pass over the training subset
        return 10_000
    return options["batch_size"] * int(options.get("k", 1))


@contextlib.contextmanager
def working_directory(path):
    """``contextlib.chdir`` for Python 3.10."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def time_fit(name: str, steps: int) -> tuple[float, int]:
    """Wall-clock seconds of ``recipe.fit`` for ``steps`` steps, and the steps it took. Runs in a
    temporary directory, so snapshots a recipe writes (runs/NAME.partial.pt) touch nothing real."""
    from .recipes import get_recipe
    from .training import seed_everything

    recipe = get_recipe(name)
    options, overrides = recipe_options(name, steps)
    seed_everything(0)
    model = recipe.build(**overrides)
    with tempfile.TemporaryDirectory() as tmp, working_directory(tmp), contextlib.redirect_stdout(None):
        started = time.perf_counter()
        history = recipe.fit(model, options)
        seconds = time.perf_counter() - started
    return seconds, len(history.steps)


def measure_training(sizes: Sizes, previous: dict | None = None) -> tuple[str, dict]:
    from .recipes import RECIPES, import_families

    import_families()
    few, more = sizes.train_steps
    rows = []
    for name in sorted(RECIPES) if sizes.recipes is None else sizes.recipes:
        options, _ = recipe_options(name, more)
        time_fit(name, few)  # warm-up: the first run of a recipe in a process pays one-off costs
        t_few, s_few = time_fit(name, few)
        t_more, s_more = time_fit(name, more)
        per_step = images_per_step(name, options)
        if s_more > s_few and t_more > t_few:
            ips = (s_more - s_few) * per_step / (t_more - t_few)
        else:  # one step whatever max_steps is (closed form), or too few steps to tell: the longer run
            ips = s_more * per_step / t_more
        rows.append({"recipe": name, "images_per_step": per_step, "steps_short": s_few, "steps_long": s_more,
                     "seconds_short": round(t_few, 2), "seconds_long": round(t_more, 2), "images_per_s": round(ips, 1)})
        print(f"training {name}: {ips:,.0f} images/s", flush=True)
    md = (markdown_table(rows) + f"\n\nEach recipe's own `fit` (the code `python -m lecture13 train` runs, on the "
          f"embedded subset, the shipped checkpoint's architecture and batch size) runs {few} steps (once to warm up, "
          f"once timed) and then {more} steps; "
          "images/s = (difference in images) / (difference in seconds), which cancels the fixed costs (loading the data, "
          "the evaluation some recipes run after an epoch). The factorized model has a closed form: one pass over "
          "10,000 images. All recipes were measured one after the other in one process.")
    return md, {"rows": rows, "steps": [few, more]}


# --------------------------------------------------------------------------- sampling
def measure_sampling(sizes: Sizes, previous: dict | None = None) -> tuple[str, dict]:
    from .autoregressive import PixelCNN
    from .checkpoints import CheckpointError, pretrained

    try:
        model, weights = pretrained("pixelcnn"), "the shipped pixelcnn"
    except CheckpointError:
        model, weights = PixelCNN().eval(), "an untrained PixelCNN() (not shipped yet; the cost does not depend on the weights)"
    config = model.config
    result = comparison.naive_vs_fast(model, sizes.sampler_images, seed=0, naive_rows=None, size=sizes.sampler_size)
    at_target = sizes.sampler_images >= 64 and tuple(sizes.sampler_size) == (28, 28)
    row = {"images": result["images"], "size": "×".join(map(str, result["size"])), "naive_s": round(result["naive_s"], 2),
           "fast_s": round(result["fast_s"], 3), "ratio": round(result["ratio"], 1), "same_samples": result["same_samples"]}
    verdict = ("met" if result["ratio"] >= SAMPLER_TARGET else "NOT MET") if at_target else "not at the target size (quick mode)"
    md = (markdown_table([row]) + f"\n\nModel: {weights}, config {config}. Both samplers use the same uniforms; the naive "
          f"one runs the whole network for every pixel, the cached one only the new position. Target: cached ≥ "
          f"{SAMPLER_TARGET}× faster at 64 images: **{verdict}**.")
    print(f"sampling: naive {result['naive_s']:.1f} s, cached {result['fast_s']:.2f} s, {result['ratio']:.0f}×", flush=True)
    return md, {**row, "weights": weights, "at_target_size": at_target, "target_ratio": SAMPLER_TARGET}


# --------------------------------------------------------------------------- notebook 06
def measure_comparison(sizes: Sizes, previous: dict | None = None) -> tuple[str, dict]:
    settings = sizes.comparison
    models = comparison.load()
    result = comparison.measure(models, settings)
    data = {"settings": vars(settings), "models": result.rows, "sampler": result.sampler,
            "references": result.references, "sharpness": result.sharpness, "claims": comparison.claims(result),
            "not_shipped": [c.name for c in comparison.CONTENDERS if c.name not in models]}
    md = comparison.markdown(result)
    marks = {True: "holds", False: "**does not hold**", None: "undecided"}
    md += "\n\nThe lecture's claims, checked against these numbers:\n\n" + "\n".join(
        f"* {c['claim']}: {marks[c['holds']]} ({c['evidence']})" for c in data["claims"])
    md += (f"\n\nSettings: {settings.test_images} test images of the embedded subset, K = {settings.iw_k} importance "
           f"samples, likelihoods {settings.likelihood}, {settings.samples} samples per model timed (seed {settings.seed}) and "
           f"{settings.quality_samples:,} scored for quality, PixelCNN naive sampler timed on "
           f"{settings.naive_rows or 'all'} row(s) and extrapolated (see the sampling section for the full measurement).")
    if data["not_shipped"]:
        md += f"\n\nNot shipped yet, left out: {', '.join(data['not_shipped'])}."
    if result.row("dcgan") is not None and result.references:
        newcomers = comparison.NEWCOMERS if not sizes.quick else tuple(
            comparison.Newcomer(c.name, c.label, c.sampler, c.bank, timed=1) for c in comparison.NEWCOMERS)
        beyond = comparison.measure_beyond(result, newcomers)
        data["beyond"] = {"rows": beyond.rows, "claims": comparison.beyond_claims(beyond)}
        md += ("\n\n**Notebook 07's families** (notebook 06, section 12): the flow on 2-D points, the DDPM's bound on "
               "other data than the table above (so neither is ranked against it); the DDPM's sample banks scored by the "
               "same protocol as the DCGAN:\n\n" + comparison.beyond_markdown(beyond) + "\n\n" + "\n".join(
                   f"* {c['claim']}: {marks[c['holds']]} ({c['evidence']})" for c in data["beyond"]["claims"]))
    return md, data


# --------------------------------------------------------------------------- grading
def measure_grading(sizes: Sizes, previous: dict | None = None) -> tuple[str, dict]:
    """benchmarks/bench_grading.py's measurement: each class size with the sandbox and without."""
    script = bench_script("bench_grading")
    md, data = script.measure(list(sizes.grading_copies), sizes.grading_jobs, sizes.grading_largest, quick=sizes.quick)
    for row in data["rows"]:
        print(f"grading {row['notebook']} ({row['copies']} copies, sandbox {row['sandbox']}): "
              f"{row['submissions_per_minute']} submissions/min", flush=True)
    return md, data


# --------------------------------------------------------------------------- browser tests
def measure_browser(sizes: Sizes, previous: dict | None = None) -> tuple[str, dict]:
    if sizes.quick:
        note = ("*Not run in `--quick` mode (it runs every notebook in a browser); run "
                "`python -m lecture13 bench --only browser`.*")
        return note, {"skipped": True, "rows": []}
    result = bench_script("bench_browser").time_browser_tests()
    md = (markdown_table(result["rows"]) + f"\n\nIn all: **{result['wall_seconds']:.1f} s** for "
          f"`pytest -m browser` ({len(result['rows'])} tests), JupyterLab and Chromium start-up included. Each "
          "notebook test opens the student notebook in JupyterLab, runs all cells, checks every output, figure "
          "and widget, and moves every control of its widget panels; the planted-panel tests show the panel check "
          "catches a callback that throws and one that ignores its control. Load average above 2: times pessimistic.")
    return md, {"skipped": False, **result}


# --------------------------------------------------------------------------- targets
# The shipped models' targets, checked against what each checkpoint recorded on the full test set
# when `python -m lecture13 train NAME --ship` made it: (model, target, metric, goal, higher is better, format).
CHECKPOINT_TARGETS = (
    ("gated_pixelcnn", "Gated PixelCNN NLL ≤ 95 nats (full test set)", "nll_nats", 95.0, False, "{:.1f} nats"),
    ("pixelvae", "VAE, 32-d latent, PixelVAE decoder: −L_1000 ≤ 108 nats (full test set)", "iw_nll_k1000", 108.0, False, "{:.1f} nats"),
    ("vae", "VAE, 32-d latent, factorized decoder: −L_1000 ≤ 108 nats (full test set)", "iw_nll_k1000", 108.0, False, "{:.1f} nats"),
    ("classifier", "feature classifier accuracy ≥ 0.90 (full test set)", "accuracy", 0.90, True, "{:.4f}"),
)
CHECKPOINT_MAX_BYTES = 5_000_000   # "under 5 MB", decimal megabytes


def checkpoint_targets(manifest: dict[str, dict]) -> list[dict]:
    """The targets on the shipped weights, from the manifest: a missing model or metric is "not
    measured" (None), never silently met."""
    rows = []
    for name, target, metric, goal, higher, fmt in CHECKPOINT_TARGETS:
        value = manifest.get(name, {}).get("metrics", {}).get("full_test", {}).get(metric)
        rows.append({"target": target,
                     "measured": "not shipped" if value is None else fmt.format(value) + " (recorded by the checkpoint)",
                     "met": None if value is None else bool(value >= goal if higher else value <= goal)})
    if manifest:
        largest = max(manifest, key=lambda n: manifest[n]["bytes"])
        rows.append({"target": "every shipped checkpoint < 5 MB",
                     "measured": f"largest: {largest}, {manifest[largest]['bytes'] / 1e6:.2f} MB",
                     "met": manifest[largest]["bytes"] < CHECKPOINT_MAX_BYTES})
    return rows


def memory_target(rows: list[dict], complete: bool) -> dict:
    """Every notebook's kernel under the memory target: NOT MET as soon as one measured kernel is over;
    "not measured" (None) while a notebook has no measurement, never met by default."""
    measured = [r for r in rows if r.get("peak_memory_mb") is not None]
    over = [r for r in measured if r["peak_memory_mb"] > NOTEBOOK_MEMORY_TARGET_MB]
    largest = max(measured, key=lambda r: r["peak_memory_mb"], default=None)
    text = f"largest: {largest['notebook']}, {largest['peak_memory_mb']} MB" if largest else "no notebook measured"
    if len(measured) < len(rows) or not complete:
        text += f" ({len(measured)} notebook(s) measured; `python -m lecture13 bench --only notebooks` measures all)"
    met = False if over else (True if measured and len(measured) == len(rows) and complete else None)
    return {"target": f"every notebook's kernel ≤ {NOTEBOOK_MEMORY_TARGET_MB} MB resident at its peak",
            "measured": text, "met": met}


def targets(results: dict, manifest: dict[str, dict] | None = None) -> list[dict]:
    """Every target of the course with the value measured for it (from the results JSON, and for the
    shipped weights from ``manifest``, by default the package's own)."""
    rows = []
    nb = results.get(SECTIONS["notebooks"], {})
    for r in nb.get("rows", []):
        target = FIRST_NOTEBOOK_TARGET_S if r["notebook"].startswith("00") else NOTEBOOK_TARGET_S
        rows.append({"target": f"{r['notebook']} ≤ {target} s", "measured": f"{r['seconds']} s",
                     "met": r["seconds"] <= target})
    if nb.get("complete"):
        rows.append({"target": f"whole course ≤ {COURSE_TARGET_S} s", "measured": f"{nb['total_seconds']} s",
                     "met": nb["total_seconds"] <= COURSE_TARGET_S})
    if nb.get("rows"):
        rows.append(memory_target(nb["rows"], complete=bool(nb.get("complete"))))
    sampling = results.get(SECTIONS["sampling"], {})
    if "ratio" in sampling:
        rows.append({"target": f"PixelCNN cached sampler ≥ {SAMPLER_TARGET}× naive at 64 images",
                     "measured": f"{sampling['ratio']}× at {sampling['images']} images ({sampling['size']})",
                     "met": bool(sampling["ratio"] >= SAMPLER_TARGET) if sampling["at_target_size"] else None})
    grading = results.get(SECTIONS["grading"], {})
    if grading.get("slowest_at_target"):
        slowest = grading["slowest_at_target"]
        rows.append({"target": f"grading with the sandbox ≥ {grading['target_per_minute']} submissions/min "
                               f"(class of {grading['target_class']})",
                     "measured": f"{slowest['submissions_per_minute']} per minute ({slowest['notebook']})",
                     "met": bool(grading["met"])})
    return rows + checkpoint_targets(read_manifest() if manifest is None else manifest)


def write_targets(md_path: Path, json_path: Path, command: str) -> list[dict]:
    results = json.loads(json_path.read_text()) if json_path.exists() else {}
    rows = targets(results)
    for row in rows:
        row["met"] = {True: "yes", False: "NOT MET", None: "not measured"}[row["met"]]
    md = markdown_table(rows) if rows else "*No target measured yet.*"
    md += ("\n\nRead from the sections above (each says when and on what machine it was measured) and, for the "
           "shipped weights, from `lecture13/weights/manifest.json`: the full-test metrics each checkpoint recorded "
           "when `python -m lecture13 train NAME --ship` made it. A target not "
           "met is listed as NOT MET; the machine was shared with other jobs when the load average in a section's "
           "header is above its core count, so times are then pessimistic.")
    write_section(SECTIONS["targets"], md, {"rows": rows}, command, md_path=md_path, json_path=json_path)
    return rows


# --------------------------------------------------------------------------- the command
MEASURE = {"notebooks": measure_notebooks, "training": measure_training, "sampling": measure_sampling,
           "comparison": measure_comparison, "grading": measure_grading, "browser": measure_browser}


def run(parts=PARTS, sizes: Sizes = FULL, md_path: Path = RESULTS_MD, json_path: Path = RESULTS_JSON,
        command: str = "python -m lecture13 bench") -> dict[str, str]:
    """Measure ``parts`` and write each section as soon as it is measured; return ``{part: "ok" | error}``."""
    status = {}
    for part in parts:
        started = time.perf_counter()
        print(f"== {part}", flush=True)
        try:
            def previous(name=SECTIONS[part]) -> dict:  # read when needed: another bench may have written meanwhile
                return json.loads(json_path.read_text()).get(name, {}) if json_path.exists() else {}

            md, data = MEASURE[part](sizes, previous)
            status[part] = "ok"
        except Exception as err:  # one broken part must not lose the others
            traceback.print_exc()
            md, data = f"**Not measured**: {type(err).__name__}: {err}", {"error": f"{type(err).__name__}: {err}"}
            status[part] = data["error"]
        if sizes.quick:
            md = "*Quick mode (`--quick`): tiny sizes, for testing the command; not a measurement to quote.*\n\n" + md
        data = {**data, "quick": sizes.quick, "bench_seconds": round(time.perf_counter() - started, 1)}
        write_section(SECTIONS[part], md, data, command, md_path=md_path, json_path=json_path)
    write_targets(md_path, json_path, command)
    return status


def add_bench_command(sub) -> None:
    p = sub.add_parser("bench", help="measure everything the course promises into benchmarks/results.md",
                       description=__doc__.split("\n\n")[0] + " Parts: " + ", ".join(PARTS) + ".")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (seconds): checks the command works; runs no notebook")
    p.add_argument("--only", nargs="+", choices=PARTS, metavar="PART", help=f"only these parts ({', '.join(PARTS)})")
    p.add_argument("--notebooks", nargs="+", metavar="PREFIX", help="only the notebooks whose names start so (e.g. 00 06)")
    p.add_argument("--out-dir", type=Path, help="write results.md and results.json here instead of benchmarks/")
    p.add_argument("--threads", type=int, help="torch threads for the measurements in this process "
                   "(default: torch's choice, one per core); notebooks run in their own kernels")
    p.set_defaults(handler=cmd_bench)


def cmd_bench(args) -> int:
    sizes = QUICK if args.quick else FULL
    if args.notebooks:
        sizes = replace(sizes, notebooks=args.notebooks)
    md_path, json_path = RESULTS_MD, RESULTS_JSON
    if args.out_dir:
        md_path, json_path = args.out_dir / "results.md", args.out_dir / "results.json"
    command = "python -m lecture13 " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["bench"] \
        else "python -m lecture13 bench"
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    status = run(args.only or PARTS, sizes, md_path, json_path, command)
    failed = {k: v for k, v in status.items() if v != "ok"}
    print(f"wrote {md_path} and {json_path}" + (f"; NOT measured: {failed}" if failed else ""))
    return 1 if failed else 0
