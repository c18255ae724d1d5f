"""Autoencoders and VAEs: the likelihood table, reconstruction errors, probe accuracies, notebook run times.

    python benchmarks/bench_vae.py [--skip-notebooks] [--images 2000] [--ks 1 10 100 1000]

Writes the "autoencoders and VAEs" section of benchmarks/results.md / results.json:

* the shipped VAEs' (vae, pixelvae, vae2d) −ELBO and importance-weighted bounds −L_K on the embedded test subset, measured
  here for several K, next to the numbers recorded in their checkpoints on the full test set, the
  factorized baseline and (when shipped) PixelCNN's exact NLL;
* the shipped autoencoder's reconstruction error, and linear-probe accuracies (raw pixels vs.
  encoder features, 10 and 100 labels per class, mean of 5 draws);
* the wall time of notebooks 02 and 03 top to bottom (target ≤ 90 s each), with the machine's load.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from lecture13 import autoencoders, data, vae
from lecture13.benchmarking import REPO_ROOT, execute_notebook, markdown_table, write_section
from lecture13.checkpoints import available, pretrained

NOTEBOOKS = ("02_autoencoders.ipynb", "03_variational_autoencoders.ipynb")


def likelihood_rows(ks: list[int], images: int) -> list[dict]:
    x, _ = data.tensors("test", "binary", limit=images)
    rows = []
    for name in ("vae", "pixelvae", "vae2d"):
        if name not in available():
            continue
        model, meta = pretrained(name, with_meta=True)
        started = time.perf_counter()
        measured = vae.likelihood_table(model, x, ks=tuple(ks), seed=0)
        seconds = time.perf_counter() - started
        full = meta["metrics"].get("full_test", {})
        for key, value in measured.items():
            label = "-ELBO" if key == "neg_elbo" else f"-L_K, K={key.split('k')[-1]}"
            rows.append({"model": name, "quantity": label, f"embedded ({len(x)} images)": value,
                         "full test (recorded)": full.get(key, "")})
        print(f"{name}: {measured} ({seconds:.0f} s)", flush=True)
    for name in ("factorized", "pixelcnn", "gated_pixelcnn"):
        if name in available():
            metrics = pretrained(name, with_meta=True)[1]["metrics"]
            rows.append({"model": name, "quantity": "exact NLL", f"embedded ({len(x)} images)":
                         metrics["embedded_test"]["nll_nats"] if len(x) == 2000 else "",
                         "full test (recorded)": metrics.get("full_test", {}).get("nll_nats", "")})
    return rows


def autoencoder_rows() -> tuple[list[dict], list[dict]]:
    model, meta = pretrained("autoencoder", with_meta=True)
    x_train, y_train = data.tensors("train", "unit")
    x_test, y_test = data.tensors("test", "unit")
    error = autoencoders.reconstruction_error(model, x_test).mean().item()
    recon = [{"model": "autoencoder (32-d)", "L2 per image, embedded test": error,
              "L2 per image, full test (recorded)": meta["metrics"].get("full_test", {}).get("l2_per_image", "")}]
    f_train, f_test = autoencoders.encode_all(model, x_train), autoencoders.encode_all(model, x_test)
    probes = []
    for per_class in (10, 100):
        draws = [autoencoders.few_labels(y_train, per_class, seed=s) for s in range(5)]
        row = {"labels per class": per_class}
        for name, (a, b) in {"raw pixels": (x_train.flatten(1), x_test.flatten(1)), "encoder features": (f_train, f_test)}.items():
            accs = []
            for i in draws:
                train_f, test_f = autoencoders.standardize(a[i], b)
                accs.append(autoencoders.linear_probe(train_f, y_train[i], test_f, y_test))
            row[name] = sum(accs) / len(accs)
        probes.append(row)
        print(row, flush=True)
    return recon, probes


def notebook_times() -> list[dict]:
    rows = []
    for name in NOTEBOOKS:
        with tempfile.TemporaryDirectory() as tmp:      # run a copy: the source keeps its stored outputs
            copy = Path(tmp) / name
            shutil.copy(REPO_ROOT / "solutions" / name, copy)
            load = os.getloadavg()[0]
            seconds = execute_notebook(copy, store=False, cwd=REPO_ROOT / "solutions")
        rows.append({"notebook": name, "seconds": round(seconds, 1), "target_s": 90,
                     "load average at start": round(load, 1)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="embedded test images for the likelihood table")
    parser.add_argument("--ks", nargs="+", type=int, default=[1, 10, 100, 1000])
    parser.add_argument("--skip-notebooks", action="store_true")
    args = parser.parse_args()

    lik = likelihood_rows(args.ks, args.images)
    recon, probes = autoencoder_rows()
    times = [] if args.skip_notebooks else notebook_times()
    markdown = ("Likelihood in nats per image (lower is better; −ELBO ≥ −L_K ≥ −log p(x)). "
                "Measured here on the embedded test subset with fixed seeds; the last column is what each "
                "checkpoint recorded on the full 10,000-image test set when it was shipped.\n\n"
                f"{markdown_table(lik)}\n\nAutoencoder reconstruction error (squared error summed over the 784 "
                f"pixels, images in [0, 1]):\n\n{markdown_table(recon)}\n\nLinear probe, test accuracy on the "
                f"2,000 embedded test images (mean of 5 random draws of the labelled images):\n\n{markdown_table(probes)}\n")
    if times:
        markdown += (f"\nNotebooks top to bottom in a fresh kernel (other jobs may share the CPU: see the load "
                     f"average):\n\n{markdown_table(times)}\n")
    write_section("autoencoders and VAEs", markdown,
                  {"likelihood": lik, "reconstruction": recon, "probes": probes, "notebooks": times},
                  command="python benchmarks/bench_vae.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
