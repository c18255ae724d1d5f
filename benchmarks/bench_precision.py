"""Training in float32 vs bfloat16 autocast (``precision="bf16"`` of the shared training loop).

    python benchmarks/bench_precision.py [--batch-size 32] [--repeats 5] [--threads 1]

For each model, one Adam step of ``training.gradient_step`` on the same batch, alternating
float32 and bfloat16 (interleaved repetitions, median taken), so the ratio is measured side by
side in one process. It also reports how far the bf16 loss is from the float32 loss on that
batch: the speed is only worth having if the objective is the same. Writes the section
"training precision: float32 vs bfloat16" of benchmarks/results.md / results.json.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from lecture13 import autoregressive as ar
from lecture13 import data
from lecture13.benchmarking import markdown_table, write_section
from lecture13.recipes import get_recipe, import_families
from lecture13.training import gradient_step, seed_everything
from lecture13.vae import vae_loss

# model name → (recipe, architecture, loss): the shipped Gated PixelCNN's size, the recipes' defaults
MODELS = {
    "pixelcnn": ("pixelcnn", {}, ar.nll_loss),
    "gated_pixelcnn (32 ch, 6 layers)": ("gated_pixelcnn", {"channels": 32, "layers": 6, "kernel_size": 3}, ar.nll_loss),
    "gated_pixelcnn (40 ch, 10 layers)": ("gated_pixelcnn", {"channels": 40, "layers": 10, "kernel_size": 3},
                                          ar.nll_loss),
    "vae": ("vae", {}, vae_loss),
}


def time_steps(model, loss_fn, batch, repeats: int) -> tuple[dict, dict]:
    """Median seconds per step in each precision (interleaved), and the loss each gives on ``batch``."""
    seconds = {"fp32": [], "bf16": []}
    for rep in range(repeats + 1):                       # the first round is a warm-up
        for precision in seconds:
            step = gradient_step(model, loss_fn, torch.optim.Adam(model.parameters(), lr=0.0), precision=precision)
            started = time.perf_counter()
            step(batch)
            if rep:
                seconds[precision].append(time.perf_counter() - started)
    losses = {}
    for precision in seconds:                            # lr 0: the same weights for both losses
        torch.manual_seed(0)                             # the VAE draws ε: the same ε for both
        losses[precision] = gradient_step(model, loss_fn, torch.optim.SGD(model.parameters(), lr=0.0),
                                          precision=precision)(batch)["loss"]
    return {k: statistics.median(v) for k, v in seconds.items()}, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import_families()
    batch = data.tensors("train", "binary")[0][: args.batch_size]
    rows = []
    for label, (recipe, overrides, loss_fn) in MODELS.items():
        seed_everything(0)
        model = get_recipe(recipe).build(**overrides)
        seconds, losses = time_steps(model, loss_fn, batch, args.repeats)
        rows.append({"model": label, "parameters": sum(p.numel() for p in model.parameters()),
                     "fp32 ms/step": 1000 * seconds["fp32"], "bf16 ms/step": 1000 * seconds["bf16"],
                     "speed-up": seconds["fp32"] / seconds["bf16"],
                     "loss fp32": losses["fp32"], "loss bf16": losses["bf16"],
                     "relative loss difference": abs(losses["bf16"] - losses["fp32"]) / abs(losses["fp32"])})
        print(rows[-1], flush=True)
    command = "python benchmarks/bench_precision.py " + " ".join(sys.argv[1:])
    markdown = (f"One Adam step of the shared `training.gradient_step` on the same batch of {args.batch_size} binarized "
                f"images, float32 vs `precision=\"bf16\"` (autocast: convolutions and matrix products in bfloat16, "
                f"weights, gradients and losses in float32), {args.threads} thread(s), median of {args.repeats} "
                f"interleaved repetitions, freshly initialised models:\n\n{markdown_table(rows)}\n\n"
                "The speed-up needs a CPU with native bfloat16 arithmetic (AVX-512 BF16 or AMX); without it "
                "bf16 can be slower. Evaluation and every recorded metric run in float32.")
    write_section("training precision: float32 vs bfloat16", markdown, {"rows": rows, "threads": args.threads},
                  command=command)


if __name__ == "__main__":
    main()
