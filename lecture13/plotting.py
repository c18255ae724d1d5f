"""Plots every notebook uses: image grids, loss curves, a decoded grid over a 2-D latent."""
from __future__ import annotations

from typing import Callable, Sequence

import matplotlib.pyplot as plt
import torch

from .training import History


def value_range_of(images: torch.Tensor) -> tuple[float, float]:
    """The range an image tensor's values live in, from its dtype and values: uint8 → (0, 255);
    float in [0, 1] → (0, 1); float with negatives in [-1, 1] → (-1, 1) (a tanh generator)."""
    if images.dtype == torch.uint8:
        return (0.0, 255.0)
    if not images.is_floating_point():
        raise TypeError(f"images must be uint8 (0–255) or float ([0, 1] or [-1, 1]), got dtype {images.dtype}")
    lo, hi = float(images.min()), float(images.max())
    tolerance = 1e-3
    if lo >= -tolerance and hi <= 1 + tolerance:
        return (0.0, 1.0)
    if lo >= -1 - tolerance and hi <= 1 + tolerance:
        return (-1.0, 1.0)
    raise ValueError(f"float images must lie in [0, 1] or [-1, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                     "convert them (e.g. x / 255) or pass value_range=(lo, hi)")


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2, value_range: tuple[float, float] | None = None) -> torch.Tensor:
    """Tile (N, C, H, W) images into one (H', W') array in [0, 1] (grayscale) for imshow.
    The value range comes from the dtype (uint8: 0–255) unless ``value_range`` is given."""
    images = images.detach().cpu()
    if images.dim() == 3:
        images = images.unsqueeze(1)
    lo, hi = value_range if value_range is not None else value_range_of(images)
    scaled = ((images.float() - lo) / (hi - lo)).clamp(0, 1)[:, 0]  # the first channel: grayscale
    n, h, w = scaled.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    # White paper with `padding` pixels around every tile (torchvision's make_grid layout, without
    # importing torchvision: that alone costs every notebook and every grading process ~2 s).
    grid = torch.ones(padding + rows * (h + padding), padding + cols * (w + padding))
    for i in range(n):
        top, left = padding + (i // cols) * (h + padding), padding + (i % cols) * (w + padding)
        grid[top:top + h, left:left + w] = scaled[i]
    return grid


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None,
                value_range: tuple[float, float] | None = None, figsize: tuple[float, float] | None = None,
                row_labels: Sequence[str] | None = None):
    """Show images as a grid (values scaled from their dtype's range); ``row_labels`` names each
    row of the grid at its left edge. Returns the axes."""
    grid = image_grid(images, nrow=nrow, value_range=value_range)
    if ax is None:
        h, w = grid.shape
        extra = 1.2 if row_labels else 0.0
        _, ax = plt.subplots(figsize=figsize or (min(12, 1.5 + extra + w / 40), min(12, 0.5 + h / 40)))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    if row_labels:
        size = images.shape[-2] + 2                       # one tile plus the grid's padding
        ax.set_yticks([2 + size * i + (size - 2) / 2 for i in range(len(row_labels))], list(row_labels), fontsize=9)
        ax.tick_params(axis="y", length=0)
        for side in ax.spines.values():
            side.set_visible(False)
    else:
        ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def show_image_rows(rows: Sequence[torch.Tensor], labels: Sequence[str], ncol: int | None = None):
    """Several rows of images, one label each (e.g. originals above reconstructions)."""
    ncol = ncol or min(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), 1, figsize=(1.2 * ncol, 1.4 * len(rows)), squeeze=False)
    for ax, row, label in zip(axes[:, 0], rows, labels):
        show_images(row[:ncol], nrow=ncol, ax=ax)
        ax.set_title(label, loc="left", fontsize=10)
    fig.tight_layout()
    return fig


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average (for noisy per-step losses)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_history(history: History | dict[str, History], keys: Sequence[str] = ("loss",), smooth_window: int = 10,
                 ax=None, ylabel: str | None = None, logy: bool = False):
    """Loss curves per step (smoothed) for one run or several runs side by side."""
    runs = history if isinstance(history, dict) else {"": history}
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for run_name, run in runs.items():
        for key in keys:
            values = run.series(key)
            if not values:
                continue
            label = " ".join(part for part in (run_name, key) if part)
            ax.plot(range(1, len(values) + 1), smooth(values, smooth_window), label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel or ", ".join(keys))
    if logy:
        ax.set_yscale("log")
    if len(runs) > 1 or len(keys) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    return ax


def latent_grid(decode: Callable[[torch.Tensor], torch.Tensor], n: int = 15, span: float = 0.95,
                use_inverse_cdf: bool = True) -> torch.Tensor:
    """Decode a regular n×n grid over a 2-D latent; returns (n*n, 1, H, W) images.

    With ``use_inverse_cdf`` the grid is evenly spaced in probability under N(0, 1) (the
    lecture's picture): z = Φ⁻¹(u) for u evenly spaced in [1 − span, span], so each cell covers
    equal prior mass."""
    ticks = torch.linspace(1 - span, span, n) if use_inverse_cdf else torch.linspace(-span, span, n)
    if use_inverse_cdf:
        ticks = torch.distributions.Normal(0.0, 1.0).icdf(ticks)
    z1, z2 = torch.meshgrid(ticks, ticks.flip(0), indexing="xy")
    z = torch.stack([z1.flatten(), z2.flatten()], dim=1)
    with torch.no_grad():
        return decode(z)


def show_latent_grid(images: torch.Tensor, n: int, span: float, ax=None):
    """Show the n×n images of ``latent_grid(decode, n, span, use_inverse_cdf=False)`` with each tile centred on
    the code z it decodes, on axes in z (z1 across, z2 up): the ticks then name real codes, and a scatter of
    codes on the same axes lines up with the grid tile for tile. Returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 8))
    grid = image_grid(images, nrow=n)
    step, tile = 2 * span / (n - 1), images.shape[-1] + 2        # one tile plus the grid's 2-pixel padding
    edge = span + (tile / 2 + 1) * step / tile                   # the outermost tile's centre to the grid's edge
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest", extent=(-edge, edge, -edge, edge))
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    return ax


# The lecture's taxonomy of generative models (after Goodfellow, NIPS 2016 tutorial), as data:
# (label, children). Leaves name the models this course builds.
TAXONOMY = ("Generative models", [
    ("Explicit density", [
        ("Tractable density", [("Autoregressive:\nPixelRNN, PixelCNN\n(notebook 01)", []),
                               ("Change of variables:\nnormalizing flows\n(RealNVP, Glow)", [])]),
        ("Approximate density", [("Variational:\nVAE\n(notebook 03)", []), ("Markov chain:\nBoltzmann machine", [])]),
    ]),
    ("Implicit density", [
        ("Direct", [("GAN, DCGAN\n(notebooks 04-05)", [])]),
        ("Markov chain", [("GSN", [])]),
    ]),
])


def _leaves(node) -> int:
    return max(1, sum(_leaves(c) for c in node[1]))


def draw_taxonomy(tree=TAXONOMY, ax=None, highlight: Sequence[str] = ("PixelRNN", "VAE", "GAN")):
    """Draw a tree of (label, children) top-down; leaves containing a ``highlight`` word are
    the families this course implements. Each arrow runs from the edge of a parent's box to the
    edge of its child's, so every arrowhead shows. Returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(12, 4.4))

    def depth(node) -> int:
        return 1 + max((depth(c) for c in node[1]), default=0)

    levels = depth(tree)

    def place(node, left: float, level: int):
        x, y = left + _leaves(node) / 2, levels - 1 - level
        label, children = node
        course = any(word in label for word in highlight)
        box = ax.text(x, y, label, ha="center", va="center", fontsize=9,
                      bbox=dict(boxstyle="round,pad=0.35", fc="#ffe9b3" if course else "#e8eef7",
                                ec="#c47f00" if course else "#5b7bb2"))
        cursor = left
        for child in children:
            child_box = place(child, cursor, level + 1)
            ax.annotate("", xy=(0.5, 1.0), xycoords=child_box, xytext=(0.5, 0.0), textcoords=box,
                        arrowprops=dict(arrowstyle="-|>", color="#555", lw=0.9, shrinkA=2, shrinkB=2,
                                        mutation_scale=12))
            cursor += _leaves(child)
        return box

    place(tree, 0.0, 0)
    ax.set_xlim(-0.1, _leaves(tree) + 0.1)
    ax.set_ylim(-0.7, levels - 0.4)
    ax.set_axis_off()
    ax.text(_leaves(tree) + 0.1, -0.7, "highlighted: built in this course", ha="right", va="bottom", fontsize=8,
            color="#c47f00")
    return ax
