"""Checks for notebook 05's exercises (DCGAN).

* :func:`generator_block_checks`: the student's block put into the DCGAN generator: its layers
  (transposed convolution → batch norm → ReLU), the sizes it gives at G's two upsamplings
  (7 → 14 and 14 → 28) and whether its kernel overlaps evenly (no checkerboard);
* :func:`discriminator_checks`: the student's discriminator on a batch of images: one logit per
  image, downsampling by strides (no pooling), LeakyReLU(0.2), batch norm where the guidelines say,
  no hidden fully connected layer, and a few steps of training that must tell real images from noise;
* :func:`nearest_neighbours_checks`: each generated image's nearest training images, on planted
  copies, on feature vectors and for every batch size;
* :func:`frechet_checks`: the Fréchet distance against :func:`lecture13.metrics.frechet_distance`
  on random and on near-singular covariances (fewer samples than features, dead features).

Every check is a *property*: a callable that takes the student's function, runs it on a named
input and raises ``AssertionError`` with the input, what was expected, what came back and, when the
answer matches a usual mistake, a hint about it — never the answer itself. Modules the answer
returns must be built from ``torch.nn`` layers (the grader rebuilds only those).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import gan, metrics
from .gans import _close, _fmt

Property = Callable[[Callable], None]


# --------------------------------------------------------------------------- helpers
def _layers(module: nn.Module) -> list[nn.Module]:
    """The module's layers in order, containers (Sequential, ModuleList) left out."""
    return [m for m in module.modules() if not isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict))]


def _kinds(module: nn.Module) -> str:
    return " → ".join(type(m).__name__ for m in _layers(module)) or "no layers"


def _pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _conv_text(conv: nn.Module) -> str:
    k, s, p = _pair(conv.kernel_size), _pair(conv.stride), _pair(conv.padding)
    one = lambda t: str(t[0]) if t[0] == t[1] else str(t)   # noqa: E731
    extra = ""
    if isinstance(conv, nn.ConvTranspose2d) and any(_pair(conv.output_padding)):
        extra = f", output_padding {one(_pair(conv.output_padding))}"
    return f"{type(conv).__name__}(kernel {one(k)}, stride {one(s)}, padding {one(p)}{extra})"


def _module_or_fail(call: str, got) -> nn.Module:
    if not isinstance(got, nn.Module):
        raise AssertionError(f"{call} should return an nn.Module (an nn.Sequential of layers), got {type(got).__name__}")
    return got


def _shape(t) -> str:
    return "×".join(str(n) for n in t) if t else "a scalar"


# --------------------------------------------------------------------------- exercise 1: the generator block
ACTIVATION_HINTS = {
    "LeakyReLU": "LeakyReLU is D's activation (guideline 5); G's is ReLU (guideline 4)",
    "Tanh": "tanh belongs to G's output layer only (guideline 4); inside G the activation is ReLU",
    "Sigmoid": "a sigmoid squashes G's hidden maps; inside G the activation is ReLU (guideline 4)",
    "ELU": "G's activation is ReLU (guideline 4)",
    "GELU": "G's activation is ReLU (guideline 4)",
}


def _transposed_output(n: int, conv: nn.ConvTranspose2d, axis: int = 0) -> int:
    k, s, p = _pair(conv.kernel_size)[axis], _pair(conv.stride)[axis], _pair(conv.padding)[axis]
    op, d = _pair(conv.output_padding)[axis], _pair(conv.dilation)[axis]
    return (n - 1) * s - 2 * p + d * (k - 1) + op + 1


def _size_hint(conv: nn.ConvTranspose2d, n: int) -> str:
    """Why a transposed convolution gives the size it gives at input size n (and a hint, not the numbers)."""
    k, s, p = _pair(conv.kernel_size)[0], _pair(conv.stride)[0], _pair(conv.padding)[0]
    op = _pair(conv.output_padding)[0]
    out = _transposed_output(n, conv)
    formula = f"({n} − 1)·{s} − 2·{p} + {k}" + (f" + {op}" if op else "") + f" = {out}"
    text = f"\n     your {_conv_text(conv)} gives {formula} along each side, not {2 * n}"
    if s == 1:
        text += ("\n     hint: with stride 1 the output is the input plus a fixed number of pixels, so no choice of kernel and "
                 "padding doubles both 7 and 14: the output grows about stride-fold")
    elif s > 2:
        text += f"\n     hint: a stride of {s} multiplies the size by about {s}"
    else:
        constant = _transposed_output(n, conv) - 2 * n
        text += (f"\n     hint: with stride 2 the output is 2·in {'+' if constant > 0 else '−'} {abs(constant)} for every input "
                 "size; choose kernel and padding (and output_padding) so that the constant is 0")
    return text


def _block_structure(fn: Callable, cin: int, cout: int) -> tuple[nn.Module, nn.ConvTranspose2d]:
    """The block and its transposed convolution; AssertionError saying what is wrong with its layers."""
    call = f"generator_block({cin}, {cout})"
    block = _module_or_fail(call, fn(cin, cout))
    layers = _layers(block)
    kinds = [type(m).__name__ for m in layers]
    convs = [m for m in layers if isinstance(m, nn.ConvTranspose2d)]
    if not convs:
        if any(isinstance(m, nn.Upsample) for m in layers) or any(isinstance(m, nn.Conv2d) for m in layers):
            raise AssertionError(f"{call} has the layers {_kinds(block)}: this block's upsampling is learned, one "
                                 "nn.ConvTranspose2d (guideline 1), not a fixed nn.Upsample or a Conv2d")
        raise AssertionError(f"{call} has the layers {_kinds(block)}: it needs a transposed convolution (nn.ConvTranspose2d) "
                             "to upsample")
    if len(convs) > 1:
        raise AssertionError(f"{call} has {len(convs)} transposed convolutions ({_kinds(block)}): one block, one "
                             "upsampling")
    conv = convs[0]
    if (conv.in_channels, conv.out_channels) != (cin, cout):
        raise AssertionError(f"{call}: its ConvTranspose2d maps {conv.in_channels} → {conv.out_channels} channels, "
                             f"expected {cin} → {cout} (the arguments in_channels, out_channels)")
    norms = [m for m in layers if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise AssertionError(f"{call} has the layers {_kinds(block)}: no batch norm after the transposed convolution "
                             "(guideline 2: batch norm in G, except its output layer)")
    if not isinstance(norms[0], nn.BatchNorm2d) or norms[0].num_features != cout:
        raise AssertionError(f"{call}: its batch norm is {type(norms[0]).__name__}({norms[0].num_features}); the "
                             f"transposed convolution gives {cout} feature maps, normalised per channel")
    for name, hint in ACTIVATION_HINTS.items():
        if name in kinds:
            raise AssertionError(f"{call} has the layers {_kinds(block)}: {hint}")
    if "ReLU" not in kinds:
        raise AssertionError(f"{call} has the layers {_kinds(block)}: no activation, so G's stacked blocks would be one "
                             "linear map (guideline 4: ReLU in G)")
    want = ["ConvTranspose2d", "BatchNorm2d", "ReLU"]
    if kinds != want:
        raise AssertionError(f"{call} has the layers {_kinds(block)}; expected {' → '.join(want)}, in that order "
                             "(normalise the convolution's output, then the activation)")
    return block, conv


def _find_conv(fn: Callable, cin: int, cout: int):
    """The block and its transposed convolution, or (None, None) when the layers are wrong (reported elsewhere)."""
    try:
        return _block_structure(fn, cin, cout)
    except AssertionError:
        return None, None


def generator_block_checks(hidden: bool = False) -> list[Property]:
    """Properties of a student's ``generator_block(in_channels, out_channels)``: the layers of a DCGAN
    generator block, twice the size at G's 7 → 14 and 14 → 28 (and, hidden, at other sizes), an even overlap."""

    def layers_of_a_generator_block(fn):
        _block_structure(fn, 16, 8)
        if hidden:
            _block_structure(fn, 3, 5)

    def doubles_the_size_in_the_generator(fn):
        block, conv = _find_conv(fn, 16, 8)
        if block is None:
            return
        torch.manual_seed(0)
        G = gan.DCGANGenerator(z_dim=8, width=4)   # z → 16×7×7 → block(16, 8) → 8×14×14 → last layer → 1×28×28
        G.blocks[0] = block
        where = "in the DCGAN generator (z → 16×7×7 → your generator_block(16, 8) → G's last layer → 1×28×28)"
        h = G.project(torch.randn(2, 8)).view(2, 16, 7, 7)
        out = block(h)
        if tuple(out.shape) != (2, 8, 14, 14):
            raise AssertionError(f"{where}: your block turned the 7×7 maps (2, 16, 7, 7) into {tuple(out.shape)}, "
                                 f"expected (2, 8, 14, 14)" + _size_hint(conv, 7))
        images = G(torch.randn(2, 8))
        assert tuple(images.shape) == (2, 1, 28, 28), f"{where}: G's images have shape {tuple(images.shape)}, expected (2, 1, 28, 28)"
        block2, conv2 = _find_conv(fn, 8, 4)
        if block2 is None:
            return
        out = block2(torch.randn(2, 8, 14, 14))
        if tuple(out.shape) != (2, 4, 28, 28):
            raise AssertionError(
                f"G's second upsampling, 14×14 → 28×28, needs the same doubling: your generator_block(8, 4) turned "
                f"(2, 8, 14, 14) into {tuple(out.shape)}, expected (2, 4, 28, 28)" + _size_hint(conv2, 14))
        if hidden:
            for n in (1, 4, 5):
                block3, conv3 = _find_conv(fn, 3, 5)
                if block3 is None:
                    return
                out = block3.eval()(torch.randn(1, 3, n, n))
                assert tuple(out.shape) == (1, 5, 2 * n, 2 * n), (
                    f"generator_block(3, 5) in eval mode on (1, 3, {n}, {n}) gave {tuple(out.shape)}, expected "
                    f"(1, 5, {2 * n}, {2 * n}): the block should double any size" + _size_hint(conv3, n))

    def overlaps_evenly(fn):
        block, conv = _find_conv(fn, 16, 8)
        if block is None:
            return
        k, s = _pair(conv.kernel_size), _pair(conv.stride)
        with torch.no_grad():
            y = F.conv_transpose2d(torch.ones(1, 1, 8, 8), torch.ones(1, 1, *k), stride=s, padding=conv.padding,
                                   output_padding=conv.output_padding, dilation=conv.dilation)
        edge = max(max(k), 1)
        interior = y[0, 0, edge:-edge, edge:-edge]
        values = sorted({round(v, 4) for v in interior.flatten().tolist()})
        if len(values) > 1:
            raise AssertionError(
                f"uneven overlap: a constant 8×8 input through your {_conv_text(conv)} with every weight 1 gives "
                f"interior outputs that alternate between {', '.join(f'{v:g}' for v in values)}: a checkerboard, the "
                "pattern G's images would start from (Odena et al., 2016). Every output pixel receives the same number "
                "of kernel taps only when the kernel size is a multiple of the stride")

    return [layers_of_a_generator_block, doubles_the_size_in_the_generator, overlaps_evenly]


# --------------------------------------------------------------------------- exercise 2: the discriminator
_DATA: dict = {}


def _signed_images(n: int, split: str = "train") -> torch.Tensor:
    """The first n embedded Fashion-MNIST images of a split, in [−1, 1] (loaded once)."""
    if (split, n) not in _DATA:
        from .. import data

        _DATA[(split, n)] = data.tensors(split, "signed", limit=n)[0]
    return _DATA[(split, n)]


def _trace_convs(D: nn.Module, x: torch.Tensor):
    """(the per-image shapes after each convolution, in order; D's output or the exception it raised)."""
    shapes: list[tuple[nn.Module, tuple]] = []
    handles = [m.register_forward_hook(lambda m, i, o: shapes.append((m, tuple(o.shape[1:]))))
               for m in _layers(D) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        out = D(x)
    except Exception as err:   # the shapes up to the failing layer still tell what went wrong
        out = err
    finally:
        for h in handles:
            h.remove()
    return shapes, out


def _conv_size_hint(conv: nn.Conv2d, n: int) -> str:
    k, s, p = _pair(conv.kernel_size)[0], _pair(conv.stride)[0], _pair(conv.padding)[0]
    d = _pair(conv.dilation)[0]
    out = (n + 2 * p - d * (k - 1) - 1) // s + 1
    return (f"\n     your {_conv_text(conv)} gives ⌊({n} + 2·{p} − {k})/{s}⌋ + 1 = {out} along each side"
            + ("\n     hint: stride 1 keeps the size (up to the kernel's border): D downsamples by its strides" if s == 1 else ""))


def discriminator_checks(hidden: bool = False, steps: int = 12, lr: float = 0.05) -> list[Property]:
    """Properties of a student's ``build_discriminator(width)``: (B, 1, 28, 28) → (B, 1) logits through
    width×14×14 and 2·width×7×7 maps, by strided convolutions, with DCGAN's layers; it learns."""
    widths = (4, 8) if hidden else (4,)

    def one_logit_per_image(fn):
        for w in widths:
            call = f"build_discriminator({w})"
            D = _module_or_fail(call, fn(w))
            for batch, mode in ((3, "train"), (1, "eval")) if hidden else ((3, "train"),):
                D.train(mode == "train")
                shapes, out = _trace_convs(D, torch.randn(batch, 1, 28, 28))
                if isinstance(out, Exception):
                    raise AssertionError(
                        f"{call} on a batch ({batch}, 1, 28, 28) raised {type(out).__name__}: {str(out).splitlines()[0]}"
                        + (f"\n     the feature maps after its convolutions: {', '.join(_shape(s) for _, s in shapes)}"
                           if shapes else ""))
                assert isinstance(out, torch.Tensor), f"{call} should return a tensor of logits, got {type(out).__name__}"
                if tuple(out.shape) not in ((batch, 1), (batch,)):
                    hint = ""
                    if out.dim() == 4 and out.shape[0] == batch and out[0].numel() == 1:
                        hint = "\n     hint: one value per image, but still a 1×1 feature map: flatten it (nn.Flatten())"
                    elif out.dim() >= 1 and out.shape[0] == batch:
                        hint = f"\n     hint: {out[0].numel()} values per image: D ends in a single logit"
                    elif out.numel() == 1:
                        hint = "\n     hint: one number for the whole batch: D scores each image"
                    raise AssertionError(f"{call} on a batch ({batch}, 1, 28, 28) gave shape {tuple(out.shape)}, expected "
                                         f"one logit per image, ({batch}, 1)" + hint)

    def downsamples_by_strides(fn):
        for w in widths:
            call = f"build_discriminator({w})"
            D = _module_or_fail(call, fn(w))
            pools = [type(m).__name__ for m in _layers(D) if "Pool" in type(m).__name__]
            if pools:
                raise AssertionError(f"{call} has the layers {_kinds(D)}: no pooling in a DCGAN (guideline 1): "
                                     f"D learns its downsampling with strided convolutions instead of {pools[0]}")
            if any(isinstance(m, (nn.Upsample, nn.ConvTranspose2d)) for m in _layers(D)):
                raise AssertionError(f"{call} has the layers {_kinds(D)}: D only downsamples (transposed convolutions "
                                     "and upsampling are G's)")
            shapes, out = _trace_convs(D.train(), torch.randn(3, 1, 28, 28))
            maps = [s for _, s in shapes]
            want = [(w, 14, 14), (2 * w, 7, 7)]
            if want[0] in maps and want[1] in maps[maps.index(want[0]) + 1:]:
                continue
            got = ", ".join(_shape(s) for s in maps) or "none (no Conv2d layer)"
            text = (f"{call}: the feature maps after its convolutions are {got}; expected {_shape(want[0])} and then "
                    f"{_shape(want[1])} (1×28×28 → {w}×14×14 → {2 * w}×7×7 → one logit)")
            size_in = 28
            for conv, s in shapes:   # the first convolution that does not halve the size
                if s[1:] != (size_in // 2, size_in // 2) and size_in in (28, 14):
                    text += _conv_size_hint(conv, size_in)
                    break
                size_in = s[1]
            raise AssertionError(text)

    def leaky_relu_and_batch_norm(fn):
        for w in widths:
            call = f"build_discriminator({w})"
            D = _module_or_fail(call, fn(w))
            layers = _layers(D)
            kinds = [type(m).__name__ for m in layers]
            if "Sigmoid" in kinds or "Softmax" in kinds:
                raise AssertionError(f"{call} has the layers {_kinds(D)}: D returns a logit, not a probability "
                                     "(the losses of notebook 04 take logits: no sigmoid)")
            if "ReLU" in kinds:
                raise AssertionError(f"{call} has the layers {_kinds(D)}: ReLU is G's activation; D's is LeakyReLU(0.2) "
                                     "(guideline 5), so that gradients flow back through negative activations too")
            leaky = [m for m in layers if isinstance(m, nn.LeakyReLU)]
            if len(leaky) < 2:
                raise AssertionError(f"{call} has the layers {_kinds(D)}: expected a LeakyReLU after each downsampling "
                                     "convolution (guideline 5)")
            slopes = sorted({m.negative_slope for m in leaky})
            if slopes != [0.2]:
                raise AssertionError(f"{call}: its LeakyReLU layers have negative slope {', '.join(f'{v:g}' for v in slopes)}; "
                                     "guideline 5 says LeakyReLU(0.2)" + (" (nn.LeakyReLU() defaults to 0.01)" if 0.01 in slopes else ""))
            convs = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
            norms = [i for i, m in enumerate(layers) if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            if not norms:
                raise AssertionError(f"{call} has the layers {_kinds(D)}: no batch norm (guideline 2: batch norm in D, "
                                     "except its input layer)")
            if convs and convs[0] + 1 < len(layers) and isinstance(layers[convs[0] + 1], nn.modules.batchnorm._BatchNorm):
                raise AssertionError(f"{call} has the layers {_kinds(D)}: no batch norm on D's input layer (guideline 2)")
            linears = [m for m in layers if isinstance(m, nn.Linear)]
            if len(linears) > 1:
                raise AssertionError(f"{call} has the layers {_kinds(D)}: {len(linears)} linear layers; no fully connected "
                                     "hidden layers (guideline 3): the only one maps the last feature maps to the logit")

    def learns_to_tell_real_from_noise(fn):
        torch.manual_seed(0)
        D = _module_or_fail("build_discriminator(4)", fn(4)).train()
        g = torch.Generator().manual_seed(0)
        images = _signed_images(96)
        start = None
        for step in range(steps):   # plain gradient descent, written out (no optimizer to set up: cheap)
            real = images[(16 * step) % 64:(16 * step) % 64 + 16]
            fake = torch.rand(16, 1, 28, 28, generator=g) * 2 - 1
            loss = gan.discriminator_loss(D(real).reshape(-1), D(fake).reshape(-1))
            start = float(loss.detach()) if start is None else start
            D.zero_grad()
            loss.backward()
            with torch.no_grad():
                for p in D.parameters():
                    if p.grad is not None:
                        p -= lr * p.grad
        with torch.no_grad():
            real_logits = D(images[64:96]).reshape(-1)
            fake_logits = D(torch.rand(32, 1, 28, 28, generator=g) * 2 - 1).reshape(-1)
            loss = float(gan.discriminator_loss(real_logits, fake_logits))
            right = float(((real_logits > 0).float().mean() + (fake_logits < 0).float().mean()) / 2)
        if loss < 0.5 and right >= 0.9:
            return
        hint = ""
        both = torch.cat([real_logits, fake_logits])
        if bool(((both > 0) & (both < 1)).all()):
            hint = ("\n     hint: every output lies in (0, 1), like a probability: a logit ranges over all reals, and the "
                    "loss cannot fall below 1.0 when its logits are stuck in (0, 1)")
        raise AssertionError(
            f"build_discriminator(4) trained for {steps} steps of gradient descent (learning rate {lr:g}, batches of 16 "
            f"real Fashion-MNIST images against 16 images of uniform noise, gan.discriminator_loss) should tell new real "
            f"images from new noise: its loss is "
            f"{loss:.3f} (it started at {start:.3f}; the reference falls below 0.2) and it classifies {right:.0%} "
            "correctly (logit > 0: real)" + hint)

    return [one_logit_per_image, downsamples_by_strides, leaky_relu_and_batch_norm, learns_to_tell_real_from_noise]


# --------------------------------------------------------------------------- exercise 3: nearest neighbours
def _true_distances(queries: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """All query–pool Euclidean distances, exactly (float64, no |a|² + |b|² − 2ab cancellation)."""
    q, p = queries.flatten(1).double(), pool.flatten(1).double()
    return (q.unsqueeze(1) - p.unsqueeze(0)).pow(2).sum(-1).sqrt()


def nearest_neighbours_inputs(hidden: bool = False) -> list[tuple[str, torch.Tensor, torch.Tensor, int, int]]:
    """(label, queries, pool, k, batch_size) for the memorisation exercise."""
    g = torch.Generator().manual_seed(51 if hidden else 5)
    pool = (_signed_images(300) + 1) / 2              # 300 training images in [0, 1]
    tests = (_signed_images(8, "test") + 1) / 2
    picks = torch.randperm(len(pool), generator=g)[:5]
    copies = (pool[picks] + 0.03 * torch.randn(5, 1, 28, 28, generator=g)).clamp(0, 1)
    queries = torch.cat([copies, tests[:7]])          # 5 planted copies, then 7 test images
    if not hidden:
        features = torch.relu(torch.randn(200, 128, generator=g))
        images = "12 images (5 training images + noise, 7 test images) vs 300 training images"
        return [
            (images, queries, pool, 1, 128),
            (images, queries, pool, 3, 128),
            (images, queries, pool, 1, 5),
            ("20 feature vectors (20, 128), as the classifier's, vs 200", features[:20], features, 2, 8),
        ]
    rgb = torch.rand(60, 3, 8, 8, generator=g)
    return [
        ("4 training images themselves (distance 0) vs 300 training images", pool[10:14], pool, 1, 3),
        ("7 test images vs 300 training images", tests[:7], pool, 5, 1),
        ("9 colour images (9, 3, 8, 8) vs 51", rgb[:9], rgb[9:], 2, 4),
        ("1 colour image vs 10: the whole pool", rgb[:1], rgb[50:], 10, 128),
        ("12 images (5 training images + noise, 7 test images) vs 300 training images", queries, pool, 1, 1000),
    ]


def nearest_neighbours_checks(inputs=None, hidden: bool = False) -> list[Property]:
    """Properties of ``nearest_neighbours(queries, pool, k=1, batch_size=128)`` → (distances, indices), (N, k)."""
    inputs = nearest_neighbours_inputs(hidden) if inputs is None else inputs
    return [_nn_property(*item) for item in inputs]


def _nn_property(label: str, queries: torch.Tensor, pool: torch.Tensor, k: int, batch_size: int) -> Property:
    def nearest_neighbours_on(fn):
        n = len(queries)
        call = f"nearest_neighbours({label}, k={k}, batch_size={batch_size})"
        try:
            got = fn(queries.clone(), pool.clone(), k=k, batch_size=batch_size)
        except NotImplementedError:
            raise
        except Exception as err:
            per_image = queries[0].numel()
            raise AssertionError(
                f"{call} raised {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                + (f"\n     hint: here each query has {per_image} values (shape {tuple(queries.shape[1:])}), not 784: "
                   "flatten whatever per-image shape comes in" if per_image != 784 else "")) from None
        if not (isinstance(got, (tuple, list)) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)):
            raise AssertionError(f"{call} should return a pair of tensors (distances, indices), got {type(got).__name__}")
        dist, idx = got
        true = _true_distances(queries, pool)                       # (n, M)
        want_d = true.topk(k, dim=1, largest=False).values          # nearest first
        if tuple(dist.shape) != (n, k) or tuple(idx.shape) != (n, k):
            hint = ""
            if dist.dim() >= 1 and 0 < dist.shape[0] < n and dist.shape[0] % batch_size == 0:
                hint = (f"\n     hint: {dist.shape[0]} rows, a multiple of batch_size={batch_size}: the last, partial "
                        "batch of queries is missing")
            elif dist.dim() == 1 and k == 1 and dist.shape[0] == n:
                hint = "\n     hint: keep the k axis: shape (N_queries, k), also for k=1"
            elif dist.dim() != 2 or dist.shape[0] != n:
                hint = "\n     hint: compare each image as one vector: (N, ...) → (N, values per image)"
            raise AssertionError(f"{call}: distances have shape {tuple(dist.shape)} and indices {tuple(idx.shape)}, "
                                 f"expected ({n}, {k}) each" + hint)
        if idx.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
            raise AssertionError(f"{call}: indices should be an integer tensor (positions in pool), got {idx.dtype}")
        if bool(((idx < 0) | (idx >= len(pool))).any()):
            raise AssertionError(f"{call}: indices should be positions in pool (0 … {len(pool) - 1}), got "
                                 f"{_fmt(idx)}")
        tol = 1e-3 * float(want_d.max()) + 2e-2   # float32 distances (|a|² + |b|² − 2ab) are off by up to ~0.01
        at_idx = true.gather(1, idx.long())                         # the distances of the images it chose
        self_d = _true_distances(queries, queries)
        for i in range(n):
            if bool((at_idx[i] - want_d[i]).abs().max() > tol):
                row = (f"{call}: query {i}: the nearest pool images are at {_fmt(want_d[i])} (indices "
                       f"{_fmt(true[i].topk(k, largest=False).indices)}); got indices {_fmt(idx[i])}, at {_fmt(at_idx[i])}")
                farthest = true[i].topk(k, largest=True).values
                if _close(at_idx[i], farthest, atol=tol, rtol=0):
                    row += "\n     hint: those are the farthest pool images: the nearest are the smallest distances"
                elif bool((dist[i].double() < tol).all()) and n > 1:
                    row += ("\n     hint: distance 0: the query was compared with itself — search the pool (the training "
                            "images), not the other queries")
                elif n > k and _close(dist[i].double(), self_d[i].topk(k + 1, largest=False).values[1:], atol=tol, rtol=0):
                    row += ("\n     hint: those are the distances to the nearest other queries: search the pool (the "
                            "training images), not the other queries")
                elif len(pool) > batch_size and bool((idx < batch_size).all()):
                    row += (f"\n     hint: every index is below batch_size={batch_size}: positions within a batch of the "
                            "pool, not in the whole pool?")
                raise AssertionError(row)
            if bool((dist[i].double() - at_idx[i]).abs().max() > tol):
                row = (f"{call}: query {i}: the returned distances {_fmt(dist[i])} are not the distances to the returned "
                       f"images {_fmt(idx[i])}, which are {_fmt(at_idx[i])}")
                if _close(dist[i].double(), at_idx[i] ** 2, atol=tol * float(want_d.max()) * 2, rtol=1e-3):
                    row += "\n     hint: those are squared distances: return the Euclidean distance itself"
                elif n > 1 and _close(dist[i].double(), self_d[i].topk(min(k + 1, n), largest=False).values[1:k + 1],
                                      atol=tol, rtol=0):
                    row += "\n     hint: those are distances to the nearest other queries: measure against the pool"
                raise AssertionError(row)
        if k > 1 and bool((dist[:, 1:] < dist[:, :-1] - tol).any()):
            raise AssertionError(f"{call}: the k={k} neighbours should come nearest first, got distances {_fmt(dist[0])} "
                                 "for query 0")

    nearest_neighbours_on.__name__ = f"nearest_neighbours on {label}, k={k}, batch_size={batch_size}"
    return nearest_neighbours_on


# --------------------------------------------------------------------------- exercise 5: the Fréchet distance
def _features(g: torch.Generator, n: int, d: int, shift: float = 0.0, scale: float = 1.0, dead: int = 0) -> torch.Tensor:
    """n feature vectors of dimension d: correlated, ReLU-like (non-negative) and with ``dead`` always-0 units."""
    mix = torch.randn(d, d, generator=g) / math.sqrt(d)
    f = torch.relu(scale * torch.randn(n, d, generator=g) @ mix + shift + 0.3)
    if dead:
        f[:, -dead:] = 0.0
    return f


def frechet_inputs(hidden: bool = False) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(label, features_a, features_b) for the Fréchet-distance exercise."""
    g = torch.Generator().manual_seed(61 if hidden else 6)
    if not hidden:
        a = _features(g, 300, 8)
        return [
            ("one set with itself", a, a.clone()),
            ("two sets of different means and covariances", a, _features(g, 250, 8, 0.5, 1.5)),
            ("fewer samples than features: singular covariances", _features(g, 20, 32), _features(g, 25, 32, 0.2)),
            ("3 dead features (always 0)", _features(g, 200, 16, dead=3), _features(g, 150, 16, 0.1, 1.2, dead=3)),
        ]
    a = _features(g, 1000, 128, dead=5)
    return [
        ("the notebook's size, 5 dead features", a, _features(g, 2000, 128, 0.05, dead=5)),
        ("one set and the same set shifted by 0.5 in every feature", a[:400, :10], a[:400, :10] + 0.5),
        ("float64 features", _features(g, 60, 6).double(), _features(g, 80, 6, 1.0).double()),
        ("2 samples each (rank 1)", _features(g, 2, 4), _features(g, 2, 4, 0.3)),
        ("features 1000 times larger", 1000 * _features(g, 100, 10), 1000 * _features(g, 120, 10, 0.4)),
    ]


def _stats(f: torch.Tensor, ddof: int = 1):
    f = f.double()
    mu = f.mean(0)
    c = f - mu
    return mu, c.T @ c / (len(f) - ddof)


def _frechet_mistakes(a: torch.Tensor, b: torch.Tensor) -> list[tuple[Callable[[], float], str]]:
    """The usual wrong Fréchet distances of two feature sets, each with its hint."""
    def sqrtm(m):
        vals, vecs = torch.linalg.eigh((m + m.T) / 2)
        return vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T

    (mu_a, c_a), (mu_b, c_b) = _stats(a), _stats(b)
    mean_term = float((mu_a - mu_b).pow(2).sum())
    tr = float(torch.trace(c_a) + torch.trace(c_b))
    root_a = sqrtm(c_a)
    cross = float(torch.trace(sqrtm(root_a @ c_b @ root_a)))
    return [
        (lambda: tr - 2 * cross, "the mean term ‖μ_a − μ_b‖² is missing"),
        (lambda: math.sqrt(mean_term) + tr - 2 * cross, "the mean term is the squared distance ‖μ_a − μ_b‖², not the distance"),
        (lambda: mean_term + tr - cross, "the cross term is subtracted twice: − 2 Tr((Σ_a^{1/2} Σ_b Σ_a^{1/2})^{1/2})"),
        (lambda: mean_term + tr - 2 * float(torch.trace(c_a @ c_b)),
         "Tr(Σ_a Σ_b) is not Tr((Σ_a^{1/2} Σ_b Σ_a^{1/2})^{1/2}): the square root of the matrix is missing"),
        (lambda: mean_term + tr - 2 * float((c_a @ c_b).clamp(min=0).sqrt().diagonal().sum()),
         "the square root of a matrix is not the square root of its entries"),
        (lambda: mean_term + tr - 2 * float((c_a * c_b).clamp(min=0).sqrt().diagonal().sum()),
         "the square root of a matrix is not the square root of its entries (and Σ_a Σ_b is a matrix product)"),
        (lambda: mean_term + tr - 2 * float(torch.linalg.eigvalsh(c_a @ c_b).clamp(min=0).sqrt().sum()),
         "torch.linalg.eigvalsh reads one triangle of its matrix and assumes the rest: Σ_a Σ_b is not symmetric"),
        (lambda: mean_term + tr - 2 * float(torch.trace(sqrtm(c_a) @ sqrtm(c_b))),
         "Tr(Σ_a^{1/2} Σ_b^{1/2}) equals the cross term only when the two covariances commute"),
        (lambda: float(((_stats(a, 0)[0] - _stats(b, 0)[0]).pow(2).sum()) + torch.trace(_stats(a, 0)[1])
                       + torch.trace(_stats(b, 0)[1]) - 2 * torch.trace(sqrtm(sqrtm(_stats(a, 0)[1]) @ _stats(b, 0)[1]
                                                                             @ sqrtm(_stats(a, 0)[1])))),
         "that is with the covariance divided by N: the unbiased covariance divides by N − 1"),
        (lambda: _float32_frechet(a, b), "close, but computed in float32: work in float64"),
    ]


def _float32_frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    def sqrtm(m):
        vals, vecs = torch.linalg.eigh((m + m.T) / 2)
        return vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T

    a, b = a.float(), b.float()
    mu_a, mu_b = a.mean(0), b.mean(0)
    c_a, c_b = torch.cov(a.T), torch.cov(b.T)
    r = sqrtm(c_a)
    return float((mu_a - mu_b).pow(2).sum() + torch.trace(c_a) + torch.trace(c_b) - 2 * torch.trace(sqrtm(r @ c_b @ r)))


def frechet_checks(inputs=None, hidden: bool = False) -> list[Property]:
    """Properties of ``frechet_distance(features_a, features_b)`` → d² (a float), against
    :func:`lecture13.metrics.frechet_distance`."""
    inputs = frechet_inputs(hidden) if inputs is None else inputs
    return [_frechet_property(*item) for item in inputs]


def _frechet_property(label: str, a: torch.Tensor, b: torch.Tensor) -> Property:
    def frechet_distance_on(fn):
        call = f"frechet_distance(features {tuple(a.shape)}, features {tuple(b.shape)}) [{label}]"
        want = metrics.frechet_distance(a, b)
        try:
            got = fn(a.clone(), b.clone())
        except NotImplementedError:
            raise
        except Exception as err:
            raise AssertionError(
                f"{call} raised {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                + ("\n     hint: an eigendecomposition that fails to converge was given NaN entries: a square root of an "
                   "eigenvalue that came out slightly below 0 (a singular covariance's zero eigenvalue, −1e−15)?"
                   if "eig" in str(err) else "")) from None
        if isinstance(got, torch.Tensor):
            if got.numel() != 1:
                raise AssertionError(f"{call} should return one number, d², got a tensor of shape {tuple(got.shape)}")
            got = got.item()
        if not isinstance(got, (int, float)):
            raise AssertionError(f"{call} should return a float, got {type(got).__name__}")
        got = float(got)
        if math.isnan(got):
            raise AssertionError(
                f"{call}: got NaN, expected {want:.6g}\n     hint: a covariance fitted to fewer samples than features (or "
                "with features that are always 0) is singular: its zero eigenvalues can come out as −1e−15, whose "
                "square root is NaN. They are zeros: eigenvalues of a positive semi-definite matrix are ≥ 0")
        if abs(got - want) <= 1e-4 * max(abs(want), 1.0) + 1e-6 * float(a.double().var(0).sum() + b.double().var(0).sum()):
            return
        hint = ""
        for result, text in _frechet_mistakes(a, b):
            try:
                wrong = result()
            except Exception:
                continue
            if math.isfinite(wrong) and abs(got - wrong) <= 1e-4 * max(abs(wrong), 1.0):
                hint = f"\n     hint: {text}"
                break
        if not hint and label.startswith("one set with itself"):
            hint = "\n     hint: a Gaussian is at distance 0 from itself: the cross term must cancel the two traces"
        raise AssertionError(f"{call}: expected d² = {want:.6g}, got {got:.6g}" + hint)

    frechet_distance_on.__name__ = f"frechet_distance on {label}"
    return frechet_distance_on
