"""Log-likelihoods of binarized images, and the units they are reported in.

Every explicit model in the course reports the negative log-likelihood (NLL) of a test image
in *nats per image* (natural log, summed over the 784 pixels) and in *bits per dimension*:

    bits/dim = NLL_nats / (D · ln 2),   D = number of pixels (784 for 28×28).

Bits/dim is the number of bits an ideal entropy coder built on the model would need per
pixel, so it compares models on images of any size; 1 bit/dim is what a coin flip per pixel
costs on binary images.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = Σ_i [x_i log σ(l_i) + (1 − x_i) log(1 − σ(l_i))], summed over all but the
    batch dimension: one value per image. Computed from logits (stable for any logit)."""
    if logits.shape != x.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and images {tuple(x.shape)} must have the same shape")
    per_pixel = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return per_pixel.flatten(1).sum(dim=1)


def bits_per_dim(nll_nats: torch.Tensor | float, num_dims: int = 784) -> torch.Tensor | float:
    """Convert an NLL in nats per image to bits per dimension: nats / (D · ln 2)."""
    return nll_nats / (num_dims * math.log(2.0))


def nats_from_bits_per_dim(bpd: torch.Tensor | float, num_dims: int = 784) -> torch.Tensor | float:
    """The inverse of :func:`bits_per_dim`."""
    return bpd * num_dims * math.log(2.0)
