"""The three families side by side: every number of notebook 06, as functions.

Notebook 06 and the ``bench`` command's "Model comparison" section both call :func:`measure`,
so the table a student sees and the one in ``benchmarks/results.md`` come from the same code.
For each shipped model (:data:`CONTENDERS`) it measures, on the same test images and with the
same seeds:

* **likelihood** (:func:`likelihood`): the exact NLL of the explicit tractable models
  (factorized, PixelCNN, Gated PixelCNN, PixelRNN); for the VAE the negative ELBO and the negative
  importance-weighted bound −L_K (Burda et al. 2016); for the GAN nothing. Since

      log p(x) ≥ L_K ≥ L_1 = ELBO,   −ELBO ≥ −L_K ≥ NLL,

  the VAE's numbers are *upper bounds* on its NLL. Units: nats per image and
  bits/dim = NLL / (D ln 2), D = 784 (:func:`to_bits_per_dim`).
* **sample quality** (:func:`frechet_scores`): the Fréchet distance of each model's samples to the
  real test images in the shipped classifier's feature space (:mod:`lecture13.metrics`), next to
  the *floor*: the same distance for real training images, at the same sample size. For the
  VAE-vs-GAN sharpness claim, :func:`sharpness` scores both in one grayscale space with more images.
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

import torch
from torch import nn

from .autoregressive import AutoregressiveModel
from .checkpoints import CheckpointError, pretrained
from .data import tensors
from .factorized import FactorizedBernoulli
from .gan import GANBase, interpolate, signed_to_unit
from .likelihood import bits_per_dim
from .vae import VAE, elbo, iw_log_likelihood


# --------------------------------------------------------------------------- who takes part
@dataclass(frozen=True)
class Contender:
    """A shipped model and what the lecture says about its family."""

    name: str         # the shipped checkpoint: pretrained(name)
    label: str        # how tables and figures call it
    family: str       # the lecture's taxonomy
    likelihood: str   # "exact", "bound" or "none"
    space: str        # its samples are "binary" images or grayscale ("unit") ones: the real images it is compared with


CONTENDERS = (
    Contender("factorized", "Factorized", "baseline: independent pixels", "exact", "binary"),
    Contender("pixelcnn", "PixelCNN", "autoregressive (explicit, tractable)", "exact", "binary"),
    Contender("gated_pixelcnn", "Gated PixelCNN", "autoregressive (explicit, tractable)", "exact", "binary"),
    Contender("pixelrnn", "PixelRNN", "autoregressive (explicit, tractable)", "exact", "binary"),
    Contender("vae", "VAE", "latent variable (explicit, approximate)", "bound", "binary"),
    Contender("dcgan", "DCGAN", "implicit (no density)", "none", "unit"),
)
BY_NAME = {c.name: c for c in CONTENDERS}


@dataclass
class Settings:
    """How much to measure. :data:`NOTEBOOK` fits notebook 06's time budget; :data:`QUICK` runs in
    seconds (tests, ``bench --quick``); the bench's full run uses larger numbers."""

    test_images: int = 2000          # the embedded test subset (all of it)
    iw_k: int = 100                  # importance samples per image for L_K
    samples: int = 64                # samples per model: timed, shown, scored
    naive_rows: int | None = 1       # PixelCNN naive sampler timed on the last rows only (None: all rows)
    floor_draws: int = 5             # real-vs-real floors averaged over this many draws of training images
    interpolation_steps: int = 8
    sharpness_images: int = 1000     # VAE decoder means vs DCGAN samples, both grayscale: one space, one floor
    seed: int = 0


NOTEBOOK = Settings()
QUICK = Settings(test_images=100, iw_k=4, samples=8, naive_rows=1, floor_draws=2, interpolation_steps=4,
                 sharpness_images=16)


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
        models[c.name] = (model, meta)
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
@torch.no_grad()
def exact_nll(model: nn.Module, x: torch.Tensor, batch_size: int = 100) -> float:
    """Mean −log p(x) in nats per image of a model with an exact ``nll``."""
    model.eval()
    return float(torch.cat([model.nll(xb) for xb in x.split(batch_size)]).double().mean())


def likelihood(model: nn.Module, x: torch.Tensor, iw_k: int = 100, seed: int = 0) -> dict:
    """What the model can say about p(x) for binary test images ``x`` (N, 1, 28, 28).

    ``kind`` is ``"exact"`` (``nats`` = NLL), ``"bound"`` (``nats`` = −L_K ≥ NLL, with
    ``neg_elbo_nats`` = −ELBO ≥ −L_K) or ``"none"`` (a GAN: no density to evaluate).
    """
    if isinstance(model, GANBase):
        return {"kind": "none"}
    if isinstance(model, VAE):
        neg_elbo = -float(elbo(model, x, torch.Generator().manual_seed(seed)).double().mean())
        neg_iw = -float(iw_log_likelihood(model, x, iw_k, torch.Generator().manual_seed(seed),
                                          chunk=min(iw_k, 100)).double().mean())
        return {"kind": "bound", "nats": neg_iw, "bits_per_dim": bits_per_dim(neg_iw), "iw_k": iw_k,
                "neg_elbo_nats": neg_elbo, "neg_elbo_bits_per_dim": bits_per_dim(neg_elbo)}
    if isinstance(model, (AutoregressiveModel, FactorizedBernoulli)):
        nll = exact_nll(model, x)
        return {"kind": "exact", "nats": nll, "bits_per_dim": bits_per_dim(nll)}
    raise TypeError(f"no likelihood rule for {type(model).__name__}; expected an autoregressive, factorized, VAE or GAN model")


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


@torch.no_grad()
def draw(model: nn.Module, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` samples in [0, 1], shape (n, 1, 28, 28), from one seeded generator.

    Binary models give binary images (the VAE: Bernoulli draws from p(x|z), z ~ N(0, I)); the
    autoregressive ones use the cached sampler; the DCGAN's tanh output is mapped to [0, 1]."""
    from .sampling import sample_fast

    generator = torch.Generator().manual_seed(seed)
    model.eval()
    if isinstance(model, AutoregressiveModel):
        with torch_threads(1):
            return sample_fast(model, n, generator=generator)
    if isinstance(model, VAE):
        return model.sample(n, generator, probabilities=False)
    if isinstance(model, GANBase):
        return signed_to_unit(model.sample(n, generator))
    if isinstance(model, FactorizedBernoulli):
        return model.sample(n, generator)
    raise TypeError(f"no sampling rule for {type(model).__name__}")


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


def frechet_floor(space: str, n: int, draws: int = 5, seed: int = 0, classifier=None,
                  reference: torch.Tensor | None = None) -> dict:
    """The real-vs-real Fréchet distance at sample size ``n``: ``draws`` random sets of ``n``
    training images against the test images. A perfect generator scores about this (finite
    samples of one distribution are never at distance 0); ``std`` shows how noisy one score is."""
    from .metrics import frechet_distance, image_features

    reference = image_features(real_images(space), classifier) if reference is None else reference
    train = real_images(space, "train")
    generator = torch.Generator().manual_seed(seed)
    scores = torch.tensor([frechet_distance(image_features(train[torch.randperm(len(train), generator=generator)[:n]],
                                                           classifier), reference) for _ in range(draws)])
    return {"mean": float(scores.mean()), "std": float(scores.std()) if draws > 1 else 0.0, "n": n, "draws": draws}


def frechet_scores(samples: dict[str, torch.Tensor], spaces: dict[str, str], floor_draws: int = 5, seed: int = 0,
                   classifier=None) -> tuple[dict[str, dict], dict[str, dict]]:
    """``(scores, floors)``: each model's Fréchet distance to the real test images of its space,
    and the floors (real-vs-real at the same sample size), keyed ``"space/n"``."""
    from .metrics import frechet_distance, image_features

    references = {s: image_features(real_images(s), classifier) for s in sorted(set(spaces.values()))}
    floors, scores = {}, {}
    for name, images in samples.items():
        space, n = spaces[name], len(images)
        key = f"{space}/{n}"
        if key not in floors:
            floors[key] = frechet_floor(space, n, floor_draws, seed, classifier, references[space])
        fd = frechet_distance(image_features(images, classifier), references[space])
        scores[name] = {"frechet_distance": fd, "floor": floors[key]["mean"], "ratio_to_floor": fd / floors[key]["mean"],
                        "space": space, "samples": n}
    return scores, floors


@torch.no_grad()
def sharpness(vae: VAE, gan: GANBase, n: int = 1000, floor_draws: int = 5, seed: int = 0, classifier=None) -> dict:
    """The claim "VAE samples are blurry, GAN samples sharp", measured in one space: the decoder means
    σ(decoder(z)) (the picture a VAE is known by; its Bernoulli draws are speckled, not blurry) and
    the DCGAN's samples, ``n`` of each, are both grayscale images in [0, 1], so both are scored
    against the same grayscale test images and share one real-vs-real floor. (The table scores
    each model in its own space at 64 samples, where the two floors differ and each is noisy.)"""
    vae.eval()
    gan.eval()
    images = {"vae": vae.sample(n, torch.Generator().manual_seed(seed), probabilities=True),
              "dcgan": signed_to_unit(gan.sample(n, torch.Generator().manual_seed(seed)))}
    scores, floors = frechet_scores(images, {"vae": "unit", "dcgan": "unit"}, floor_draws, seed, classifier)
    return {"images": n, "floor": floors[f"unit/{n}"],
            **{name: scores[name]["frechet_distance"] for name in images}}


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
    if isinstance(model, VAE):
        return f"{model.latent_dim}-d, with an encoder q(z|x)"
    if isinstance(model, GANBase):
        return f"{model.z_dim}-d, no encoder"
    return "none"


@torch.no_grad()
def interpolation(model: nn.Module, steps: int = 8, seed: int = 0, pair: torch.Tensor | None = None) -> torch.Tensor | None:
    """Decode ``steps`` points on the straight line z_t = (1 − t) z_0 + t z_1, t ∈ [0, 1], in [0, 1].

    VAE: z_0, z_1 are the posterior means μ(x) of two real test images ``pair`` (by default the first
    two of different classes); the GAN has no encoder, so z_0, z_1 ~ N(0, I). Models without a
    latent space return None."""
    if isinstance(model, VAE):
        if pair is None:
            x, labels = tensors("test", "binary", limit=50)
            pair = torch.stack([x[0], x[int(torch.nonzero(labels != labels[0])[0])]])
        mu, _ = model.encode(pair)
        return torch.sigmoid(model.decode(interpolate(mu[0], mu[1], steps)))
    if isinstance(model, GANBase):
        z = torch.randn(2, model.z_dim, generator=torch.Generator().manual_seed(seed))
        model.eval()
        return signed_to_unit(model.generator(interpolate(z[0], z[1], steps)))
    return None


# --------------------------------------------------------------------------- everything at once
@dataclass
class Comparison:
    """What :func:`measure` found: one row per model, the samples, the PixelCNN samplers, the floors."""

    rows: list[dict] = field(default_factory=list)
    samples: dict[str, torch.Tensor] = field(default_factory=dict)
    interpolations: dict[str, torch.Tensor] = field(default_factory=dict)
    sampler: dict | None = None
    floors: dict[str, dict] = field(default_factory=dict)
    sharpness: dict | None = None
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
    x = real_images("binary", limit=settings.test_images)
    result = Comparison(settings=settings)
    for c in CONTENDERS:
        if c.name not in models:
            continue
        model, meta = models[c.name]
        started = time.perf_counter()
        row = {"name": c.name, "label": c.label, "family": c.family, "likelihood": likelihood(model, x, settings.iw_k, settings.seed)}
        images, row["sample_s"] = time_sampling(model, settings.samples, settings.seed)
        result.samples[c.name] = images
        row["training"] = training_cost(meta)
        row["latent"] = latent_description(model)
        path = interpolation(model, settings.interpolation_steps, settings.seed)
        if path is not None:
            result.interpolations[c.name] = path
        result.rows.append(row)
        nats = row["likelihood"].get("nats")
        _say(verbose, f"{c.name:15s} likelihood: {row['likelihood']['kind']:5s} "
                      f"{'' if nats is None else f'{nats:7.2f} nats'}   {settings.samples} samples: {row['sample_s']:6.2f} s"
                      f"   (measured in {time.perf_counter() - started:.1f} s)")
    if "pixelcnn" in models:
        result.sampler = naive_vs_fast(models["pixelcnn"][0], settings.samples, settings.seed, settings.naive_rows)
        s = result.sampler
        _say(verbose, f"PixelCNN, {s['images']} images: naive {s['naive_s']:.1f} s"
                      f"{' (extrapolated from ' + str(s['naive_rows_measured']) + ' row(s))' if s['naive_extrapolated'] else ''}, "
                      f"cached {s['fast_s']:.2f} s: {s['ratio']:.0f}× faster, same samples: {s['same_samples']}")
    try:
        scores, result.floors = frechet_scores(result.samples, {n: BY_NAME[n].space for n in result.samples},
                                               settings.floor_draws, settings.seed, classifier)
    except CheckpointError as err:
        _say(verbose, f"⚠ Fréchet distances not measured: the feature classifier is not shipped yet ({err})")
        scores = {}
    for row in result.rows:
        row["frechet"] = scores.get(row["name"])
    if scores and "vae" in models and "dcgan" in models:
        result.sharpness = sharpness(models["vae"][0], models["dcgan"][0], settings.sharpness_images,
                                     settings.floor_draws, settings.seed, classifier)
        h = result.sharpness
        _say(verbose, f"Same space, {h['images']} images each: DCGAN {h['dcgan']:.1f} vs VAE decoder means "
                      f"{h['vae']:.1f} (grayscale floor {h['floor']['mean']:.1f} ± {h['floor']['std']:.1f})")
    return result


# --------------------------------------------------------------------------- showing it
def _num(value, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def table_rows(result: Comparison) -> list[dict]:
    """The notebook's table: one dict of display strings per model."""
    out = []
    for r in result.rows:
        lik, fd, train = r["likelihood"], r.get("frechet"), r["training"]
        if lik["kind"] == "exact":
            nll, bpd = f"{lik['nats']:.1f} (exact)", f"{lik['bits_per_dim']:.4f}"
        elif lik["kind"] == "bound":
            nll = f"≤ {lik['nats']:.1f} (−L_{lik['iw_k']}); −ELBO {lik['neg_elbo_nats']:.1f}"
            bpd = f"≤ {lik['bits_per_dim']:.4f}"
        else:
            nll, bpd = "no likelihood", "—"
        out.append({
            "model": r["label"], "family": r["family"], "NLL (nats/image)": nll, "bits/dim": bpd,
            f"Fréchet dist. ({fd['samples']} samples)" if fd else "Fréchet dist.":
                f"{fd['frechet_distance']:.1f} ({fd['ratio_to_floor']:.1f}× floor)" if fd else "—",
            "64 samples (s)" if result.settings.samples == 64 else f"{result.settings.samples} samples (s)": f"{r['sample_s']:.3g}",
            "training (min)": _num(train["seconds"] / 60 if train["seconds"] else None)
                              + (" + an earlier stage" if train.get("continued_from") else ""),
            "training images/s": _num(train["images_per_s"], 0),
            "latent space": r["latent"],
        })
    return out


def markdown(result: Comparison) -> str:
    """The table as Markdown (for ``IPython.display.Markdown`` and ``benchmarks/results.md``)."""
    rows = table_rows(result)
    if not rows:
        return "*No model is shipped yet: nothing to compare.*"
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "—")) for c in columns) + " |" for row in rows]
    floors = "; ".join(f"{key.replace('/', ' images, ')} samples: {f['mean']:.1f} ± {f['std']:.1f}"
                       for key, f in sorted(result.floors.items()))
    return "\n".join(lines) + (f"\n\nReal-vs-real floor (training vs test images, {result.settings.floor_draws} draws): "
                               f"{floors}." if floors else "")


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
def claims(result: Comparison) -> list[dict]:
    """The lecture's pros and cons, each checked against the measurements: ``holds`` is True,
    False, or None when a model it needs was not measured."""
    row = {r["name"]: r for r in result.rows}
    out = []

    def claim(text: str, needs: tuple[str, ...], test, evidence) -> None:
        if not all(n in row for n in needs):
            out.append({"claim": text, "holds": None, "evidence": f"not measured: needs {', '.join(needs)}"})
            return
        try:
            out.append({"claim": text, "holds": bool(test()), "evidence": evidence()})
        except (TypeError, KeyError):
            out.append({"claim": text, "holds": None, "evidence": "not measured (a number is missing)"})

    ar = [n for n in ("pixelcnn", "gated_pixelcnn", "pixelrnn") if n in row]
    best_ar = min(ar, key=lambda n: row[n]["likelihood"]["nats"]) if ar else "pixelcnn"
    bpd = lambda n: row[n]["likelihood"]["bits_per_dim"]  # noqa: E731
    claim("Autoregressive models: exact likelihood, and the best one (lower NLL than the VAE's bound and the baseline)",
          (best_ar, "vae", "factorized"), lambda: bpd(best_ar) < bpd("vae") and bpd(best_ar) < bpd("factorized"),
          lambda: f"{BY_NAME[best_ar].label} {bpd(best_ar):.4f} vs VAE ≤ {bpd('vae'):.4f} vs factorized {bpd('factorized'):.4f} bits/dim")
    claim("VAE: only a lower bound on log p(x); the importance-weighted bound is tighter than the ELBO",
          ("vae",), lambda: row["vae"]["likelihood"]["nats"] <= row["vae"]["likelihood"]["neg_elbo_nats"],
          lambda: f"−L_{row['vae']['likelihood']['iw_k']} = {row['vae']['likelihood']['nats']:.1f} ≤ "
                  f"−ELBO = {row['vae']['likelihood']['neg_elbo_nats']:.1f} nats")
    slowest_other = lambda: max(row[n]["sample_s"] for n in ("vae", "dcgan"))  # noqa: E731
    claim("Autoregressive sampling is slow: one pixel after another (≥ 10× slower than a VAE or GAN)",
          (best_ar, "vae", "dcgan"), lambda: min(row[n]["sample_s"] for n in ar) >= 10 * slowest_other(),
          lambda: f"fastest autoregressive {min(row[n]['sample_s'] for n in ar):.2f} s vs VAE/DCGAN ≤ {slowest_other():.3f} s "
                  f"for {result.settings.samples} samples")
    s = result.sampler
    claim("Caching makes PixelCNN sampling much faster (≥ 20× at 64 images) without changing the samples",
          ("pixelcnn",), lambda: s is not None and s["ratio"] >= 20 and s["same_samples"] and s["images"] >= 64,
          lambda: f"{s['ratio']:.0f}× at {s['images']} images, same samples: {s['same_samples']}")
    h = result.sharpness
    claim("GAN samples are sharper than VAE samples (same grayscale space: closer to the real images)", ("vae", "dcgan"),
          lambda: h["dcgan"] < h["vae"],
          lambda: f"Fréchet distance, {h['images']} images each: DCGAN {h['dcgan']:.1f} vs VAE decoder means "
                  f"{h['vae']:.1f} (floor {h['floor']['mean']:.1f})")
    ips = lambda n: row[n]["training"]["images_per_s"]  # noqa: E731
    claim("PixelCNN trains faster than PixelRNN (convolutions in parallel vs a recurrence over rows)",
          ("pixelcnn", "pixelrnn"), lambda: ips("pixelcnn") > ips("pixelrnn"),
          lambda: f"{ips('pixelcnn'):.0f} vs {ips('pixelrnn'):.0f} training images/s (checkpoint metadata)")
    claim("Only latent-variable models have a latent space; only the VAE can infer z from an image", ("vae", "dcgan"),
          lambda: set(result.interpolations) == {"vae", "dcgan"} & set(row),
          lambda: f"VAE: {row['vae']['latent']}; DCGAN: {row['dcgan']['latent']}; autoregressive: none")
    return out


def print_claims(result: Comparison) -> None:
    marks = {True: "✔ holds  ", False: "✘ fails  ", None: "? unknown"}
    for c in claims(result):
        print(f"{marks[c['holds']]} {c['claim']}\n            {c['evidence']}")
