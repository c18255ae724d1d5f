"""Autoregressive image models: the chain rule, made into networks.

Any distribution over the D pixels of an image factorizes exactly, in raster order, as

    p(x) = Π_{i=1}^{D} p(x_i | x_1, …, x_{i−1})                              (chain rule)

An autoregressive model predicts every conditional with one network whose output at pixel i
may depend only on the pixels before i. Then the likelihood is exact, and training on a whole
image is one parallel pass (teacher forcing: the true x_<i are given). Sampling is not: pixel
i needs the sampled x_<i, so it takes D steps (see :mod:`lecture13.sampling`).

This module holds three such models with one interface (``logits(x)``, ``nll(x)``):

* :class:`PixelCNN` (van den Oord et al. 2016, "Pixel Recurrent Neural Networks"): masked
  convolutions, type A for the first layer (the centre pixel hidden), type B after it;
* :class:`GatedPixelCNN` (van den Oord et al. 2016, "Conditional Image Generation with
  PixelCNN Decoders"): a vertical and a horizontal stack with tanh ⊙ sigmoid gates, which
  removes the plain PixelCNN's blind spot;
* :class:`PixelRNN`: a Row LSTM, which walks down the image one row at a time.

Images are single-channel, shape (N, 1, H, W): binary {0, 1} (Bernoulli outputs, ``levels=2``)
or, for the two PixelCNNs, 8-bit intensities k/255 in [0, 1] (the lecture's 256-way softmax per
pixel, ``levels=256``).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import register_model, save_checkpoint
from .data import loader
from .interface import GenerativeModel, likelihood_report, mean_nll
from .likelihood import bernoulli_log_likelihood, bits_per_dim
from .recipes import Recipe, register_recipe
from .training import History, UntilDeadline, deadline_after, evaluate_mean, gradient_step, train


# --------------------------------------------------------------------------- masks
def causal_mask(kernel_size: int, mask_type: str) -> torch.Tensor:
    """The (k, k) 0/1 mask of a causal convolution centred on the pixel being predicted.

    Rows above the centre are all visible, and in the centre row the pixels to the left.
    Type ``"A"`` also hides the centre (first layer: a pixel must not see itself); type ``"B"``
    shows it (later layers: the centre feature already only knows the pixels before it).
    """
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd positive int (the mask is centred), got {kernel_size!r}")
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' (first layer, centre hidden) or 'B' (centre visible), got {mask_type!r}")
    k, centre = kernel_size, kernel_size // 2
    mask = torch.zeros(k, k)
    mask[:centre, :] = 1                      # every row above
    mask[centre, :centre] = 1                 # the pixels to the left in the centre row
    if mask_type == "B":
        mask[centre, centre] = 1              # the centre itself
    return mask


class MaskedConv2d(nn.Conv2d):
    """A k×k convolution whose weights are multiplied by :func:`causal_mask` on every call,
    so output (r, c) sees only inputs before (r, c) in raster order (and (r, c) itself for B)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.mask_type = mask_type
        self.register_buffer("mask", causal_mask(kernel_size, mask_type)[None, None], persistent=False)

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.masked_weight(), self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mask_type={self.mask_type}"


def masked_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, mask_type: str) -> torch.Tensor:
    """What :class:`MaskedConv2d` computes, as a function: the k×k convolution of ``x`` (N, C_in, H, W)
    with ``weight`` (C_out, C_in, k, k) times :func:`causal_mask` (k, ``mask_type``), zero-padded so the
    output keeps H×W, plus ``bias`` (C_out,) or None. Output (r, c) sees only inputs before (r, c)
    (and (r, c) itself for type B). F.conv2d is a cross-correlation: the kernel is not flipped."""
    if weight.dim() != 4 or weight.shape[-1] != weight.shape[-2]:
        raise ValueError(f"weight must be (C_out, C_in, k, k), got {tuple(weight.shape)}")
    k = weight.shape[-1]
    mask = causal_mask(k, mask_type).to(weight)
    return F.conv2d(x, weight * mask, bias, padding=k // 2)


def show_mask(mask: torch.Tensor, ax=None, title: str | None = None):
    """Draw a (k, k) causal mask cell by cell: green = weight kept, white = zeroed, grey lines =
    the kernel's cells, red frame = the centre (the pixel being predicted)."""
    import matplotlib.pyplot as plt

    mask = mask.detach().reshape(mask.shape[-2:]).float()
    if ax is None:
        _, ax = plt.subplots(figsize=(2.6, 2.6))
    k = mask.shape[-1]
    ax.imshow(mask, cmap="Greens", vmin=0, vmax=1.3)
    ax.set_xticks([i - 0.5 for i in range(k + 1)], minor=True)
    ax.set_yticks([i - 0.5 for i in range(k + 1)], minor=True)
    ax.grid(which="minor", color="#888", lw=0.8)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ax.add_patch(plt.Rectangle((k // 2 - 0.5, k // 2 - 0.5), 1, 1, fill=False, ec="red", lw=2.5))
    ax.set_title(title if title is not None else f"{int(mask.sum())} of {mask.numel()} weights kept", fontsize=10)
    return ax


# --------------------------------------------------------------------------- the shared interface
def categorical_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """−log p(x) in nats per image under one softmax over L = ``logits.shape[1]`` levels per pixel:
    ``logits`` (N, L, H, W), ``x`` (N, 1, H, W) intensities k/(L−1). The chain rule's sum over the
    pixels of −log softmax(l_i)[k_i], as a cross-entropy (stable for any logits)."""
    if logits.dim() != 4 or x.dim() != 4 or x.shape[1] != 1 or logits.shape[0] != x.shape[0] \
            or logits.shape[2:] != x.shape[2:]:
        raise ValueError(f"logits (N, L, H, W) and images (N, 1, H, W) must match, got {tuple(logits.shape)} "
                         f"and {tuple(x.shape)}")
    target = (x[:, 0] * (logits.shape[1] - 1)).round().long()
    return F.cross_entropy(logits, target, reduction="none").flatten(1).sum(dim=1)


class AutoregressiveModel(GenerativeModel):
    """What the three models share: from ``logits(x)`` to an exact NLL per image.

    ``levels == 2``: one Bernoulli logit per pixel, log p(x) = Σ_i log Bern(x_i; σ(l_i)).
    ``levels == 256``: 256 logits per pixel, log p(x) = Σ_i log softmax(l_i)[255·x_i].
    """

    levels: int = 2
    family = "autoregressive (explicit, tractable)"
    likelihood_kind = "exact"
    # each of sampling's 784 steps is a few tiny matrix products, which more threads only slow down
    sampling_threads = 1

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n images pixel by pixel with the cached sampler (:mod:`lecture13.sampling`)."""
        from .sampling import sample_fast

        self.eval()
        return sample_fast(self, n, generator=generator)

    def likelihood(self, x: torch.Tensor, iw_k: int = 100, seed: int = 0) -> dict:
        return likelihood_report("exact", mean_nll(self, x))

    def check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 1:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{type(self).__name__} expects single-channel images of shape (N, 1, H, W), got {shape}; "
                             "add the channel axis with x.unsqueeze(1) or the batch axis with x[None]")
        if not x.is_floating_point():
            raise ValueError(f"{type(self).__name__} expects float images (binary 0/1 or intensities in [0, 1]), "
                             f"got dtype {x.dtype}; use lecture13.data.binarize or x.float() / 255")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) images → (N, 1, H, W) Bernoulli logits, or (N, 256, H, W) for 256 levels."""
        self.check_input(x)
        return self(x)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) in nats, one value per image: the chain rule's sum of log-conditionals."""
        logits = self.logits(x)
        if self.levels == 2:
            return bernoulli_log_likelihood(logits, x)
        return -categorical_nll(logits, x)

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """−log p(x) in nats per image."""
        return -self.log_prob(x)

    def bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """−log₂ p(x) / D per image."""
        return bits_per_dim(self.nll(x), x[0].numel())

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x - 1  # centred input; pixels not yet known are hidden by the masks anyway


def _head(channels: int, out_channels: int) -> nn.Sequential:
    """ReLU → 1×1 → ReLU → 1×1: per-pixel logits from features (does not mix positions)."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, out_channels, 1))


# --------------------------------------------------------------------------- PixelCNN
class ResidualMaskedBlock(nn.Module):
    """h ↦ h + W₁ₓ₁ ReLU(MaskedConv_B(ReLU(h))): one type-B layer with a skip connection."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv = MaskedConv2d(channels, channels, kernel_size, "B")
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.out(F.relu(self.conv(F.relu(h))))


@register_model
class PixelCNN(AutoregressiveModel):
    """A type-A k×k masked convolution, ``layers − 1`` residual type-B blocks, a 1×1 head.

    Stacking masked convolutions grows the receptive field only up and to the left: the
    pixels above and to the right of the prediction (the *blind spot*) are never seen.
    """

    def __init__(self, channels: int = 32, layers: int = 5, kernel_size: int = 7, hidden_kernel: int = 3, levels: int = 2):
        super().__init__()
        if layers < 1 or levels not in (2, 256):
            raise ValueError(f"PixelCNN needs layers >= 1 and levels 2 (binary) or 256 (8-bit), got {layers}, {levels}")
        self.config = {"channels": channels, "layers": layers, "kernel_size": kernel_size,
                       "hidden_kernel": hidden_kernel, "levels": levels}
        self.levels = levels
        self.input_conv = MaskedConv2d(1, channels, kernel_size, "A")
        self.blocks = nn.ModuleList(ResidualMaskedBlock(channels, hidden_kernel) for _ in range(layers - 1))
        self.head = _head(channels, 1 if levels == 2 else levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input_conv(self._input(x))
        for block in self.blocks:
            h = block(h)
        return self.head(h)


# --------------------------------------------------------------------------- Gated PixelCNN
def down_shift(x: torch.Tensor) -> torch.Tensor:
    """Move a feature map one row down (zeros on top): row r now holds what row r−1 had."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


def right_shift(x: torch.Tensor) -> torch.Tensor:
    """Move a feature map one column right (zeros on the left)."""
    return F.pad(x, (1, 0))[:, :, :, :-1]


def gate(a: torch.Tensor) -> torch.Tensor:
    """y = tanh(a₁) ⊙ σ(a₂), with [a₁, a₂] the two halves of the channels."""
    a1, a2 = a.chunk(2, dim=1)
    return torch.tanh(a1) * torch.sigmoid(a2)


class GatedLayer(nn.Module):
    """One layer of both stacks (van den Oord et al. 2016, eq. 2: y = tanh(W_f ∗ x) ⊙ σ(W_g ∗ x)).

    * vertical stack: a (p+1)×k convolution over rows r−p … r (all columns c−p … c+p); it sees
      the current row, so it reaches the horizontal stack only after :func:`down_shift`;
    * horizontal stack: a 1×(p+1) convolution over columns c−p … c of the current row
      (c−p−1 … c−1 in the first layer, which must not see its own pixel: mask A), plus a 1×1
      link from the vertical stack, gated, a 1×1, and a residual connection (not in layer 1).
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int, first: bool):
        super().__init__()
        self.p, self.first = kernel_size // 2, first
        self.v_conv = nn.Conv2d(in_channels, 2 * channels, (self.p + 1, kernel_size))
        self.h_conv = nn.Conv2d(in_channels, 2 * channels, (1, self.p + 1))
        self.link = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_out = nn.Conv2d(channels, channels, 1)

    def vertical(self, v: torch.Tensor) -> torch.Tensor:
        """Pre-activation of the vertical stack: output row r sees input rows r−p … r."""
        p = self.p
        return self.v_conv(F.pad(v, (p, p, p, 0)))

    def horizontal_input(self, h: torch.Tensor) -> torch.Tensor:
        return right_shift(h) if self.first else h

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v_pre = self.vertical(v)
        h_pre = self.h_conv(F.pad(self.horizontal_input(h), (self.p, 0))) + self.link(down_shift(v_pre))
        h_new = self.h_out(gate(h_pre))
        return gate(v_pre), h_new if self.first else h + h_new


@register_model
class GatedPixelCNN(AutoregressiveModel):
    """Vertical + horizontal stacks of :class:`GatedLayer`, then a 1×1 head on the horizontal
    stack. The vertical stack sees every row above (a rectangle, no blind spot), the horizontal
    stack the pixels to the left."""

    def __init__(self, channels: int = 32, layers: int = 6, kernel_size: int = 3, first_kernel: int = 7, levels: int = 2):
        super().__init__()
        if layers < 1 or levels not in (2, 256):
            raise ValueError(f"GatedPixelCNN needs layers >= 1 and levels 2 (binary) or 256 (8-bit), got {layers}, {levels}")
        for k in (kernel_size, first_kernel):
            if k < 3 or k % 2 == 0:
                raise ValueError(f"kernel sizes must be odd and >= 3, got {k}")
        self.config = {"channels": channels, "layers": layers, "kernel_size": kernel_size, "first_kernel": first_kernel,
                       "levels": levels}
        self.levels = levels
        self.layers = nn.ModuleList(
            GatedLayer(1 if i == 0 else channels, channels, first_kernel if i == 0 else kernel_size, first=i == 0)
            for i in range(layers))
        self.head = _head(channels, 1 if levels == 2 else levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = h = self._input(x)
        for layer in self.layers:
            v, h = layer(v, h)
        return self.head(h)


# --------------------------------------------------------------------------- PixelRNN (Row LSTM)
class RowLSTM(nn.Module):
    """An LSTM that walks down the image one row at a time (van den Oord et al. 2016, §3.1).

    For row r, all columns at once:  [i, f, o, g] = K_is ⊛ x_r + K_ss ⊛ h_{r−1}
        c_r = σ(f) ⊙ c_{r−1} + σ(i) ⊙ tanh(g),   h_r = σ(o) ⊙ tanh(c_r)
    K_is is a 1×2 convolution over columns c−1, c of the current row (its inputs already only
    know earlier pixels), K_ss a width-3 convolution over the previous row's hidden state.
    The H rows are a sequential loop: this is why the PixelRNN is slower than a PixelCNN.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.input_to_state = nn.Conv2d(channels, 4 * channels, (1, 2))
        self.state_to_state = nn.Conv1d(channels, 4 * channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, ch, height, width = x.shape
        gates_in = self.input_to_state(F.pad(x, (1, 0)))            # all rows at once: (N, 4C, H, W)
        h = c = x.new_zeros(n, ch, width)
        rows = []
        for r in range(height):                                     # the sequential part
            i, f, o, g = (gates_in[:, :, r] + self.state_to_state(h)).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            rows.append(h)
        return torch.stack(rows, dim=2)


@register_model
class PixelRNN(AutoregressiveModel):
    """A type-A 7×7 masked convolution, ``layers`` residual Row LSTMs, a 1×1 head."""

    def __init__(self, channels: int = 32, layers: int = 2, kernel_size: int = 7, levels: int = 2):
        super().__init__()
        if layers < 1 or levels != 2:
            raise ValueError(f"PixelRNN needs layers >= 1 and levels=2 (binary images), got {layers}, {levels}")
        self.config = {"channels": channels, "layers": layers, "kernel_size": kernel_size, "levels": levels}
        self.levels = levels
        self.input_conv = MaskedConv2d(1, channels, kernel_size, "A")
        self.rnns = nn.ModuleList(RowLSTM(channels) for _ in range(layers))
        self.head = _head(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input_conv(self._input(x))
        for rnn in self.rnns:
            h = h + rnn(h)
        return self.head(h)


# --------------------------------------------------------------------------- looking inside
def receptive_field(model: nn.Module, row: int, col: int, size: tuple[int, int] = (28, 28), seed: int = 0) -> torch.Tensor:
    """|∂ output(row, col) / ∂ input| as an (H, W) map: which pixels the prediction at (row, col)
    depends on, measured by backpropagation through the real network (at a random input)."""
    height, width = size
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"(row, col) = ({row}, {col}) lies outside the {height}×{width} image")
    x = torch.rand(1, 1, height, width, generator=torch.Generator().manual_seed(seed)).requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        model(x)[0, :, row, col].sum().backward()
    finally:
        model.train(was_training)
    return x.grad[0, 0].abs()


def future_mask(size: tuple[int, int], row: int, col: int) -> torch.Tensor:
    """True at (row, col) and at every pixel after it in raster order: what it must not see."""
    height, width = size
    index = torch.arange(height * width).view(height, width)
    return index >= row * width + col


def blind_spot(field: torch.Tensor, row: int) -> torch.Tensor:
    """Pixels above ``row`` that the prediction ignores although it sees a pixel higher up in the
    same column: the holes inside a receptive-field map (a boolean map)."""
    seen = field > 0
    seen_higher = seen.int().cumsum(dim=0) - seen.int() > 0   # some pixel above it in its column is seen
    holes = ~seen & seen_higher
    holes[row:] = False
    return holes


# --------------------------------------------------------------------------- one conditional at a time
class Conditionals(nn.Module):
    """A model seen as a sampler sees it: one conditional at a time.

    ``pixel_logits(x, row, col)`` returns the logits of pixel (row, col) given the pixels of ``x``
    before it in raster order, (N, 1) for a binary model (N, 256 for 8 bits). It keeps every
    layer's activations (the cached steps of :mod:`lecture13.sampling`), so asking for the pixels
    in raster order costs one position each, not a full forward pass; asking for an earlier pixel,
    or changing a pixel it has already read, starts the cache again (the answers stay exact).
    ``model(x)`` itself is refused: a full pass per pixel is what the cache avoids.
    """

    def __init__(self, model: AutoregressiveModel):
        super().__init__()
        from .sampling import STEPPERS

        if type(model) not in STEPPERS:
            raise TypeError(f"no cached steps for {type(model).__name__}")
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise TypeError("this model answers one conditional at a time: ask model.pixel_logits(x, row, col) "
                        "(a full forward pass for every pixel is what it saves)")

    @torch.no_grad()
    def pixel_logits(self, x: torch.Tensor, row: int, col: int) -> torch.Tensor:
        from .sampling import STEPPERS

        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"x must be images of shape (N, 1, H, W), got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        n, _, height, width = x.shape
        row, col = int(row), int(col)
        if not (0 <= row < height and 0 <= col < width):
            raise IndexError(f"pixel ({row}, {col}) lies outside the {height}×{width} images")
        target = row * width + col
        flat = x.detach().reshape(n, -1).float()
        cache = self.__dict__.get("_cache")
        if (cache is None or cache["shape"] != tuple(x.shape) or cache["position"] > target
                or not torch.equal(cache["fed"][:, :cache["position"]], flat[:, :cache["position"]])):
            self.model.eval()
            steps = STEPPERS[type(self.model)](self.model, torch.zeros(n, 1, height, width))
            cache = {"shape": tuple(x.shape), "position": 0, "steps": steps, "logits": next(steps)[2],
                     "fed": torch.zeros(n, height * width)}
            self.__dict__["_cache"] = cache
        while cache["position"] < target:                 # feed the pixels up to (row, col), one step each
            p = cache["position"]
            cache["fed"][:, p] = flat[:, p]
            cache["logits"] = cache["steps"].send(flat[:, p].clone())[2]
            cache["position"] = p + 1
        return cache["logits"].clone()


def complete_given_top(model: Conditionals, top: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Binary images whose top R rows are ``top`` (N, 1, R, W) and whose other pixels are drawn in
    raster order from p(x_i | x_<i), observed rows included in x_<i: x_i = 1 where u_i < p_i, with
    ``uniforms`` (N, 1, H, W) (the same images as :func:`lecture13.sampling.complete` from those uniforms)."""
    known = top.shape[2]
    x = torch.zeros_like(uniforms)
    x[:, :, :known] = top
    for r in range(known, x.shape[2]):
        for c in range(x.shape[3]):
            p = torch.sigmoid(model.pixel_logits(x, r, c)[:, 0])
            x[:, 0, r, c] = (uniforms[:, 0, r, c] < p).float()
    return x


# --------------------------------------------------------------------------- exact probabilities of tiny images
def all_binary_images(height: int, width: int) -> torch.Tensor:
    """Every binary image of that size, (2^(H·W), 1, H, W), in binary-counting order."""
    d = height * width
    if d > 20:
        raise ValueError(f"{height}×{width} has 2^{d} images: too many to enumerate (keep H·W <= 20)")
    codes = torch.arange(2 ** d)
    bits = (codes[:, None] >> torch.arange(d - 1, -1, -1)) & 1
    return bits.float().view(-1, 1, height, width)


# --------------------------------------------------------------------------- recipes
def nll_loss(model: AutoregressiveModel, x: torch.Tensor) -> torch.Tensor:
    """The training objective: mean NLL in nats per image (teacher forcing: one parallel pass)."""
    return model.nll(x).mean()


def image_transform(model: AutoregressiveModel) -> str:
    """The data a model is trained and tested on: binarized images for Bernoulli outputs,
    8-bit intensities k/255 for a 256-way softmax."""
    return "binary" if model.levels == 2 else "unit"


def _fit(model: AutoregressiveModel, options: dict) -> History:
    """Adam with the learning rate halved every ``lr_half_life`` epochs (a per-step schedule,
    so the run is reproducible from its step count), optionally a wall-clock budget and
    snapshots of the model every ``snapshot_every`` steps."""
    data = loader("train", image_transform(model), batch_size=options["batch_size"], subset=options["subset"], seed=options["seed"])
    optimizer = torch.optim.Adam(model.parameters(), lr=options["lr"])
    half_life = options.get("lr_half_life", 2.0) * len(data)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 ** (step / half_life))
    update = gradient_step(model, nll_loss, optimizer, grad_clip=options.get("grad_clip"),
                           precision=options.get("precision", "fp32"))
    snapshot, every, steps = options.get("snapshot"), options.get("snapshot_every", 200), [0]

    def step(batch: torch.Tensor) -> dict[str, float]:
        logged = update(batch)
        schedule.step()
        steps[0] += 1
        if snapshot and steps[0] % every == 0:
            save_checkpoint(model, Path(snapshot), steps=steps[0], options=options)
        return {**logged, "lr": schedule.get_last_lr()[0]}

    budgeted = UntilDeadline(data, deadline_after(options.get("minutes")))
    return train(model, budgeted, step_fn=step, epochs=options["epochs"],
                 max_steps=options.get("max_steps"), device=options.get("device", "cpu"), seed=options["seed"],
                 progress=options.get("progress", True), desc=type(model).__name__)


def learning_curve(build, train_images: torch.Tensor, test_images: torch.Tensor, steps: int, eval_every: int,
                   batch_size: int = 32, lr: float = 3e-3, seed: int = 0) -> dict[str, list[float]]:
    """Train a fresh ``build()`` with the course's loop and measure its test NLL as it learns.

    The batches come from one permutation of ``train_images`` fixed by ``seed`` (so two models
    trained with the same seed see the same images in the same order). Every ``eval_every``
    steps, training pauses and the mean NLL of ``test_images`` is measured; the clock counts
    training only. Returns ``{"steps", "seconds", "nll"}``, one entry per measurement, starting
    at step 0."""
    if steps < eval_every or steps % eval_every:
        raise ValueError(f"steps ({steps}) must be a positive multiple of eval_every ({eval_every})")
    torch.manual_seed(seed)
    model = build()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(seed))
    positions = torch.arange(steps * batch_size) % len(order)       # wraps around after an epoch
    batches = list(train_images[order[positions]].split(batch_size))

    def test_nll() -> float:
        with torch.no_grad():
            return float(model.eval().nll(test_images).mean())

    curve = {"steps": [0], "seconds": [0.0], "nll": [test_nll()]}
    for start in range(0, steps, eval_every):
        run = train(model, batches[start:start + eval_every], nll_loss, optimizer=optimizer, device="cpu",
                    seed=None, progress=False)
        curve["steps"].append(start + eval_every)
        curve["seconds"].append(curve["seconds"][-1] + run.seconds)
        curve["nll"].append(test_nll())
    return curve


@torch.no_grad()
def evaluate_nll(model: AutoregressiveModel, subset: str = "embedded", batch_size: int = 500) -> dict[str, float]:
    """Mean test NLL in nats per image and in bits/dim, on the full or the embedded test set
    (binarized, or 8-bit for a 256-level model)."""
    test = loader("test", image_transform(model), batch_size=batch_size, subset=subset, shuffle=False)
    nll = evaluate_mean(model, test, lambda m, x: m.nll(x), device="cpu")
    return {"nll_nats": nll, "bits_per_dim": bits_per_dim(nll)}


def _sample(model: AutoregressiveModel, n: int, seed: int) -> torch.Tensor:
    from .sampling import sample_fast

    return sample_fast(model, n, generator=torch.Generator().manual_seed(seed))


_COMMON = {"epochs": 20, "batch_size": 64, "lr": 1e-3, "lr_half_life": 2.0}
for _name, _cls, _about, _defaults in (
    ("pixelcnn", PixelCNN, "PixelCNN: masked 7x7 type A + residual 3x3 type B blocks (Bernoulli)", {}),
    ("gated_pixelcnn", GatedPixelCNN, "Gated PixelCNN: vertical + horizontal gated stacks, no blind spot (Bernoulli)", {}),
    ("pixelrnn", PixelRNN, "PixelRNN: masked 7x7 type A + residual Row LSTMs (Bernoulli)", {}),
    ("gated_pixelcnn256", lambda **kw: GatedPixelCNN(**{"levels": 256, **kw}),
     "Gated PixelCNN on 8-bit grayscale: a 256-way softmax per pixel", {}),
):
    register_recipe(Recipe(name=_name, description=_about, build=_cls, fit=_fit, evaluate=evaluate_nll,
                           sample=_sample, defaults={**_COMMON, **_defaults}))


# --------------------------------------------------------------------------- exercise feedback
def mask_hides_the_future(causal_mask_fn) -> None:
    """Property check for a student's ``causal_mask``: nothing below or right of the centre."""
    for k in (3, 5):
        for kind in ("A", "B"):
            mask = causal_mask_fn(k, kind)
            if tuple(mask.shape) != (k, k):
                raise AssertionError(f"causal_mask({k}, {kind!r}) should have shape ({k}, {k}), got {tuple(mask.shape)}")
            future = mask.clone().float()
            future[: k // 2] = 0
            future[k // 2, : k // 2 + 1] = 0
            if future.any():
                raise AssertionError(f"causal_mask({k}, {kind!r}) lets the centre see a future pixel (a 1 below the centre "
                                     f"row or right of the centre): {mask.int().tolist()}")


def mask_centre_rule(causal_mask_fn) -> None:
    """Property check: type A hides the centre, type B shows it."""
    a, b = causal_mask_fn(3, "A"), causal_mask_fn(3, "B")
    if a[1, 1] != 0:
        raise AssertionError("type A must hide the centre (the first layer must not see the pixel it predicts); "
                             "are A and B swapped?")
    if b[1, 1] != 1:
        raise AssertionError("type B must show the centre (later layers' centre features know only earlier pixels)")


def bits_per_dim_converts_units(bits_per_dim_fn) -> None:
    """Property check for a student's ``bits_per_dim``: 784·ln 2 nats over 784 pixels is 1 bit/dim."""
    got = float(bits_per_dim_fn(784 * math.log(2), 784))
    if abs(got - 1) < 1e-6:
        return
    hints = {math.log(2): "you divided by the number of dimensions but not by ln 2 (nats → bits)",
             784 * math.log(2): "you did not divide by the number of dimensions",
             1 / math.log(2) ** 2 * math.log(2): "nats → bits divides by ln 2 once, not log base 2 of something",
             math.log(2) ** 2: "you multiplied by ln 2 instead of dividing"}
    hint = next((text for value, text in hints.items() if abs(got - value) < 1e-6), "expected exactly 1")
    raise AssertionError(f"bits_per_dim(784·ln 2 nats, 784) = {got:.6g}, but it is 1 bit per dimension: {hint}")
