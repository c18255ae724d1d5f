"""The factorized baseline and the planted bugs its exercises must catch."""
import math

import pytest
import torch

from lecture13 import factorized, likelihood
from lecture13.factorized import FactorizedBernoulli

from notebook_tools import SOLUTIONS, assert_check_catches, exercises, read

NB00 = read(SOLUTIONS / "00_generative_models.ipynb")
TESTS = {grade_id: test for grade_id, _, test in exercises(NB00)}


def test_closed_form_is_the_maximum_likelihood():
    x = torch.bernoulli(torch.full((200, 6), 0.3), generator=torch.Generator().manual_seed(0))
    model = FactorizedBernoulli(shape=(6,)).fit(x, alpha=0.0)
    best = model.nll(x).mean()
    for delta in (-0.05, 0.05):
        moved = FactorizedBernoulli(shape=(6,))
        moved.logits.data = torch.logit((model.theta + delta).clamp(0.01, 0.99))
        assert moved.nll(x).mean() > best


def test_log_prob_matches_the_formula_and_sums_to_one():
    model = FactorizedBernoulli(shape=(3,))
    model.logits.data = torch.tensor([0.3, -1.0, 2.0])
    images = torch.tensor([[(i >> k) & 1 for k in range(3)] for i in range(8)], dtype=torch.float32)
    assert torch.exp(model.log_prob(images)).sum().item() == pytest.approx(1.0, abs=1e-6)
    theta = torch.sigmoid(model.logits)
    manual = (images * theta.log() + (1 - images) * (1 - theta).log()).sum(1)
    assert torch.allclose(model.log_prob(images), manual, atol=1e-6)
    assert torch.allclose(factorized.bernoulli_nll(theta, images), -manual, atol=1e-5)


def test_samples_have_the_right_pixel_frequencies():
    model = FactorizedBernoulli(shape=(1, 2, 2))
    model.logits.data = torch.logit(torch.tensor([[[0.1, 0.5], [0.9, 0.3]]]))
    samples = model.sample(20_000, torch.Generator().manual_seed(0))
    assert samples.shape == (20_000, 1, 2, 2)
    assert torch.allclose(samples.mean(0), model.theta, atol=0.015)


def test_bits_per_dim():
    assert likelihood.bits_per_dim(784 * math.log(2)) == pytest.approx(1.0)
    assert likelihood.nats_from_bits_per_dim(likelihood.bits_per_dim(383.0)) == pytest.approx(383.0)
    with pytest.raises(ValueError, match="same shape"):
        likelihood.bernoulli_log_likelihood(torch.zeros(2, 3), torch.zeros(2, 4))


PLANTED = {
    "ex-fit-bernoulli": [
        "def fit_bernoulli(x, alpha=1.0):\n    return x.mean(dim=0)",                                 # smoothing ignored
        "def fit_bernoulli(x, alpha=1.0):\n    return (x.sum(0) + alpha) / (x.shape[0] + alpha)",     # one pseudo-count too few
        "def fit_bernoulli(x, alpha=1.0):\n    return (x.sum(0) + alpha) / (x.numel() + 2 * alpha)",  # divides by all pixels
    ],
    "ex-bernoulli-nll": [
        "def bernoulli_nll(theta, x):\n    return (x * theta.log() + (1 - x) * (1 - theta).log()).flatten(1).sum(1)",    # sign
        "def bernoulli_nll(theta, x):\n    return -(x * theta.log() + (1 - x) * (1 - theta).log()).flatten(1).mean(1)",  # mean over pixels
        "def bernoulli_nll(theta, x):\n    return -(x * theta.log() + (1 - x) * (1 - theta).log()).sum()",               # one number for the batch
        "def bernoulli_nll(theta, x):\n    return -(x * theta.log()).flatten(1).sum(1)",                                  # forgets the zeros
    ],
}


@pytest.mark.parametrize("grade_id,answer", [(g, a) for g, answers in PLANTED.items() for a in answers])
def test_visible_checks_catch_planted_bugs(grade_id, answer):
    assert_check_catches(NB00, answer, TESTS[grade_id])
