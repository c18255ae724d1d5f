"""`python -m lecture13 bench`: the quick mode writes a well-formed results file; targets are never hidden."""
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lecture13 import bench, benchmarking
from lecture13.__main__ import build_parser, main


def numbers_are_numbers(value, where="results"):
    """Every number in the JSON is an int/float (finite), never a number written as a string."""
    if isinstance(value, dict):
        for k, v in value.items():
            numbers_are_numbers(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            numbers_are_numbers(v, f"{where}[{i}]")
    elif isinstance(value, float):
        assert math.isfinite(value), where
    elif isinstance(value, str):
        try:
            float(value.replace(",", ""))
        except ValueError:
            return
        raise AssertionError(f"{where} is a number written as a string: {value!r}")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    code = main(["bench", "--quick", "--out-dir", str(out)])
    return code, out / "results.md", out / "results.json"


def test_quick_bench_writes_every_section(quick):
    code, md_path, json_path = quick
    assert code == 0
    text, results = md_path.read_text(), json.loads(json_path.read_text())
    for name in bench.SECTIONS.values():
        assert text.count(f"<!-- section:{name} -->") == 1 and text.count(f"<!-- /section:{name} -->") == 1, name
        assert name in results, name
        section = results[name]
        assert section["command"].startswith("python -m lecture13 bench") and "CPU cores" in section["machine"]
        if name != bench.SECTIONS["targets"]:
            assert section["quick"] is True and "error" not in section, section.get("error")
    numbers_are_numbers(results)


def test_quick_bench_measures_real_numbers(quick):
    _, _, json_path = quick
    results = json.loads(json_path.read_text())
    training = results[bench.SECTIONS["training"]]["rows"]
    assert {r["recipe"] for r in training} == set(bench.QUICK.recipes)
    assert all(isinstance(r["images_per_s"], float) and r["images_per_s"] > 0 for r in training)
    sampling = results[bench.SECTIONS["sampling"]]
    assert sampling["same_samples"] is True and sampling["ratio"] > 0 and sampling["at_target_size"] is False
    comparison = results[bench.SECTIONS["comparison"]]
    assert comparison["settings"]["samples"] == bench.QUICK.comparison.samples
    factorized = next(r for r in comparison["models"] if r["name"] == "factorized")
    assert factorized["likelihood"]["kind"] == "exact" and 300 < factorized["likelihood"]["nats"] < 500
    grading = results[bench.SECTIONS["grading"]]["rows"]
    assert grading and grading[0]["full_marks"] == "1/1" and grading[0]["submissions_per_minute"] > 0
    notebooks = results[bench.SECTIONS["notebooks"]]
    assert notebooks["skipped"] is True and notebooks["rows"] == []
    assert results[bench.SECTIONS["browser"]]["skipped"] is True   # quick mode runs no browser


def test_browser_timings_are_read_from_the_junit_report(tmp_path):
    report = tmp_path / "report.xml"
    report.write_text('<testsuites><testsuite name="pytest">'
                      '<testcase classname="t" name="test_a[00.ipynb]" time="12.34"/>'
                      '<testcase classname="t" name="test_b" time="1.0"><failure message="boom"/></testcase>'
                      '<testcase classname="t" name="test_c" time="0.0"><skipped message="no chromium"/></testcase>'
                      '</testsuite></testsuites>')
    rows = bench.bench_script("bench_browser").rows_from_junit(report)
    assert rows == [{"test": "test_a[00.ipynb]", "seconds": 12.3, "outcome": "passed"},
                    {"test": "test_b", "seconds": 1.0, "outcome": "failed"},
                    {"test": "test_c", "seconds": 0.0, "outcome": "skipped"}]


def test_rerunning_a_part_replaces_its_section(quick):
    _, md_path, json_path = quick
    assert main(["bench", "--quick", "--only", "sampling", "--out-dir", str(md_path.parent)]) == 0
    text = md_path.read_text()
    assert text.count("<!-- section:PixelCNN sampling: naive vs cached -->") == 1
    assert text.count("<!-- section:Grading throughput -->") == 1  # other sections kept
    assert set(json.loads(json_path.read_text())) == set(bench.SECTIONS.values())


def test_targets_not_met_are_reported():
    results = {
        bench.SECTIONS["notebooks"]: {"complete": True, "total_seconds": 500.0, "rows": [
            {"notebook": "00_generative_models.ipynb", "seconds": 61.0},
            {"notebook": "01_autoregressive_models.ipynb", "seconds": 89.0},
            {"notebook": "02_autoencoders.ipynb", "seconds": 95.0}]},
        bench.SECTIONS["sampling"]: {"ratio": 12.0, "images": 64, "size": "28×28", "at_target_size": True},
    }
    met = {row["target"]: row["met"] for row in bench.targets(results, manifest={})}
    assert met == {"00_generative_models.ipynb ≤ 60 s": False, "01_autoregressive_models.ipynb ≤ 90 s": True,
                   "02_autoencoders.ipynb ≤ 90 s": False, "whole course ≤ 480 s": False,
                   # no row has a memory measurement: not measured, never met
                   "every notebook's kernel ≤ 1500 MB resident at its peak": None,
                   "PixelCNN cached sampler ≥ 20× naive at 64 images": False,
                   # nothing shipped (an empty manifest): reported as not measured, never as met
                   "Gated PixelCNN NLL ≤ 95 nats (full test set)": None,
                   "VAE, 32-d latent, PixelVAE decoder: −L_1000 ≤ 108 nats (full test set)": None,
                   "VAE, 32-d latent, factorized decoder: −L_1000 ≤ 108 nats (full test set)": None,
                   "feature classifier accuracy ≥ 0.90 (full test set)": None}
    results[bench.SECTIONS["sampling"]]["ratio"] = 25.0
    results[bench.SECTIONS["notebooks"]]["complete"] = False  # a partial run has no course total
    met = {row["target"]: row["met"] for row in bench.targets(results, manifest={})}
    assert met["PixelCNN cached sampler ≥ 20× naive at 64 images"] is True and "whole course ≤ 480 s" not in met


def test_the_shipped_weights_targets_follow_the_manifest():
    """Planted manifests: each model target flips with its recorded metric; a missing one is not met."""
    def entry(size, **full_test):
        return {"bytes": size, "metrics": {"full_test": full_test}}

    good = {"gated_pixelcnn": entry(500_000, nll_nats=94.9), "vae": entry(4_000_000, iw_nll_k1000=107.5),
            "pixelvae": entry(4_000_000, iw_nll_k1000=103.0), "classifier": entry(1_000_000, accuracy=0.91)}
    assert all(row["met"] for row in bench.checkpoint_targets(good))
    bad = {"gated_pixelcnn": entry(500_000, nll_nats=101.0), "vae": entry(6_000_000, iw_nll_k1000=114.2),
           "pixelvae": entry(1_000_000, iw_nll_k1000=108.5), "classifier": entry(1_000_000, accuracy=0.89)}
    rows = bench.checkpoint_targets(bad)
    assert [row["met"] for row in rows] == [False, False, False, False, False]
    assert rows[0]["measured"].startswith("101.0 nats") and "vae, 6.00 MB" in rows[-1]["measured"]
    missing = {row["target"]: row["met"] for row in bench.checkpoint_targets({"vae": entry(10, neg_elbo=120.0)})}
    assert missing["Gated PixelCNN NLL ≤ 95 nats (full test set)"] is None
    assert missing["VAE, 32-d latent, factorized decoder: −L_1000 ≤ 108 nats (full test set)"] is None
    assert missing["VAE, 32-d latent, PixelVAE decoder: −L_1000 ≤ 108 nats (full test set)"] is None
    # the real manifest is read by default: its rows are in the Targets section
    assert {"Gated PixelCNN NLL ≤ 95 nats (full test set)", "every shipped checkpoint < 5 MB"} <= {
        row["target"] for row in bench.targets({})}


def test_a_failing_part_is_written_as_not_measured(tmp_path, monkeypatch):
    def broken(sizes, previous=None):
        raise RuntimeError("planted failure")

    monkeypatch.setitem(bench.MEASURE, "sampling", broken)
    status = bench.run(["sampling"], bench.QUICK, tmp_path / "r.md", tmp_path / "r.json", command="test")
    assert status == {"sampling": "RuntimeError: planted failure"}
    assert "**Not measured**: RuntimeError: planted failure" in (tmp_path / "r.md").read_text()
    assert json.loads((tmp_path / "r.json").read_text())[bench.SECTIONS["sampling"]]["error"] == "RuntimeError: planted failure"


def test_training_runs_in_a_scratch_directory_and_without_time_budgets(tmp_path, monkeypatch):
    options, _ = bench.recipe_options("pixelcnn", 3)
    assert options["max_steps"] == 3 and options["subset"] == "embedded" and options["epochs"] == 1
    assert not {"snapshot", "minutes", "time_budget_s"} & set(options)
    monkeypatch.chdir(tmp_path)
    seconds, steps = bench.time_fit("vae", 1)  # the VAE recipe writes runs/vae.partial.pt after each epoch
    assert steps == 1 and seconds > 0
    assert not (tmp_path / "runs").exists()


def test_bench_is_a_subcommand():
    args = build_parser().parse_args(["bench", "--quick", "--only", "sampling", "grading", "--threads", "1"])
    assert args.handler is bench.cmd_bench and args.only == ["sampling", "grading"] and args.threads == 1
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--only", "everything"])


def test_a_partial_notebook_run_keeps_the_other_rows(monkeypatch):
    present = sorted(p.name for p in (bench.REPO_ROOT / "solutions").glob("*.ipynb"))

    class FakeScript:  # stands in for benchmarks/bench_notebooks.py: no kernel is started
        @staticmethod
        def time_notebooks(prefixes):
            return [{"notebook": n, "seconds": 50.0, "target_s": 90, "within_target": True}
                    for n in present if any(n.startswith(p) for p in prefixes)]

    monkeypatch.setattr(bench, "bench_script", lambda name: FakeScript)
    previous = {"rows": [{"notebook": n, "seconds": 100.0} for n in present] + [{"notebook": "99_gone.ipynb", "seconds": 1.0}]}
    sizes = bench.Sizes(notebooks=[present[-1][:2]])
    _, data = bench.measure_notebooks(sizes, previous)
    assert [r["notebook"] for r in data["rows"]] == present and data["complete"]
    assert data["total_seconds"] == 100.0 * (len(present) - 1) + 50.0
    _, alone = bench.measure_notebooks(sizes, {})
    assert len(alone["rows"]) == 1 and alone["complete"] is (len(present) == 1)


def test_the_memory_target_follows_every_notebooks_peak():
    rows = [{"notebook": "00.ipynb", "peak_memory_mb": 900}, {"notebook": "01.ipynb", "peak_memory_mb": 1400}]
    target = bench.memory_target(rows, complete=True)
    assert target["met"] is True and target["measured"] == "largest: 01.ipynb, 1400 MB"
    rows.append({"notebook": "02.ipynb", "peak_memory_mb": 1501})
    assert bench.memory_target(rows, complete=True)["met"] is False
    rows[-1] = {"notebook": "02.ipynb", "peak_memory_mb": None}       # kept from a run before memory was measured
    partial = bench.memory_target(rows, complete=True)
    assert partial["met"] is None and "2 notebook(s) measured" in partial["measured"]
    assert bench.memory_target(rows[:2], complete=False)["met"] is None   # not every notebook has a row
    rows.append({"notebook": "03.ipynb", "peak_memory_mb": 2000})
    assert bench.memory_target(rows, complete=False)["met"] is False       # one over is enough to fail
    assert bench.memory_target([{"notebook": "00.ipynb"}], complete=True)["measured"].startswith("no notebook measured")


HOLD = "import sys, time; a = bytearray({mb} * 10**6); a[::4096] = b'x' * len(a[::4096]); time.sleep(1)"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="the memory measurement reads /proc (Linux)")
def test_peak_memory_counts_the_processes_a_kernel_starts():
    """A process holding 150 MB that starts one holding 200 MB: the peak is their sum, not either alone."""
    child = HOLD.format(mb=200)
    parent = f"import subprocess, sys; c = subprocess.Popen([sys.executable, '-c', {child!r}]); " + HOLD.format(mb=150) + "; c.wait()"
    with benchmarking.PeakMemory() as memory:
        subprocess.run([sys.executable, "-c", parent], check=True)
    assert 350e6 < memory.peak_bytes < 500e6, memory.peak_bytes
    with benchmarking.PeakMemory() as idle:   # nothing started: nothing counted
        time.sleep(0.2)
    assert idle.peak_bytes == 0


def test_the_notebook_table_keeps_a_column_the_first_row_lacks():
    table = benchmarking.markdown_table([{"notebook": "00", "seconds": 1.0}, {"notebook": "01", "seconds": 2.0, "peak_memory_mb": 900}])
    assert table.splitlines()[0] == "| notebook | seconds | peak_memory_mb |"
    assert table.splitlines()[2] == "| 00 | 1 | — |"
