"""Sampling from the autoregressive models of :mod:`lecture13.autoregressive`, pixel by pixel.

Generation follows the chain rule in raster order: x_1 ~ p(x_1), x_2 ~ p(x_2 | x_1), …, so a
28×28 image takes 784 steps, each needing the pixels sampled before it.

* :func:`sample_naive` runs the whole network on the whole image at every step (784 full
  forward passes), and reads off the one pixel it needs.
* :func:`sample_fast` computes, at every step, only the activations at the new position,
  layer by layer, keeping every earlier activation in a cache (Ramachandran et al. 2017,
  "Fast Generation for Convolutional Autoregressive Models"). This works because in a causal
  network an activation at position p depends only on pixels before p: once computed, it
  never changes.
* :func:`complete` keeps the top rows of given images and samples the rest.

Both samplers draw all their randomness up front, one uniform u per pixel from one generator
(:func:`draw_uniforms`), and set a binary pixel to 1 exactly when u < p(x_i = 1 | x_<i). So for
the same seed they return the same images: they differ in cost, not in the distribution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .autoregressive import AutoregressiveModel, GatedPixelCNN, PixelCNN, PixelRNN, gate


def draw_uniforms(n: int, size: tuple[int, int] = (28, 28), generator: torch.Generator | None = None) -> torch.Tensor:
    """One U(0, 1) number per pixel, (n, 1, H, W), drawn in one call (a fixed order)."""
    return torch.rand(n, 1, *size, generator=generator)


def choose(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Turn the logits of one pixel, (n, 1) Bernoulli or (n, K) categorical, and its uniforms
    (n,) into pixel values (n,): inverse-CDF sampling, x = 1 exactly when u < σ(logit)."""
    if logits.shape[1] == 1:
        return (u < torch.sigmoid(logits[:, 0])).float()
    cdf = torch.softmax(logits, dim=1).cumsum(dim=1)
    level = (cdf < u[:, None]).sum(dim=1).clamp(max=logits.shape[1] - 1)
    return level.float() / (logits.shape[1] - 1)


def _prepare(model: nn.Module, n: int | None, size: tuple[int, int], generator, uniforms, start, known_rows):
    if not isinstance(model, AutoregressiveModel):
        raise TypeError(f"sampling needs an autoregressive model from lecture13.autoregressive, got {type(model).__name__}")
    if uniforms is not None and start is None:
        if uniforms.dim() != 4 or uniforms.shape[1] != 1:
            raise ValueError(f"uniforms must have shape (N, 1, H, W), got {tuple(uniforms.shape)}")
        n, size = (uniforms.shape[0] if n is None else n), (tuple(uniforms.shape[2:]) if size is None else size)
    size = (28, 28) if size is None else tuple(size)
    if start is not None:
        if start.dim() != 4 or start.shape[1] != 1:
            raise ValueError(f"start must be images of shape (N, 1, H, W), got {tuple(start.shape)}")
        n, size = start.shape[0], tuple(start.shape[2:])
    if n is None or n < 1:
        raise ValueError(f"give the number of images n >= 1 (or start images to complete), got n={n}")
    if not 0 <= known_rows <= size[0]:
        raise ValueError(f"known_rows must be between 0 and the image height {size[0]}, got {known_rows}")
    if uniforms is None:
        uniforms = draw_uniforms(n, size, generator)
    if tuple(uniforms.shape) != (n, 1, *size):
        raise ValueError(f"uniforms must have shape {(n, 1, *size)}, got {tuple(uniforms.shape)}")
    x = torch.zeros(n, 1, *size)
    if known_rows:
        x[:, :, :known_rows] = start[:, :, :known_rows].float()
    return x, uniforms


@torch.no_grad()
def sample_naive(model: AutoregressiveModel, n: int | None = None, size: tuple[int, int] | None = None,
                 generator: torch.Generator | None = None, uniforms: torch.Tensor | None = None,
                 start: torch.Tensor | None = None, known_rows: int = 0) -> torch.Tensor:
    """x_i ~ p(x_i | x_<i) for i = 1 … D in raster order, one full forward pass per pixel.
    With ``start`` and ``known_rows`` the first rows are copied from ``start`` (completion)."""
    x, u = _prepare(model, n, size, generator, uniforms, start, known_rows)
    model.eval()
    height, width = x.shape[2:]
    for r in range(known_rows, height):
        for c in range(width):
            logits = model(x)                                   # everything, again, for one pixel
            x[:, 0, r, c] = choose(logits[:, :, r, c], u[:, 0, r, c])
    return x


@torch.no_grad()
def sample_sequential(model: AutoregressiveModel, uniforms: torch.Tensor) -> torch.Tensor:
    """The sampling loop at its plainest (binary pixels; the notebook's exercise):

        for each pixel i in raster order:  p_i = σ(logit_i(x)),  x_i = 1 if u_i < p_i else 0
    """
    x = torch.zeros_like(uniforms)
    for r in range(x.shape[2]):
        for c in range(x.shape[3]):
            p = torch.sigmoid(model(x)[:, 0, r, c])
            x[:, 0, r, c] = (uniforms[:, 0, r, c] < p).float()
    return x


# --------------------------------------------------------------------------- the cached sampler
def _at(weight: torch.Tensor, bias: torch.Tensor | None, window: torch.Tensor) -> torch.Tensor:
    """A convolution evaluated at one position: the (n, C_in, kh, kw) input window times the
    (C_out, C_in, kh, kw) kernel, summed: (n, C_out)."""
    out = window.reshape(window.shape[0], -1) @ weight.reshape(weight.shape[0], -1).T
    return out if bias is None else out + bias


def _pointwise(layers: nn.Sequential, h: torch.Tensor) -> torch.Tensor:
    """A stack of 1×1 convolutions and activations applied to one position's features (n, C)."""
    for layer in layers:
        h = F.linear(h, layer.weight.flatten(1), layer.bias) if isinstance(layer, nn.Conv2d) else layer(h)
    return h


def _pixelcnn_steps(model: PixelCNN, x: torch.Tensor):
    """Yield, for each position in raster order, a function that computes the logits there
    from the cache and then records the chosen pixel value."""
    n, _, height, width = x.shape
    p = model.input_conv.kernel_size[0] // 2
    q = model.config["hidden_kernel"] // 2
    pixels = F.pad(model._input(x), (p, p, p, p))                       # the image, as the first layer sees it
    w_in = model.input_conv.masked_weight()
    convs = [(b.conv.masked_weight(), b.conv.bias, b.out.weight.flatten(1), b.out.bias) for b in model.blocks]
    relu_h = [x.new_zeros(n, model.config["channels"], height + 2 * q, width + 2 * q) for _ in model.blocks]
    k_in, k = 2 * p + 1, 2 * q + 1
    for r in range(height):
        for c in range(width):
            h = _at(w_in, model.input_conv.bias, pixels[:, :, r:r + k_in, c:c + k_in])
            for (w, b, w_out, b_out), cache in zip(convs, relu_h):
                cache[:, :, r + q, c + q] = F.relu(h)                     # mask B sees the centre
                h = h + F.linear(F.relu(_at(w, b, cache[:, :, r:r + k, c:c + k])), w_out, b_out)
            value = yield r, c, _pointwise(model.head, h)
            pixels[:, 0, r + p, c + p] = 2 * value - 1


def _gated_steps(model: GatedPixelCNN, x: torch.Tensor):
    """The same for the Gated PixelCNN: the vertical stack is computed one row at a time, as
    soon as the row above is complete; the horizontal stack one position at a time."""
    n, _, height, width = x.shape
    layers = list(model.layers)
    pads = [layer.p for layer in layers]
    channels = [1] + [model.config["channels"]] * len(layers)
    # vertical inputs, padded p on top, left and right; the image is the first one
    v_in = [x.new_zeros(n, channels[i], height + pads[i], width + 2 * pads[i]) for i in range(len(layers))]
    v_in[0][:, :, pads[0]:, pads[0]:pads[0] + width] = model._input(x)
    for r in range(height):
        links = []
        for i, layer in enumerate(layers):
            if r == 0:                                                   # down_shift gives zeros above row 0
                v_pre = x.new_zeros(n, 2 * model.config["channels"], 1, width)
            else:
                v_pre = layer.v_conv(v_in[i][:, :, r - 1:r + pads[i], :])   # row r−1 of this layer
                if i + 1 < len(layers):
                    v_in[i + 1][:, :, r - 1 + pads[i + 1], pads[i + 1]:pads[i + 1] + width] = gate(v_pre)[:, :, 0]
            links.append(layer.link(v_pre)[:, :, 0])                     # (n, 2C, W)
        # horizontal inputs for this row: padded p on the left (p+1 for the first layer: right shift)
        h_in = [x.new_zeros(n, channels[i], 1, width + pads[i] + (1 if i == 0 else 0)) for i in range(len(layers))]
        for c in range(width):
            h = None
            for i, layer in enumerate(layers):
                if i > 0:
                    h_in[i][:, :, 0, c + pads[i]] = h
                window = h_in[i][:, :, :, c:c + pads[i] + 1]
                h_new = F.linear(gate(_at(layer.h_conv.weight, layer.h_conv.bias, window) + links[i][:, :, c]),
                                 layer.h_out.weight.flatten(1), layer.h_out.bias)
                h = h_new if i == 0 else h + h_new
            value = yield r, c, _pointwise(model.head, h)
            h_in[0][:, 0, 0, c + pads[0] + 1] = 2 * value - 1
            v_in[0][:, 0, r + pads[0], c + pads[0]] = 2 * value - 1


def _pixelrnn_steps(model: PixelRNN, x: torch.Tensor):
    """The same for the PixelRNN: each Row LSTM keeps its previous row's states (h, c)."""
    n, _, height, width = x.shape
    p = model.input_conv.kernel_size[0] // 2
    k_in, ch = 2 * p + 1, model.config["channels"]
    pixels = F.pad(model._input(x), (p, p, p, p))
    w_in = model.input_conv.masked_weight()
    h_prev = [x.new_zeros(n, ch, width) for _ in model.rnns]
    c_prev = [x.new_zeros(n, ch, width) for _ in model.rnns]
    for r in range(height):
        recurrent = [rnn.state_to_state(h) for rnn, h in zip(model.rnns, h_prev)]   # (n, 4C, W), from row r−1
        feats = [x.new_zeros(n, ch, 1, width + 1) for _ in model.rnns]               # padded 1 on the left
        h_row = [x.new_zeros(n, ch, width) for _ in model.rnns]
        c_row = [x.new_zeros(n, ch, width) for _ in model.rnns]
        for c in range(width):
            f = _at(w_in, model.input_conv.bias, pixels[:, :, r:r + k_in, c:c + k_in])
            for j, rnn in enumerate(model.rnns):
                feats[j][:, :, 0, c + 1] = f
                w = rnn.input_to_state
                i_g, f_g, o_g, g = (_at(w.weight, w.bias, feats[j][:, :, :, c:c + 2]) + recurrent[j][:, :, c]).chunk(4, dim=1)
                c_row[j][:, :, c] = torch.sigmoid(f_g) * c_prev[j][:, :, c] + torch.sigmoid(i_g) * torch.tanh(g)
                h_row[j][:, :, c] = torch.sigmoid(o_g) * torch.tanh(c_row[j][:, :, c])
                f = f + h_row[j][:, :, c]
            value = yield r, c, _pointwise(model.head, f)
            pixels[:, 0, r + p, c + p] = 2 * value - 1
        h_prev, c_prev = h_row, c_row


STEPPERS = {PixelCNN: _pixelcnn_steps, GatedPixelCNN: _gated_steps, PixelRNN: _pixelrnn_steps}


@torch.no_grad()
def sample_fast(model: AutoregressiveModel, n: int | None = None, size: tuple[int, int] | None = None,
                generator: torch.Generator | None = None, uniforms: torch.Tensor | None = None,
                start: torch.Tensor | None = None, known_rows: int = 0) -> torch.Tensor:
    """The same samples as :func:`sample_naive` (same uniforms), computing at each step only the
    activations at the new position. Known rows of ``start`` are fed in, not sampled."""
    x, u = _prepare(model, n, size, generator, uniforms, start, known_rows)
    if type(model) not in STEPPERS:
        raise TypeError(f"no cached sampler for {type(model).__name__}; use sample_naive")
    model.eval()
    steps = STEPPERS[type(model)](model, x)
    r, c, logits = next(steps)
    while True:
        if r >= known_rows:
            x[:, 0, r, c] = choose(logits, u[:, 0, r, c])
        try:
            r, c, logits = steps.send(x[:, 0, r, c])
        except StopIteration:
            return x


def complete(model: AutoregressiveModel, images: torch.Tensor, known_rows: int = 14,
             generator: torch.Generator | None = None, fast: bool = True) -> torch.Tensor:
    """Keep the top ``known_rows`` rows of ``images`` and sample the rest from p(x_rest | x_top)."""
    sampler = sample_fast if fast else sample_naive
    return sampler(model, start=images, known_rows=known_rows, generator=generator)


# --------------------------------------------------------------------------- exercise feedback
def _toy_sampler_inputs():
    torch.manual_seed(11)
    model = PixelCNN(channels=4, layers=2, kernel_size=3).eval()
    model.__name__ = "toy_model"
    return model, torch.rand(3, 1, 3, 4, generator=torch.Generator().manual_seed(12))


def samples_are_binary_and_use_the_uniforms(sample_fn) -> None:
    """Property check for a student's sampling loop: 0/1 pixels, decided by the given uniforms only."""
    model, u = _toy_sampler_inputs()
    x = sample_fn(model, u.clone())
    if tuple(x.shape) != tuple(u.shape):
        raise AssertionError(f"the samples should have the shape of the uniforms {tuple(u.shape)}, got {tuple(x.shape)}")
    if not ((x == 0) | (x == 1)).all():
        raise AssertionError("pixels must be 0 or 1 (x_i = 1 where u_i < p_i), but some are in between: "
                             "did you store the probability instead of the sample?")
    if not torch.equal(sample_fn(model, u.clone()), x):
        raise AssertionError("two calls with the same uniforms gave different images: draw no randomness yourself "
                             "(no torch.bernoulli / torch.rand), compare `uniforms` with the probability")
    if sample_fn(model, torch.ones_like(u)).any():
        raise AssertionError("with every u = 1 no pixel can be on (u < p never holds), but some are: "
                             "is the comparison the wrong way round?")
