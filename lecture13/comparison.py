"""The three families side by side: every number of notebook 06, as functions.

Notebook 06 and the ``bench`` command's "Model comparison" section both call :func:`measure`,
so the table a student sees and the one in ``benchmarks/results.md`` come from the same code.
For each shipped model (:data:`CONTENDERS`) it measures, on the same test images and with the
same seeds:

* **likelihood** (:func:`likelihood`, or :func:`recorded_likelihood`: the same numbers recorded
  with each checkpoint on all 2,000 test images and re-verified by the tests): the exact NLL of the explicit tractable models
  (factorized, PixelCNN, Gated PixelCNN, PixelRNN); for the VAE the negative ELBO and the negative
  importance-weighted bound −L_K (Burda et al. 2016); for the GAN nothing. Since

      log p(x) ≥ L_K ≥ L_1 = ELBO,   −ELBO ≥ −L_K ≥ NLL,

  the VAE's numbers are *upper bounds* on its NLL. Units: nats per image and
  bits/dim = NLL / (D ln 2), D = 784 (:func:`to_bits_per_dim`).
* **sample quality** (:func:`quality`): the course's one protocol (:mod:`lecture13.metrics`):
  1,000 samples per model (the autoregressive models' are pre-drawn and shipped with their
  checkpoints, :func:`quality_samples`), their Fréchet distance to the 2,000 grayscale test images
  in the shipped classifier's feature space and the fraction the classifier is > 90 % sure of,
  next to real training images scored the same way, grayscale and binarized (the references).
  For the VAE-vs-GAN sharpness claim, :func:`sharpness` scores the VAE's decoder means the same way.
* **sampling time** (:func:`time_sampling`, :func:`naive_vs_fast`): seconds to draw 64 images; for
  the PixelCNN both the naive and the cached sampler (:mod:`lecture13.sampling`).
* **training cost** (:func:`training_cost`): the time and images seen to reach the shipped
  checkpoint, read from its metadata.
* **latent space** (:func:`interpolation`): a straight line between two codes, decoded, for every
  model that has a latent (VAE: codes of two real images; GAN: two random codes).

A model that is not shipped yet is reported with one printed line and left out: nothing fails.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .autoregressive import AutoregressiveModel
from .checkpoints import CheckpointError, pretrained
from .data import tensors
from .interface import GenerativeModel, mean_nll
from .metrics import QUALITY_SAMPLES
from .vae import VAE


# --------------------------------------------------------------------------- who takes part
@dataclass(frozen=True)
class Contender:
    """A shipped model and what the lecture says about its family."""

    name: str         # the shipped checkpoint: pretrained(name)
    label: str        # how tables and figures call it
    space: str        # its samples are "binary" images or grayscale ("unit") ones: the real images it is compared with
    # What the family can do (sample, likelihood, latent space) the model itself says, through
    # lecture13.interface.GenerativeModel: nothing here depends on the model's type.


CONTENDERS = (
    Contender("factorized", "Factorized", "binary"),
    Contender("pixelcnn", "PixelCNN", "binary"),
    Contender("gated_pixelcnn", "Gated PixelCNN", "binary"),
    Contender("pixelrnn", "PixelRNN", "binary"),
    Contender("vae", "VAE", "binary"),
    Contender("dcgan", "DCGAN", "unit"),
)
BY_NAME = {c.name: c for c in CONTENDERS}


@dataclass
class Settings:
    """How much to measure. :data:`NOTEBOOK` fits notebook 06's time budget; :data:`QUICK` runs in
    seconds (tests, ``bench --quick``); the bench's full run uses larger numbers."""

    test_images: int = 2000          # the embedded test subset (all of it)
    iw_k: int = 100                  # importance samples per image for L_K
    samples: int = 64                # samples per model: timed and shown
    naive_rows: int | None = 1       # PixelCNN naive sampler timed on the last rows only (None: all rows)
    quality_samples: int = QUALITY_SAMPLES  # samples per model scored for quality (the course's protocol)
    reference_draws: int = 5         # real references averaged over this many draws of training images
    interpolation_steps: int = 8
    likelihood: str = "measured"     # "measured" here, or "recorded" with the checkpoint (all 2,000 test images)
    seed: int = 0


NOTEBOOK = Settings(likelihood="recorded")
QUICK = Settings(test_images=100, iw_k=4, samples=8, naive_rows=1, quality_samples=16, reference_draws=2,
                 interpolation_steps=4)


def load(contenders=CONTENDERS, verbose: bool = True) -> dict[str, tuple[nn.Module, dict]]:
    """``{name: (model, meta)}`` for every contender that is shipped; one line for each that is not."""
    models = {}
    for c in contenders:
        try:
            model, meta = pretrained(c.name, with_meta=True)
        except CheckpointError as err:
            if verbose:
                print(f"⚠ {c.name}: not shipped yet, left out of the comparison ({str(err).split(';')[0]}). "
                      f"Train it with `python -m lecture13 train {c.name} --ship`.")
            continue
        models[c.name] = (model, {**meta, "shipped": True})   # its shipped sample bank belongs to these weights
        if verbose:
            params = sum(p.numel() for p in model.parameters())
            print(f"✔ {c.name}: {type(model).__name__}, {params:,} parameters, trained with `{meta.get('command', '?')}`")
    return models


# --------------------------------------------------------------------------- units
def to_bits_per_dim(value: float, unit: str, num_dims: int = 784) -> float:
    """Put a reported negative log-likelihood on the table's scale, bits per dimension.

    ``unit`` is ``"nats"`` (per image), ``"bits"`` (per image) or ``"bits/dim"``:
        bits/dim = nats / (D ln 2) = bits / D.
    """
    if unit == "nats":
        return value / (num_dims * math.log(2))
    if unit == "bits":
        return value / num_dims
    if unit == "bits/dim":
        return value
    raise ValueError(f"unit must be 'nats', 'bits' or 'bits/dim', got {unit!r}")


# --------------------------------------------------------------------------- likelihood
def exact_nll(model: nn.Module, x: torch.Tensor, batch_size: int = 100) -> float:
    """Mean −log p(x) in nats per image of a model with an exact ``nll``."""
    return mean_nll(model, x, batch_size)


def _interface(model: nn.Module, what: str) -> GenerativeModel:
    if not isinstance(model, GenerativeModel):
        raise TypeError(f"no {what} for {type(model).__name__}: the comparison reads models through "
                        "lecture13.interface.GenerativeModel, which every family of the course subclasses")
    return model


def likelihood(model: nn.Module, x: torch.Tensor, iw_k: int = 100, seed: int = 0) -> dict:
    """What the model can say about p(x) for binary test images ``x`` (N, 1, 28, 28), through its
    family's :meth:`~lecture13.interface.GenerativeModel.likelihood`.

    ``kind`` is ``"exact"`` (``nats`` = NLL), ``"bound"`` (``nats`` = the tightest upper bound on the
    NLL; the VAE's −L_K ≥ NLL, with ``neg_elbo_nats`` = −ELBO ≥ −L_K) or ``"none"`` (a GAN: no
    density to evaluate).
    """
    return _interface(model, "likelihood rule").likelihood(x, iw_k=iw_k, seed=seed)


def recorded_likelihood(model: nn.Module, meta: dict, iw_k: int = 100) -> dict:
    """The likelihood numbers recorded with a checkpoint on all 2,000 embedded test images (by
    ``python -m lecture13 train NAME --ship``, with the same functions and seeds as
    :func:`likelihood`; the checkpoint tests recompute them), in :func:`likelihood`'s format."""
    return _interface(model, "likelihood rule").recorded_likelihood(
        meta.get("metrics", {}).get("embedded_test", {}), iw_k)


# --------------------------------------------------------------------------- samples and their cost
@contextlib.contextmanager
def torch_threads(n: int):
    """Run a block with ``n`` torch threads (then restore). Autoregressive sampling uses one: each
    of its 784 steps is a few tiny matrix products, which more threads only slow down (many times
    over on a busy machine, where the threads wait for each other)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def draw(model: nn.Module, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` samples in [0, 1], shape (n, 1, 28, 28), from one seeded generator, through the model's
    :meth:`~lecture13.interface.GenerativeModel.draw` (on the threads its family asks for).

    Binary models give binary images (the VAE: Bernoulli draws from p(x|z), z ~ N(0, I)); the
    autoregressive ones use the cached sampler; the DCGAN's tanh output is mapped to [0, 1]."""
    model = _interface(model, "sampling rule")
    generator = torch.Generator().manual_seed(seed)
    threads = model.sampling_threads or torch.get_num_threads()
    with torch.no_grad(), torch_threads(threads):
        return model.draw(n, generator)


def time_sampling(model: nn.Module, n: int = 64, seed: int = 0) -> tuple[torch.Tensor, float]:
    """``(samples, seconds)``: wall-clock time to draw ``n`` samples with :func:`draw`, on one thread
    for every model (the comparison is of the algorithms, not of the threading), after a warm-up
    draw of 2 (the first call of a model pays one-off costs that are not the model's)."""
    with torch_threads(1):
        draw(model, 2, seed + 1)
        started = time.perf_counter()
        images = draw(model, n, seed)
        return images, time.perf_counter() - started


def naive_vs_fast(model: AutoregressiveModel, n: int = 64, seed: int = 0, naive_rows: int | None = None,
                  size: tuple[int, int] = (28, 28)) -> dict:
    """Seconds for the cached sampler and for the naive one (784 full forward passes) on the same
    uniforms and one thread each, their ratio, and whether they drew the same images.

    With ``naive_rows`` the naive sampler draws only the last ``naive_rows`` rows (the rows above
    are the cached sampler's). Each naive step is one full forward pass on the whole image, the
    same cost whatever the pixel, so its full time is ``seconds × H / naive_rows``: an
    extrapolation, reported as such (``naive_extrapolated``)."""
    from .sampling import draw_uniforms, sample_fast, sample_naive

    height = size[0]
    rows = height if naive_rows is None else min(naive_rows, height)
    u = draw_uniforms(n, size, torch.Generator().manual_seed(seed))
    with torch_threads(1):  # both samplers on one thread: the ratio is the algorithm's, not the threading's
        sample_naive(model, uniforms=sample_fast(model, uniforms=u[:1, :, :1]))  # warm-up: one image, one row
        started = time.perf_counter()
        fast = sample_fast(model, uniforms=u)
        fast_s = time.perf_counter() - started
        started = time.perf_counter()
        naive = sample_naive(model, uniforms=u, start=fast, known_rows=height - rows)
        naive_measured = time.perf_counter() - started
    naive_s = naive_measured * height / rows
    return {"images": n, "size": list(size), "fast_s": fast_s, "naive_s": naive_s, "naive_measured_s": naive_measured,
            "naive_rows_measured": rows, "naive_extrapolated": rows < height, "ratio": naive_s / fast_s,
            "same_samples": bool(torch.equal(naive, fast))}


# --------------------------------------------------------------------------- sample quality
def real_images(space: str, split: str = "test", limit: int | None = None) -> torch.Tensor:
    """Real embedded-subset images as a model of that ``space`` sees them: binarized or in [0, 1]."""
    if space not in ("binary", "unit"):
        raise ValueError(f"space must be 'binary' or 'unit', got {space!r}")
    return tensors(split, space, limit=limit)[0]


def quality_samples(name: str, model: nn.Module, n: int = QUALITY_SAMPLES, seed: int = 0,
                    shipped: bool = False) -> tuple[torch.Tensor, str]:
    """``(images, source)``: the ``n`` samples a model's quality is scored on. A shipped model whose
    sampling is slow has a checked bank of pre-drawn samples beside its checkpoint
    (:func:`lecture13.checkpoints.pretrained_samples`); other models are drawn here with :func:`draw`."""
    from .checkpoints import pretrained_samples

    bank = None
    if shipped:
        try:
            bank, record = pretrained_samples(name, with_meta=True)
        except CheckpointError:
            bank = None
    if bank is not None and len(bank) >= n:
        return bank[:n], f"shipped with the checkpoint (`{record['command']}`)"
    return draw(model, n, seed), f"drawn here (seed {seed})"


def quality(images: torch.Tensor, reference: torch.Tensor | None = None, classifier=None) -> dict:
    """The protocol's two numbers for one set of samples in [0, 1]: the Fréchet distance to the
    grayscale test images and the fraction the classifier is > 90 % sure of."""
    from .metrics import protocol_scores

    return protocol_scores(images, reference, classifier)


@torch.no_grad()
def sharpness(vae: VAE, n: int = QUALITY_SAMPLES, seed: int = 0, reference: torch.Tensor | None = None,
              classifier=None) -> dict:
    """The VAE's decoder means σ(decoder(z)), z ~ N(0, I) — the blurry picture a VAE is known by
    (its Bernoulli draws, scored in the table, are speckled instead) — scored by :func:`quality`,
    the same protocol as every model's samples: the claim "GAN samples are sharper than a VAE's"
    compares them with the DCGAN's row."""
    vae.eval()
    return quality(vae.sample(n, torch.Generator().manual_seed(seed), probabilities=True), reference, classifier)


# --------------------------------------------------------------------------- training cost
def training_cost(meta: dict) -> dict:
    """Seconds, optimisation steps and training images seen to reach a shipped checkpoint, from
    its metadata. The factorized model has a closed form: one pass over the training set. A run
    that started from another checkpoint (``--option init=...``) says so in ``continued_from``:
    the earlier stage's time is not included."""
    options = meta.get("options", {})
    seconds, steps = meta.get("train_seconds"), meta.get("steps")
    if meta.get("recipe") == "factorized":
        images = 60_000 if meta.get("train_subset") == "full" else 10_000
    else:
        images = steps * options.get("batch_size", 0) * int(options.get("k", 1)) if steps else None
    return {"seconds": seconds, "steps": steps, "images_seen": images, "device": options.get("device", "?"),
            "images_per_s": images / seconds if images and seconds else None,
            "continued_from": options.get("init")}  # an earlier stage's time is not in this checkpoint


# --------------------------------------------------------------------------- latent space
def latent_description(model: nn.Module) -> str:
    return _interface(model, "latent space").latent_description()


def interpolation(model: nn.Module, steps: int = 8, seed: int = 0, pair: torch.Tensor | None = None) -> torch.Tensor | None:
    """Decode ``steps`` points on the straight line z_t = (1 − t) z_0 + t z_1, t ∈ [0, 1], in [0, 1].

    VAE: z_0, z_1 are the posterior means μ(x) of two real test images ``pair`` (by default the first
    two of different classes); the GAN has no encoder, so z_0, z_1 ~ N(0, I). Models without a
    latent space return None."""
    return _interface(model, "latent space").interpolation(steps, seed=seed, pair=pair)


# --------------------------------------------------------------------------- everything at once
@dataclass
class Comparison:
    """What :func:`measure` found: one row per model, the samples, the PixelCNN samplers, the real references."""

    rows: list[dict] = field(default_factory=list)
    samples: dict[str, torch.Tensor] = field(default_factory=dict)
    interpolations: dict[str, torch.Tensor] = field(default_factory=dict)
    sampler: dict | None = None
    references: dict[str, dict] = field(default_factory=dict)   # real images under the quality protocol
    sharpness: dict | None = None                                # the VAE's decoder means under the protocol
    settings: Settings = field(default_factory=Settings)

    def row(self, name: str) -> dict | None:
        return next((r for r in self.rows if r["name"] == name), None)


def _say(verbose: bool, text: str) -> None:
    if verbose:
        print(text, flush=True)


def measure(models: dict[str, tuple[nn.Module, dict]], settings: Settings = NOTEBOOK, verbose: bool = True,
            classifier=None) -> Comparison:
    """Measure every loaded model (from :func:`load`) with the same test images, seeds and sample
    counts; print one line per measurement as it goes."""
    from .metrics import quality_references, test_features

    x = real_images("binary", limit=settings.test_images)
    recorded = settings.likelihood == "recorded" and settings.test_images == 2000
    result = Comparison(settings=settings)
    try:
        reference = test_features(classifier)
    except CheckpointError as err:
        _say(verbose, f"⚠ sample quality not measured: the feature classifier is not shipped yet ({err})")
        reference = None
    for c in CONTENDERS:
        if c.name not in models:
            continue
        model, meta = models[c.name]
        started = time.perf_counter()
        lik = recorded_likelihood(model, meta, settings.iw_k) if recorded else \
            likelihood(model, x, settings.iw_k, settings.seed)
        row = {"name": c.name, "label": c.label, "family": model.family, "likelihood": lik}
        images, row["sample_s"] = time_sampling(model, settings.samples, settings.seed)
        result.samples[c.name] = images
        row["training"] = training_cost(meta)
        row["latent"] = latent_description(model)
        if reference is not None:
            scored, source = quality_samples(c.name, model, settings.quality_samples, settings.seed,
                                             shipped=meta.get("shipped", False))
            row["quality"] = {**quality(scored, reference, classifier), "source": source}
        else:
            row["quality"] = None
        path = interpolation(model, settings.interpolation_steps, settings.seed)
        if path is not None:
            result.interpolations[c.name] = path
        result.rows.append(row)
        nats = lik.get("nats")
        q = row["quality"]
        _say(verbose, f"{c.name:15s} likelihood: {lik['kind']:5s} "
                      f"{'' if nats is None else f'{nats:7.2f} nats'}{' (recorded)' if lik.get('source') == 'recorded' else ''}"
                      f"   {settings.samples} samples: {row['sample_s']:6.2f} s"
                      + ("" if q is None else f"   Fréchet {q['frechet']:6.1f}, sure {q['confident']:.0%} ({q['samples']} samples)")
                      + f"   (measured in {time.perf_counter() - started:.1f} s)")
    if "pixelcnn" in models:
        result.sampler = naive_vs_fast(models["pixelcnn"][0], settings.samples, settings.seed, settings.naive_rows)
        s = result.sampler
        _say(verbose, f"PixelCNN, {s['images']} images: naive {s['naive_s']:.1f} s"
                      f"{' (extrapolated from ' + str(s['naive_rows_measured']) + ' row(s))' if s['naive_extrapolated'] else ''}, "
                      f"cached {s['fast_s']:.2f} s: {s['ratio']:.0f}× faster, same samples: {s['same_samples']}")
    if reference is not None:
        result.references = quality_references(settings.quality_samples, settings.reference_draws, settings.seed,
                                               reference, classifier)
        r = result.references
        _say(verbose, f"real training images, {settings.quality_samples} × {settings.reference_draws} draws: "
                      f"grayscale Fréchet {r['real']['frechet']:.1f} ± {r['real']['frechet_std']:.1f}, "
                      f"binarized {r['binarized']['frechet']:.1f} ± {r['binarized']['frechet_std']:.1f}")
        if "vae" in models:
            result.sharpness = sharpness(models["vae"][0], settings.quality_samples, settings.seed, reference, classifier)
            _say(verbose, f"VAE decoder means, {settings.quality_samples} images: Fréchet {result.sharpness['frechet']:.1f}")
    return result


# --------------------------------------------------------------------------- showing it
def _num(value, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def table_rows(result: Comparison) -> list[dict]:
    """The notebook's table: one dict of display strings per model."""
    out = []
    n = result.settings.quality_samples
    for r in result.rows:
        lik, q, train = r["likelihood"], r.get("quality"), r["training"]
        if lik["kind"] == "exact":
            nll, bpd = f"{lik['nats']:.1f} (exact)", f"{lik['bits_per_dim']:.4f}"
        elif lik["kind"] == "bound":
            nll = f"≤ {lik['nats']:.1f} (−L_{lik['iw_k']}); −ELBO {lik['neg_elbo_nats']:.1f}"
            bpd = f"≤ {lik['bits_per_dim']:.4f}"
        else:
            nll, bpd = "no likelihood", "—"
        out.append({
            "model": r["label"], "family": r["family"], "NLL (nats/image)": nll, "bits/dim": bpd,
            f"Fréchet distance ({n:,} samples)": f"{q['frechet']:.1f}" if q else "—",
            "classifier > 90 % sure": f"{q['confident']:.0%}" if q else "—",
            f"{result.settings.samples} samples (s)": f"{r['sample_s']:.3g}",
            "training (min)": _num(train["seconds"] / 60 if train["seconds"] else None)
                              + (" + an earlier stage" if train.get("continued_from") else ""),
            "training images/s": _num(train["images_per_s"], 0),
            "latent space": r["latent"],
        })
    return out


def reference_sentence(result: Comparison) -> str:
    """The real-image references of the quality columns, in one sentence."""
    r = result.references
    if not r:
        return ""
    return (f"Real training images under the same protocol ({r['real']['n']:,} images, mean ± spread over "
            f"{r['real']['draws']} draws): grayscale {r['real']['frechet']:.1f} ± {r['real']['frechet_std']:.1f} and "
            f"{r['real']['confident']:.0%} sure; binarized {r['binarized']['frechet']:.1f} ± "
            f"{r['binarized']['frechet_std']:.1f} and {r['binarized']['confident']:.0%} sure.")


def markdown_table(rows: list[dict]) -> str:
    """Rows of display strings as a Markdown table; the columns in the order they first appear."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "—")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def markdown(result: Comparison) -> str:
    """The table as Markdown (for ``IPython.display.Markdown`` and ``benchmarks/results.md``)."""
    rows = table_rows(result)
    if not rows:
        return "*No model is shipped yet: nothing to compare.*"
    lines = [markdown_table(rows)]
    ref = reference_sentence(result)
    return "\n".join(lines) + (f"\n\n{ref}" if ref else "")


def samples_figure(result: Comparison, per_row: int = 10, extra: dict[str, torch.Tensor] | None = None):
    """One figure: a row of samples for every model (and ``extra`` rows, e.g. real images)."""
    from .plotting import show_image_rows

    rows = {BY_NAME[name].label: images[:per_row] for name, images in result.samples.items()}
    rows.update(extra or {})
    if not rows:
        return None
    return show_image_rows(list(rows.values()), list(rows), ncol=per_row)


def interpolation_figure(result: Comparison):
    """A row per model with a latent space: the decoded straight line between two codes."""
    from .plotting import show_image_rows

    if not result.interpolations:
        return None
    labels = [f"{BY_NAME[n].label}: " + ("between two real test images (encoder means)" if n == "vae"
                                         else "between two random codes (no encoder)")
              for n in result.interpolations]
    return show_image_rows(list(result.interpolations.values()), labels)


# --------------------------------------------------------------------------- the lecture's claims
def quality_noise(result: Comparison, *names: str) -> float | None:
    """The Fréchet distance's noise at the protocol's n, for comparing the models ``names``: the
    spread over draws of the real reference of their kind of images (binarized for binary models,
    grayscale for the others; the larger when both kinds take part). Differences below 3× this are
    not read as a ranking."""
    r = result.references
    if not r:
        return None
    kinds = {"binarized" if n in BY_NAME and BY_NAME[n].space == "binary" else "real" for n in names} or {"real", "binarized"}
    return max(r[k]["frechet_std"] for k in kinds)


def by_noise(a: float, b: float, noise: float) -> bool | None:
    """Is the Fréchet distance a below b? True if below beyond 3× the metric's noise, False if above
    beyond it, None (undecided) within it."""
    return True if a < b - 3 * noise else False if a > b + 3 * noise else None


def compare_with_bound(exact_nats: float, bound_nats: float) -> dict:
    """What an exact NLL and another model's *upper bound* on its NLL (−L_K or −ELBO) can decide.

    The bounded model's true NLL is somewhere at or below ``bound_nats``. If the exact value is
    above the bound, the bounded model is certainly better (by at least the difference). If it is
    below, nothing is decided: the bounded model is *at most* that much worse, and may be better.
    """
    gap = bound_nats - exact_nats
    if gap < 0:
        return {"decided": True, "winner": "bounded", "at_least": -gap}
    return {"decided": False, "winner": None, "at_most_worse": gap}


REPORT_KINDS = ("exact", "upper bound")


def decide(a: dict, b: dict) -> str | None:
    """Which of two reported negative log-likelihoods is *certainly* the lower one, if the two numbers
    can say (notebook 06, exercise 2). Each report is ``{"model": name, "nats": NLL in nats per image,
    "kind": "exact" or "upper bound", "test set": the images it was measured on}``. Returns the
    ``"model"`` of the certainly better one, or None when nothing is decided:

    * numbers on different test sets decide nothing;
    * two exact values: the lower one (None when equal);
    * an exact value and an upper bound: :func:`compare_with_bound` — the bound proves its model better
      when it lies below the exact value, and proves nothing when above;
    * two upper bounds: nothing (either true value may lie anywhere below its bound).
    """
    for report in (a, b):
        if report.get("kind") not in REPORT_KINDS:
            raise ValueError(f"kind must be one of {REPORT_KINDS}, got {report.get('kind')!r}")
    if a["test set"] != b["test set"]:
        return None
    if a["kind"] == b["kind"] == "exact":
        return None if a["nats"] == b["nats"] else (a if a["nats"] < b["nats"] else b)["model"]
    if a["kind"] == b["kind"] == "upper bound":
        return None
    exact, bound = (a, b) if a["kind"] == "exact" else (b, a)
    return bound["model"] if compare_with_bound(exact["nats"], bound["nats"])["decided"] else None


def claims(result: Comparison) -> list[dict]:
    """The lecture's pros and cons, each checked against the measurements: ``holds`` is True,
    False, or None when the numbers cannot decide it (a model was not measured, or the comparison
    is one an upper bound or the metric's noise cannot settle; ``evidence`` says which)."""
    row = {r["name"]: r for r in result.rows}
    out = []

    def claim(text: str, needs: tuple[str, ...], test, evidence) -> None:
        if not all(n in row for n in needs):
            out.append({"claim": text, "holds": None, "evidence": f"not measured: needs {', '.join(needs)}"})
            return
        try:
            out.append({"claim": text, "holds": test(), "evidence": evidence()})
        except (TypeError, KeyError):
            out.append({"claim": text, "holds": None, "evidence": "not measured (a number is missing)"})

    ar = [n for n in ("pixelcnn", "gated_pixelcnn", "pixelrnn") if n in row]
    best_ar = min(ar, key=lambda n: row[n]["likelihood"]["nats"]) if ar else "pixelcnn"
    nats = lambda n: row[n]["likelihood"]["nats"]  # noqa: E731

    def best_likelihood():
        if not nats(best_ar) < nats("factorized"):
            return False
        verdict = compare_with_bound(nats(best_ar), nats("vae"))
        return False if verdict["decided"] else None      # exact below an upper bound decides nothing

    def best_likelihood_evidence():
        verdict = compare_with_bound(nats(best_ar), nats("vae"))
        k = row["vae"]["likelihood"]["iw_k"]
        vs_vae = (f"the VAE's upper bound −L_{k} = {nats('vae'):.1f} is below it: the VAE is better by at least "
                  f"{verdict['at_least']:.1f} nats" if verdict["decided"] else
                  f"the VAE's upper bound −L_{k} = {nats('vae'):.1f} is above it: the VAE is at most "
                  f"{verdict['at_most_worse']:.1f} nats worse, and a bound cannot say whether it is worse at all")
        return (f"{BY_NAME[best_ar].label} {nats(best_ar):.1f} nats (exact) vs factorized {nats('factorized'):.1f} "
                f"(exact): better by {nats('factorized') - nats(best_ar):.1f}; {vs_vae}")

    claim("Autoregressive models: exact likelihood, and the best one (below the baseline and the VAE)",
          (best_ar, "vae", "factorized"), best_likelihood, best_likelihood_evidence)
    claim("VAE: only a lower bound on log p(x); the importance-weighted bound is tighter than the ELBO",
          ("vae",), lambda: row["vae"]["likelihood"]["nats"] <= row["vae"]["likelihood"]["neg_elbo_nats"],
          lambda: f"−L_{row['vae']['likelihood']['iw_k']} = {row['vae']['likelihood']['nats']:.1f} ≤ "
                  f"−ELBO = {row['vae']['likelihood']['neg_elbo_nats']:.1f} nats: both upper bounds on the NLL")

    def slowdown():
        fastest = min(row[n]["sample_s"] for n in ar)
        return {other: (min(row[n]["sample_s"] for n in ar) / row[other]["sample_s"],
                        max(row[n]["sample_s"] for n in ar) / row[other]["sample_s"]) for other in ("vae", "dcgan")}, fastest

    claim("Autoregressive sampling is slow: one pixel after another (≥ 10× slower than a VAE or GAN)",
          (best_ar, "vae", "dcgan"), lambda: min(lo for lo, _ in slowdown()[0].values()) >= 10,
          lambda: f"{result.settings.samples} samples on one thread: the autoregressive models take "
                  f"{slowdown()[0]['vae'][0]:,.0f}–{slowdown()[0]['vae'][1]:,.0f}× the VAE's time and "
                  f"{slowdown()[0]['dcgan'][0]:,.0f}–{slowdown()[0]['dcgan'][1]:,.0f}× the DCGAN's")
    s = result.sampler
    claim("Caching makes PixelCNN sampling much faster (≥ 20× at 64 images) without changing the samples",
          ("pixelcnn",), lambda: s is not None and s["ratio"] >= 20 and s["same_samples"] and s["images"] >= 64,
          lambda: f"{s['ratio']:.0f}× at {s['images']} images, same samples: {s['same_samples']}")
    fd = lambda n: row[n]["quality"]["frechet"]  # noqa: E731

    h = result.sharpness
    gray = lambda: quality_noise(result, "dcgan")  # noqa: E731  (decoder means are grayscale too)
    claim("GAN samples are sharper than a VAE's (its decoder means): closer to the real images",
          ("vae", "dcgan"), lambda: by_noise(fd("dcgan"), h["frechet"], gray()),
          lambda: f"Fréchet distance, {h['samples']:,} images each: DCGAN {fd('dcgan'):.1f} vs VAE decoder means "
                  f"{h['frechet']:.1f} (noise ± {gray():.1f}); classifier sure of {row['dcgan']['quality']['confident']:.0%} "
                  f"vs {h['confident']:.0%}")
    others = [n for n in row if n != "dcgan"]
    best_other = lambda: min(others, key=fd)  # noqa: E731
    claim("GANs give the best samples of the families (lowest Fréchet distance of all)",
          ("dcgan", *others), lambda: by_noise(fd("dcgan"), fd(best_other()), quality_noise(result, "dcgan", best_other())),
          lambda: f"DCGAN {fd('dcgan'):.1f} vs the best other, {BY_NAME[best_other()].label}, {fd(best_other()):.1f} "
                  f"(noise ± {quality_noise(result, 'dcgan', best_other()):.1f})")
    ips = lambda n: row[n]["training"]["images_per_s"]  # noqa: E731
    claim("PixelCNN trains faster than PixelRNN (convolutions in parallel vs a recurrence over rows)",
          ("pixelcnn", "pixelrnn"), lambda: ips("pixelcnn") > ips("pixelrnn"),
          lambda: f"{ips('pixelcnn'):.0f} vs {ips('pixelrnn'):.0f} training images/s (checkpoint metadata)")
    claim("Only latent-variable models have a latent space; only the VAE can infer z from an image", ("vae", "dcgan"),
          lambda: set(result.interpolations) == {"vae", "dcgan"} & set(row),
          lambda: f"VAE: {row['vae']['latent']}; DCGAN: {row['dcgan']['latent']}; autoregressive: none")
    return out


MARKS = {True: "✔ holds    ", False: "✘ fails    ", None: "? undecided"}


def print_claims(result: Comparison | None, checked: list[dict] | None = None) -> None:
    """Print checked claims, a verdict mark each: :func:`claims` of ``result`` unless ``checked`` is given."""
    for c in claims(result) if checked is None else checked:
        print(f"{MARKS[c['holds']]} {c['claim']}\n              {c['evidence']}")


def likelihood_quality_disagreements(result: Comparison) -> list[tuple[str, str]]:
    """Pairs (a, b) of exact-likelihood models where a has the lower NLL but b's samples score better
    beyond 3× the metric's noise: likelihood and sample quality ranking them differently."""
    rows = [r for r in result.rows if r["likelihood"]["kind"] == "exact" and r.get("quality")]
    if not result.references:
        return []
    return [(a["name"], b["name"]) for a in rows for b in rows
            if a["likelihood"]["nats"] < b["likelihood"]["nats"]
            and a["quality"]["frechet"] > b["quality"]["frechet"] + 3 * quality_noise(result, a["name"], b["name"])]


def _span(values: list[float], spec: str = ",.0f") -> str:
    lo, hi = min(values), max(values)
    return format(lo, spec) if format(lo, spec) == format(hi, spec) else f"{format(lo, spec)}–{format(hi, spec)}"


def discussion(result: Comparison) -> str:
    """Notebook 06's discussion, claim by claim, as Markdown written from the measured numbers: each
    sentence's direction and wording (exact value, upper bound, within the noise) follows the
    numbers, so it stays true when a checkpoint or the machine changes."""
    row = {r["name"]: r for r in result.rows}
    out = []
    exact = [r for r in result.rows if r["likelihood"]["kind"] == "exact"]
    if exact:
        best = min(exact, key=lambda r: r["likelihood"]["nats"])
        x = best["likelihood"]["nats"]
        text = (f"**Likelihood.** {best['label']} has the lowest exact NLL, {x:.1f} nats "
                f"({best['likelihood']['bits_per_dim']:.4f} bits/dim)")
        if "factorized" in row and best["name"] != "factorized":
            text += (f", {row['factorized']['likelihood']['nats'] - x:.1f} nats below the factorized baseline: exact "
                     "against exact, so that ranking is certain")
        text += "."
        if "vae" in row:
            lik = row["vae"]["likelihood"]
            verdict = compare_with_bound(x, lik["nats"])
            if verdict["decided"]:
                text += (f" The VAE's upper bound −L_{lik['iw_k']} = {lik['nats']:.1f} nats is *below* that exact value, so the "
                         f"VAE is certainly better in likelihood, by at least {verdict['at_least']:.1f} nats.")
            else:
                text += (f" Against the VAE the numbers decide nothing: it reports only an upper bound, −L_{lik['iw_k']} = "
                         f"{lik['nats']:.1f} nats, so its NLL is *at most* {verdict['at_most_worse']:.1f} nats worse than "
                         f"the {best['label']}'s, and could even be lower. The bound tightened by "
                         f"{lik['neg_elbo_nats'] - lik['nats']:.1f} nats from the ELBO to K = {lik['iw_k']} and keeps tightening "
                         "with K, so the true gap is smaller than this.")
        budgets = [f"{r['label']} {r['training']['seconds'] / 60:.0f} min" for r in exact
                   if r["name"] != "factorized" and r["training"]["seconds"]]
        if budgets:
            text += (" The autoregressive models were trained for fixed CPU budgets (" + ", ".join(budgets) +
                     ") and none is converged, so their gaps say as much about size and budget as about architecture.")
        out.append(text)
    s = result.sampler
    ar = [row[n] for n in ("pixelcnn", "gated_pixelcnn", "pixelrnn") if n in row]
    if ar and "vae" in row and "dcgan" in row:
        t = [r["sample_s"] for r in ar]
        text = (f"**Sampling speed.** With the cache, the autoregressive models draw {result.settings.samples} images in "
                f"{_span(t, '.2f')} s on one thread: {_span([v / row['vae']['sample_s'] for v in t])}× the VAE's time and "
                f"{_span([v / row['dcgan']['sample_s'] for v in t])}× the DCGAN's, which need one pass of a network.")
        if s is not None:
            text += (f" The naive sampler (a full forward pass per pixel) is another {s['ratio']:.0f}× slower for the PixelCNN"
                     + (", and draws the very same samples." if s["same_samples"] else ", and its samples differ: a bug."))
        text += " The 784 steps stay sequential whatever the hardware; the cache makes each one cheap."
        out.append(text)
    if result.references and all(r.get("quality") for r in result.rows):
        ref = result.references
        fd = {r["name"]: r["quality"]["frechet"] for r in result.rows}
        ranked = sorted(result.rows, key=lambda r: r["quality"]["frechet"])
        text = (f"**Sample quality** ({result.settings.quality_samples:,} samples each, Fréchet distance to the grayscale test "
                "images, lower is better): " + ", ".join(f"{r['label']} {r['quality']['frechet']:.1f}" for r in ranked) +
                f". Real images score {ref['real']['frechet']:.1f} ± {ref['real']['frechet_std']:.1f} grayscale and "
                f"{ref['binarized']['frechet']:.1f} ± {ref['binarized']['frechet_std']:.1f} binarized: the latter is the best a "
                "perfect model of the binarized data could reach, so the binary models are to be read against it.")
        binary = [r for r in result.rows if BY_NAME[r["name"]].space == "binary" and r["name"] != "factorized"]
        if binary:
            b = min(binary, key=lambda r: r["quality"]["frechet"])
            text += (f" The best binary model, {b['label']}, is {b['quality']['frechet'] - ref['binarized']['frechet']:.0f} "
                     "above that reference" + (" (within 3× its spread)." if b['quality']['frechet'] - ref['binarized']['frechet']
                                               < 3 * ref['binarized']['frechet_std'] else "."))
        if "dcgan" in row and result.sharpness is not None:
            h, g = result.sharpness, fd["dcgan"]
            noise = quality_noise(result, "dcgan")
            if g < h["frechet"] - 3 * noise:
                text += (f" The DCGAN's samples ({g:.1f}) are closer to the real images than the VAE's decoder means "
                         f"({h['frechet']:.1f}), by far more than the metric's noise (± {noise:.1f}): \"sharper than a VAE\" holds.")
            elif g > h["frechet"] + 3 * noise:
                text += (f" The VAE's decoder means ({h['frechet']:.1f}) are closer to the real images than the DCGAN's samples "
                         f"({g:.1f}): \"GANs are sharper than VAEs\" does not hold for these two models.")
            else:
                text += (f" The DCGAN ({g:.1f}) and the VAE's decoder means ({h['frechet']:.1f}) are within the metric's noise "
                         f"(± {noise:.1f}): this measurement does not rank them.")
        pairs = likelihood_quality_disagreements(result)
        if pairs:
            text += " Likelihood and sample quality rank some models differently: " + "; ".join(
                f"{BY_NAME[a].label} has the lower NLL ({row[a]['likelihood']['nats']:.1f} vs {row[b]['likelihood']['nats']:.1f} "
                f"nats) but {BY_NAME[b].label}'s samples score better ({fd[b]:.1f} vs {fd[a]:.1f})" for a, b in pairs) + "."
        else:
            text += (" Among the exact-likelihood models, no pair is ranked differently by likelihood and by sample quality "
                     "beyond the metric's noise.")
        conf = {r["name"]: r["quality"]["confident"] for r in result.rows}
        text += (f" The classifier's confidence is a weaker second opinion: it is > 90 % sure of {ref['real']['confident']:.0%} "
                 f"of real grayscale images and {ref['binarized']['confident']:.0%} of binarized ones")
        if "factorized" in conf and conf["factorized"] > ref["binarized"]["confident"]:
            text += (f", but also of {conf['factorized']:.0%} of the factorized model's speckle, more than of real binarized "
                     "images — it rewards textures it keys on, not realism, so it is never read alone")
        out.append(text + ".")
    if "pixelcnn" in row and "pixelrnn" in row and row["pixelrnn"]["training"]["images_per_s"]:
        a, b = row["pixelcnn"]["training"]["images_per_s"], row["pixelrnn"]["training"]["images_per_s"]
        out.append(f"**Training speed.** The PixelCNN processed {a:.0f} training images per second, the PixelRNN {b:.0f} "
                   f"({a / b:.1f}× {'more' if a > b else 'fewer'}), from the checkpoints' metadata (runs on a shared machine; "
                   "`python -m lecture13 bench` measures it side by side).")
    if "vae" in row and "dcgan" in row:
        out.append("**Latent space.** Only the VAE has an encoder: its interpolation starts from two real images. The GAN's "
                   "codes decode just as smoothly, but there is no way to find the code of a given image.")
    out.append("**Not checked here**: that GANs are unstable to train (notebook 04 shows it over several seeds) and the "
               "absolute training times, which come from runs with different budgets on a shared machine.")
    return "\n\n".join(f"* {t}" for t in out)


# --------------------------------------------------------------------------- beyond the lecture (notebook 07)
@dataclass(frozen=True)
class Newcomer:
    """A model of notebook 07 in the comparison, read through the same interface as the contenders.

    ``sampler`` names the model's method that draws (``draw``, or ``draw_ddim``: the same DDPM with
    its few-step sampler); ``bank`` is the shipped sample bank its quality is scored on (None: no
    images to score, e.g. the flow's 2-D points); ``timed`` how many samples are timed (one batch).
    ``label`` may name the model's ``config`` entries, e.g. ``{T}``."""

    name: str
    label: str
    sampler: str = "draw"
    bank: Callable[[], torch.Tensor] | None = None
    timed: int = 4


def _ancestral_bank() -> torch.Tensor:
    from .checkpoints import pretrained_samples

    return pretrained_samples("ddpm")


def _ddim_bank() -> torch.Tensor:
    from .diffusion import pretrained_ddim_samples

    return pretrained_ddim_samples("ddpm")


NEWCOMERS = (
    Newcomer("ddpm", "DDPM, ancestral ({T} steps)", "draw", _ancestral_bank, timed=4),
    Newcomer("ddpm", "DDPM, DDIM ({ddim_steps} steps)", "draw_ddim", _ddim_bank, timed=16),
    Newcomer("flow_ring", "RealNVP flow (ring of 8 Gaussians)", "draw", None, timed=2000),
)


@dataclass
class Beyond:
    """The newcomers' rows (one per :data:`NEWCOMERS` entry that is shipped) and the DCGAN's from the
    main comparison, which the diffusion model's samples are scored against."""

    rows: list[dict] = field(default_factory=list)
    dcgan: dict | None = None
    references: dict[str, dict] = field(default_factory=dict)
    lecture_rows: list[dict] = field(default_factory=list)   # the main table's rows, for the likelihood claim
    lecture_samples: int = 64                                 # how many samples the main table timed
    samples: dict[str, torch.Tensor] = field(default_factory=dict)   # label: the first images of its bank

    def row(self, label_start: str) -> dict | None:
        return next((r for r in self.rows if r["label"].startswith(label_start)), None)


def time_per_sample(model: nn.Module, sampler: str, n: int, seed: int = 0) -> float:
    """Seconds per sample, drawing ``n`` with ``model.<sampler>`` on one thread after a warm-up of 1."""
    model = _interface(model, "sampling rule")
    draw_with = getattr(model, sampler)
    with torch.no_grad(), torch_threads(1):
        draw_with(1, torch.Generator().manual_seed(seed + 1))
        started = time.perf_counter()
        draw_with(n, torch.Generator().manual_seed(seed))
        return (time.perf_counter() - started) / n


def measure_beyond(result: Comparison, newcomers=NEWCOMERS, verbose: bool = True, classifier=None) -> Beyond:
    """Notebook 07's models next to the lecture's: what each can say about p(x) (recorded with its
    checkpoint, on the data it models), the quality of its shipped samples under the same protocol and
    reference as :func:`measure` (so the DDPM is compared with the DCGAN like with like), its time per
    sample on one thread, its training cost and its latent space."""
    from .metrics import test_features

    out = Beyond(dcgan=result.row("dcgan"), references=result.references, lecture_rows=result.rows,
                 lecture_samples=result.settings.samples)
    loaded: dict[str, tuple[nn.Module, dict]] = {}
    reference = test_features(classifier) if result.references else None
    for c in newcomers:
        if c.name not in loaded:
            try:
                loaded[c.name] = pretrained(c.name, with_meta=True)
            except CheckpointError as err:
                _say(verbose, f"⚠ {c.name}: not shipped yet, left out ({str(err).split(';')[0]}). "
                              f"Train it with `python -m lecture13 train {c.name} --ship`.")
                continue
        model, meta = loaded[c.name]
        started = time.perf_counter()
        label = c.label.format(**getattr(model, "config", {}))
        row = {"name": c.name, "label": label, "family": model.family, "sampler": c.sampler,
               "likelihood": recorded_likelihood(model, meta), "likelihood_metrics": meta.get("metrics", {}).get("embedded_test", {}),
               "sample_s": time_per_sample(model, c.sampler, c.timed), "timed": c.timed,
               "training": training_cost(meta), "latent": latent_description(model), "quality": None}
        if c.bank is not None:
            bank = c.bank()
            out.samples[label] = bank[:10]
            if reference is not None:
                row["quality"] = {**quality(bank, reference, classifier), "source": "the shipped bank"}
        out.rows.append(row)
        q = row["quality"]
        _say(verbose, f"{label:38s} {row['likelihood']['kind']:5s} {row['likelihood']['nats']:9.2f} nats per "
                      f"{row['likelihood'].get('per', 'image')}   {1000 * row['sample_s']:8.2f} ms/sample"
                      + ("" if q is None else f"   Fréchet {q['frechet']:6.1f}, sure {q['confident']:.0%} ({q['samples']} samples)")
                      + f"   (measured in {time.perf_counter() - started:.1f} s)")
    return out


def _likelihood_cell(lik: dict) -> str:
    """What a newcomer can say about p(x), with the data it is said on (never comparable across data)."""
    if lik["kind"] == "none":
        return "no likelihood"
    per = lik.get("per", "image")
    if lik["kind"] == "exact":
        true = f"; the true density's: {lik['true_nats']:.3f}" if lik.get("true_nats") is not None else ""
        return f"{lik['nats']:.3f} nats/{per} (exact){true}"
    return (f"≤ {lik['nats']:.1f} nats/{per} = ≤ {lik['bits_per_dim']:.3f} bits/dim (variational bound; "
            f"{lik.get('images', '?')} test images, {lik.get('data', '?')})")


def _ms(seconds: float) -> str:
    ms = 1000 * seconds
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.3g}"


def beyond_rows(beyond: Beyond, n: int = QUALITY_SAMPLES) -> list[dict]:
    """The notebook's second table: one dict of display strings per row, the DCGAN's first."""
    rows = []
    g = beyond.dcgan
    if g is not None:
        rows.append({"model": "DCGAN (notebook 05, for reference)", "family": g["family"],
                     "what it says about p(x)": "no likelihood",
                     f"Fréchet distance ({n:,} samples)": f"{g['quality']['frechet']:.1f}" if g.get("quality") else "—",
                     "classifier > 90 % sure": f"{g['quality']['confident']:.0%}" if g.get("quality") else "—",
                     "ms per sample (1 thread, batch)": f"{_ms(g['sample_s'] / beyond.lecture_samples)} ({beyond.lecture_samples})",
                     "training (min)": _num(g["training"]["seconds"] / 60 if g["training"]["seconds"] else None),
                     "latent space": g["latent"]})
    for r in beyond.rows:
        q, train = r["quality"], r["training"]
        rows.append({"model": r["label"], "family": r["family"], "what it says about p(x)": _likelihood_cell(r["likelihood"]),
                     f"Fréchet distance ({n:,} samples)": f"{q['frechet']:.1f}" if q else "— (2-D points)",
                     "classifier > 90 % sure": f"{q['confident']:.0%}" if q else "—",
                     "ms per sample (1 thread, batch)": f"{_ms(r['sample_s'])} ({r['timed']:,})",
                     "training (min)": _num(train["seconds"] / 60 if train["seconds"] else None),
                     "latent space": r["latent"]})
    return rows


def beyond_markdown(beyond: Beyond) -> str:
    rows = beyond_rows(beyond)
    return markdown_table(rows) if rows else "*Neither notebook 07 model is shipped yet.*"


def beyond_figure(beyond: Beyond, result: Comparison, per_row: int = 10):
    """Real grayscale test images, the DCGAN's samples and the DDPM's (both samplers, from the same x_T),
    a row each: what the quality columns score."""
    from .plotting import show_image_rows

    rows = {"real test images (grayscale)": real_images("unit", limit=per_row)}
    if "dcgan" in result.samples:
        rows["DCGAN (notebook 05)"] = result.samples["dcgan"][:per_row]
    rows.update({label: images[:per_row] for label, images in beyond.samples.items()})
    return show_image_rows(list(rows.values()), list(rows), ncol=per_row)


def beyond_claims(beyond: Beyond) -> list[dict]:
    """The pros and cons the lecture's successors are taught with, each checked against
    :func:`measure_beyond`'s numbers (``holds`` True, False or None = undecided, as :func:`claims`)."""
    anc, ddim, flow, g = beyond.row("DDPM, ancestral"), beyond.row("DDPM, DDIM"), beyond.row("RealNVP"), beyond.dcgan
    out = []

    def claim(text: str, needs: tuple, test, evidence) -> None:
        if any(x is None for x in needs):
            out.append({"claim": text, "holds": None, "evidence": "not measured: a model is not shipped"})
            return
        try:
            out.append({"claim": text, "holds": test(), "evidence": evidence()})
        except (TypeError, KeyError):
            out.append({"claim": text, "holds": None, "evidence": "not measured (a number is missing)"})

    noise = lambda: beyond.references["real"]["frechet_std"]  # noqa: E731  (grayscale samples: the grayscale reference)
    per_sample = lambda r: r["sample_s"] if r is not g else g["sample_s"] / beyond.lecture_samples  # noqa: E731

    if flow is not None:
        lik, m = flow["likelihood"], flow["likelihood_metrics"]
    claim("Flows: an exact likelihood (change of variables), which on toy data can be checked against the truth",
          (flow,), lambda: lik["kind"] == "exact" and m["gap_nats"] > -3 * m["gap_se"],
          lambda: f"NLL {lik['nats']:.3f} vs the true density's {lik['true_nats']:.3f} nats/point on {m['points']:,} test "
                  f"points: the flow loses {m['gap_nats']:.3f} ± {m['gap_se']:.3f} nats/point, an estimate of KL(p ‖ q), "
                  "which cannot be negative")
    claim("Flows: exact inference, z = f(x) inverts to numerical precision (no encoder to learn)",
          (flow,), lambda: m["inverse_error_float64"] < 1e-6,
          lambda: f"largest round-trip error |f⁻¹(f(x)) − x|: {m['inverse_error_float64']:.1e} in float64, "
                  f"{m['inverse_error_float32']:.1e} in float32 (1,000 test points)")
    def better_samples():
        """Below the DCGAN's Fréchet distance beyond the noise, and the classifier surer of more of them."""
        verdict = by_noise(anc["quality"]["frechet"], g["quality"]["frechet"], noise())
        return verdict and anc["quality"]["confident"] > g["quality"]["confident"]

    claim("Diffusion models give the best samples, better than a GAN's (both protocol numbers)",
          (anc, g), better_samples,
          lambda: f"Fréchet distance DDPM {anc['quality']['frechet']:.1f} vs DCGAN {g['quality']['frechet']:.1f} "
                  f"(noise ± {noise():.1f}); classifier sure of {anc['quality']['confident']:.0%} vs "
                  f"{g['quality']['confident']:.0%}, {anc['quality']['samples']:,} samples each")
    claim("Diffusion sampling is slow: T network calls per sample (≥ 10× a GAN's time per sample)",
          (anc, g), lambda: per_sample(anc) / per_sample(g) >= 10,
          lambda: f"{1000 * per_sample(anc):.0f} ms vs {1000 * per_sample(g):.2f} ms per sample on one thread: "
                  f"{per_sample(anc) / per_sample(g):,.0f}×")
    claim("A few-step sampler (DDIM) draws from the same model ≥ 5× faster",
          (anc, ddim), lambda: anc["sample_s"] / ddim["sample_s"] >= 5,
          lambda: f"{1000 * anc['sample_s']:.0f} vs {1000 * ddim['sample_s']:.0f} ms per sample: "
                  f"{anc['sample_s'] / ddim['sample_s']:.1f}× faster, from the same x_T")
    claim("... at a cost in quality: DDIM's samples score worse than the ancestral ones",
          (anc, ddim), lambda: by_noise(anc["quality"]["frechet"], ddim["quality"]["frechet"], noise()),
          lambda: f"Fréchet distance {ddim['quality']['frechet']:.1f} (DDIM) vs {anc['quality']['frechet']:.1f} "
                  f"(ancestral), noise ± {noise():.1f}")
    exact = [r for r in beyond.lecture_rows if r["likelihood"]["kind"] == "exact"]
    best = min(exact, key=lambda r: r["likelihood"]["nats"]) if exact else None

    def report(r: dict, test_set: str) -> dict:
        return {"model": r["label"], "nats": r["likelihood"]["nats"], "test set": test_set,
                "kind": "exact" if r["likelihood"]["kind"] == "exact" else "upper bound"}

    def incomparable() -> bool:
        a = report(anc, f"{anc['likelihood']['images']} test images, {anc['likelihood']['data']}")
        b = report(best, "2,000 test images, binarized")
        return anc["likelihood"]["kind"] == "bound" and decide(a, b) is None

    claim("Diffusion models have only a bound on −log p(x), here on other data than the lecture's exact NLLs: "
          "the two cannot be ranked", (anc, best), incomparable,
          lambda: f"DDPM ≤ {anc['likelihood']['bits_per_dim']:.3f} bits/dim on {anc['likelihood']['images']} test "
                  f"images in {anc['likelihood']['data']} vs {best['label']} {best['likelihood']['bits_per_dim']:.4f} bits/dim "
                  "(exact) on 2,000 binarized ones: `decide` returns None (different test sets)")
    return out


def print_beyond_claims(beyond: Beyond) -> None:
    print_claims(None, beyond_claims(beyond))
