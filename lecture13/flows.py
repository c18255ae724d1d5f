"""Normalizing flows: an exact likelihood from an invertible map (RealNVP; Dinh, Sohl-Dickstein and
Bengio, *Density estimation using Real NVP*, ICLR 2017).

**Change of variables.** Take a bijection f from data x ∈ R^D to a code z = f(x) ∈ R^D of the *same*
dimension, and a simple base density p_Z (here the standard normal N(0, I)). Then

    p_X(x) = p_Z(f(x)) |det ∂f(x)/∂xᵀ|                                   (Dinh et al. eq. 1)
    log p_X(x) = log p_Z(f(x)) + log |det ∂f(x)/∂xᵀ|                       (eq. 2)

is an exact density: no bound, no estimate. The determinant is what a volume of x-space becomes in
z-space; without it p_Z(f(x)) would not integrate to 1. Sampling runs the map backwards:
z ~ p_Z, x = f⁻¹(z). A composition f = f_K ∘ … ∘ f_1 is a bijection whose log-determinant is the
sum of the layers' (the chain rule: the Jacobians multiply).

**Affine coupling.** Each layer leaves the dimensions where a binary mask b is 1 unchanged and scales
and shifts the others by amounts computed from the unchanged ones only:

    z = b ⊙ x + (1 − b) ⊙ (x ⊙ exp(s(b ⊙ x)) + t(b ⊙ x))                 (eq. 9)

Its Jacobian is triangular (the changed dimensions do not feed s or t), so its determinant is the
product of the diagonal, exp(Σ_j (1 − b_j) s_j): log |det| = Σ_j (1 − b_j) s_j(b ⊙ x) (eq. 6), one
pass of the networks, and the inverse needs no inverse of s or t (eq. 8):

    x = b ⊙ z + (1 − b) ⊙ (z − t(b ⊙ z)) ⊙ exp(−s(b ⊙ z))

s and t can be any networks. Alternating the mask between layers lets every dimension be changed.
Here s is bounded with a tanh, s = L tanh(ŝ / L): a layer scales by at most e^±L, so one bad step
cannot send exp(s) to infinity (the authors' implementation bounds it with a tanh too, times a learned scale).

**Units.** The flows here model 2-D points, so their NLLs are *nats per point* (−log p_X(x) summed
over the 2 coordinates), comparable with the toy density's own −log p(x) on the same points, not with
the image models' nats per image.

**Why continuous data (dequantization).** A density on R^D may be as large as it likes at a point: on
discrete data (pixel levels 0…255, or the course's binarized pixels) a flow can squeeze mass onto
the data points and send log p(x) → +∞, so its "NLL" is unbounded below and means nothing. Uniform
dequantization (Theis, van den Oord and Bethge 2016) trains on y = x + u, u ~ U[0, 1)^D instead:
a density p on y defines a discrete model P(x) = ∫_{[0,1)^D} p(x + u) du, and by Jensen's inequality

    −log P(x) ≤ E_u[−log p(x + u)]

so the NLL of dequantized data is an *upper bound* on the discrete model's exact NLL. For data
rescaled into bins of width h (h = 1/256 puts 8-bit pixels in [0, 1)), the bound gains D log(1/h):
−log P(x) ≤ E_u[−log p((x + u) h)] − D log h, 8 bits per dimension for 8-bit images (see
:func:`discrete_nll_bound`; measured on the toy by :func:`dequantization_gap`). What it costs for
images: the reported number is only a bound, loose by E_u[log P(x) − log p(x + u)] = KL(U[0, 1)^D ‖
p(u | x)) ≥ 0, which is 0 only where the density is flat inside the bin; a smooth bijection is never
quite flat across each of the 256^784 (binarized: 2^784) bins, and spends capacity trying (learned,
"variational" dequantization narrows the gap); and every layer works at the full dimension D = 784,
as z has x's dimension, so a flow is much larger and slower per image than a VAE with a 32-D code.
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import nn

from . import toy
from .checkpoints import register_model
from .interface import GenerativeModel, likelihood_report
from .recipes import Recipe, register_recipe
from .training import History, train

LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------- one coupling layer
def _mlp(dim: int, hidden: int, depth: int, out: int) -> nn.Sequential:
    """dim → hidden (× depth, ReLU) → out; the last layer starts at zero, so a new coupling is the
    identity (s = 0, t = 0) and a new flow is exactly its base density."""
    sizes = [dim] + [hidden] * depth
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    last = nn.Linear(sizes[-1], out)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class AffineCoupling(nn.Module):
    """One affine coupling layer (eq. 9): the dimensions where ``mask`` is 1 pass through unchanged and
    condition the scale exp(s) and shift t of the others."""

    def __init__(self, mask: torch.Tensor, hidden: int = 64, depth: int = 2, max_log_scale: float = 2.0):
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.max_log_scale = float(max_log_scale)
        # The scale and shift networks s(·) and t(·) share their hidden layers (as in the paper): one
        # network, 2·D outputs, half the cost of two.
        self.net = _mlp(mask.numel(), hidden, depth, out=2 * mask.numel())

    def log_scale_and_shift(self, x_masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s, t), each the shape of the input, from the unchanged part ``b ⊙ x``; s = L tanh(ŝ / L)
        lies in (−L, L), so one layer scales by at most e^±L."""
        raw_s, t = self.net(x_masked).chunk(2, dim=1)
        L = self.max_log_scale
        return L * torch.tanh(raw_s / L), t

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x → (z, log |det ∂z/∂x|), the latter one value per point."""
        b = self.mask
        s, t = self.log_scale_and_shift(b * x)
        z = b * x + (1 - b) * (x * torch.exp(s) + t)            # eq. (9)
        log_det = ((1 - b) * s).sum(dim=1)                       # eq. (6): log of the triangular Jacobian's diagonal
        return z, log_det

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return coupling_inverse(self, z)


def coupling_inverse(layer: AffineCoupling, z: torch.Tensor) -> torch.Tensor:
    """The x with ``layer(x)[0] == z`` (eq. 8). b ⊙ z = b ⊙ x, so s and t can be recomputed from z."""
    b = layer.mask
    s, t = layer.log_scale_and_shift(b * z)
    return b * z + (1 - b) * (z - t) * torch.exp(-s)             # eq. (8), undoing the shift, then the scale


def coupling_log_det(layer: AffineCoupling, x: torch.Tensor) -> torch.Tensor:
    """log |det ∂z/∂x| of ``layer`` at each point of ``x`` (n, D) → (n,): the sum of the log-scales of
    the changed dimensions (eq. 6)."""
    b = layer.mask
    s, _ = layer.log_scale_and_shift(b * x)
    return ((1 - b) * s).sum(dim=1)


def alternating_masks(dim: int, layers: int) -> list[torch.Tensor]:
    """Masks that keep the first half, then the second half, then the first … (for D = 2: x₁, x₂, x₁, …),
    so every dimension is changed by every second layer."""
    first = (torch.arange(dim) < dim // 2).float()
    return [first if k % 2 == 0 else 1 - first for k in range(layers)]


# --------------------------------------------------------------------------- the flow
@register_model
class RealNVP(GenerativeModel):
    """A stack of affine couplings with alternating masks over a standard-normal base:
    f = f_K ∘ … ∘ f_1 maps data x to the code z."""

    family = "normalizing flow (explicit, tractable)"
    likelihood_kind = "exact"
    sampling_threads = 1          # tiny matrices: a second thread only waits

    def __init__(self, dim: int = 2, layers: int = 8, hidden: int = 64, depth: int = 2, max_log_scale: float = 2.0,
                 density: str | None = None):
        super().__init__()
        self.config = {"dim": dim, "layers": layers, "hidden": hidden, "depth": depth,
                       "max_log_scale": max_log_scale, "density": density}
        self.dim = dim
        self.density_name = density      # which toy density of DENSITIES it was trained on (None: none)
        self.couplings = nn.ModuleList(AffineCoupling(m, hidden, depth, max_log_scale)
                                       for m in alternating_masks(dim, layers))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x → (z = f(x), log |det ∂f/∂xᵀ|): the layers' log-determinants add (the chain rule)."""
        log_det = torch.zeros(len(x), dtype=x.dtype, device=x.device)
        for layer in self.couplings:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """x = f⁻¹(z): the layers' inverses in reverse order."""
        for layer in reversed(self.couplings):
            z = layer.inverse(z)
        return z

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p_X(x) per point, exactly (eq. 2)."""
        z, log_det = self(x)
        log_base = -0.5 * (z ** 2).sum(dim=1) - 0.5 * self.dim * LOG_2PI    # log N(z; 0, I)
        return log_base + log_det

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """−log p_X(x) in nats per point."""
        return -self.log_prob(x)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n points (n, dim): z ~ N(0, I), x = f⁻¹(z)."""
        p = next(self.parameters())
        z = torch.randn(n, self.dim, generator=generator).to(dtype=p.dtype, device=p.device)
        return self.inverse(z)

    def density(self) -> toy.Mixture2D | None:
        """The toy density this flow was trained on (None if it was not)."""
        return None if self.density_name is None else make_density(self.density_name)

    def test_points(self, n: int = 10_000) -> torch.Tensor:
        """The test points of its toy density (:func:`test_points`): what :meth:`likelihood` is meant
        for, as test images are for the image models (the recorded evaluation uses these 10,000)."""
        return test_points(self.density_name, n)

    # the interface (lecture13.interface): 2-D points, an exact likelihood, a latent space of x's dimension
    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n points, shape (n, 2) (not images: the flows of the course model the 2-D toy densities)."""
        return self.sample(n, generator)

    def likelihood(self, x: torch.Tensor, iw_k: int = 100, seed: int = 0) -> dict:
        """The exact NLL of the points ``x`` in nats *per point* (not per image); bits per dimension
        over the point's ``dim`` coordinates; with the true density's NLL on the same points when the
        flow knows its toy density (``iw_k`` and ``seed`` are unused: nothing is estimated)."""
        nats = mean_nll(self, x)
        extra = {"per": "point", "dims": self.dim, "bits_per_dim": nats / (self.dim * math.log(2))}
        if self.density_name is not None:
            extra["true_nats"] = float(-self.density().log_prob(x.float()).double().mean())
        return likelihood_report("exact", nats, **extra)

    def recorded_likelihood(self, metrics: dict, iw_k: int = 100) -> dict:
        return likelihood_report("exact", metrics["nll_nats"], source="recorded", per="point", dims=self.dim,
                                 bits_per_dim=metrics["bits_per_dim"], true_nats=metrics.get("true_nll_nats"))

    def latent_description(self) -> str:
        return (f"z = f(x) ∈ R^{self.dim}, the same dimension as x, N(0, I) a priori, with an exact inverse "
                f"x = f⁻¹(z) (no encoder to learn, no reconstruction error)")

    @torch.no_grad()
    def interpolation(self, steps: int, seed: int = 0, pair: torch.Tensor | None = None) -> torch.Tensor:
        """``steps`` points x = f⁻¹(z) for z on the straight line between two codes: those of the two
        points ``pair`` (2, dim), or two draws from N(0, I) with ``seed``. Points, not in [0, 1]."""
        if pair is not None:
            z0, z1 = self(pair.to(next(self.parameters()).dtype))[0]
        else:
            z0, z1 = torch.randn(2, self.dim, generator=torch.Generator().manual_seed(seed))
        w = torch.linspace(0, 1, steps).unsqueeze(1)
        return self.inverse((1 - w) * z0 + w * z1)


@torch.no_grad()
def mean_nll(flow: RealNVP, x: torch.Tensor, batch_size: int = 10_000) -> float:
    """Mean −log p(x) over the points ``x``, nats per point (in batches, accumulated in float64)."""
    flow.eval()
    dtype = next(flow.parameters()).dtype
    return float(torch.cat([flow.nll(xb.to(dtype)) for xb in x.split(batch_size)]).double().mean())


# --------------------------------------------------------------------------- the toy densities
DENSITIES: dict[str, dict] = {
    "ring": {"kind": "ring", **toy.RING},                                   # notebook 04's ring of 8 Gaussians
    "grid": {"kind": "grid", "side": 3, "spacing": 1.5, "std": 0.15},       # a 3 × 3 grid of Gaussians
}


def make_density(name: str) -> toy.Mixture2D:
    """The toy density ``name`` of :data:`DENSITIES` (both know their exact log-density)."""
    spec = dict(DENSITIES[name])
    kind = spec.pop("kind")
    return toy.ring_of_gaussians(**spec) if kind == "ring" else toy.grid_of_gaussians(**spec)


class PointStream:
    """Fresh points of a toy density, ``batches`` batches of ``batch_size`` per pass, from one seeded
    generator: infinite data, so the training loss is an honest estimate of the test NLL."""

    def __init__(self, density: toy.Mixture2D, batch_size: int, batches: int, seed: int = 0):
        self.density, self.batch_size, self.batches = density, batch_size, batches
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        for _ in range(self.batches):
            yield self.density.sample(self.batch_size, generator=self.generator)


TEST_SEED = 10_000      # the test points' generator: never the training stream's


def test_points(name: str, n: int = 10_000, seed: int = TEST_SEED) -> torch.Tensor:
    """``n`` test points of the toy density ``name``, the same every time."""
    return make_density(name).sample(n, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- measuring the claims
def _in(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """``module`` in ``dtype``: itself if it is already (a flow with an exercise's pieces plugged in is
    never copied), else a copy (float64 shows what is rounding and what is not)."""
    if next(module.parameters()).dtype == dtype:
        return module
    return copy.deepcopy(module).to(dtype)


def autograd_log_det(transform: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                     x: torch.Tensor) -> torch.Tensor:
    """log |det ∂z/∂xᵀ| at each point of ``x`` (n, D) from the full D × D Jacobian that autograd computes
    (:func:`torch.autograd.functional.jacobian`), for any ``transform(x) -> (z, …)`` that maps points
    independently (a coupling layer, a flow)."""
    # The points do not interact, so the Jacobian of Σ_points z w.r.t. x holds every point's own block:
    # J[i, k, j] = ∂z_{k,i} / ∂x_{k,j}.
    J = torch.autograd.functional.jacobian(lambda v: transform(v)[0].sum(0), x)     # (D, n, D)
    return torch.linalg.slogdet(J.permute(1, 0, 2)).logabsdet                       # (n,)


def log_det_error(flow: nn.Module, x: torch.Tensor, dtype: torch.dtype = torch.float64) -> dict:
    """The formula's log-determinant (eq. 6, summed over layers) against autograd's log |det J| at the
    points ``x``: ``max_abs_error`` over them, and both values (n,)."""
    f, x = _in(flow, dtype), x.to(dtype)
    with torch.no_grad():
        formula = f(x)[1]
    by_autograd = autograd_log_det(f, x)
    return {"max_abs_error": float((formula - by_autograd).abs().max()), "formula": formula,
            "autograd": by_autograd, "points": len(x), "dtype": str(dtype).removeprefix("torch.")}


@torch.no_grad()
def inverse_error(flow: RealNVP, x: torch.Tensor, z: torch.Tensor | None = None,
                  dtype: torch.dtype = torch.float64) -> dict:
    """How exactly f⁻¹ inverts f: max |f⁻¹(f(x)) − x| over the points ``x`` and max |f(f⁻¹(z)) − z| over
    codes ``z`` (default: as many draws from N(0, I), seed 0), in ``dtype``: float32 shows rounding
    (~1e-6), float64 shows that nothing but rounding is left (~1e-15)."""
    f, x = _in(flow, dtype), x.to(dtype)
    if z is None:
        z = torch.randn(len(x), flow.dim, generator=torch.Generator().manual_seed(0))
    z = z.to(dtype)
    return {"x_roundtrip": float((f.inverse(f(x)[0]) - x).abs().max()),
            "z_roundtrip": float((f(f.inverse(z))[0] - z).abs().max()),
            "points": len(x), "dtype": str(dtype).removeprefix("torch.")}


@torch.no_grad()
def grid_log_prob(flow: nn.Module, box: float, points: int, dtype: torch.dtype = torch.float64):
    """(log p at the centres of a ``points`` × ``points`` grid of cells over [−box, box]², each cell's
    area, the centres' 1-D coordinates): the midpoint rule's ingredients."""
    width = 2 * box / points
    ticks = -box + width * (torch.arange(points, dtype=dtype) + 0.5)
    gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
    centres = torch.stack([gx.flatten(), gy.flatten()], dim=1)
    f = _in(flow, dtype)
    log_p = torch.cat([f.log_prob(c) for c in centres.split(65_536)])
    return log_p.reshape(points, points), width ** 2, ticks


@torch.no_grad()
def grid_integral(flow: RealNVP, box: float = 3.0, points: int = 300, samples: int = 50_000,
                  dtype: torch.dtype = torch.float32) -> dict:
    """∫ p_X over the box [−box, box]² by the midpoint rule on ``points`` × ``points`` cells, with its two
    errors stated:

    * ``grid_error``: the rule's own error, estimated as |I(h) − I(2h)| / 3 (it falls as h², so the
      coarser grid is ~4× as far off: Richardson's estimate);
    * ``mass_outside``: the mass beyond the box, measured, not assumed: the fraction of ``samples``
      exact draws of the flow that land outside (``mass_outside_se``: its standard error).

    A density integrates to 1, so ``integral + mass_outside`` should be 1 within those errors;
    ``discrepancy`` = |integral + mass_outside − 1|. The defaults (cells of 0.02, under half the ring's
    σ = 0.05; float32 densities, summed in float64) take about a second."""
    log_p, area, _ = grid_log_prob(flow, box, points, dtype)
    fine = float(log_p.double().exp().sum() * area)
    coarse_log_p, coarse_area, _ = grid_log_prob(flow, box, points // 2, dtype)
    coarse = float(coarse_log_p.double().exp().sum() * coarse_area)
    x = _in(flow, dtype).sample(samples, torch.Generator().manual_seed(1))
    outside = float((x.abs() > box).any(dim=1).double().mean())
    return {"integral": fine, "grid_error": abs(fine - coarse) / 3, "mass_outside": outside,
            "mass_outside_se": math.sqrt(max(outside * (1 - outside), 1 / samples) / samples),
            "discrepancy": abs(fine + outside - 1), "box": box, "cells": points * points, "cell_area": area}


@torch.no_grad()
def nll_vs_true(flow: RealNVP, x: torch.Tensor, density: toy.Mixture2D | None = None) -> dict:
    """The flow's exact NLL next to the true density's on the same points (nats per point). Their
    difference, E_p[log p(x) − log q(x)], is a Monte Carlo estimate of KL(p ‖ q) ≥ 0, the nats the flow
    loses to the truth (``gap``, with the standard error ``gap_se`` of the paired mean)."""
    density = density or flow.density()
    nll = flow.nll(x.to(next(flow.parameters()).dtype)).double()
    true = -density.log_prob(x.float()).double()
    gap = nll - true
    return {"nll": float(nll.mean()), "true_nll": float(true.mean()), "gap": float(gap.mean()),
            "gap_se": float(gap.std() / math.sqrt(len(x))), "points": len(x)}


# --------------------------------------------------------------------------- dequantization
def quantize(x: torch.Tensor, bin_width: float) -> torch.Tensor:
    """The bin of each coordinate: integers k with x ∈ [k h, (k + 1) h), h = ``bin_width`` (discrete data,
    as pixel levels are)."""
    return torch.floor(x / bin_width)


def dequantize(k: torch.Tensor, bin_width: float = 1 / 256, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform dequantization: y = (k + u) h with u ~ U[0, 1)^D, continuous data a flow can model (for
    8-bit images k = 0…255 and h = 1/256 give y ∈ [0, 1)). A fresh u every time it is called."""
    return (k + torch.rand(k.shape, generator=generator, dtype=torch.float64).to(k.dtype)) * bin_width


def discrete_nll_bound(dequantized_nll: float | torch.Tensor, dims: int, bin_width: float = 1 / 256):
    """The upper bound on the discrete NLL −log P(k) that a flow's NLL of dequantized data gives:
    −log P(k) ≤ E_u[−log p((k + u) h)] − D log h (Jensen; the −D log h converts the density on bins of
    width h into probabilities). For 8-bit images scaled to [0, 1): add 784 log 256 nats, i.e. 8 bits/dim."""
    return dequantized_nll - dims * math.log(bin_width)


@torch.no_grad()
def discrete_nll(flow: RealNVP, k: torch.Tensor, bin_width: float, per_side: int = 16) -> torch.Tensor:
    """−log P(k) = −log ∫_bin p_X, the flow's exact probability of each 2-D bin k (n, 2), by the midpoint
    rule on ``per_side`` × ``per_side`` points inside the bin (float64)."""
    f = _in(flow, torch.float64)
    offsets = (torch.arange(per_side, dtype=torch.float64) + 0.5) / per_side
    ox, oy = torch.meshgrid(offsets, offsets, indexing="ij")
    inside = torch.stack([ox.flatten(), oy.flatten()], dim=1)                    # (per_side², 2) in [0, 1)²
    y = (k.double().unsqueeze(1) + inside) * bin_width                            # (n, per_side², 2)
    log_p = f.log_prob(y.reshape(-1, 2)).reshape(len(k), -1)
    cell = math.log(bin_width ** 2 / per_side ** 2)
    return -(torch.logsumexp(log_p, dim=1) + cell)


@torch.no_grad()
def dequantization_gap(flow: RealNVP, x: torch.Tensor, bin_width: float = 0.05, draws: int = 16,
                       seed: int = 0) -> dict:
    """Quantize the points ``x`` to bins of width h, then compare, per point in nats: the flow's exact
    discrete NLL −log P(k) (:func:`discrete_nll`) with the bound that the NLL of dequantized data gives,
    E_u[−log p((k + u) h)] − D log h (``draws`` u per point). ``gap`` = bound − exact ≥ 0 is Jensen's gap:
    small where p is nearly constant across a bin (h = 0.05 on the ring flow: ~0.1 nats), huge where it
    is not (h = 0.25, five of the ring's σ: ~30 nats, the bound dominated by the bins' emptiest corners).
    That is why a flow trained on dequantized data must learn to be flat inside every bin, and what the
    bound costs when it is not. ~0.7 s for 200 points."""
    k = quantize(x.double(), bin_width)
    exact = discrete_nll(flow, k, bin_width)
    g = torch.Generator().manual_seed(seed)
    f = _in(flow, torch.float64)
    y = dequantize(k.unsqueeze(1).expand(-1, draws, -1), bin_width, g)
    dequantized = -f.log_prob(y.reshape(-1, 2)).reshape(len(k), draws).mean(1)
    bound = discrete_nll_bound(dequantized, 2, bin_width)
    return {"discrete_nll": float(exact.mean()), "bound": float(bound.mean()), "gap": float((bound - exact).mean()),
            "bin_width": bin_width, "points": len(x)}


# --------------------------------------------------------------------------- a flow with other pieces
class PluggedCoupling(nn.Module):
    """A trained coupling layer whose inverse or log-determinant is computed by other functions
    (``inverse(layer, z)``, ``log_det(layer, x)``: a student's), its weights untouched: z is always the
    layer's own. How an exercise's piece is put into a whole flow."""

    def __init__(self, layer: AffineCoupling, inverse: Callable | None = None, log_det: Callable | None = None):
        super().__init__()
        self.layer, self.inverse_fn, self.log_det_fn = layer, inverse, log_det

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, log_det = self.layer(x)
        return z, (log_det if self.log_det_fn is None else self.log_det_fn(self.layer, x))

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self.layer.inverse(z) if self.inverse_fn is None else self.inverse_fn(self.layer, z)


def plug(flow: RealNVP, inverse: Callable | None = None, log_det: Callable | None = None) -> RealNVP:
    """A copy of ``flow`` whose every coupling uses ``inverse(layer, z)`` and/or ``log_det(layer, x)``."""
    plugged = copy.deepcopy(flow)
    plugged.couplings = nn.ModuleList(PluggedCoupling(layer, inverse, log_det) for layer in plugged.couplings)
    return plugged


# --------------------------------------------------------------------------- recipes
def flow_loss(model: RealNVP, x: torch.Tensor) -> torch.Tensor:
    """Maximum likelihood: the mean exact NLL of the batch, nats per point."""
    return model.nll(x).mean()


def _fit(model: RealNVP, options: dict) -> History:
    """Adam on fresh batches of the flow's toy density, the learning rate falling on a cosine over the
    configured ``epochs`` × ``steps_per_epoch`` steps (not over ``max_steps``, so a run stopped early is
    exactly the start of the full run), on one thread (bit-for-bit repeatable); optionally a snapshot
    after each epoch (``options["snapshot"]``, a path, "{epoch}" in it for one file per epoch). After each
    epoch, the NLL of 2,000 test points is logged (``history.epochs``: ``eval_test_nll``)."""
    from .checkpoints import save_checkpoint

    density = make_density(model.density_name)
    steps_per_epoch = int(options["steps_per_epoch"])
    stream = PointStream(density, options["batch_size"], steps_per_epoch, seed=options["seed"])
    opt = torch.optim.Adam(model.parameters(), lr=options["lr"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=options["epochs"] * steps_per_epoch)
    from .training import gradient_step

    update = gradient_step(model, flow_loss, opt)

    def step(x: torch.Tensor) -> dict[str, float]:
        logged = update(x)
        schedule.step()
        return logged

    test = test_points(model.density_name, 2000)

    epoch = 0

    def after_epoch(flow: RealNVP) -> dict[str, float]:
        nonlocal epoch
        epoch += 1
        if options.get("snapshot"):       # a path; "{epoch}" in it keeps one file per epoch
            save_checkpoint(flow, str(options["snapshot"]).format(epoch=epoch), recipe=f"flow_{flow.density_name}",
                            note=f"snapshot after epoch {epoch}, not shipped")
        return {"test_nll": mean_nll(flow, test)}

    with toy.one_thread():
        return train(model, stream, step_fn=step, epochs=options["epochs"], max_steps=options.get("max_steps"),
                     device="cpu", seed=options["seed"], eval_fn=after_epoch, progress=options.get("progress", True),
                     desc=f"RealNVP on the {model.density_name}")


def evaluate(model: RealNVP, subset: str = "embedded") -> dict:
    """The recorded evaluation: the exact NLL and the true density's on the same test points (nats per
    point; 10,000 points for ``"embedded"``, 100,000 for ``"full"``: the toy has no images, the names
    are the command line's), and, on the embedded points, the claims measured: inverse error and
    log-det error in float64 and float32, and the integral over a grid."""
    model = model.to("cpu").eval()
    x = test_points(model.density_name, 10_000 if subset == "embedded" else 100_000)
    with toy.one_thread():
        report = nll_vs_true(model, x)
        out = {"nll_nats": report["nll"], "bits_per_dim": report["nll"] / (model.dim * math.log(2)),
               "true_nll_nats": report["true_nll"], "gap_nats": report["gap"], "gap_se": report["gap_se"],
               "points": len(x), "per": "point", "dims": model.dim}
        if subset == "embedded":
            out["inverse_error_float64"] = inverse_error(model, x[:1000])["x_roundtrip"]
            out["inverse_error_float32"] = inverse_error(model, x[:1000], dtype=torch.float32)["x_roundtrip"]
            out["log_det_error_float64"] = log_det_error(model, x[:200])["max_abs_error"]
            integral = grid_integral(model)
            out.update(grid_integral=integral["integral"], grid_error=integral["grid_error"],
                       mass_outside=integral["mass_outside"])
    return out


def _register(density: str, about: str) -> None:
    register_recipe(Recipe(
        name=f"flow_{density}",
        description=f"RealNVP (8 affine couplings, MLPs of 2 × 64) on {about}; exact NLL vs the true density's",
        build=lambda **kw: RealNVP(**{"density": density, **kw}),
        fit=_fit,
        evaluate=evaluate,
        sample=None,        # points, not images: the image protocol's sample() does not apply
        defaults={"epochs": 10, "steps_per_epoch": 150, "batch_size": 512, "lr": 2e-3},
    ))


_register("ring", "notebook 04's ring of 8 Gaussians (radius 2, σ = 0.05)")
_register("grid", "a 3 × 3 grid of Gaussians (spacing 1.5, σ = 0.15)")
