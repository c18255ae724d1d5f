"""Variational autoencoders (Kingma & Welling 2014) and the importance-weighted bound (Burda et al. 2016).

The model: a prior p(z) = N(0, I), a decoder p_θ(x | z) = Π_i Bernoulli(x_i; σ(l_i(z))) for
binarized images. Its likelihood p_θ(x) = ∫ p(z) p_θ(x | z) dz has no closed form, so an encoder
q_φ(z | x) = N(μ_φ(x), diag σ²_φ(x)) approximates the posterior and we maximize the ELBO:

    log p(x) = E_q[log p(x|z)] − KL(q(z|x) ‖ p(z)) + KL(q(z|x) ‖ p(z|x))
             ≥ E_q[log p(x|z)] − KL(q(z|x) ‖ p(z))  =  ELBO                          (1)

* the reconstruction term E_q[log p(x|z)] is estimated with one sample z = μ + σ ⊙ ε (the
  reparameterization trick, ε ~ N(0, I), so gradients flow into μ and σ);
* the KL term has a closed form for two Gaussians:
      KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²);                  (2)
* the importance-weighted bound with K samples z_k ~ q(z|x) is tighter, and tends to log p(x):
      L_K = log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x)   (computed with logsumexp).     (3)

The factorized decoder makes the pixels independent given z, so every local detail (an edge's exact
course, the speckle of a thresholded texture) must be carried by z or paid for in nats. :class:`PixelVAE`
lets each pixel's Bernoulli also see its already-generated neighbours (a small causal convolution, as in
PixelCNN), leaving z to carry the global shape; "free bits" keep z from being ignored.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .autoencoders import ConvEncoder, check_images, fit_by_epochs, save_snapshot
from .autoregressive import MaskedConv2d
from .checkpoints import register_model
from .data import loader, tensors
from .interface import GenerativeModel, likelihood_report
from .likelihood import bernoulli_log_likelihood, bits_per_dim
from .recipes import Recipe, register_recipe
from .sampling import draw_uniforms
from .training import History

LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------- the ELBO, term by term
def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """z = μ + σ ⊙ ε with σ = exp(½ log σ²) and ε ~ N(0, I) (drawn here unless given).

    z is a differentiable function of (μ, log σ²), so ∂z/∂μ = 1 and ∂z/∂log σ² = ½ σ ε."""
    if mu.shape != logvar.shape:
        raise ValueError(f"mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} must have the same shape")
    if eps is None:
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²), one value per row (eq. 2)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor | float = 0.0,
                         logvar: torch.Tensor | float = 0.0) -> torch.Tensor:
    """log N(z; μ, diag σ²) = −½ Σ_j [log 2π + log σ_j² + (z_j − μ_j)² / σ_j²], summed over the last axis."""
    logvar = torch.as_tensor(logvar, dtype=z.dtype, device=z.device)
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(dim=-1)


def negative_elbo(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> dict[str, torch.Tensor]:
    """−ELBO = −log p(x|z) + KL(q(z|x) ‖ p(z)), one-sample estimate, averaged over the batch.

    Returns ``{"loss": recon + kl, "recon": −log p(x|z), "kl": KL}`` (each a scalar, nats per
    image): the dict :func:`lecture13.training.train` logs part by part."""
    recon = -bernoulli_log_likelihood(logits, x)          # −log p(x|z), summed over pixels
    kl = gaussian_kl(mu, logvar)                          # closed form (eq. 2)
    return {"loss": (recon + kl).mean(), "recon": recon.mean(), "kl": kl.mean()}


def iw_bound(log_px_given_z: torch.Tensor, log_pz: torch.Tensor, log_qz: torch.Tensor) -> torch.Tensor:
    """L_K = logsumexp_k [log p(x|z_k) + log p(z_k) − log q(z_k|x)] − log K  (eq. 3).

    Inputs have shape (K, N): K samples for each of N images; returns (N,). The log weights are
    hundreds of nats below zero, so exp() would underflow: logsumexp subtracts the largest first."""
    log_w = log_px_given_z + log_pz - log_qz
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


# --------------------------------------------------------------------------- gradient estimators
def reparameterized_gradients(f, mu: torch.Tensor, logvar: torch.Tensor, n: int,
                              generator: torch.Generator | None = None) -> torch.Tensor:
    """n single-sample estimates of ∇_μ E_{z~N(μ,σ²)}[f(z)] by the reparameterization trick:
    z = μ + σ ε, so ∇_μ f(μ + σ ε) = f'(z). Shape (n, d); ``f`` maps (n, d) to (n,)."""
    eps = torch.randn(n, *mu.shape, generator=generator, dtype=mu.dtype)
    mu_rep = mu.detach().expand(n, *mu.shape).clone().requires_grad_(True)
    f(reparameterize(mu_rep, logvar.detach().expand_as(mu_rep), eps)).sum().backward()
    return mu_rep.grad


def score_function_gradients(f, mu: torch.Tensor, logvar: torch.Tensor, n: int,
                             generator: torch.Generator | None = None,
                             baseline: float | torch.Tensor = 0.0) -> torch.Tensor:
    """n single-sample estimates of the same gradient by the score function (REINFORCE):
    ∇_μ E_q[f(z)] = E_q[(f(z) − b) ∇_μ log q(z)], with ∇_μ log q(z) = (z − μ) / σ². Shape (n, d).

    Any constant ``baseline`` b (a control variate) keeps it unbiased, because E_q[∇_μ log q(z)] = 0;
    b close to f's typical value removes the part of the noise that comes from f's offset."""
    with torch.no_grad():
        z = reparameterize(mu.expand(n, *mu.shape), logvar.expand(n, *mu.shape),
                           torch.randn(n, *mu.shape, generator=generator, dtype=mu.dtype))
        return (f(z) - baseline).unsqueeze(-1) * (z - mu) * torch.exp(-logvar)


MAX_PROBLEM_DIM = 1024


def independent_pixels_problem(d: int, seed: int = 0) -> dict:
    """A gradient problem whose latent size d we can turn up: d "pixels" x_j ~ N(0, 2), each explained by
    its own latent coordinate, f(z) = log p(x | z) = log N(x; z, I_d), and q = N(x / 2, I / 2), the exact
    posterior under the prior N(0, I). Everything is known in closed form:
    ∇_μ E_q[f(z)] = x − μ and E_q[f(z)] = −½ Σ_j (log 2π + (x_j − μ_j)² + σ_j²).

    The coordinates are drawn once for ``MAX_PROBLEM_DIM`` and the first d kept, so the problems are
    nested: a larger d only adds pixels. Returns {"f", "mu", "logvar", "gradient", "mean_f"}."""
    if not 1 <= d <= MAX_PROBLEM_DIM:
        raise ValueError(f"d must be between 1 and {MAX_PROBLEM_DIM}, got {d}")
    x = math.sqrt(2.0) * torch.randn(MAX_PROBLEM_DIM, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)[:d]
    mu, logvar = x / 2, torch.full((d,), math.log(0.5), dtype=torch.float64)
    mean_f = -0.5 * (LOG_2PI + (x - mu).pow(2) + logvar.exp()).sum()
    return {"f": lambda z: gaussian_log_density(z, x), "mu": mu, "logvar": logvar, "gradient": x - mu, "mean_f": mean_f}


ESTIMATORS = ("reparameterized", "score function", "score function + baseline")


def gradient_estimates(d: int, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """n one-sample estimates (n, d) of ∇_μ E_q[f(z)] on :func:`independent_pixels_problem` by each of
    ``ESTIMATORS`` (the baseline is b = E_q[f(z)], the value a learned baseline approximates), each from
    its own random draws (seeded from ``seed``)."""
    p = independent_pixels_problem(d)
    draw = lambda k: torch.Generator().manual_seed(1000 * seed + k)
    return {
        "reparameterized": reparameterized_gradients(p["f"], p["mu"], p["logvar"], n, draw(0)),
        "score function": score_function_gradients(p["f"], p["mu"], p["logvar"], n, draw(1)),
        "score function + baseline": score_function_gradients(p["f"], p["mu"], p["logvar"], n, draw(2), baseline=p["mean_f"]),
    }


def gradient_variances(dims, n: int = 10_000, seeds=range(5)) -> dict[str, torch.Tensor]:
    """The variance of one estimator's one-sample estimate of a gradient coordinate, averaged over the d
    coordinates, for each latent size in ``dims`` and each seed: {estimator: (len(dims), len(seeds))}.
    Several seeds show how stable each variance estimate is (the score function's has heavy tails)."""
    out = {name: torch.zeros(len(dims), len(seeds), dtype=torch.float64) for name in ESTIMATORS}
    for i, d in enumerate(dims):
        for j, seed in enumerate(seeds):
            for name, est in gradient_estimates(d, n, seed).items():
                out[name][i, j] = est.var(0).mean()
    return out


# --------------------------------------------------------------------------- the model
class MLPDecoder(nn.Module):
    """z → 784 Bernoulli logits. An MLP, because the importance-weighted bound runs the decoder
    K = 1000 times per image: it must be cheap."""

    def __init__(self, latent_dim: int, hidden: int = 512):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 28 * 28),
            nn.Unflatten(-1, (1, 28, 28)),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


@register_model
class VAE(GenerativeModel):
    """Convolutional encoder q(z|x) = N(μ, diag σ²); Bernoulli decoder p(x|z); prior N(0, I)."""

    family = "latent variable (explicit, approximate)"
    likelihood_kind = "bound"

    def __init__(self, latent_dim: int = 32, channels: int = 32, hidden: int = 512):
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim}")
        self.config = {"latent_dim": latent_dim, "channels": channels, "hidden": hidden}
        self.latent_dim = latent_dim
        self.encoder = ConvEncoder(2 * latent_dim, channels, hidden // 2)   # outputs (μ, log σ²)
        self.decoder = MLPDecoder(latent_dim, hidden)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²) of q(z|x), each (N, latent_dim)."""
        check_images(x, "VAE.encode")
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    # K samples at a time in iw_log_likelihood: the decoder's activations for a chunk must fit in memory
    iw_chunk = 100

    def check_codes(self, z: torch.Tensor) -> None:
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"decode expects codes with {self.latent_dim} numbers in the last axis, got {tuple(z.shape)}")

    def decode(self, z: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Bernoulli logits of p(x|z), shape (..., 1, 28, 28) for z of shape (..., latent_dim).
        The pixels are independent given z, so the images ``x`` are not needed (and ignored)."""
        self.check_codes(z)
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """(logits, μ, log σ²) with z = μ + σ ε, one sample per image."""
        mu, logvar = self.encode(x)
        return self.decode(reparameterize(mu, logvar, generator=generator), x), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, probabilities: bool = True) -> torch.Tensor:
        """Decode z ~ N(0, I): pixel probabilities σ(l) (the usual picture), or Bernoulli draws."""
        z = torch.randn(n, self.latent_dim, generator=generator)
        p = torch.sigmoid(self.decode(z))
        return p if probabilities else torch.bernoulli(p, generator=generator)

    # ----------------------------------------------------------------- the interface (lecture13.interface)
    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Binary samples: Bernoulli draws from p(x|z), z ~ N(0, I) (the model's own distribution)."""
        self.eval()
        return self.sample(n, generator, probabilities=False)

    def likelihood(self, x: torch.Tensor, iw_k: int = 100, seed: int = 0) -> dict:
        """Upper bounds on the NLL: −L_K (``nats``, the tighter) and −ELBO, since
        log p(x) ≥ L_K ≥ L_1 = ELBO (Burda et al. 2016)."""
        self.eval()
        neg_elbo = -float(elbo(self, x, torch.Generator().manual_seed(seed)).double().mean())
        neg_iw = -float(iw_log_likelihood(self, x, iw_k, torch.Generator().manual_seed(seed),
                                          chunk=min(iw_k, 100)).double().mean())
        return likelihood_report("bound", neg_iw, iw_k=iw_k, neg_elbo_nats=neg_elbo,
                                 neg_elbo_bits_per_dim=bits_per_dim(neg_elbo))

    def recorded_likelihood(self, metrics: dict, iw_k: int = 100) -> dict:
        neg_iw, neg_elbo = metrics[f"iw_nll_k{iw_k}"], metrics["neg_elbo"]
        return likelihood_report("bound", neg_iw, iw_k=iw_k, neg_elbo_nats=neg_elbo,
                                 neg_elbo_bits_per_dim=bits_per_dim(neg_elbo), source="recorded")

    def latent_description(self) -> str:
        return f"{self.latent_dim}-d, with an encoder q(z|x)"

    @torch.no_grad()
    def interpolation(self, steps: int, seed: int = 0, pair: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder means on the line between the posterior means μ(x) of two real test images
        ``pair`` (by default the first two of different classes)."""
        from .gan import interpolate

        self.eval()
        if pair is None:
            x, labels = tensors("test", "binary", limit=50)
            pair = torch.stack([x[0], x[int(torch.nonzero(labels != labels[0])[0])]])
        mu, _ = self.encode(pair)
        return torch.sigmoid(self.decode(interpolate(mu[0], mu[1], steps)))


class LocalAutoregressiveDecoder(nn.Module):
    """p(x | z) = Π_i Bernoulli(x_i; σ(l_i)) where pixel i sees z *and* the pixels generated before it nearby:

        a(z)  = MLP(z)                                   one logit per pixel: the global picture
        h_i   = ReLU((W ⋆_A x)_i + u · a_i(z) + b)        W ⋆_A: a k×k type-A masked convolution (PixelCNN's),
        l_i   = a_i(z) + v · h_i + c                       so h_i depends only on pixels before i in raster order

    The masked convolution makes the chain rule hold: log p(x|z) = Σ_i log p(x_i | x_<i, z), all 784
    terms computed in one parallel pass when x is known (training, likelihood) and one pixel at a time
    when sampling. Its k×k window is small on purpose (Chen et al. 2017, "Variational Lossy
    Autoencoder"): local texture is cheap for it, the global shape it cannot see, so that stays z's job.
    """

    def __init__(self, latent_dim: int, hidden: int = 512, channels: int = 32, kernel_size: int = 7):
        super().__init__()
        self.mlp = MLPDecoder(latent_dim, hidden)
        self.context = MaskedConv2d(1, channels, kernel_size, "A")
        self.from_z = nn.Parameter(0.1 * torch.randn(channels, 1, 1))     # u: how a_i(z) enters h_i
        self.out_weight = nn.Parameter(torch.zeros(channels, 1, 1))        # v: zero, so training starts as the VAE
        self.out_bias = nn.Parameter(torch.zeros(1, 1, 1))                 # c

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        a = self.mlp(z)                                       # (..., B, 1, 28, 28)
        h = F.relu(self.context(x) + self.from_z * a)          # (..., B, C, 28, 28): x's context is shared by all z
        return a + (h * self.out_weight).sum(dim=-3, keepdim=True) + self.out_bias

    @torch.no_grad()
    def sample(self, z: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
        """Binary images for codes z (n, latent_dim), pixel by pixel in raster order: x_i = 1 exactly when
        u_i < σ(l_i). Only the k×k window at the new pixel is convolved, so a step costs almost nothing.
        It runs on one thread: 784 steps of tiny products gain nothing from more, and on a busy CPU
        threads waiting for each other made it 50 times slower."""
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._sample(z, uniforms)
        finally:
            torch.set_num_threads(threads)

    def _sample(self, z: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
        a = self.mlp(z)                                       # (n, 1, 28, 28), once
        n, (height, width), p = len(z), a.shape[-2:], self.context.kernel_size[0] // 2
        x = a.new_zeros(n, 1, height + 2 * p, width + 2 * p)  # zero padding, as in the parallel pass
        weight = self.context.masked_weight().flatten(1)       # (C, k·k)
        k = 2 * p + 1
        for r in range(height):
            for c in range(width):
                window = x[:, :, r:r + k, c:c + k].reshape(n, -1)
                h = F.relu(window @ weight.T + self.context.bias + self.from_z.flatten() * a[:, :, r, c])
                logit = a[:, 0, r, c] + h @ self.out_weight.flatten() + self.out_bias.flatten()
                x[:, 0, r + p, c + p] = (uniforms[:, 0, r, c] < torch.sigmoid(logit)).float()
        return x[:, :, p:p + height, p:p + width]


@register_model
class PixelVAE(VAE):
    """A VAE whose decoder is autoregressive over a small neighbourhood (:class:`LocalAutoregressiveDecoder`).

    Encoder, prior, ELBO and importance-weighted bound are those of :class:`VAE`; only p(x|z) changes,
    so ``decode(z, x)`` needs the images (pixel i's logit depends on x_<i) and ``sample`` draws pixel
    by pixel. Its samples are Bernoulli draws: there is no single "mean image" σ(l(z)) to show."""

    iw_chunk = 5    # its decoder keeps C = 32 feature maps per sample, not one: about 50 MB per chunk of 100 images

    def __init__(self, latent_dim: int = 32, channels: int = 32, hidden: int = 512,
                 context_channels: int = 32, kernel_size: int = 7):
        super().__init__(latent_dim, channels, hidden)
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd number >= 3, got {kernel_size}")
        self.config.update(context_channels=context_channels, kernel_size=kernel_size)
        self.decoder = LocalAutoregressiveDecoder(latent_dim, hidden, context_channels, kernel_size)

    def decode(self, z: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of p(x_i | x_<i, z) for every pixel, shape (..., B, 1, 28, 28), for codes z (..., B, latent_dim)."""
        self.check_codes(z)
        if x is None:
            raise ValueError("a PixelVAE's p(x|z) depends on the earlier pixels of x: call decode(z, x) with the "
                             "images (N, 1, 28, 28) whose likelihood you want; to draw new images use sample()")
        check_images(x, "PixelVAE.decode")
        return self.decoder(z, x)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, probabilities: bool = False) -> torch.Tensor:
        """n binary images: z ~ N(0, I), then x ~ p(x|z) pixel by pixel (784 small steps)."""
        if probabilities:
            raise ValueError("a PixelVAE has no per-pixel probability image: each pixel's probability depends on "
                             "the pixels drawn before it. Call sample(n) for Bernoulli draws.")
        self.eval()
        z = torch.randn(n, self.latent_dim, generator=generator)
        return self.decoder.sample(z, draw_uniforms(n, generator=generator))


def free_bits_kl(mu: torch.Tensor, logvar: torch.Tensor, nats_per_dim: float) -> torch.Tensor:
    """Σ_j max(λ, E_batch[KL_j]): the KL term with "free bits" (Kingma et al. 2016, IAF paper).

    A latent dimension whose batch-averaged KL is below λ nats costs a constant, so its gradient does not
    push it back to the prior. A decoder that sees neighbouring pixels could otherwise explain x without z
    (posterior collapse, KL → 0); with λ > 0 using z up to λ nats per dimension is free."""
    kl_per_dim = (0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).mean(dim=0)   # (latent_dim,)
    return kl_per_dim.clamp(min=nats_per_dim).sum()


def vae_loss(model: VAE, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The loss_fn for :func:`lecture13.training.train`: the negative ELBO and its two parts."""
    logits, mu, logvar = model(x)
    return negative_elbo(x, logits, mu, logvar)


def free_bits_loss(nats_per_dim: float):
    """A loss_fn like :func:`vae_loss` whose ``loss`` uses :func:`free_bits_kl`; ``recon`` and ``kl`` are the
    true terms, so recon + kl is still the −ELBO being bounded."""
    def loss(model: VAE, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, mu, logvar = model(x)
        parts = negative_elbo(x, logits, mu, logvar)
        return {**parts, "loss": parts["recon"] + free_bits_kl(mu, logvar, nats_per_dim)}
    return loss


def train_step(model: VAE, optimizer: torch.optim.Optimizer, x: torch.Tensor, eps: torch.Tensor) -> dict[str, float]:
    """One optimiser step of a VAE on the batch ``x`` with the negative ELBO, the reconstruction term
    estimated at the reparameterised sample z = μ + σ ⊙ ε built from the given noise ``eps``
    (N, latent_dim). Gradients are cleared first, so no earlier step leaks into this one.

    Returns ``{"loss": −ELBO, "recon": −log p(x|z), "kl": KL}`` of the batch *before* the step, each the
    mean over the images, as floats (what :func:`lecture13.training.train` logs from a ``step_fn``)."""
    optimizer.zero_grad(set_to_none=True)
    mu, logvar = model.encode(x)
    parts = negative_elbo(x, model.decode(reparameterize(mu, logvar, eps), x), mu, logvar)
    parts["loss"].backward()
    optimizer.step()
    return {k: float(v.detach()) for k, v in parts.items()}


# --------------------------------------------------------------------------- likelihood estimates
@torch.no_grad()
def elbo(model: VAE, x: torch.Tensor, generator: torch.Generator | None = None,
         batch_size: int = 500) -> torch.Tensor:
    """One-sample ELBO of every image (nats, shape (N,)); its mean is the usual reported value."""
    model.eval()
    out = []
    for xb in x.split(batch_size):
        logits, mu, logvar = model(xb, generator=generator)
        out.append(bernoulli_log_likelihood(logits, xb) - gaussian_kl(mu, logvar))
    return torch.cat(out)


@torch.no_grad()
def pixel_nll(model: VAE, x: torch.Tensor, generator: torch.Generator | None = None,
              batch_size: int = 250) -> torch.Tensor:
    """−log p(x_i | z) (for a PixelVAE −log p(x_i | x_<i, z)) of every pixel, at one z ~ q(z|x) per image:
    shape (N, 1, 28, 28), summing over pixels to the reconstruction term of the −ELBO. Shows *where* the
    decoder pays its nats. ``batch_size`` images at a time: a PixelVAE's decoder keeps 32 feature maps per
    image, 200 MB for 2,000 images, per layer."""
    check_images(x, "pixel_nll")
    model.eval()
    parts = []
    for xb in x.split(batch_size):
        logits, _, _ = model(xb, generator)
        parts.append(F.binary_cross_entropy_with_logits(logits, xb, reduction="none"))
    return torch.cat(parts)


@torch.no_grad()
def iw_log_likelihood(model: VAE, x: torch.Tensor, k: int = 1000, generator: torch.Generator | None = None,
                      batch_size: int = 100, chunk: int | None = None) -> torch.Tensor:
    """Importance-weighted estimate L_K of log p(x) for every image (nats, shape (N,)), eq. (3).

    Memory stays at about ``batch_size × chunk × 784`` floats whatever K is: the K samples are
    drawn ``chunk`` at a time and each chunk's logsumexp is kept (one number per image), then
    L_K = logsumexp over the chunks − log K. The encoder runs once per image, the decoder K times.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    check_images(x, "iw_log_likelihood")
    chunk = chunk or model.iw_chunk
    model.eval()
    out = []
    for xb in x.split(batch_size):
        mu, logvar = model.encode(xb)
        partial = []
        for start in range(0, k, chunk):
            m = min(chunk, k - start)
            eps = torch.randn((m, *mu.shape), generator=generator, dtype=mu.dtype)
            z = reparameterize(mu, logvar, eps)                                  # (m, B, latent)
            logits = model.decode(z, xb).flatten(2)                               # (m, B, 784)
            # log p(x|z) = Σ_i x_i l_i − softplus(l_i): the Bernoulli log-likelihood without copying x m times
            log_px_z = (logits * xb.flatten(1)).sum(-1) - F.softplus(logits).sum(-1)  # (m, B)
            log_pz = gaussian_log_density(z)
            log_qz = gaussian_log_density(z, mu, logvar)
            partial.append(torch.logsumexp(log_px_z + log_pz - log_qz, dim=0))  # (B,)
        out.append(torch.logsumexp(torch.stack(partial), dim=0) - math.log(k))
    return torch.cat(out)


@torch.no_grad()
def likelihood_table(model: VAE, x: torch.Tensor, ks=(1, 10, 100, 1000), seed: int = 0) -> dict[str, float]:
    """Mean −ELBO and −L_K (nats per image) over ``x`` for several K, with fixed seeds."""
    row = {"neg_elbo": -float(elbo(model, x, torch.Generator().manual_seed(seed)).double().mean())}
    for k in ks:
        row[f"iw_nll_k{k}"] = -float(iw_log_likelihood(model, x, k, torch.Generator().manual_seed(seed)).double().mean())
    return row


# --------------------------------------------------------------------------- reading the results
@torch.no_grad()
def encode_dataset(model: VAE, x: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ, log σ²) of q(z|x) for every image of ``x``, each (N, latent_dim), ``batch_size`` images at a time."""
    model.eval()
    mu, logvar = (torch.cat(parts) for parts in zip(*(model.encode(xb) for xb in x.split(batch_size))))
    return mu, logvar


def latent_usage_from_codes(mu: torch.Tensor, logvar: torch.Tensor, threshold: float = 0.01) -> dict:
    """How much a VAE uses each latent dimension, from its encoder's (μ, log σ²) on N images (each (N, d)):

    * ``kl``: KL(q(z_j | x) ‖ N(0, 1)) averaged over the images, nats per dimension, shape (d,) (they sum
      to the ELBO's KL term);
    * ``activity``: Var_x(E_q[z_j | x]), the (unbiased) variance over the images of the code's mean, (d,);
    * ``active``: the number of dimensions with activity strictly above ``threshold`` (0.01, Burda et al. 2016).

    A dimension whose mean does not move with x carries no information about x: posterior collapse is
    many inactive dimensions, each with KL ≈ 0."""
    kl = (0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).double().mean(0)
    activity = mu.double().var(0)
    return {"kl": kl, "activity": activity, "active": int((activity > threshold).sum())}


@torch.no_grad()
def latent_usage(model: VAE, x: torch.Tensor, threshold: float = 0.01, batch_size: int = 500) -> dict:
    """:func:`latent_usage_from_codes` of the codes of the images ``x`` (:func:`encode_dataset`):
    ``kl`` and ``activity`` per latent dimension and the number of ``active`` ones."""
    return latent_usage_from_codes(*encode_dataset(model, x, batch_size), threshold=threshold)


def bound_versus_exact(name: str, upper_bound: float, other: str, exact: float) -> str:
    """One sentence comparing an upper bound on one model's NLL (−ELBO or −L_K, nats) with another model's
    exact NLL, with the only logic a bound allows. The first model's true NLL lies somewhere below its
    bound, so: bound below the exact value → the first model is better by *at least* the difference;
    bound above → it is *at most* the difference worse, and the numbers cannot say which is better."""
    gap, subject = upper_bound - exact, name[:1].upper() + name[1:]
    if gap < 0:
        return (f"{subject}'s bound ({upper_bound:.1f}) is below {other}'s exact NLL ({exact:.1f}): "
                f"{name} is better by at least {-gap:.1f} nats per image.")
    return (f"{subject}'s bound ({upper_bound:.1f}) is above {other}'s exact NLL ({exact:.1f}): {name} is at most "
            f"{gap:.1f} nats per image worse, and may be better; a bound cannot say which.")


def knn_accuracy(codes: torch.Tensor, labels: torch.Tensor, k: int = 5) -> float:
    """Leave-one-out k-nearest-neighbour accuracy of predicting ``labels`` from ``codes`` (N, d): how well
    the classes occupy separate regions of the code space (chance is about one over the number of classes).
    Ties in the vote go to the smallest label."""
    distances = torch.cdist(codes.double(), codes.double())
    distances.fill_diagonal_(float("inf"))                        # leave each point out of its own vote
    neighbours = labels[distances.topk(k, largest=False).indices]  # (N, k)
    votes = F.one_hot(neighbours, int(labels.max()) + 1).sum(1)
    return float((votes.argmax(1) == labels).double().mean())


# --------------------------------------------------------------------------- recipes
def _fit(name: str):
    """Train on the binarized training images; ``--option free_bits=λ`` trains with :func:`free_bits_loss`."""
    def fit(model: VAE, options: dict) -> History:
        data = loader("train", "binary", batch_size=options["batch_size"], seed=options["seed"], subset=options["subset"])
        loss = free_bits_loss(options["free_bits"]) if options.get("free_bits") else vae_loss
        return fit_by_epochs(model, data, loss, options, snapshot=save_snapshot(name))
    return fit


def _evaluate(ks_full: tuple[int, ...], ks_embedded: tuple[int, ...]):
    """Test metrics; K = 1000 only on the full test set (it decodes 10 million images: minutes on a
    CPU), smaller K on the embedded subset so a unit test can reproduce them in seconds."""
    def evaluate(model: VAE, subset: str) -> dict[str, float]:
        ks = ks_full if subset == "full" else ks_embedded
        x, _ = tensors("test", "binary", subset=subset)
        row = likelihood_table(model, x, ks=ks, seed=0)
        best = row[f"iw_nll_k{max(ks)}"]
        return {**row, "iw_k": max(ks), "bits_per_dim": bits_per_dim(best)}
    return evaluate


def _sample(model: VAE, n: int, seed: int) -> torch.Tensor:
    return model.sample(n, torch.Generator().manual_seed(seed))


# The shipped "vae": `python -m lecture13 train vae --ship` (150 epochs, 62 min on one core of a 2-core CPU;
# the manifest records the exact command). On 2,000 images it scores −L_100 = 103.1 nats on training images
# and 113.9 on test images; the gap is almost all in the decoder (the encoder's share, −ELBO minus −L_100,
# differs by only 1.6 nats), and 0.3 dropout in the decoder made the test bound worse in a 100-epoch trial
# on 10,000 images (127.8 vs 125.3), so lower test numbers need more compute or a larger model.
register_recipe(Recipe(
    name="vae",
    description="VAE, 32-d latent, conv encoder, MLP Bernoulli decoder, binarized Fashion-MNIST",
    build=lambda **kw: VAE(**{"latent_dim": 32, **kw}),
    fit=_fit("vae"),
    evaluate=_evaluate(ks_full=(1, 10, 100, 1000), ks_embedded=(1, 10, 100)),
    sample=_sample,
    defaults={"epochs": 150, "lr": 1e-3, "batch_size": 128},
))

register_recipe(Recipe(
    name="vae2d",
    description="VAE with a 2-D latent (for the manifold picture), binarized Fashion-MNIST",
    build=lambda **kw: VAE(**{"latent_dim": 2, **kw}),
    fit=_fit("vae2d"),
    evaluate=_evaluate(ks_full=(1, 100), ks_embedded=(1, 100)),
    sample=_sample,
    defaults={"epochs": 8, "lr": 1e-3, "batch_size": 128},
))

# The shipped "pixelvae": the VAE above with a local autoregressive decoder (7×7 causal window) and free bits
# (λ = 0.5 nats per latent dimension, so z carries at least 16 nats). "pixelvae_no_free_bits" is the same
# model and data with the plain ELBO, for 10 epochs (the CPU time there was; the cosine schedule ends at
# epoch 10): notebook 03 shows its KL per latent dimension beside this one's (posterior collapse).
register_recipe(Recipe(
    name="pixelvae",
    description="VAE, 32-d latent, conv encoder, MLP + local autoregressive (7x7 causal) decoder, free bits",
    build=lambda **kw: PixelVAE(**{"latent_dim": 32, **kw}),
    fit=_fit("pixelvae"),
    evaluate=_evaluate(ks_full=(1, 10, 100, 1000), ks_embedded=(1, 10, 100)),
    sample=_sample,
    defaults={"epochs": 48, "lr": 1e-3, "batch_size": 128, "free_bits": 0.5},
))

register_recipe(Recipe(
    name="pixelvae_no_free_bits",
    description="the pixelvae model and training, but the plain ELBO (no free bits): posterior collapse",
    build=lambda **kw: PixelVAE(**{"latent_dim": 32, **kw}),
    fit=_fit("pixelvae_no_free_bits"),
    evaluate=_evaluate(ks_full=(1, 10, 100, 1000), ks_embedded=(1, 10, 100)),
    sample=_sample,
    defaults={"epochs": 10, "lr": 1e-3, "batch_size": 128, "free_bits": 0.0},
))
