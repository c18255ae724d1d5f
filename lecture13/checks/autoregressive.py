"""Checks for notebook 01's exercises on the PixelCNN's pieces (autoregressive models).

* :func:`masked_conv_checks`: ``masked_conv2d(x, weight, bias, mask_type)`` put into small PixelCNNs
  in place of the package's layer (:func:`with_masked_conv`): the leak test (the logit of pixel i
  does not move when any input pixel j ≥ i changes, the type-A layer hiding the centre),
  that each logit still sees the pixels just before it, that the 3×3 model's 512 probabilities
  sum to one, and the layer's own values;
* :func:`complete_checks`: ``complete(model, top, uniforms)`` with a :class:`~lecture13.autoregressive.Conditionals`
  model: the observed rows kept, the completions of a 3×3 model distributed as p(x_bottom | x_top)
  (exact, from the chain rule), and the same images as the sequential sampler from the same uniforms;
* :func:`categorical_nll_checks`: ``categorical_nll(logits, x)`` for the 256-way softmax: one NLL per
  image summed over its pixels, the 256 intensities of a pixel forming a distribution, finite for
  confident logits.

(The checks of notebook 01's first exercises, ``causal_mask``, ``bits_per_dim`` and ``sample_pixels``,
are in :mod:`lecture13.autoregressive` and :mod:`lecture13.sampling`.)

Every check is a *property*: it runs the student's function on a named input and raises
``AssertionError`` with the input, what was expected, what came back and, when the answer matches
a usual mistake, a hint about that mistake. They work through the grader's channel: only tensors,
numbers, strings and modules of torch/lecture13 cross (uniforms are passed as tensors, not generators).
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .. import autoregressive as ar
from .common import close, matching_hint

Property = Callable[[Callable], None]


# --------------------------------------------------------------------------- helpers
def _fmt(t, digits: int = 4, limit: int = 8) -> str:
    if not isinstance(t, torch.Tensor):
        return repr(t)
    flat = t.detach().flatten().double().tolist()
    text = ", ".join(f"{v:.{digits}g}" for v in flat[:limit]) + (", …" if len(flat) > limit else "")
    return f"[{text}]" + (f" (shape {tuple(t.shape)})" if len(flat) > limit or t.dim() != 1 else "")


_close = close
_hint = matching_hint


def _seeded(seed: int, build: Callable, scale: float = 1.0):
    """``build()`` with its parameters drawn from ``seed`` (the global random state is left alone),
    then multiplied by ``scale`` (sharper conditionals, so that mistakes show)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model.eval()


def _uniforms(seed: int, *shape: int, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --------------------------------------------------------------------------- the masked convolution
def with_masked_conv(model: torch.nn.Module, conv_fn: Callable) -> torch.nn.Module:
    """A copy of ``model`` in which every :class:`~lecture13.autoregressive.MaskedConv2d` computes
    ``conv_fn(x, layer.weight, layer.bias, layer.mask_type)`` instead of its own forward (the cached
    sampler, which reads the layers' masked weights directly, does not use it)."""
    model = copy.deepcopy(model)
    for layer in model.modules():
        if isinstance(layer, ar.MaskedConv2d):
            layer.forward = _forward_with(layer, conv_fn)
    return model


def _forward_with(layer: ar.MaskedConv2d, conv_fn: Callable) -> Callable:
    def forward(x: torch.Tensor) -> torch.Tensor:
        return conv_fn(x, layer.weight, layer.bias, layer.mask_type)

    return forward


def _kernel_used(fn: Callable, k: int, mask_type: str) -> torch.Tensor | None:
    """Which of the k×k input positions around the centre the answer's layer uses (a kernel of
    ones, one input image per position); None if that cannot be read off."""
    try:
        with torch.no_grad():
            eye = torch.eye(k * k, dtype=torch.float64).view(k * k, 1, k, k)
            out = fn(eye, torch.ones(1, 1, k, k, dtype=torch.float64), None, mask_type)
            return (out[:, 0, k // 2, k // 2].view(k, k).abs() > 1e-9).double()
    except Exception:
        return None


def _mask_hint(fn: Callable, k: int, mask_type: str) -> str:
    """What the answer's layer of type ``mask_type`` does wrong, read off the positions it uses."""
    used = _kernel_used(fn, k, mask_type)
    if used is None:
        return ""
    expected = ar.causal_mask(k, mask_type).double()
    other = ar.causal_mask(k, "B" if mask_type == "A" else "A").double()
    if torch.equal(used, expected):
        return ""
    shown = f"a type-{mask_type} {k}×{k} layer of yours uses the input positions {used.int().tolist()} around the centre"
    if torch.equal(used, torch.ones(k, k, dtype=torch.float64)):
        why = "every weight of the kernel is used: the causal mask is not applied to the weight"
    elif torch.equal(used, expected.flip(0, 1)):
        why = ("that is the causal mask turned upside down: F.conv2d does not flip the kernel (it computes a "
               "cross-correlation), so the weight above and left of the centre reads the pixels above and left")
    elif torch.equal(used, expected.T):
        why = "rows and columns are swapped (a weight is indexed [out, in, row, column])"
    elif torch.equal(used, other):
        why = ("type A must hide the centre (the first layer must not see the pixel it predicts) and type B show it: "
               "is mask_type ignored, or are A and B swapped?")
    elif not used.any():
        why = "no input pixel is used at all"
    else:
        why = f"a causal type-{mask_type} layer uses {expected.int().tolist()}"
    return f"\n     hint: {shown}: {why}"


def _any_mask_hint(fn: Callable, kernels: Sequence[tuple[int, str]]) -> str:
    for k, kind in kernels:
        hint = _mask_hint(fn, k, kind)
        if hint:
            return hint
    return ""


def _probe_pixelcnn(seed: int, kernel: int, hidden: int, layers: int, channels: int = 8, scale: float = 1.0):
    return _seeded(seed, lambda: ar.PixelCNN(channels=channels, layers=layers, kernel_size=kernel,
                                             hidden_kernel=hidden), scale).double()


def _pixelcnn_text(kernel: int, hidden: int, layers: int) -> str:
    blocks = layers - 1
    return (f"a PixelCNN built with your masked_conv2d (a type-A {kernel}×{kernel} layer, then {blocks} residual "
            f"type-B {hidden}×{hidden} block{'s' if blocks != 1 else ''})")


def masked_conv_keeps_the_size(label: str, x: torch.Tensor, weight: torch.Tensor, bias, mask_type: str) -> Property:
    def keeps_the_image_size(fn):
        k = weight.shape[-1]
        got = fn(x.clone(), weight.clone(), None if bias is None else bias.clone(), mask_type)
        call = f"masked_conv2d(x of shape {tuple(x.shape)}, weight of shape {tuple(weight.shape)}, mask_type={mask_type!r}) [{label}]"
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"{call} should return a tensor, got {type(got).__name__}")
        want = (x.shape[0], weight.shape[0], *x.shape[2:])
        if tuple(got.shape) != want:
            raise AssertionError(f"{call}: the output has shape {tuple(got.shape)}, expected {want}: every pixel gets "
                                 f"an output, so the height and width stay those of x (a {k}×{k} kernel centred on "
                                 f"each pixel reaches {k // 2} pixel{'s' if k // 2 != 1 else ''} beyond the border)")

    keeps_the_image_size.__name__ = f"masked_conv2d keeps the image size [{label}]"
    return keeps_the_image_size


def pixelcnn_is_causal(label: str, height: int, width: int, kernel: int = 5, hidden: int = 3, layers: int = 3,
                       seed: int = 0) -> Property:
    """The leak test: in a PixelCNN made of the answer's layers, the logit of pixel i must not depend on
    input pixel j ≥ i (j = i included: type A), and must depend on the pixels just before i (left, above).

    Measured by changing one input pixel at a time (every pixel in its own image of one batch) and
    reading which logits move: with masked weights the others stay exactly the same. (The gradient
    ∂ logit(i) / ∂ x(j), as in the notebook's receptive fields, says the same; changing the inputs
    needs forward passes only, which is what the grader's channel carries for this layer.)"""

    def leak_test(fn):
        model = with_masked_conv(_probe_pixelcnn(seed, kernel, hidden, layers), fn)
        d = height * width
        base = _uniforms(seed + 1, 1, 1, height, width, dtype=torch.float64)
        x = base.repeat(d + 1, 1, 1, 1)
        rows, cols = torch.arange(d) // width, torch.arange(d) % width
        x[torch.arange(1, d + 1), 0, rows, cols] += 1.0          # image 1 + j: input pixel j changed by 1
        where = f"{_pixelcnn_text(kernel, hidden, layers)}, on {height}×{width} images [{label}]"
        hint = lambda: _any_mask_hint(fn, [(kernel, "A"), (hidden, "B")])  # noqa: E731
        with torch.no_grad():
            out = model(x)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (d + 1, 1, height, width):
            raise AssertionError(f"in {where}: the logits have shape "
                                 f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}, "
                                 f"expected {(d + 1, 1, height, width)}: each layer must keep the height and width")
        moved = (out[1:, 0] - out[:1, 0]).flatten(1).abs()         # moved[j, i]: logit i when input j changes
        sees = moved > 1e-10
        for i in range(d):
            r, c = divmod(i, width)
            future = sees[i:, i]
            if future.any():
                j = i + int(future.nonzero()[0])
                rr, cc = divmod(j, width)
                what = "its own value" if j == i else "from the future"
                raise AssertionError(
                    f"in {where}: output pixel ({r}, {c}) sees input pixel ({rr}, {cc}), {what}: changing x({rr}, {cc}) "
                    f"by 1 moves logit({r}, {c}) by {float(moved[j, i]):.3g}, but it must not move for any input pixel "
                    f"at or after ({r}, {c}) in raster order (then p(x) is not the chain rule's product)" + hint())
        for i in range(d):
            r, c = divmod(i, width)
            for rr, cc, which in ((r, c - 1, "just left of it"), (r - 1, c, "just above it")):
                if rr >= 0 and cc >= 0 and not sees[rr * width + cc, i]:
                    raise AssertionError(
                        f"in {where}: output pixel ({r}, {c}) does not see input pixel ({rr}, {cc}), {which}: changing "
                        f"it leaves logit({r}, {c}) unchanged, but a causal layer hides only the pixels at and after "
                        f"the centre" + hint())

    leak_test.__name__ = f"leak test of a PixelCNN made of masked_conv2d [{label}]"
    return leak_test


def probabilities_sum_to_one(label: str, height: int, width: int, seed: int = 0) -> Property:
    """Every binary image of a tiny size, under a PixelCNN made of the answer's layers: Σ p(x) = 1."""

    def sums_to_one(fn):
        model = with_masked_conv(_probe_pixelcnn(seed, 3, 3, 2, scale=2.0), fn)
        images = ar.all_binary_images(height, width).double()
        with torch.no_grad():
            total = float(model.log_prob(images).exp().sum())
        if not abs(total - 1) < 1e-6:
            raise AssertionError(
                f"in {_pixelcnn_text(3, 3, 2)}, the probabilities of the {len(images)} binary {height}×{width} images "
                f"sum to {total:.6g}, expected 1 [{label}]: the chain rule's product is a distribution only if each "
                f"conditional sees the pixels before it and nothing else" + _any_mask_hint(fn, [(3, "A"), (3, "B")]))

    sums_to_one.__name__ = f"the {height}×{width} model's probabilities sum to 1 [{label}]"
    return sums_to_one


def masked_conv_values(label: str, x: torch.Tensor, weight: torch.Tensor, bias, mask_type: str) -> Property:
    def same_values(fn):
        k = weight.shape[-1]
        b = None if bias is None else bias.clone()
        expected = ar.masked_conv2d(x, weight, bias, mask_type)
        got = fn(x.clone(), weight.clone(), b, mask_type)
        call = (f"masked_conv2d(x of shape {tuple(x.shape)}, weight of shape {tuple(weight.shape)}, "
                f"{'bias=None' if bias is None else 'bias of shape ' + str(tuple(bias.shape))}, mask_type={mask_type!r}) [{label}]")
        if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
            raise AssertionError(f"{call}: expected a tensor of shape {tuple(expected.shape)}, got "
                                 f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}")
        if _close(got, expected):
            return
        mask = ar.causal_mask(k, mask_type).to(weight)
        mistakes = [
            (lambda: F.conv2d(x, weight, bias, padding=k // 2), "the weight is used without the mask"),
            (lambda: F.conv2d(x, weight * mask, None, padding=k // 2), "the bias is not added"),
            (lambda: F.conv2d(x, weight * mask.flip(0, 1), bias, padding=k // 2),
             "the mask is flipped: F.conv2d does not flip the kernel, so the mask applies to the weight as it is"),
            (lambda: F.conv2d(x, weight * mask.T, bias, padding=k // 2), "the mask's rows and columns are swapped"),
            (lambda: ar.masked_conv2d(x, weight, bias, "B" if mask_type == "A" else "A"),
             "that is the other mask type: type A hides the centre, type B shows it"),
        ]
        diff = (got.detach().double() - expected.double()).abs().nan_to_num(math.inf)
        at = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0])
        raise AssertionError(f"{call}: wrong output at index {at}: expected {float(expected[at]):.6g}, got "
                             f"{float(got[at]):.6g}" + _hint(got, mistakes))

    same_values.__name__ = f"masked_conv2d's values [{label}]"
    return same_values


def _conv_inputs(seed: int, n: int, c_in: int, c_out: int, height: int, width: int, k: int, bias: bool):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c_in, height, width, generator=g)
    w = torch.randn(c_out, c_in, k, k, generator=g)
    return x, w, (torch.randn(c_out, generator=g) if bias else None)


def masked_conv_checks(hidden: bool = False) -> list[Property]:
    """Properties of ``masked_conv2d(x, weight, bias, mask_type)``, visible or hidden."""
    if not hidden:
        return [
            masked_conv_keeps_the_size("a 3×3 kernel on 6×5 images", *_conv_inputs(0, 2, 3, 4, 6, 5, 3, True), "A"),
            masked_conv_keeps_the_size("a 5×5 kernel", *_conv_inputs(1, 1, 2, 3, 5, 5, 5, False), "B"),
            pixelcnn_is_causal("5×5 images", 5, 5, kernel=5, hidden=3, layers=3, seed=0),
            probabilities_sum_to_one("the 512 images of 3×3 pixels", 3, 3, seed=0),
            masked_conv_values("type A, 3×3, with a bias", *_conv_inputs(2, 2, 3, 4, 5, 6, 3, True), "A"),
            masked_conv_values("type B, 5×5, no bias", *_conv_inputs(3, 1, 2, 3, 4, 4, 5, False), "B"),
        ]
    return [
        masked_conv_keeps_the_size("a 7×7 kernel on 3×4 images", *_conv_inputs(10, 2, 1, 4, 3, 4, 7, True), "A"),
        pixelcnn_is_causal("6×7 images, a 7×7 first layer", 6, 7, kernel=7, hidden=3, layers=4, seed=11),
        pixelcnn_is_causal("4×6 images, 3×3 layers", 4, 6, kernel=3, hidden=3, layers=3, seed=12),
        probabilities_sum_to_one("the 256 images of 2×4 pixels", 2, 4, seed=13),
        masked_conv_values("type B, 3×3, float64", *[t.double() if t is not None else None
                                                    for t in _conv_inputs(14, 3, 4, 2, 6, 6, 3, True)], "B"),
        masked_conv_values("type A, 7×7", *_conv_inputs(15, 1, 3, 5, 8, 9, 7, True), "A"),
        masked_conv_values("type A, 1×1 (sees nothing)", *_conv_inputs(16, 1, 2, 2, 3, 3, 1, True), "A"),
    ]


# --------------------------------------------------------------------------- completion
def _toy(kind: str, seed: int, scale: float = 4.0):
    builds = {"pixelcnn": lambda: ar.PixelCNN(channels=8, layers=2, kernel_size=3),
              "gated": lambda: ar.GatedPixelCNN(channels=8, layers=2, kernel_size=3, first_kernel=3)}
    model = _seeded(seed, builds[kind], scale)
    model.__name__ = {"pixelcnn": "a small PixelCNN", "gated": "a small Gated PixelCNN"}[kind]
    return model


def _top(seed: int, n: int, rows: int, width: int) -> torch.Tensor:
    return (_uniforms(seed, n, 1, rows, width) < 0.5).float()


def _call(model, top: torch.Tensor, u: torch.Tensor, label: str) -> str:
    return (f"complete(Conditionals({model.__name__}), top of shape {tuple(top.shape)}, uniforms of shape "
            f"{tuple(u.shape)}) [{label}]")


def _completion(model, top, u, start: int | None = None, given=None, one_pass: bool = False,
                reverse: bool = False, columns_first: bool = False) -> torch.Tensor:
    """The completion with one usual mistake (for the hints): sampling from row ``start``, conditioning
    on ``given`` instead of the top rows, every probability from the first image, ``u > p``, or the
    columns walked before the rows."""
    known = top.shape[2]
    start = known if start is None else start
    x = torch.zeros_like(u)
    x[:, :, :known] = top if given is None else given
    first = x.clone()
    view = ar.Conditionals(model)
    height, width = x.shape[2:]
    order = [(r, c) for c in range(width) for r in range(height)] if columns_first else \
        [(r, c) for r in range(height) for c in range(width)]
    for r, c in order:
        if r < start:
            continue
        p = torch.sigmoid(view.pixel_logits(first if one_pass else x, r, c)[:, 0])
        x[:, 0, r, c] = ((u[:, 0, r, c] > p) if reverse else (u[:, 0, r, c] < p)).float()
    if given is not None:
        x[:, :, :known] = top
    return x


def _complete_mistakes(model, top, u) -> list[tuple[Callable[[], torch.Tensor], str]]:
    known = top.shape[2]
    return [
        (lambda: _completion(model, top, u, given=torch.zeros_like(top)),
         "these are the completions of an all-zero top: the pixels below must be drawn given the observed rows, "
         "so put them into the image before sampling"),
        (lambda: _completion(model, top, u, one_pass=True),
         "every probability comes from the image as it was before sampling: a pixel's conditional must see the "
         "pixels sampled before it, so ask for it after they are set"),
        (lambda: _completion(model, top, u, start=known + 1),
         f"row {known}, the first unobserved row, is not sampled"),
        (lambda: _completion(model, top, u, start=max(known - 1, 0)),
         f"row {known - 1} is observed: sampling starts at the first row that is not"),
        (lambda: _completion(model, top, u, start=0),
         "the observed rows are sampled again: they are given, not drawn"),
        (lambda: _completion(model, top, u, reverse=True),
         "a pixel is 1 where its uniform is below the probability of 1, not above it"),
        (lambda: _completion(model, top, u, columns_first=True),
         "the pixels go in raster order (row by row, left to right in each row), not column by column"),
    ]


def _compare_images(call: str, expected: torch.Tensor, got, mistakes=()) -> None:
    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{call} should return a tensor, got {type(got).__name__}")
    if tuple(got.shape) != tuple(expected.shape):
        raise AssertionError(f"{call}: the images have shape {tuple(got.shape)}, expected {tuple(expected.shape)} "
                             f"(the whole images, observed rows included)")
    if not got.is_floating_point() or not ((got == 0) | (got == 1)).all():
        raise AssertionError(f"{call}: pixels must be 0.0 or 1.0 (a float tensor), got dtype {got.dtype} with values "
                             f"{_fmt(got.unique())}: a pixel is its sample, not its probability")
    wrong = got.detach().double() != expected.double()
    if wrong.any():
        n, _, r, c = (int(i) for i in wrong.nonzero()[0])
        raise AssertionError(f"{call}: {int(wrong.sum())} of {expected.numel()} pixels differ from the sequential "
                             f"sampler's with the same uniforms; the first: image {n}, pixel ({r}, {c}): expected "
                             f"{int(expected[n, 0, r, c])}, got {int(got[n, 0, r, c])}" + _hint(got, mistakes))


def completion_keeps_the_observed_rows(label: str, kind: str, seed: int, n: int, known: int, height: int,
                                       width: int) -> Property:
    def keeps_observed(fn):
        model, top = _toy(kind, seed), _top(seed + 1, n, known, width)
        u = _uniforms(seed + 2, n, 1, height, width)
        got = fn(ar.Conditionals(model), top.clone(), u.clone())
        call = _call(model, top, u, label)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (n, 1, height, width):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise AssertionError(f"{call}: expected images of shape {(n, 1, height, width)} (observed rows included), "
                                 f"got {shape}")
        changed = got[:, :, :known].detach().double() != top.double()
        if changed.any():
            i, _, r, c = (int(v) for v in changed.nonzero()[0])
            raise AssertionError(f"{call}: image {i}, pixel ({r}, {c}) is observed as {int(top[i, 0, r, c])}, but "
                                 f"the completion has {float(got[i, 0, r, c]):g}: the observed rows {0}–{known - 1} "
                                 f"must come back unchanged (they are given, not sampled)")

    keeps_observed.__name__ = f"complete keeps the observed rows [{label}]"
    return keeps_observed


def completion_follows_the_conditional(label: str, row: Sequence[int] = (1, 0, 1), n: int = 4000,
                                       seed: int = 20) -> Property:
    """3×3 images whose top row is given: the frequencies of the 64 possible bottoms against
    p(x_bottom | x_top) = p(x) / Σ_bottom p(x), exact by the chain rule."""

    def follows_the_conditional(fn):
        model = _toy("pixelcnn", seed, scale=2.0)
        top = torch.tensor(row, dtype=torch.float32).view(1, 1, 1, 3).repeat(n, 1, 1, 1)
        u = _uniforms(seed + 1, n, 1, 3, 3)
        got = fn(ar.Conditionals(model), top.clone(), u.clone())
        call = _call(model, top, u, label)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (n, 1, 3, 3) or \
                not ((got == 0) | (got == 1)).all():
            return  # the shape and values are reported by the other checks
        bottoms = torch.tensor([[(b >> (5 - i)) & 1 for i in range(6)] for b in range(64)], dtype=torch.float32)
        images = torch.cat([top[:64].flatten(1), bottoms], dim=1).view(64, 1, 3, 3)
        with torch.no_grad():
            p = model.log_prob(images).double().softmax(0)               # p(bottom | top), exactly
        weights = 2 ** torch.arange(5, -1, -1)
        index = (got.detach()[:, 0, 1:].flatten(1).long() * weights).sum(1)
        freq = torch.bincount(index, minlength=64).double() / n
        tv = 0.5 * float((freq - p).abs().sum())
        ref = ar.complete_given_top(ar.Conditionals(model), top, u)
        tv_ref = 0.5 * float((torch.bincount((ref[:, 0, 1:].flatten(1).long() * weights).sum(1), minlength=64).double()
                              / n - p).abs().sum())
        if tv > tv_ref + 0.05:
            worst = int((freq - p).abs().argmax())
            bottom = "/".join("".join(str(int(v)) for v in bottoms[worst, i:i + 3]) for i in (0, 3))
            raise AssertionError(
                f"{call}: the completions of the top row {'/'.join(map(str, row))} are not distributed as "
                f"p(x_bottom | x_top): total variation {tv:.3f} from the exact conditional (the sequential sampler "
                f"with these uniforms: {tv_ref:.3f}); e.g. the bottom rows {bottom} have probability {float(p[worst]):.3f} "
                f"given the top row, and {float(freq[worst]):.3f} of your {n} completions"
                + _hint(got, _complete_mistakes(model, top, u)))

    follows_the_conditional.__name__ = f"completions follow p(x_bottom | x_top) [{label}]"
    return follows_the_conditional


def completion_is_the_sequential_sampler(label: str, kind: str, seed: int, n: int, known: int, height: int,
                                         width: int) -> Property:
    def same_images(fn):
        model, top = _toy(kind, seed), _top(seed + 1, n, known, width)
        u = _uniforms(seed + 2, n, 1, height, width)
        expected = ar.complete_given_top(ar.Conditionals(model), top, u)
        got = fn(ar.Conditionals(model), top.clone(), u.clone())
        _compare_images(_call(model, top, u, label), expected, got, _complete_mistakes(model, top, u))

    same_images.__name__ = f"complete gives the sequential sampler's images [{label}]"
    return same_images


def complete_checks(hidden: bool = False) -> list[Property]:
    """Properties of ``complete(model, top, uniforms)``, visible or hidden."""
    if not hidden:
        return [
            completion_keeps_the_observed_rows("5×5 images, 2 rows observed", "pixelcnn", 30, 4, 2, 5, 5),
            completion_follows_the_conditional("3×3 images, the top row observed", (1, 0, 1), n=4000, seed=20),
            completion_is_the_sequential_sampler("5×5 images, 2 rows observed", "pixelcnn", 30, 4, 2, 5, 5),
            completion_is_the_sequential_sampler("4×6 images, 1 row observed", "pixelcnn", 31, 3, 1, 4, 6),
        ]
    return [
        completion_keeps_the_observed_rows("6×4 images, 3 rows observed, Gated PixelCNN", "gated", 40, 5, 3, 6, 4),
        completion_follows_the_conditional("3×3 images, the top row 0/1/1 observed", (0, 1, 1), n=4000, seed=41),
        completion_is_the_sequential_sampler("6×4 images, 3 rows observed, Gated PixelCNN", "gated", 40, 5, 3, 6, 4),
        completion_is_the_sequential_sampler("no row observed: plain sampling", "pixelcnn", 42, 3, 0, 4, 4),
        completion_is_the_sequential_sampler("all rows but the last observed", "pixelcnn", 43, 4, 4, 5, 3),
    ]


# --------------------------------------------------------------------------- the 256-way softmax NLL
def _categorical_inputs(seed: int, n: int, height: int, width: int, spread: float = 2.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = (spread * torch.randn(n, 256, height, width, generator=g)).to(dtype)
    x = (torch.randint(0, 256, (n, 1, height, width), generator=g).to(dtype) / 255)
    return logits, x


def _nll_mistakes(logits: torch.Tensor, x: torch.Tensor) -> list[tuple[Callable[[], torch.Tensor], str]]:
    expected = ar.categorical_nll(logits, x)
    pixels = x[0].numel()
    target = (x[:, 0] * 255).round().long()
    return [
        (lambda: expected / pixels, "that is the mean over the pixels: the NLL of an image is the sum over its pixels"),
        (lambda: expected.mean(), "one NLL per image: do not average over the batch"),
        (lambda: expected.sum(), "one NLL per image: do not sum over the batch"),
        (lambda: -expected, "that is log p(x), the log-likelihood: the NLL is its negative"),
        (lambda: expected.sum() / (len(x) * pixels),
         "that is the mean over every pixel of the batch (F.cross_entropy's default reduction): one value per image, "
         "summed over its pixels"),
        (lambda: F.cross_entropy(logits, x[:, 0].long(), reduction="none").flatten(1).sum(1),
         "x holds intensities k/255 in [0, 1]: the class of a pixel is its level k = 0 … 255, not x itself"),
        (lambda: -logits.log_softmax(dim=-1).gather(1, target[:, None]).flatten(1).sum(1),
         "the softmax runs over the wrong axis: the 256 levels are axis 1 of the logits"),
        (lambda: -logits.gather(1, target[:, None]).flatten(1).sum(1),
         "the logits are not log-probabilities: they still have to be normalised over the 256 levels"),
    ]


def categorical_nll_values(label: str, logits: torch.Tensor, x: torch.Tensor) -> Property:
    def same_values(fn):
        expected = ar.categorical_nll(logits, x)
        got = fn(logits.clone(), x.clone())
        call = f"categorical_nll(logits of shape {tuple(logits.shape)}, x of shape {tuple(x.shape)}) [{label}]"
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"{call} should return a tensor, got {type(got).__name__}")
        mistakes = _nll_mistakes(logits, x)
        if got.shape != expected.shape:
            raise AssertionError(f"{call}: the result has shape {tuple(got.shape)}, expected {tuple(expected.shape)}, "
                                 f"one NLL per image" + _hint(got, mistakes))
        if torch.isinf(got).any() and not torch.isinf(expected).any():
            raise AssertionError(
                f"{call}: the NLL is infinite (expected {_fmt(expected)}, got {_fmt(got)})\n     hint: confident "
                f"logits, hundreds apart, make the softmax of the unlikely levels round to 0, and log 0 = −inf: get "
                f"the log-probabilities from the logits directly, without forming the probabilities first")
        if torch.isnan(got).any():
            raise AssertionError(f"{call}: the NLL contains NaN (expected {_fmt(expected)}, got {_fmt(got)})")
        if not _close(got, expected, atol=1e-3, rtol=1e-4):
            raise AssertionError(f"{call}: wrong NLL: expected {_fmt(expected)}, got {_fmt(got)}" + _hint(got, mistakes))

    same_values.__name__ = f"categorical_nll's values [{label}]"
    return same_values


def categorical_is_a_distribution(label: str, seed: int, spread: float = 3.0) -> Property:
    """One pixel, every intensity k/255 with the same logits: Σ_k exp(−NLL) = 1."""

    def sums_to_one(fn):
        g = torch.Generator().manual_seed(seed)
        logits = (spread * torch.randn(1, 256, 1, 1, generator=g)).expand(256, 256, 1, 1).contiguous()
        x = (torch.arange(256, dtype=torch.float32) / 255).view(256, 1, 1, 1)
        got = fn(logits.clone(), x.clone())
        call = f"categorical_nll(the same logits (256, 256, 1, 1) for each of the 256 intensities of one pixel) [{label}]"
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (256,):
            return  # reported by the other checks
        total = float(torch.exp(-got.double()).sum())
        if not abs(total - 1) < 1e-4:
            raise AssertionError(
                f"{call}: exp(−NLL) over the 256 intensities sums to {total:.6g}, expected 1: the 256 levels must form "
                f"the pixel's distribution" + _hint(got, _nll_mistakes(logits, x), atol=1e-3))

    sums_to_one.__name__ = f"a pixel's 256 probabilities sum to 1 [{label}]"
    return sums_to_one


def categorical_nll_checks(hidden: bool = False) -> list[Property]:
    """Properties of ``categorical_nll(logits, x)``, visible or hidden."""
    if not hidden:
        return [
            categorical_nll_values("two 2×3 images", *_categorical_inputs(50, 2, 2, 3)),
            categorical_is_a_distribution("one pixel", 51),
            categorical_nll_values("confident logits, hundreds apart", *_categorical_inputs(52, 2, 3, 3, spread=60.0)),
        ]
    return [
        categorical_nll_values("three 28×28 images", *_categorical_inputs(60, 3, 28, 28)),
        categorical_is_a_distribution("another pixel, sharper logits", 61, spread=10.0),
        categorical_nll_values("float64, very confident logits", *_categorical_inputs(62, 4, 4, 2, spread=500.0,
                                                                                       dtype=torch.float64)),
        categorical_nll_values("one image of one pixel", *_categorical_inputs(63, 1, 1, 1)),
    ]
