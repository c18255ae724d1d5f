"""Diffusion (notebook 07): the shipped DDPM's sample quality by both samplers against the DCGAN's,
both samplers' time per image, and its likelihood bound.

    python benchmarks/bench_diffusion.py              # ~2 min on one thread
    python benchmarks/bench_diffusion.py --time 32    # time the samplers on 32 images (default 16)

Writes the section "Diffusion model (notebook 07)" of benchmarks/results.md / results.json:

* sample quality under the course's protocol (:mod:`lecture13.metrics`: 1,000 samples against the
  2,000 embedded grayscale test images, Fréchet distance in the shipped classifier's features and the
  fraction it is > 90 % sure of) of the two shipped banks — ancestral sampling with all T steps and
  DDIM (η = 0) from the *same* x_T — next to the DCGAN's recorded numbers and real training images;
* the time per image of both samplers on one torch thread, same model and same noise, wall clock and
  CPU time (CPU time is what a busy machine does not inflate);
* the variational bound in bits/dim recorded with the checkpoint (on how many test images it says).
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from lecture13 import checkpoints, diffusion, metrics
from lecture13.benchmarking import markdown_table, write_section

SECTION = "Diffusion model (notebook 07)"


def time_samplers(model: diffusion.DDPM, n: int, seed: int = 0) -> dict[str, dict[str, float]]:
    """Seconds per image of each sampler for ``n`` images from one seed (the same x_T), one thread."""
    out = {}
    for kind, draw in (("ancestral", diffusion.ddpm_samples), ("ddim", diffusion.ddim_samples)):
        wall, cpu = time.perf_counter(), time.process_time()
        draw(model, n, seed)
        out[kind] = {"wall_s_per_image": (time.perf_counter() - wall) / n, "cpu_s_per_image": (time.process_time() - cpu) / n}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time", type=int, default=16, help="images to time each sampler on")
    args = parser.parse_args(argv)
    model, meta = checkpoints.pretrained("ddpm", with_meta=True)
    entry = checkpoints.read_manifest()["ddpm"]
    reference = metrics.test_features()
    banks = {"ancestral": checkpoints.pretrained_samples("ddpm", with_meta=True),
             "ddim": diffusion.pretrained_ddim_samples("ddpm", with_meta=True)}
    scores = {kind: metrics.protocol_scores(images, reference) for kind, (images, _) in banks.items()}
    timing = time_samplers(model, args.time)
    real = metrics.quality_references(reference=reference)["real"]
    dcgan = checkpoints.read_manifest()["dcgan"]["metrics"]["embedded_test"]
    bound = meta["metrics"]["embedded_test"]
    steps = {"ancestral": model.T, "ddim": len(model.ddim_times())}
    rows = [{"model": f"DDPM, {kind} ({steps[kind]} steps)", "Fréchet distance": f"{scores[kind]['frechet']:.1f}",
             "classifier > 90 % sure": f"{scores[kind]['confident']:.0%}",
             "s / image (1 thread, wall)": f"{timing[kind]['wall_s_per_image']:.3f}",
             "s / image (1 thread, CPU)": f"{timing[kind]['cpu_s_per_image']:.3f}",
             "bank drawn in (CPU s)": banks[kind][1].get("cpu_seconds", "—")} for kind in ("ancestral", "ddim")]
    rows.append({"model": "DCGAN (recorded)", "Fréchet distance": f"{dcgan['frechet_distance']:.1f}",
                 "classifier > 90 % sure": f"{dcgan['confident']:.0%}"})
    rows.append({"model": "real training images (5 draws)", "Fréchet distance": f"{real['frechet']:.1f} ± {real['frechet_std']:.1f}",
                 "classifier > 90 % sure": f"{real['confident']:.0%}"})
    md = (f"The shipped `ddpm` ({entry['bytes'] / 1e6:.1f} MB, trained {entry['train_seconds'] / 60:.0f} min on one CPU thread: "
          f"`{entry['command']}`), 1,000 samples per sampler (the shipped banks; DDIM from the same x_T as the "
          f"ancestral bank) under the course's sample-quality protocol (1,000 samples vs the 2,000 embedded test "
          f"images). Sampler times on {args.time} images from one seed, one torch thread.\n\n"
          + markdown_table(rows) +
          f"\n\nVariational bound (Ho et al. eq. 5, discretised decoder) on {bound['test_images']} embedded test images "
          f"({bound['chosen']}), 8-bit grayscale: {bound['nll_bound_nats']:.0f} nats per image = "
          f"{bound['bound_bits_per_dim']:.3f} bits/dim (L_T {bound['prior_nats']:.2f}, Σ L_t−1 {bound['diffusion_nats']:.0f}, "
          f"L_0 {bound['decoder_nats']:.0f}). An upper bound on the NLL of 8-bit images: not comparable with the "
          "binarized models' NLLs.\n")
    print(md)
    write_section(SECTION, md, {"scores": scores, "timing": timing, "bound": bound, "dcgan": dcgan, "real": real,
                                "timed_images": args.time}, "python benchmarks/bench_diffusion.py " + " ".join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
