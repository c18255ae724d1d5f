"""How each shipped model is trained and measured, by name, for ``python -m lecture13 train``.

A model family registers a :class:`Recipe` in its own module with :func:`register_recipe`.
The command line then trains, evaluates, samples and saves any of them the same way, so every
shipped checkpoint is reproducible from the command recorded in it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .training import History

# Modules that define models and recipes. A new model family adds its module here.
FAMILY_MODULES = (
    "lecture13.factorized",
    "lecture13.autoregressive",
    "lecture13.autoencoders", "lecture13.vae",
    "lecture13.gan",  # also imports lecture13.classifier (the Fréchet-distance features)
    "lecture13.diffusion",
    "lecture13.flows",
)


@dataclass
class Recipe:
    """Everything the command line needs to reproduce one shipped checkpoint.

    * ``build(**overrides)`` returns a fresh model;
    * ``fit(model, options)`` trains it with :func:`lecture13.training.train` and returns the History;
      ``options`` is a dict with at least epochs, batch_size, lr, seed, subset, device, max_steps;
    * ``evaluate(model, subset)`` returns test metrics (e.g. ``{"nll_nats": ..., "bits_per_dim": ...}``)
      on the full test set (``"full"``) or the embedded one (``"embedded"``);
    * ``sample(model, n, seed)`` returns ``n`` images in [0, 1], shape (n, 1, 28, 28), if it can sample.
    """

    name: str
    description: str
    build: Callable[..., nn.Module]
    fit: Callable[[nn.Module, dict], History]
    evaluate: Callable[[nn.Module, str], dict[str, float]]
    sample: Callable[[nn.Module, int, int], torch.Tensor] | None = None
    defaults: dict = field(default_factory=dict)


RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    RECIPES[recipe.name] = recipe
    return recipe


def import_families() -> None:
    for module in FAMILY_MODULES:
        importlib.import_module(module)


def get_recipe(name: str) -> Recipe:
    import_families()
    if name not in RECIPES:
        raise KeyError(f"no recipe named {name!r}; known: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]
