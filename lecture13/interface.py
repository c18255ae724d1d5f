"""What every model family can be asked: one small interface, so that the comparison, the sample
quality metric and the benchmarks read any model the same way.

The lecture's taxonomy is a list of answers to four questions, and each family answers them in
its own module by subclassing :class:`GenerativeModel`:

* **Can it sample?** :meth:`GenerativeModel.draw` gives ``n`` images in [0, 1] (or points, for
  the 2-D toy models) from one seeded generator.
* **What can it say about p(x)?** :meth:`GenerativeModel.likelihood` gives the exact NLL, the
  upper bounds it has on the NLL, or nothing (:attr:`GenerativeModel.likelihood_kind` says which
  before any computation: ``"exact"``, ``"bound"`` or ``"none"``).
* **Does it have a latent space?** :meth:`GenerativeModel.latent_description` and
  :meth:`GenerativeModel.interpolation` (a straight line between two codes, decoded).
* **What did it cost to train?** Read from the checkpoint's metadata by
  :func:`lecture13.comparison.training_cost`, the same for every family.

Adding a family is adding a subclass; nothing that reads models branches on their type.
"""
from __future__ import annotations

import torch
from torch import nn

LIKELIHOOD_KINDS = ("exact", "bound", "none")


def likelihood_report(kind: str, nats: float | None = None, **extra) -> dict:
    """A likelihood result in the one format every family returns: ``kind`` and, unless it is
    ``"none"``, ``nats`` (per image: the NLL if exact, the tightest upper bound on it if a bound)
    and ``bits_per_dim`` = nats / (D ln 2) with D = 784."""
    from .likelihood import bits_per_dim

    if kind not in LIKELIHOOD_KINDS:
        raise ValueError(f"kind must be one of {LIKELIHOOD_KINDS}, got {kind!r}")
    if kind == "none":
        return {"kind": "none", **extra}
    return {"kind": kind, "nats": nats, "bits_per_dim": bits_per_dim(nats), **extra}


@torch.no_grad()
def mean_nll(model: nn.Module, x: torch.Tensor, batch_size: int = 100) -> float:
    """Mean −log p(x) in nats per image of a model with an exact per-image ``nll``, in batches."""
    model.eval()
    return float(torch.cat([model.nll(xb) for xb in x.split(batch_size)]).double().mean())


class GenerativeModel(nn.Module):
    """The base of every model family: the four questions of the taxonomy, with the answers of a
    model that can do none of it. A family overrides what it can do."""

    family: str = "generative model"   # the lecture's taxonomy, for tables
    likelihood_kind: str = "none"      # "exact", "bound" or "none": what :meth:`likelihood` returns
    sampling_threads: int | None = None  # run :meth:`draw` on this many torch threads (None: as set)

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` samples in [0, 1], shape (n, 1, 28, 28) for image models, from ``generator``."""
        raise NotImplementedError(f"{type(self).__name__} cannot sample")

    def likelihood(self, x: torch.Tensor, iw_k: int = 100, seed: int = 0) -> dict:
        """What the model can say about p(x) for the test images ``x``, as :func:`likelihood_report`."""
        return likelihood_report("none")

    def recorded_likelihood(self, metrics: dict, iw_k: int = 100) -> dict:
        """The numbers :meth:`likelihood` gives, as recorded with the shipped checkpoint on all
        embedded test images (``metrics`` = its metadata's ``metrics["embedded_test"]``): an exact
        model reads ``nll_nats``; a family with bounds overrides this."""
        if self.likelihood_kind == "none":
            return likelihood_report("none")
        if self.likelihood_kind == "exact":
            return likelihood_report("exact", metrics["nll_nats"], source="recorded")
        raise NotImplementedError(f"{type(self).__name__} has bounds but does not say where they are recorded")

    def latent_description(self) -> str:
        return "none"

    def interpolation(self, steps: int, seed: int = 0, pair: torch.Tensor | None = None) -> torch.Tensor | None:
        """``steps`` decoded points on a straight line between two codes, in [0, 1]; None without a latent."""
        return None
