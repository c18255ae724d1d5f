"""Denoising diffusion probabilistic models (DDPM, Ho, Jain and Abbeel 2020) and the deterministic
DDIM sampler (Song, Meng and Ermon 2021), small enough to train and sample on a laptop CPU.

**The forward process** adds Gaussian noise in T small steps, with a fixed schedule β_1 … β_T:

    q(x_t | x_{t−1}) = N(x_t; √(1 − β_t) x_{t−1}, β_t I)                        (Ho et al. eq. 2)

and, with α_t = 1 − β_t and ᾱ_t = Π_{s≤t} α_s, any step in closed form:

    q(x_t | x_0) = N(x_t; √ᾱ_t x_0, (1 − ᾱ_t) I)                                 (eq. 4)

so x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε with ε ~ N(0, I). When ᾱ_T ≈ 0, x_T is (almost) pure noise.

**The reverse process** is learned: p_θ(x_{t−1} | x_t) = N(x_{t−1}; μ_θ(x_t, t), σ_t² I), with μ_θ
written through a network ε_θ(x_t, t) that predicts the noise in x_t (eq. 11). Training minimises

    L_simple = E_{t, x_0, ε} ‖ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t)‖²                  (eq. 14)

which is the variational bound (eq. 5) L = L_T + Σ_{t>1} L_{t−1} + L_0 with each L_{t−1} (a KL
between Gaussians, eq. 12: β_t² / (2σ_t² α_t (1 − ᾱ_t)) · ‖ε − ε_θ‖²) *re-weighted* to weight 1:
it drops the weights that make the bound emphasise the small, nearly invisible noise levels, which
gives better samples and a worse bound (Ho et al. §3.4, Table 2). So the trained model is a latent
variable model whose NLL we can only bound from above: :meth:`DDPM.likelihood` computes the bound
on 8-bit images with the discretised decoder of §3.3.

**Sampling** runs the reverse chain from x_T ~ N(0, I), all T steps (Algorithm 2). DDIM (Song et
al. 2021, eq. 12 with η = 0) reuses the same ε_θ on a few of the steps, deterministically: the same
x_T always gives the same image, so x_T is a latent code, invertible by running DDIM forwards.

Everything trains through :func:`lecture13.training.train`; ``python -m lecture13 train ddpm --ship``
reproduces the shipped checkpoint.
"""
from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import register_model
from .data import loader, tensors
from .interface import GenerativeModel, likelihood_report
from .recipes import Recipe, register_recipe
from .training import History, UntilDeadline, deadline_after, gradient_step, train


# --------------------------------------------------------------------------- the noise schedule
def cosine_schedule(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """β_1 … β_T of the cosine schedule (Nichol & Dhariwal 2021, eq. 17):

        ᾱ_t = f(t) / f(0),  f(t) = cos²((t/T + s) / (1 + s) · π/2),   β_t = 1 − ᾱ_t / ᾱ_{t−1}

    Why cosine and not Ho's linear 1e-4 … 0.02: at 28×28 the linear schedule destroys the image
    in the first half of the chain (ᾱ_t falls to ~0 long before T), so the last half of the
    steps is wasted on pure noise; the cosine schedule lowers ᾱ_t evenly, which lets a short
    chain (T = 200 here, affordable on a CPU) still sample well. β is clipped at ``max_beta`` so
    the last step does not divide by zero.
    """
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta).float()


def linear_schedule(T: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> torch.Tensor:
    """Ho et al.'s schedule (§4): β_t linear from 1e-4 to 0.02 over T = 1000 steps (scaled by
    1000/T for a shorter chain, so the total noise added stays the same)."""
    scale = 1000 / T
    return torch.linspace(beta_1 * scale, beta_T * scale, T)


class Schedule:
    """β_t, α_t = 1 − β_t and ᾱ_t = Π_{s≤t} α_s (eq. 4's notation), indexed t = 1 … T as
    ``[t − 1]``, and the posterior q(x_{t−1} | x_t, x_0)'s coefficients (eq. 7)."""

    def __init__(self, betas: torch.Tensor):
        self.T = len(betas)
        self.betas = betas.double()
        self.alphas = 1 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)
        alpha_bars_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bars[:-1]])
        self.alpha_bars_prev = alpha_bars_prev
        # eq. 7: β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t; μ̃_t = c0 · x_0 + ct · x_t
        self.posterior_variance = (1 - alpha_bars_prev) / (1 - self.alpha_bars) * self.betas
        self.posterior_c0 = alpha_bars_prev.sqrt() * self.betas / (1 - self.alpha_bars)
        self.posterior_ct = self.alphas.sqrt() * (1 - alpha_bars_prev) / (1 - self.alpha_bars)
        # σ_t² of the reverse process: β̃_t ("fixed small", Ho et al. §3.2), the right choice when x_0
        # is a point (one image given x_t); at t = 1, β̃_1 = 0, so it takes β̃_2 (as Ho et al.'s code
        # does) to give the discretised decoder a width.
        self.sigma2 = torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]])

    def at(self, values: torch.Tensor, t: torch.Tensor, ndim: int = 4) -> torch.Tensor:
        """values[t − 1] for a batch of steps t (N,), shaped (N, 1, …) to broadcast over a batch of
        ``ndim`` dimensions (4 for images, 2 for points)."""
        return values.to(t.device)[t - 1].float().view(-1, *([1] * (ndim - 1)))


def make_schedule(T: int, kind: str = "cosine") -> Schedule:
    return Schedule(cosine_schedule(T) if kind == "cosine" else linear_schedule(T))


# --------------------------------------------------------------------------- the forward process
def q_sample(schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t ~ q(x_t | x_0) in one step: √ᾱ_t x_0 + √(1 − ᾱ_t) ε  (eq. 4, reparameterised)."""
    a = schedule.at(schedule.alpha_bars, t, x0.dim())
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def forward_chain(schedule: Schedule, x0: torch.Tensor, t: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """x_t by running the chain one step at a time: x_s = √(1 − β_s) x_{s−1} + √β_s ε_s, s = 1 … t
    (eq. 2). It must agree *in distribution* with :func:`q_sample` (a product of Gaussians)."""
    x = x0.clone()
    for s in range(t):
        beta = float(schedule.betas[s])
        x = math.sqrt(1 - beta) * x + math.sqrt(beta) * torch.randn(x.shape, generator=generator)
    return x


# --------------------------------------------------------------------------- the noise-prediction network
def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of the step t (Vaswani et al. 2017, as Ho et al. use it): sin and cos of
    t at dim/2 frequencies from 1 to 1/10000, so every step gets a distinct, smooth code."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float().unsqueeze(1) * freqs.unsqueeze(0)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def norm(channels: int) -> nn.GroupNorm:
    """GroupNorm (Ho et al. use it; batch norm would couple the images of a batch, and the
    noise level varies from image to image)."""
    return nn.GroupNorm(min(8, channels // 4), channels)


class ResBlock(nn.Module):
    """norm → SiLU → conv3×3 → (+ the step's embedding, per channel) → norm → SiLU → conv3×3, plus
    the input (a 1×1 conv when the channels change). The step enters every block, so each can act
    differently on heavy and light noise."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.conv1 = nn.Sequential(norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, c_out))
        self.conv2 = nn.Sequential(norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)
        nn.init.zeros_(self.conv2[-1].weight)   # each block starts as the identity: a deep net trains at once
        nn.init.zeros_(self.conv2[-1].bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.conv2(h)


@register_model
class UNet(nn.Module):
    """ε_θ(x_t, t) for 28×28 grayscale images: a small U-Net (Ronneberger et al. 2015).

    * The image is first folded into 2×2 blocks (``pixel_unshuffle``: 1×28×28 → 4×14×14, lossless)
      and unfolded at the end: every layer then works on 196 positions instead of 784, four times
      cheaper, which is what makes CPU training and 200-step sampling affordable. A 3×3 convolution
      on the folded image still sees 6×6 pixels.
    * Levels at 14 and 7 positions with ``width`` × ``mults`` channels; one residual block per level
      on the way down, one in the middle, one per level on the way up (fed the down path's output of
      the same level: the skip connections), and the sinusoidal step embedding in every block.
    * No attention: after the halving to 7×7 two 3×3 convolutions already span the whole image.

    The default (width 24, mults (1, 2, 2): 24, 48 and 48 channels at 14×14, 7×7 and 4×4) has
    351,244 parameters (1.4 MB of float32 weights) and costs 14.6 M multiply-adds per image and step
    (:func:`cost`): a training step on 64 images is ~2.8 G multiply-adds with the backward pass, and
    the 1,000-image bank by ancestral sampling, 200 steps, ~2.9 T.
    """

    def __init__(self, width: int = 24, mults: tuple[int, ...] = (1, 2, 2), patch: int = 2):
        super().__init__()
        mults = tuple(mults)
        self.config = {"width": width, "mults": list(mults), "patch": patch}
        emb_dim = 4 * width
        self.width, self.patch = width, patch
        self.embed = nn.Sequential(nn.Linear(width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        channels = [width * m for m in mults]
        self.stem = nn.Conv2d(patch * patch, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = channels[0]
        for i, c_out in enumerate(channels):
            self.down.append(ResBlock(c, c_out, emb_dim))
            c = c_out
            if i < len(channels) - 1:                 # halve: 14 → 7
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.middle = ResBlock(c, c, emb_dim)
        self.up = nn.ModuleList()
        for c_skip in reversed(channels):             # (nearest-neighbour doubling between levels)
            self.up.append(ResBlock(c + c_skip, c_skip, emb_dim))
            c = c_skip
        self.head = nn.Sequential(norm(c), nn.SiLU(), nn.Conv2d(c, patch * patch, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.embed(timestep_embedding(t, self.width))
        h = self.stem(F.pixel_unshuffle(x, self.patch))
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.middle(h, emb)
        for i, block in enumerate(self.up):
            skip = skips.pop()
            if h.shape[-1] != skip.shape[-1]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), emb)
        return F.pixel_shuffle(self.head(h), self.patch)


def cost(net: nn.Module) -> dict[str, float]:
    """Parameters, MB of float32 weights and multiply-adds of one forward pass per 28×28 image."""
    from .gan import multiply_adds

    wrapped = _WithStep(net)
    return {"parameters": sum(p.numel() for p in net.parameters()),
            "megabytes": 4 * sum(p.numel() for p in net.parameters()) / 1e6,
            "multiply_adds": multiply_adds(wrapped, torch.zeros(1, 1, 28, 28))}


class _WithStep(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x, torch.ones(len(x), dtype=torch.long))


# --------------------------------------------------------------------------- the loss
def ddpm_loss(model: "DDPM", x0: torch.Tensor) -> torch.Tensor:
    """L_simple (eq. 14, Algorithm 1): t ~ Uniform{1 … T}, ε ~ N(0, I), x_t from eq. 4, and the
    mean squared error of ε_θ's guess of ε. Images are in [−1, 1] (``"signed"``)."""
    t = torch.randint(1, model.T + 1, (len(x0),), device=x0.device)
    noise = torch.randn_like(x0)
    x_t = q_sample(model.schedule, x0, t, noise)
    return F.mse_loss(model.net(x_t, t), noise)


# --------------------------------------------------------------------------- the model
@register_model
class DDPM(GenerativeModel):
    """A noise-prediction U-Net with its schedule: ancestral sampling, DDIM, and the bound on −log p(x).

    Images are modelled in [−1, 1]; :meth:`draw` returns them in [0, 1]. The shipped ``ddpm``
    (``python -m lecture13 train ddpm --ship --no-progress --epochs 15``: 15 epochs of the full
    60,000 training images in batches of 64, 114 min on one CPU thread; it was shipped from the saved
    training state of a longer run after its 15th epoch, which that command reproduces bit for bit) draws an image in
    200 network calls by :meth:`draw` and in 20 by :meth:`draw_ddim`; its quality, times and bound
    are in benchmarks/results.md ("Diffusion model (notebook 07)").
    """

    family = "diffusion (latent variable, bound)"
    likelihood_kind = "bound"
    sampling_threads = 1

    def __init__(self, T: int = 200, schedule: str = "cosine", width: int = 24, mults: tuple[int, ...] = (1, 2, 2),
                 patch: int = 2, ddim_steps: int = 20):
        super().__init__()
        self.config = {"T": T, "schedule": schedule, "width": width, "mults": list(mults), "patch": patch,
                       "ddim_steps": ddim_steps}
        self.T, self.ddim_steps = T, ddim_steps
        self.schedule = make_schedule(T, schedule)
        self.net = UNet(width, tuple(mults), patch)

    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ----------------------------------------------------------------- one reverse step
    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x̂_0 = (x_t − √(1 − ᾱ_t) ε_θ) / √ᾱ_t (eq. 4 solved for x_0), clipped to the data's range
        [−1, 1] (Ho et al.'s sampler does the same: the data never leaves it)."""
        a = self.schedule.at(self.schedule.alpha_bars, t)
        return ((x_t - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)

    def reverse_mean(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """μ_θ(x_t, t) = μ̃_t(x_t, x̂_0): the posterior mean of eq. 7 at the predicted x_0 (equal to
        eq. 11 without the clipping)."""
        s = self.schedule
        x0 = self.predict_x0(x_t, t, self.net(x_t, t))
        return s.at(s.posterior_c0, t) * x0 + s.at(s.posterior_ct, t) * x_t

    def reverse_step(self, x_t: torch.Tensor, t: int, z: torch.Tensor) -> torch.Tensor:
        """x_{t−1} = μ_θ(x_t, t) + σ_t z (Algorithm 2, line 4); no noise is added at the last step."""
        steps = torch.full((len(x_t),), t, dtype=torch.long, device=x_t.device)
        mean = self.reverse_mean(x_t, steps)
        if t == 1:
            return mean
        return mean + math.sqrt(float(self.schedule.sigma2[t - 1])) * z

    # ----------------------------------------------------------------- samplers
    @torch.no_grad()
    def ancestral(self, x_T: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Algorithm 2: x_T → x_{T−1} → … → x_0, all T steps, in [−1, 1]."""
        x = x_T
        for t in range(self.T, 0, -1):
            z = torch.randn(x.shape, generator=generator).to(x.device)
            x = self.reverse_step(x, t, z)
        return x

    def ddim_times(self, steps: int | None = None) -> list[int]:
        """The ``steps`` steps DDIM visits, evenly spaced from T down to 1 (Song et al. §4.2)."""
        steps = steps or self.ddim_steps
        return sorted({int(round(v)) for v in torch.linspace(1, self.T, steps).tolist()}, reverse=True)

    def ddim_step(self, x_t: torch.Tensor, t: int, t_next: int) -> torch.Tensor:
        """DDIM, η = 0 (Song et al. 2021, eq. 12): from x_t to x_{t'}, t' < t (t' = 0: the data),

            x_{t'} = √ᾱ_{t'} x̂_0 + √(1 − ᾱ_{t'}) ε_θ(x_t, t)

        — the same x̂_0 re-noised *deterministically* with the predicted noise: no fresh noise."""
        steps = torch.full((len(x_t),), t, dtype=torch.long, device=x_t.device)
        eps = self.net(x_t, steps)
        x0 = self.predict_x0(x_t, steps, eps)
        a_next = 1.0 if t_next == 0 else float(self.schedule.alpha_bars[t_next - 1])
        return math.sqrt(a_next) * x0 + math.sqrt(1 - a_next) * eps

    @torch.no_grad()
    def ddim(self, x_T: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """The deterministic few-step sampler: x_T → x_0 in ``steps`` network calls, in [−1, 1]."""
        times = self.ddim_times(steps)
        x = x_T
        for t, t_next in zip(times, times[1:] + [0]):
            x = self.ddim_step(x, t, t_next)
        return x

    @torch.no_grad()
    def ddim_invert(self, x0: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """x_0 → x_T by running DDIM's map forwards (eq. 12 from t to a later t', ε_θ taken at t):
        the latent code of a real image, which :meth:`ddim` maps back to (nearly) the same image."""
        times = sorted(self.ddim_times(steps))
        x = x0
        for t_prev, t in zip([0] + times[:-1], times):
            a_prev = 1.0 if t_prev == 0 else float(self.schedule.alpha_bars[t_prev - 1])
            steps_ = torch.full((len(x),), max(t_prev, 1), dtype=torch.long, device=x.device)
            eps = self.net(x, steps_)
            x0_hat = (x - math.sqrt(1 - a_prev) * eps) / math.sqrt(a_prev)
            a = float(self.schedule.alpha_bars[t - 1])
            x = math.sqrt(a) * x0_hat + math.sqrt(1 - a) * eps
        return x

    def initial_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """x_T ~ N(0, I): the first draw from the generator, so both samplers start from the same noise."""
        return torch.randn(n, 1, 28, 28, generator=generator).to(self.device())

    # ----------------------------------------------------------------- the interface
    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n images in [0, 1] by ancestral sampling with all T steps."""
        self.eval()
        x_T = self.initial_noise(n, generator)
        return to_unit(self.ancestral(x_T, generator))

    def draw_ddim(self, n: int, generator: torch.Generator, steps: int | None = None) -> torch.Tensor:
        """n images in [0, 1] by DDIM from the same x_T that :meth:`draw` would start from."""
        self.eval()
        return to_unit(self.ddim(self.initial_noise(n, generator), steps))

    def likelihood(self, x: torch.Tensor, iw_k: int = 100, seed: int = 0) -> dict:
        """The variational bound −log p(x) ≤ L_T + Σ_{t=2}^{T} L_{t−1} + L_0 in nats per image, for
        images ``x`` in [0, 1] holding 8-bit values k/255 (see :func:`variational_bound`)."""
        terms = variational_bound(self, x, generator=torch.Generator().manual_seed(seed))
        return likelihood_report("bound", float(terms["total"].mean()), images=len(x),
                                 prior=float(terms["prior"].mean()), diffusion=float(terms["diffusion"].mean()),
                                 decoder=float(terms["decoder"].mean()))

    def recorded_likelihood(self, metrics: dict, iw_k: int = 100) -> dict:
        """The bound recorded with the checkpoint (:func:`bound_report`): on ``test_images`` 8-bit
        grayscale test images, not on the binarized images the lecture's exact NLLs are measured on."""
        return likelihood_report("bound", metrics["nll_bound_nats"], source="recorded", images=metrics["test_images"],
                                 data=metrics.get("data", "8-bit grayscale"), prior=metrics.get("prior_nats"),
                                 diffusion=metrics.get("diffusion_nats"), decoder=metrics.get("decoder_nats"))

    def latent_description(self) -> str:
        return "x_T, 1×28×28 (as large as x), through DDIM's deterministic map"

    @torch.no_grad()
    def interpolation(self, steps: int, seed: int = 0, pair: torch.Tensor | None = None) -> torch.Tensor:
        """DDIM decodings of the spherical interpolation between two codes x_T: two N(0, I) draws, or
        the DDIM inversions of ``pair`` (two images in [0, 1]). Slerp, not a straight line: a point
        halfway between two independent Gaussian vectors has norm ~0.7 √D, far from the shell of
        radius √D where the sampler was trained, and decodes to a blur."""
        self.eval()
        if pair is None:
            codes = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).to(self.device())
        else:
            codes = self.ddim_invert(pair.to(self.device()) * 2 - 1)
        weights = torch.linspace(0, 1, steps)
        return to_unit(self.ddim(torch.stack([slerp(codes[0], codes[1], float(w)) for w in weights])))


def slerp(a: torch.Tensor, b: torch.Tensor, w: float) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985): sin((1−w)Ω)/sin Ω · a + sin(wΩ)/sin Ω · b, Ω the angle."""
    omega = torch.arccos((a.flatten() @ b.flatten() / (a.norm() * b.norm())).clamp(-1, 1))
    if float(omega) < 1e-6:
        return (1 - w) * a + w * b
    return (torch.sin((1 - w) * omega) * a + torch.sin(w * omega) * b) / torch.sin(omega)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[−1, 1] → [0, 1]."""
    return ((x + 1) / 2).clamp(0, 1)


# --------------------------------------------------------------------------- the variational bound
def gaussian_kl(mean1: torch.Tensor, var1: torch.Tensor, mean2: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
    """KL(N(μ1, σ1²) ‖ N(μ2, σ2²)) per element, in nats: ½ (log σ2²/σ1² + (σ1² + (μ1 − μ2)²)/σ2² − 1)."""
    return 0.5 * (torch.log(var2 / var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1)


def standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    """log p(x) per pixel of the discretised decoder (Ho et al. eq. 13): x ∈ {−1, −1 + 2/255, …, 1}
    (the 256 values of an 8-bit pixel on [−1, 1]), p(x) = ∫ N(v; μ, σ²) over [x − 1/255, x + 1/255],
    with the outer bins stretched to ±∞ so the 256 probabilities sum to 1."""
    upper = torch.where(x > 1 - 1e-3, torch.ones_like(x), standard_normal_cdf((x + 1 / 255 - mean) / std))
    lower = torch.where(x < -1 + 1e-3, torch.zeros_like(x), standard_normal_cdf((x - 1 / 255 - mean) / std))
    # For bins far in the tail the difference of CDFs underflows; there the density × bin width is exact enough.
    mass = upper - lower
    log_density = (-0.5 * ((x - mean) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi)) + math.log(2 / 255))
    return torch.where(mass > 1e-12, mass.clamp(min=1e-30).log(), log_density)


@torch.no_grad()
def variational_bound(model: DDPM, x: torch.Tensor, generator: torch.Generator | None = None,
                      batch_size: int = 100) -> dict[str, torch.Tensor]:
    """The terms of Ho et al.'s bound (eq. 5) for images ``x`` in [0, 1] with 8-bit values, nats per image:

    * prior     L_T = KL(q(x_T | x_0) ‖ N(0, I))                    (no parameters: ≈ 0 when ᾱ_T ≈ 0)
    * diffusion Σ_{t=2}^{T} L_{t−1},  L_{t−1} = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)), every t,
      each at one draw x_t ~ q(x_t | x_0): an unbiased estimate of the sum (not of a Monte Carlo over t)
    * decoder   L_0 = −log p_θ(x_0 | x_1) with the discretised Gaussian of eq. 13
    * total     their sum ≥ −log p(x): an upper bound on the NLL of the 8-bit image

    The data are the 256-valued pixels themselves, so no change-of-variables term enters.
    """
    model.eval()
    s, device = model.schedule, model.device()
    parts: dict[str, list[torch.Tensor]] = {"prior": [], "diffusion": [], "decoder": []}
    for start in range(0, len(x), batch_size):
        x0 = (x[start:start + batch_size].to(device) * 255).round() / 255 * 2 - 1   # the 8-bit values on [−1, 1]
        n = len(x0)
        a_T = float(s.alpha_bars[-1])
        prior = gaussian_kl(math.sqrt(a_T) * x0, torch.full_like(x0, 1 - a_T), torch.zeros_like(x0),
                            torch.ones_like(x0)).flatten(1).sum(1)
        diffusion = torch.zeros(n, device=device)
        decoder = torch.zeros(n, device=device)
        for t in range(1, model.T + 1):
            steps = torch.full((n,), t, dtype=torch.long, device=device)
            noise = torch.randn(x0.shape, generator=generator).to(device)
            x_t = q_sample(s, x0, steps, noise)
            mean = model.reverse_mean(x_t, steps)
            if t == 1:
                std = math.sqrt(float(s.sigma2[0]))
                decoder = -discretized_gaussian_log_likelihood(x0, mean, std).flatten(1).sum(1)
            else:
                true_mean = s.at(s.posterior_c0, steps) * x0 + s.at(s.posterior_ct, steps) * x_t
                var = float(s.posterior_variance[t - 1])
                kl = gaussian_kl(true_mean, torch.full_like(x0, var), mean, torch.full_like(x0, float(s.sigma2[t - 1])))
                diffusion += kl.flatten(1).sum(1)
        parts["prior"].append(prior)
        parts["diffusion"].append(diffusion)
        parts["decoder"].append(decoder)
    out = {k: torch.cat(v).cpu() for k, v in parts.items()}
    out["total"] = out["prior"] + out["diffusion"] + out["decoder"]
    return out


# --------------------------------------------------------------------------- EMA of the weights
def ema_decay(step: int, decay: float = 0.999) -> float:
    """The averaging weight after ``step`` updates: min(decay, (1 + step) / (10 + step)), so the
    average forgets the random initial weights quickly and then averages over ~1/(1 − decay) steps."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(average: nn.Module, current: nn.Module, decay: float) -> None:
    """θ̄ ← decay · θ̄ + (1 − decay) · θ. Diffusion models are sampled with the averaged weights (Ho et
    al. §4, decay 0.9999): the noise of the last SGD steps moves every denoising step a little in
    its own direction, and T steps add those errors up into visibly worse samples."""
    for a, c in zip(average.parameters(), current.parameters()):
        a.lerp_(c, 1 - decay)
    for a, c in zip(average.buffers(), current.buffers()):
        a.copy_(c)


# --------------------------------------------------------------------------- training
def fit_ddpm(model: DDPM, data, lr: float = 1e-3, ema: float = 0.999, grad_clip: float | None = 1.0,
             epochs: int = 1, max_steps: int | None = None, deadline: float = math.inf,
             after_epoch=None, seed: int | None = 0, progress: bool = True, device: str = "cpu",
             state: str | Path | None = None) -> History:
    """Train ``model`` with L_simple by :func:`lecture13.training.train`, one epoch per call (so a time
    budget or a snapshot can act after any epoch). The optimiser trains a copy; ``model`` itself
    keeps the exponential moving average of that copy's weights (:func:`ema_update`), which is what
    it samples with and what a checkpoint stores.

    ``state``: a file where the whole training state is saved after every epoch (the trained copy,
    Adam's moments, the average, the update count and both random generators: the global one that
    draws t and ε, and the loader's, which shuffles). If the file exists the run continues from it,
    and the result is bit for bit the one an uninterrupted run gives: a CPU run of many hours can be
    split over several sessions."""
    trainee = copy.deepcopy(model)
    optimizer = torch.optim.Adam(trainee.net.parameters(), lr=lr)
    update = gradient_step(trainee, ddpm_loss, optimizer, grad_clip)
    history = History()
    updates, first_epoch = [0], 0   # every update so far, across the epochs (and sessions)
    if state is not None and Path(state).exists():
        first_epoch, earlier = resume_training_state(state, model, trainee, optimizer, updates, data)
        history.extend(earlier)
        print(f"continuing from {state}: epoch {first_epoch}, {updates[0]} updates", flush=True)

    def step(x0: torch.Tensor) -> dict[str, float]:
        logged = update(x0)
        ema_update(model.net, trainee.net, ema_decay(updates[0], ema))
        updates[0] += 1
        return logged

    model.to(device)
    for epoch in range(first_epoch, epochs):
        remaining = None if max_steps is None else max_steps - len(history.steps)
        if (remaining is not None and remaining <= 0) or time.monotonic() > deadline:
            break
        run = train(trainee, UntilDeadline(data, deadline), step_fn=step, epochs=1, max_steps=remaining,
                    device=device, seed=seed if epoch == 0 else None, progress=progress,
                    desc=f"DDPM epoch {epoch + 1}")
        for row in run.steps:
            row["epoch"] = epoch
        history.extend(run)
        model.eval()
        if state is not None and len(run.steps) == len(data):   # only whole epochs: a resumed run starts one
            save_training_state(state, epoch + 1, model, trainee, optimizer, updates[0], data, history)
        if after_epoch is not None:
            after_epoch(model, epoch, history)
    return history


def save_training_state(path: str | Path, epochs_done: int, model: DDPM, trainee: DDPM,
                        optimizer: torch.optim.Optimizer, updates: int, data, history: History) -> None:
    """Everything :func:`fit_ddpm` needs to continue after ``epochs_done`` epochs (atomic write)."""
    payload = {"epochs_done": epochs_done, "updates": updates, "average": model.state_dict(),
               "trainee": trainee.state_dict(), "optimizer": optimizer.state_dict(),
               "torch_rng": torch.get_rng_state(), "data_rng": data.generator.get_state(),
               "losses": torch.tensor(history.series(), dtype=torch.float64), "seconds": history.seconds}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def resume_training_state(path: str | Path, model: DDPM, trainee: DDPM, optimizer: torch.optim.Optimizer,
                          updates: list[int], data) -> tuple[int, History]:
    """Load a state saved by :func:`save_training_state` into the run; returns (epochs done, history so
    far: one row per earlier step with its loss)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(saved["average"])
    trainee.load_state_dict(saved["trainee"])
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["torch_rng"])
    data.generator.set_state(saved["data_rng"])
    updates[0] = int(saved["updates"])
    losses = saved["losses"].tolist()
    per_epoch = len(losses) // max(int(saved["epochs_done"]), 1)
    history = History(steps=[{"step": i + 1, "epoch": i // max(per_epoch, 1), "loss": v} for i, v in enumerate(losses)],
                      seconds=float(saved["seconds"]))
    return int(saved["epochs_done"]), history


# --------------------------------------------------------------------------- the recipe
BOUND_TEST_IMAGES = 200   # test images the recorded bound is computed on (T network calls each)


def ddpm_samples(model: DDPM, n: int, seed: int = 0) -> torch.Tensor:
    """n ancestral samples in [0, 1] from seed ``seed``, on one thread (the shipped bank's chunks)."""
    with one_thread():
        return model.draw(n, torch.Generator().manual_seed(seed))


def ddim_samples(model: DDPM, n: int, seed: int = 0, steps: int | None = None) -> torch.Tensor:
    """n DDIM samples from the same seeds, hence the same x_T, as :func:`ddpm_samples`."""
    with one_thread():
        return model.draw_ddim(n, torch.Generator().manual_seed(seed), steps)


def bound_test_images(subset: str = "embedded", n: int = BOUND_TEST_IMAGES) -> torch.Tensor:
    """The test images the bound is recorded on: ``n`` grayscale images evenly spaced through the test
    set of ``subset`` (every 10th of the embedded 2,000, every 50th of the full 10,000), so that every
    class is in them (both files are ordered)."""
    test, _ = tensors("test", "unit", subset=subset)
    return test[::len(test) // n][:n]


def bound_report(model: DDPM, subset: str = "embedded", n: int = BOUND_TEST_IMAGES) -> dict[str, float]:
    """The variational bound on ``n`` grayscale test images of ``subset`` (:func:`bound_test_images`),
    nats per image and bits/dim: an upper bound on the NLL of the 8-bit images, not comparable with
    the binarized models' NLLs (their data have 1 bit per pixel instead of 8)."""
    test = bound_test_images(subset, n)
    with one_thread():
        report = model.to("cpu").likelihood(test, seed=0)
    return {"nll_bound_nats": report["nats"], "bound_bits_per_dim": report["bits_per_dim"],
            "prior_nats": report["prior"], "diffusion_nats": report["diffusion"], "decoder_nats": report["decoder"],
            "test_images": len(test), "chosen": "evenly spaced through the test set",
            "data": "8-bit grayscale (256 values per pixel)"}


class one_thread:
    """Run a block on one CPU thread: reproducible training and comparable sampling times."""

    def __enter__(self):
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.threads)


def _fit(model: DDPM, options: dict) -> History:
    """Adam, EMA of the weights, one epoch per ``train`` call; a snapshot (``options["snapshot"]``)
    after each epoch, so a long run leaves a usable model after every epoch and ``--max-steps`` of
    that epoch's step count reproduces it exactly. One torch thread, so the run is bit-for-bit
    repeatable on any CPU."""
    from .checkpoints import save_checkpoint

    data = loader("train", "signed", batch_size=options["batch_size"], seed=options["seed"],
                  subset=options.get("subset", "embedded"), limit=options.get("limit"))   # limit: tests only
    snapshot = options.get("snapshot")

    def after_epoch(m: DDPM, epoch: int, history: History) -> None:
        print(f"epoch {epoch + 1}: {len(history.steps)} steps, {history.seconds:.0f} s, "
              f"loss {sum(history.series()[-200:]) / len(history.series()[-200:]):.4f}", flush=True)
        if snapshot:   # "runs/ddpm-{epoch}.pt" keeps every epoch's snapshot; a plain path keeps the last
            save_checkpoint(m, str(snapshot).format(epoch=epoch + 1), recipe="ddpm", steps=len(history.steps), train_seconds=round(history.seconds, 1),
                            note=f"snapshot after epoch {epoch + 1} ({len(history.steps)} steps), not shipped")

    with one_thread():
        return fit_ddpm(model, data, lr=options["lr"], ema=options.get("ema", 0.999),
                        grad_clip=options.get("grad_clip", 1.0), epochs=options["epochs"],
                        max_steps=options.get("max_steps"), deadline=deadline_after(options.get("minutes")),
                        after_epoch=after_epoch, seed=options["seed"], progress=options.get("progress", True),
                        device=options.get("device", "cpu"), state=options.get("state"))


register_recipe(Recipe(
    name="ddpm",
    description="DDPM on Fashion-MNIST grayscale in [-1, 1]: small U-Net, cosine schedule T=200, L_simple, EMA; "
                "scored by the variational bound (bits/dim on 200 test images) and a 1,000-sample bank",
    build=lambda **kw: DDPM(**kw),
    fit=_fit,
    evaluate=lambda model, subset: bound_report(model, subset),
    sample=ddpm_samples,
    defaults={"epochs": 15, "batch_size": 64, "lr": 1e-3, "ema": 0.999, "grad_clip": 1.0, "minutes": None},
))


# --------------------------------------------------------------------------- a 2-D toy diffusion
class ToyEpsilon(nn.Module):
    """ε_θ(x_t, t) for 2-D points: an MLP whose every hidden layer is told the step (its sinusoidal
    embedding, projected and added, as the U-Net's blocks are): one network, T different jobs."""

    def __init__(self, hidden: int = 128, emb_dim: int = 32, depth: int = 3):
        super().__init__()
        self.emb_dim = emb_dim
        self.inp = nn.Linear(2, hidden)
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 1))
        self.emb = nn.ModuleList(nn.Linear(emb_dim, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = timestep_embedding(t, self.emb_dim)
        h = F.silu(self.inp(x) + self.emb[0](e))
        for layer, emb in zip(self.hidden, self.emb[1:]):
            h = F.silu(layer(h) + emb(e))
        return self.out(h)


@register_model
class ToyDiffusion(nn.Module):
    """A diffusion model of 2-D points (the ring of notebook 04, :func:`lecture13.toy.ring_of_gaussians`):
    the same schedule, loss and sampler as :class:`DDPM`, small enough to train in seconds, and a
    *score field* to plot: ∇_x log q(x_t) ≈ −ε_θ(x_t, t) / √(1 − ᾱ_t) (Song et al. 2021b; from eq. 4,
    the noise that was added points away from the data, so minus it points back)."""

    def __init__(self, T: int = 100, hidden: int = 128):
        super().__init__()
        self.config = {"T": T, "hidden": hidden}
        self.T = T
        self.schedule = make_schedule(T, "cosine")
        self.net = ToyEpsilon(hidden)

    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        """L_simple on points (eq. 14)."""
        t = torch.randint(1, self.T + 1, (len(x0),))
        noise = torch.randn_like(x0)
        return F.mse_loss(self.net(q_sample(self.schedule, x0, t, noise), t), noise)

    @torch.no_grad()
    def score(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """The learned score −ε_θ(x, t) / √(1 − ᾱ_t) at points x (N, 2), noise level t."""
        steps = torch.full((len(x),), t, dtype=torch.long)
        return -self.net(x, steps) / math.sqrt(1 - float(self.schedule.alpha_bars[t - 1]))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, keep: tuple[int, ...] = ()) -> torch.Tensor:
        """Ancestral sampling (Algorithm 2) of n points; with ``keep``, also the x_t at those steps
        (a dict t → points, for plotting the reverse chain)."""
        s = self.schedule
        x = torch.randn(n, 2, generator=generator)
        kept = {self.T: x.clone()} if self.T in keep else {}
        for t in range(self.T, 0, -1):
            steps = torch.full((n,), t, dtype=torch.long)
            eps = self.net(x, steps)
            a = float(s.alpha_bars[t - 1])
            x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)              # eq. 4 solved for x_0
            mean = float(s.posterior_c0[t - 1]) * x0 + float(s.posterior_ct[t - 1]) * x   # eq. 7
            x = mean + (math.sqrt(float(s.sigma2[t - 1])) * torch.randn(n, 2, generator=generator) if t > 1 else 0)
            if t - 1 in keep:
                kept[t - 1] = x.clone()
        return (x, kept) if keep else x


def train_toy_diffusion(distribution=None, steps: int = 2000, batch_size: int = 256, lr: float = 2e-3,
                        seed: int = 0, progress: bool = False) -> tuple[ToyDiffusion, History]:
    """Train a :class:`ToyDiffusion` on fresh batches of a 2-D distribution (the ring by default)
    with :func:`lecture13.training.train`; a few seconds on one CPU thread."""
    from .gan import ToyStream
    from .toy import RING, ring_of_gaussians

    distribution = distribution or ring_of_gaussians(**RING)
    torch.manual_seed(seed)
    model = ToyDiffusion()
    # The stream gets its own seed: ``train`` seeds the global generator with ``seed``, from which the
    # loss draws t and ε, and a stream seeded alike would draw the very same numbers for the points'
    # own Gaussian noise (randint, then randn, in both): ε would then be readable from x_t, and the
    # network would learn that coincidence (a training loss below the Bayes limit) instead of the ring.
    with one_thread():
        history = train(model, ToyStream(distribution, batch_size, steps, seed=seed + 1),
                        lambda m, x: m.loss(x), lr=lr, seed=seed, progress=progress, desc="toy diffusion", device="cpu")
    return model, history


# --------------------------------------------------------------------------- the DDIM sample bank
DDIM_BANK = "ddpm_ddim.samples.npz"


def save_ddim_samples(images: torch.Tensor, name: str = "ddpm", **meta) -> dict:
    """Ship DDIM samples of checkpoint ``name`` beside its ancestral bank (:func:`checkpoints.save_samples`
    holds one bank per checkpoint): as uint8 in ``weights/ddpm_ddim.samples.npz``, recorded under the
    manifest entry's ``"ddim_samples"`` with its sha256 and the checkpoint's."""
    import numpy as np

    from .checkpoints import WEIGHTS_DIR, read_manifest, write_manifest_entry
    from .data import _save_npz_deterministic, sha256_file

    entry = read_manifest()[name]
    path = WEIGHTS_DIR / DDIM_BANK
    _save_npz_deterministic(path, {"images": (images * 255).round().to(torch.uint8).numpy().astype(np.uint8)})
    record = {"file": path.name, "sha256": sha256_file(path), "n": int(len(images)),
              "checkpoint_sha256": entry["sha256"], **meta}
    write_manifest_entry(name, {**read_manifest()[name], "ddim_samples": record})
    return record


def pretrained_ddim_samples(name: str = "ddpm", with_meta: bool = False):
    """The shipped DDIM bank of ``name``: (n, 1, 28, 28) in [0, 1], checked by sha256 and against the
    checkpoint it was drawn from (as :func:`lecture13.checkpoints.pretrained_samples` does)."""
    import numpy as np

    from .checkpoints import WEIGHTS_DIR, CheckpointError, read_manifest
    from .data import sha256_file

    entry = read_manifest().get(name, {})
    record = entry.get("ddim_samples")
    if record is None or record["checkpoint_sha256"] != entry.get("sha256"):
        raise CheckpointError(f"no DDIM samples of the shipped {name!r}")
    path = WEIGHTS_DIR / record["file"]
    if not path.exists() or sha256_file(path) != record["sha256"]:
        raise CheckpointError(f"{path} is missing or failed its checksum")
    with np.load(path, allow_pickle=False) as archive:
        images = torch.from_numpy(archive["images"].copy()).float() / 255
    return (images, record) if with_meta else images
