"""One interface for every model family (lecture13.interface): the comparison reads any model
through it, so a new family needs no branch there."""
import ast
import inspect

import pytest
import torch

from lecture13 import comparison, interface
from lecture13.autoregressive import PixelCNN
from lecture13.factorized import FactorizedBernoulli
from lecture13.gan import DCGAN
from lecture13.vae import VAE


class Uniform(interface.GenerativeModel):
    """A family the comparison has never heard of: independent fair coins, exact likelihood."""

    family = "a test's own family"
    likelihood_kind = "exact"

    def draw(self, n, generator):
        return torch.bernoulli(torch.full((n, 1, 28, 28), 0.5), generator=generator)

    def nll(self, x):
        return torch.full((len(x),), 784 * torch.log(torch.tensor(2.0)).item())

    def likelihood(self, x, iw_k=100, seed=0):
        return interface.likelihood_report("exact", interface.mean_nll(self, x))


def test_a_new_family_goes_through_the_comparison_without_a_branch_for_it():
    model, x = Uniform(), torch.zeros(5, 1, 28, 28)
    lik = comparison.likelihood(model, x)
    assert lik["kind"] == "exact" and lik["bits_per_dim"] == pytest.approx(1.0)   # a fair coin: 1 bit per pixel
    images = comparison.draw(model, 4, seed=2)
    assert images.shape == (4, 1, 28, 28) and torch.equal(images, comparison.draw(model, 4, seed=2))
    assert comparison.latent_description(model) == "none" and comparison.interpolation(model) is None
    assert comparison.recorded_likelihood(model, {"metrics": {"embedded_test": {"nll_nats": 543.4}}}) == \
        {"kind": "exact", "nats": 543.4, "bits_per_dim": pytest.approx(543.4 / (784 * 0.6931471805599453)),
         "source": "recorded"}


def test_every_family_of_the_course_is_a_generative_model_with_a_stated_likelihood_kind():
    kinds = {cls: cls.likelihood_kind for cls in (FactorizedBernoulli, PixelCNN, VAE, DCGAN)}
    assert kinds == {FactorizedBernoulli: "exact", PixelCNN: "exact", VAE: "bound", DCGAN: "none"}
    for cls in kinds:
        assert issubclass(cls, interface.GenerativeModel) and cls.family != interface.GenerativeModel.family


def test_the_comparison_does_not_branch_on_model_types():
    """The only isinstance in comparison.py is the check that a model implements the interface."""
    tree = ast.parse(inspect.getsource(comparison))
    checks = [ast.unparse(node.args[1]) for node in ast.walk(tree)
              if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance"]
    assert checks == ["GenerativeModel"], checks


def test_a_model_without_the_interface_is_refused_with_what_to_do():
    with pytest.raises(TypeError, match="GenerativeModel"):
        comparison.draw(torch.nn.Linear(2, 2), 3)
    with pytest.raises(ValueError, match="kind must be one of"):
        interface.likelihood_report("lower bound", 1.0)
    with pytest.raises(NotImplementedError, match="cannot sample"):
        interface.GenerativeModel().draw(2, torch.Generator())
