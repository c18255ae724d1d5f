"""GANs: mode coverage on the ring of 8 Gaussians, per setting, over several seeds.

    python benchmarks/bench_gan.py              # every setting of notebook 04, its 5 seeds (~5 min, 1 thread)
    python benchmarks/bench_gan.py --seeds 2    # the first 2 seeds

Writes the section "GAN mode coverage" of benchmarks/results.md / results.json: notebook 04's ring
sweep (:func:`lecture13.toy.ring_sweep`: every setting trained for the same number of discriminator
steps from every seed) re-run here, summarised at its last measurement by the shares each mode holds
(:func:`lecture13.toy.coverage_from_shares`), mean ± standard deviation over the seeds, and checked
against the sweep the notebook reads (``lecture13/data/ring_sweep.npz``).

The sample-quality numbers of the image models (DCGAN included) are in the section "Model comparison
(notebook 06)": one protocol, one number per model (``python -m lecture13 bench --only comparison``);
the notebooks' run times in "Course: notebook run times" (``--only notebooks``).
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch

from lecture13 import toy
from lecture13.benchmarking import markdown_table, write_section

SECTION = "GAN mode coverage"


def mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def coverage(seeds: int) -> tuple[str, dict]:
    chosen = toy.RING_SEEDS[:seeds]
    recorded = toy.load_ring_sweep()
    runs = toy.ring_sweep(seeds=chosen)  # one thread each (toy.train_ring_gans)
    rows, per_seed = [], {}
    for name, run in runs.items():
        final = {key: value[-1].tolist() for key, value in run.coverage().items()}   # the last measurement
        hops = [len(toy.mode_hops(run.shares[:, s])) for s in range(len(chosen))]
        counts = torch.round(run.shares * recorded.meta["samples"]).long()
        same = bool(torch.equal(counts, recorded.counts[name][:, :len(chosen)]))
        per_seed[name] = {**final, "mode_hops": hops, "seeds": chosen}
        rows.append({"setting": name, "seeds": len(chosen),
                     "modes holding ≥ ¼ of a fair share (of 8)": mean_sd(final["modes"]),
                     "per seed": " ".join(str(int(m)) for m in final["modes"]),
                     "effective modes": mean_sd(final["effective"]),
                     "share on a mode": mean_sd(final["quality"]),
                     "mode hops (per seed)": " ".join(map(str, hops)),
                     "same counts as the recorded sweep": "yes" if same else "NO"})
        print(rows[-1], flush=True)
    ring, d_steps = toy.RING, recorded.meta["d_steps"]
    md = (f"Ring of {ring['modes']} Gaussians (radius {ring['radius']}, σ {ring['std']}), an ensemble of MLP GANs "
          f"(`toy.train_ring_gans`), every setting trained for {d_steps:,} discriminator steps (so k = 5 makes a fifth "
          f"as many generator steps), measured on {recorded.meta['samples']:,} samples per seed after the last step. "
          "A sample counts for a mode within 3σ of its centre. *Modes holding ≥ ¼ of a fair share*: modes with at least "
          "1/32 of the samples (a mode with 2 of 1,000 samples is as good as empty); *effective modes*: exp(entropy) of "
          "the on-mode shares (8: even over 8 modes, 1: all on one); *share on a mode*: the samples within 3σ of some "
          "mode; *mode hops*: a mode that held ≥ 20 % of the samples later holds < 5 % while another holds ≥ 20 % "
          "(`toy.mode_hops`). Mean ± standard deviation over the seeds. *Same counts as the recorded sweep*: this "
          "re-run gives exactly the mode counts stored in `lecture13/data/ring_sweep.npz`, which notebook 04 reads."
          "\n\n" + markdown_table(rows))
    return md, {"rows": rows, "per_seed": per_seed, "d_steps": d_steps}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=len(toy.RING_SEEDS), help="the first N seeds of notebook 04's sweep")
    args = parser.parse_args(argv)
    md, data = coverage(args.seeds)
    write_section(SECTION, md, data, command="python benchmarks/bench_gan.py" + (f" --seeds {args.seeds}" if argv else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
