import math

import torch

from lecture13 import toy


def test_mixture1d_density_integrates_to_one_and_samples_match():
    mix = toy.Mixture1D(means=(-2.0, 1.0), stds=(0.5, 1.0), weights=(0.3, 0.7))
    grid = torch.linspace(-10, 10, 20001)
    assert abs(torch.trapezoid(mix.density(grid), grid).item() - 1.0) < 1e-4
    x = mix.sample(100_000, torch.Generator().manual_seed(0))
    assert x.shape == (100_000, 1)
    assert abs(x.mean().item() - (0.3 * -2.0 + 0.7 * 1.0)) < 0.02


def test_ring_and_grid_coverage():
    ring = toy.ring_of_gaussians(8, radius=2.0, std=0.02)
    assert ring.centres.shape == (8, 2)
    assert torch.allclose(ring.centres.norm(dim=1), torch.full((8,), 2.0))
    covered, quality = toy.mode_coverage(ring.sample(4000, torch.Generator().manual_seed(0)), ring)
    assert covered == 8 and quality > 0.98
    collapsed = ring.centres[:1] + 0.01 * torch.randn(4000, 2)
    assert toy.mode_coverage(collapsed, ring)[0] == 1
    grid = toy.grid_of_gaussians(5)
    assert grid.centres.shape == (25, 2)
    assert abs(grid.log_prob(grid.centres[:1]).item() - (-math.log(2 * math.pi * 0.05 ** 2) - math.log(25))) < 1e-3
