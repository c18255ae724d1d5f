"""A small Fashion-MNIST classifier, shipped so that sample quality can be measured offline.

The Fréchet Inception Distance (Heusel et al. 2017) compares the statistics of real and
generated images in the feature space of an ImageNet Inception network. That network is a
download of ~100 MB and knows nothing about 28×28 clothes, so the course trains its own
feature extractor instead: two conv blocks and a hidden layer, whose 128 activations (the
*penultimate features*, just before the class logits) are the space the Fréchet distance of
:mod:`lecture13.metrics` works in.

    x (1×28×28 in [0, 1]) → [conv3×3 → BN → ReLU → maxpool]×2 → flatten → linear → ReLU = φ(x) ∈ R^128
    φ(x) → dropout → linear → 10 class logits

Trained with cross-entropy on the full training set; its test accuracy is recorded in the
checkpoint (target ≥ 90%).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import register_model
from .data import loader, tensors
from .recipes import Recipe, register_recipe
from .training import History, train


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """3×3 convolution (same size) → batch norm → ReLU → 2×2 max pool (halves the size)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(), nn.MaxPool2d(2))


@register_model
class FeatureClassifier(nn.Module):
    """Fashion-MNIST classifier whose penultimate layer is the feature space φ(x)."""

    def __init__(self, width: int = 32, features: int = 128, classes: int = 10, dropout: float = 0.3):
        super().__init__()
        self.config = {"width": width, "features": features, "classes": classes, "dropout": dropout}
        self.body = nn.Sequential(conv_block(1, width), conv_block(width, 2 * width), nn.Flatten(),
                                  nn.Linear(2 * width * 7 * 7, features), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """φ(x): the (N, features) penultimate activations of images x in [0, 1], shape (N, 1, 28, 28)."""
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"expected images of shape (N, 1, 28, 28), got {tuple(x.shape)}")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, classes)."""
        return self.head(self.features(x))


def classification_loss(model: FeatureClassifier, batch) -> dict[str, torch.Tensor]:
    images, labels = batch
    logits = model(images)
    return {"loss": F.cross_entropy(logits, labels),
            "accuracy": (logits.argmax(1) == labels).float().mean()}


@torch.no_grad()
def accuracy(model: FeatureClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``images`` (in [0, 1]) classified correctly."""
    model.eval()
    correct = sum(int((model(images[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum())
                  for i in range(0, len(images), batch_size))
    return correct / len(images)


# --------------------------------------------------------------------------- recipe
def _fit(model: FeatureClassifier, options: dict) -> History:
    data = loader("train", "unit", batch_size=options["batch_size"], with_labels=True,
                  seed=options["seed"], subset=options.get("subset", "embedded"))
    return train(model, data, classification_loss, lr=options["lr"], epochs=options["epochs"],
                 max_steps=options.get("max_steps"), device=options.get("device", "cpu"), seed=options["seed"],
                 progress=options.get("progress", True), desc="classifier")


def _evaluate(model: FeatureClassifier, subset: str) -> dict[str, float]:
    images, labels = tensors("test", "unit", subset=subset)
    return {"accuracy": accuracy(model, images, labels)}


register_recipe(Recipe(
    name="classifier",
    description="small CNN classifier of Fashion-MNIST; its 128 penultimate features are the Fréchet distance's space",
    build=lambda **kw: FeatureClassifier(**kw),
    fit=_fit,
    evaluate=_evaluate,
    defaults={"epochs": 8, "batch_size": 128, "lr": 1e-3},
))
