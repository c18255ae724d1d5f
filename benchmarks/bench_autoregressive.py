"""Autoregressive models: training throughput, naive vs cached sampling.

    python benchmarks/bench_autoregressive.py [--sample-models pixelcnn gated_pixelcnn]

Writes the section "autoregressive models" of benchmarks/results.md / results.json (training
throughput and sampling speed; every ratio measured side by side in this one process, with
interleaved repetitions and the median taken). Notebook 01's run time is in the course's notebook
section: ``python -m lecture13 bench --only notebooks --notebooks 01``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from lecture13 import autoregressive as ar
from lecture13 import data, sampling
from lecture13.benchmarking import markdown_table, write_section
from lecture13.checkpoints import CheckpointError, pretrained

NAMES = ("pixelrnn", "pixelcnn", "gated_pixelcnn")


def shipped_or_fresh(name: str):
    """The shipped model when there is one, else a fresh model built by its recipe's defaults."""
    try:
        return pretrained(name), "shipped"
    except CheckpointError:
        from lecture13.recipes import get_recipe

        return get_recipe(name).build(), "fresh (no checkpoint yet)"


def training_throughput(models: dict, batch: torch.Tensor, repeats: int) -> list[dict]:
    optimizers = {name: torch.optim.Adam(m.parameters(), lr=1e-4) for name, m in models.items()}
    seconds = {name: [] for name in models}
    for rep in range(repeats + 1):                     # interleaved; the first round is a warm-up
        for name, model in models.items():
            model.train()
            started = time.perf_counter()
            loss = ar.nll_loss(model, batch)
            optimizers[name].zero_grad()
            loss.backward()
            optimizers[name].step()
            if rep:
                seconds[name].append(time.perf_counter() - started)
    base = statistics.median(seconds["pixelcnn"])
    return [{"model": name, "parameters": sum(p.numel() for p in models[name].parameters()),
             "ms per step": 1000 * statistics.median(s), "images/s": len(batch) / statistics.median(s),
             "time vs PixelCNN": statistics.median(s) / base} for name, s in seconds.items()]


def sampling_speed(model, n: int) -> dict:
    u = sampling.draw_uniforms(n, generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    naive = sampling.sample_naive(model, uniforms=u)
    naive_s = time.perf_counter() - started
    started = time.perf_counter()
    fast = sampling.sample_fast(model, uniforms=u)
    fast_s = time.perf_counter() - started
    return {"images": n, "naive s": naive_s, "cached s": fast_s, "speed-up": naive_s / fast_s,
            "identical": bool(torch.equal(naive, fast))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sample-models", nargs="+", default=["pixelcnn", "gated_pixelcnn"], choices=NAMES)
    parser.add_argument("--sample-sizes", nargs="+", type=int, default=[16, 64])
    args = parser.parse_args()

    command = "python benchmarks/bench_autoregressive.py " + " ".join(sys.argv[1:])
    models_section(args, command)  # notebook 01's run time: python -m lecture13 bench --only notebooks --notebooks 01


def models_section(args, command: str) -> None:
    loaded = {name: shipped_or_fresh(name) for name in NAMES}
    models = {name: m for name, (m, _) in loaded.items()}
    batch = data.tensors("train", "binary")[0][: args.batch_size]
    train_rows = training_throughput(models, batch, args.repeats)
    print(markdown_table(train_rows), flush=True)

    sample_rows = []
    for name in args.sample_models:
        for n in args.sample_sizes:
            row = {"model": name, **sampling_speed(models[name].eval(), n)}
            print(row, flush=True)
            sample_rows.append(row)

    sources = ", ".join(f"{name}: {how}" for name, (_, how) in loaded.items())
    markdown = (f"Training throughput, one Adam step on the same batch of {args.batch_size} binarized images "
                f"(median of {args.repeats}, interleaved; models: {sources}):\n\n{markdown_table(train_rows)}\n\n"
                f"Sampling 28×28 images, naive (one full forward pass per pixel) vs cached "
                f"(`sampling.sample_fast`), same uniforms (speed does not depend on the weights):\n\n"
                f"{markdown_table(sample_rows)}\n")
    write_section("autoregressive models", markdown, {"training": train_rows, "sampling": sample_rows},
                  command=command)


if __name__ == "__main__":
    main()
