"""Checks for the normalizing-flow exercises (notebook 07): the two pieces of an affine coupling layer
that make a flow a density.

* :func:`coupling_inverse_checks`: ``coupling_inverse(layer, z)``, the x with ``layer(x)[0] == z``
  (Dinh et al. 2017, eq. 8), on two coupling layers (one per mask), then put into every layer of the
  RealNVP trained on the ring: does f⁻¹ still invert f, and do the samples it draws still land on the
  ring's modes?
* :func:`coupling_log_det_checks`: ``coupling_log_det(layer, x)``, log |det ∂z/∂x| per point (eq. 6),
  against the log |det| of the Jacobian autograd computes, on the same two layers, then put into the
  trained RealNVP: does its density still integrate to 1, and what NLL does it now report?

Every check is a *property*: it runs the student's function on a named input and raises
``AssertionError`` naming the input, what was expected, what came back and, when the answer matches a
usual mistake, a hint about it. Only modules and tensors cross to the answer (the grader's channel).
"""
from __future__ import annotations

from typing import Callable

import torch

from .. import flows, toy
from .gans import _compare, _fmt

Property = Callable[[Callable], None]
FLOW = "flow_ring"          # the shipped flow the pieces are put into
INVERSE_TOL = 1e-4          # float32 rounding through 8 layers is ~1e-6


# --------------------------------------------------------------------------- probes
def probe_coupling(first: bool = True, seed: int = 0, dtype: torch.dtype = torch.float32) -> flows.AffineCoupling:
    """A small coupling layer (mask (1, 0) if ``first`` else (0, 1)) whose s and t are far from 0 in every
    output (a new layer's are exactly 0, which would hide every mistake; a trained layer's outputs for
    the unchanged dimensions are still 0, as they never get a gradient, which hides a mask forgotten)."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.tensor([1.0, 0.0]) if first else torch.tensor([0.0, 1.0])
    torch.manual_seed(seed)
    layer = flows.AffineCoupling(mask, hidden=8, depth=1)
    with torch.no_grad():
        last = layer.net[-1]
        last.weight.copy_(0.6 * torch.randn(last.weight.shape, generator=g))
        last.bias.copy_(0.5 * torch.randn(last.bias.shape, generator=g))
    return layer.to(dtype).eval()


def _points(n: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return (1.5 * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))).to(dtype)


VISIBLE = [
    ("a coupling layer with mask (1, 0): x₁ passes, x₂ is scaled and shifted; 6 points", True, 0, 6, torch.float32),
    ("a coupling layer with mask (0, 1): x₂ passes, x₁ is scaled and shifted; 6 points", False, 1, 6, torch.float32),
]


def hidden_inputs() -> list[tuple]:
    return [
        ("mask (1, 0), another layer, 50 points", True, 7, 50, torch.float32),
        ("mask (0, 1), another layer, one point", False, 8, 1, torch.float32),
        ("mask (0, 1), a float64 layer and points (the answer must stay in float64)", False, 9, 20, torch.float64),
    ]


_FLOW_CACHE: dict[str, flows.RealNVP] = {}


def trained_flow() -> flows.RealNVP:
    """The shipped RealNVP of the ring (checked by sha256), loaded once."""
    if FLOW not in _FLOW_CACHE:
        from ..checkpoints import pretrained

        _FLOW_CACHE[FLOW] = pretrained(FLOW)
    return _FLOW_CACHE[FLOW]


def _layer_text(layer: flows.AffineCoupling) -> str:
    return f"layer (mask {tuple(int(v) for v in layer.mask.tolist())})"


# --------------------------------------------------------------------------- exercise 1: the inverse
def inverse_mistakes(layer: flows.AffineCoupling, z: torch.Tensor) -> list[tuple[Callable, str]]:
    """What the usual wrong inverses return on ``z``, each with its hint."""
    b = layer.mask
    s, t = layer.log_scale_and_shift(b * z)
    s_all, t_all = layer.log_scale_and_shift(z)
    s_other, t_other = layer.log_scale_and_shift((1 - b) * z)
    return [
        (lambda: b * z + (1 - b) * (z - t) * torch.exp(s),
         "the scale was applied again: the forward map multiplied by exp(s), so the inverse divides by it"),
        (lambda: b * z + (1 - b) * (z * torch.exp(-s) - t),
         "the shift is undone after the scale: the forward map scaled first and shifted last, so undo the shift first"),
        (lambda: b * z + (1 - b) * (z + t) * torch.exp(-s), "the shift t was added: undo it by subtracting"),
        (lambda: (z - t) * torch.exp(-s),
         "the unchanged dimensions (mask 1) were changed too: the conditioner's s and t are meant for the masked-out "
         "dimensions only; where the mask is 1, x = z"),
        (lambda: b * z + (1 - b) * (z - t_all) * torch.exp(-s_all),
         "s and t were computed from all of z: in the forward map they saw only b ⊙ x, and b ⊙ z is that same part"),
        (lambda: b * z + (1 - b) * (z - t_other) * torch.exp(-s_other),
         "s and t were computed from the changed part (1 − b) ⊙ z: the conditioner sees the unchanged part b ⊙ z"),
        (lambda: b * z + (1 - b) * (z - t) / s, "s is a log-scale: the scale is exp(s), not s"),
        (lambda: layer(z)[0], "that is the forward map applied to z, not its inverse"),
    ]


def _inverse_property(label: str, first: bool, seed: int, n: int, dtype: torch.dtype) -> Property:
    def coupling_inverse_on(fn):
        layer, x = probe_coupling(first, seed, dtype), _points(n, seed + 100, dtype)
        with torch.no_grad():
            z = layer(x)[0]
        got = fn(layer, z.clone())
        call = f"coupling_inverse({_layer_text(layer)}, z = layer(x)[0] for x = {_fmt(x)}) [{label}]"
        with torch.no_grad():
            mistakes = inverse_mistakes(layer, z)
        _compare(call, x, got, mistakes, what="x")
        if got.dtype != x.dtype:
            raise AssertionError(f"{call}: x has dtype {got.dtype}, expected {x.dtype} (z's own): keep z's dtype")

    coupling_inverse_on.__name__ = f"coupling_inverse on {label}"
    return coupling_inverse_on


def _on_mode(samples: torch.Tensor, ring: toy.Mixture2D) -> float:
    return float(1 - toy.mode_shares(samples, ring)[-1])


def inverse_in_the_flow(points: int = 300, samples: int = 1000) -> Property:
    """The answer as every layer's inverse of the ring's trained RealNVP: f⁻¹(f(x)) = x on test points of
    the ring, and samples f⁻¹(z) on the ring's modes as often as the reference's."""

    def coupling_inverse_in_the_realnvp(fn):
        flow = trained_flow()
        plugged = flows.plug(flow, inverse=fn)
        x = flows.test_points("ring", points)
        with torch.no_grad():
            back = plugged.inverse(flow(x)[0])
            err = float((back - x).abs().max()) if back.shape == x.shape else float("inf")
            z = torch.randn(samples, 2, generator=torch.Generator().manual_seed(3))
            ring = flow.density()
            want_on = _on_mode(flow.inverse(z), ring)
            got_on = _on_mode(plugged.inverse(z), ring) if err < float("inf") else 0.0
        assert err < INVERSE_TOL, (
            f"your coupling_inverse as the inverse of each of the {len(flow.couplings)} layers of the RealNVP trained "
            f"on the ring: f⁻¹(f(x)) is off by up to {err:.3g} on {points} test points of the ring (expected < "
            f"{INVERSE_TOL:g}: only float32 rounding, ~1e-6). Samples x = f⁻¹(z) drawn through it: {got_on:.0%} lie "
            f"within 3σ of a mode of the ring, {want_on:.0%} with the exact inverse.\n     hint: an error in one layer "
            f"is compounded by the {len(flow.couplings) - 1} layers after it; check one layer first (the checks above)")

    return coupling_inverse_in_the_realnvp


def coupling_inverse_checks(inputs=None, in_the_flow: bool = True) -> list[Property]:
    """Properties of ``coupling_inverse(layer, z) -> x``: on each input layer, then (``in_the_flow``)
    put into the trained RealNVP."""
    props = [_inverse_property(*item) for item in (VISIBLE if inputs is None else inputs)]
    return props + ([inverse_in_the_flow()] if in_the_flow else [])


# --------------------------------------------------------------------------- exercise 2: the log-determinant
def log_det_mistakes(layer: flows.AffineCoupling, x: torch.Tensor) -> list[tuple[Callable, str]]:
    """What the usual wrong log-determinants return at ``x``, each with its hint."""
    b = layer.mask
    s, _ = layer.log_scale_and_shift(b * x)
    s_all, _ = layer.log_scale_and_shift(x)
    return [
        (lambda: s.sum(dim=1), "the log-scales of every dimension were summed: the unchanged dimensions (mask 1) "
                               "have a 1 on the Jacobian's diagonal and contribute log 1 = 0"),
        (lambda: (b * s).sum(dim=1), "the log-scales of the unchanged dimensions were summed: the scaled ones are "
                                     "where the mask is 0"),
        (lambda: -((1 - b) * s).sum(dim=1), "the sign is flipped: that is the log-determinant of the inverse map; "
                                            "the forward map x → z multiplies by exp(s)"),
        (lambda: ((1 - b) * torch.exp(s)).sum(dim=1),
         "the determinant of a triangular matrix is the product of its diagonal exp(s_j): its log is a sum of "
         "the s_j, not of the exp(s_j)"),
        (lambda: torch.exp(((1 - b) * s).sum(dim=1)), "that is |det| itself: return its log"),
        (lambda: ((1 - b) * s).mean(dim=1), "a mean over the dimensions: the log-determinant is their sum"),
        (lambda: ((1 - b) * s_all).sum(dim=1), "s was computed from all of x: the layer computes it from b ⊙ x"),
        (lambda: (1 - b) * s, "one value per point, summed over the dimensions: shape (n,)"),
        (lambda: ((1 - b) * s).sum(), "one value per point: do not sum over the points"),
    ]


def _log_det_property(label: str, first: bool, seed: int, n: int, dtype: torch.dtype) -> Property:
    def coupling_log_det_on(fn):
        layer, x = probe_coupling(first, seed, dtype), _points(n, seed + 200, dtype)
        exact = flows.autograd_log_det(flows._in(layer, torch.float64), x.double()).to(dtype)
        got = fn(layer, x.clone())
        call = (f"coupling_log_det({_layer_text(layer)}, x = {_fmt(x)}) [{label}], against log |det ∂z/∂x| of "
                f"the layer's Jacobian by autograd")
        with torch.no_grad():
            mistakes = log_det_mistakes(layer, x)
        _compare(call, exact, got, mistakes, what="log-determinant")
        if got.dtype != x.dtype:
            raise AssertionError(f"{call}: the result has dtype {got.dtype}, expected {x.dtype} (x's own)")

    coupling_log_det_on.__name__ = f"coupling_log_det on {label}"
    return coupling_log_det_on


def log_det_in_the_flow(points: int = 2000, tolerance: float = 0.03) -> Property:
    """The answer as every layer's log-determinant of the ring's trained RealNVP: its density must still
    integrate to 1 (the grid's integral plus the mass outside it, :func:`lecture13.flows.grid_integral`),
    and it should give the same NLL on the ring's test points."""

    def coupling_log_det_in_the_realnvp(fn):
        flow = trained_flow()
        plugged = flows.plug(flow, log_det=fn)
        x = flows.test_points("ring", points)
        with torch.no_grad():
            log_det_got = plugged(x)[1]
        if not isinstance(log_det_got, torch.Tensor) or log_det_got.shape != (points,):
            shape = tuple(log_det_got.shape) if isinstance(log_det_got, torch.Tensor) else type(log_det_got).__name__
            raise AssertionError(f"in the RealNVP trained on the ring, the layers' log-determinants summed to shape "
                                 f"{shape} for {points} points, expected ({points},): one value per point")
        want, got = flows.nll_vs_true(flow, x), flows.nll_vs_true(plugged, x)
        integral = flows.grid_integral(plugged)
        total = integral["integral"] + integral["mass_outside"]
        ok = abs(total - 1) < tolerance and abs(got["nll"] - want["nll"]) < 1e-3
        assert ok, (
            f"your coupling_log_det in each of the {len(flow.couplings)} layers of the RealNVP trained on the ring: "
            f"its density integrates to {integral['integral']:.4g} over [−{integral['box']:g}, {integral['box']:g}]² "
            f"(plus {integral['mass_outside']:.3f} outside) instead of 1, so it is no longer a density; the mean NLL "
            f"of {points} test points of the ring is {got['nll']:.3f} nats per point with it, {want['nll']:.3f} with "
            f"the exact log-determinant (the true density: {want['true_nll']:.3f})"
            + ("; below the true density's NLL, which no density can be on average" if
               got["nll"] < want["true_nll"] - 4 * want["gap_se"] else "")
            + "\n     hint: without the right log |det|, p_Z(f(x)) is not a density in x; check one layer first "
              "(the checks above)")

    return coupling_log_det_in_the_realnvp


def coupling_log_det_checks(inputs=None, in_the_flow: bool = True) -> list[Property]:
    """Properties of ``coupling_log_det(layer, x) -> (n,)``: on each input layer against autograd, then
    (``in_the_flow``) put into the trained RealNVP."""
    props = [_log_det_property(*item) for item in (VISIBLE if inputs is None else inputs)]
    return props + ([log_det_in_the_flow()] if in_the_flow else [])
