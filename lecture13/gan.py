"""Generative adversarial networks (Goodfellow et al. 2014) and DCGAN (Radford et al. 2016).

A generator G maps noise z ~ N(0, I) to a sample; a discriminator D maps a sample to the
probability that it is real. They play the minimax game

    min_G max_D  V(D, G) = E_x[log D(x)] + E_z[log(1 − D(G(z)))].

D outputs a *logit* l, with D(x) = σ(l). Every loss is written in terms of logits, with

    log σ(l) = −softplus(−l)        log(1 − σ(l)) = −softplus(l),

which never takes the log of a probability that has rounded to 0 or 1.

Training alternates k steps of gradient ascent on V for D (with G's samples *detached*, so
D's step does not push gradients into G) and one step for G (which does not change D).
Everything trains through :func:`lecture13.training.train` with the ``step_fn`` made by
:func:`make_step`.
"""
from __future__ import annotations

import copy
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import register_model
from .data import loader, tensors
from .interface import GenerativeModel
from .recipes import Recipe, register_recipe
from .training import History, UntilDeadline, deadline_after, train


# --------------------------------------------------------------------------- losses
def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's loss, the negative of its objective: −E[log D(x)] − E[log(1 − D(G(z)))].

    −log σ(l_real) = softplus(−l_real);  −log(1 − σ(l_fake)) = softplus(l_fake).
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """The minimax generator loss E[log(1 − D(G(z)))] = −E[softplus(l_fake)], to be *minimised*.

    Its gradient with respect to the logit is −σ(l): it vanishes when D confidently rejects
    the samples (D(G(z)) → 0), which is exactly the start of training.
    """
    return -F.softplus(fake_logits).mean()


def generator_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss −E[log D(G(z))] = E[softplus(−l_fake)].

    Same fixed point as the minimax loss, but its gradient −(1 − σ(l)) → −1 when D(G(z)) → 0.
    """
    return F.softplus(-fake_logits).mean()


GENERATOR_LOSSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "saturating": generator_loss_saturating,
    "nonsaturating": generator_loss_nonsaturating,
}


def generator_loss_fn(name_or_fn: str | Callable) -> Callable[[torch.Tensor], torch.Tensor]:
    if callable(name_or_fn):
        return name_or_fn
    if name_or_fn not in GENERATOR_LOSSES:
        raise ValueError(f"unknown generator loss {name_or_fn!r}; choose one of {sorted(GENERATOR_LOSSES)}")
    return GENERATOR_LOSSES[name_or_fn]


def optimal_discriminator(p_data: torch.Tensor, p_g: torch.Tensor) -> torch.Tensor:
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)) (Goodfellow et al. 2014, Proposition 1)."""
    return p_data / (p_data + p_g)


def optimal_discriminator_from_logs(log_p_data: torch.Tensor, log_p_g: torch.Tensor) -> torch.Tensor:
    """D*(x) from the two log-densities: σ(log p_data − log p_g), finite however small both densities
    are (in many dimensions a density is e^−800: its exp is 0 and the ratio of the densities 0/0)."""
    return torch.sigmoid(log_p_data - log_p_g)


# --------------------------------------------------------------------------- toy models
def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with LeakyReLU(0.2) between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """G(z): noise (N, z_dim) → points (N, data_dim)."""

    def __init__(self, z_dim: int = 2, data_dim: int = 2, hidden: int = 64, depth: int = 2):
        super().__init__()
        self.z_dim = z_dim
        self.net = mlp([z_dim] + [hidden] * depth + [data_dim])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """D's logit: points (N, data_dim) → (N,)."""

    def __init__(self, data_dim: int = 2, hidden: int = 64, depth: int = 2):
        super().__init__()
        self.net = mlp([data_dim] + [hidden] * depth + [1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class GANBase(GenerativeModel):
    """A generator and a discriminator kept together (one checkpoint, one ``train`` call)."""

    family = "implicit (no density)"
    likelihood_kind = "none"   # G defines p_g only through sampling: there is no density to evaluate
    generator: nn.Module
    discriminator: nn.Module

    @property
    def z_dim(self) -> int:
        return self.generator.z_dim

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples of G: after training, the discriminator is not needed any more."""
        device = next(self.generator.parameters()).device
        z = torch.randn(n, self.z_dim, generator=generator).to(device)
        return self.generator(z)

    # the interface (lecture13.interface): samples and a latent space, no likelihood
    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n samples mapped from G's tanh range [−1, 1] to [0, 1]."""
        self.eval()
        return signed_to_unit(self.sample(n, generator))

    def latent_description(self) -> str:
        return f"{self.z_dim}-d, no encoder"

    @torch.no_grad()
    def interpolation(self, steps: int, seed: int = 0, pair: torch.Tensor | None = None) -> torch.Tensor:
        """G on the line between two random codes z_0, z_1 ~ N(0, I) (a GAN has no encoder; ``pair``
        is ignored)."""
        self.eval()
        z = torch.randn(2, self.z_dim, generator=torch.Generator().manual_seed(seed))
        return signed_to_unit(self.generator(interpolate(z[0], z[1], steps)))


@register_model
class ToyGAN(GANBase):
    """MLP generator and discriminator for 1-D or 2-D toy data."""

    def __init__(self, data_dim: int = 2, z_dim: int = 2, hidden: int = 64, depth: int = 2):
        super().__init__()
        self.config = {"data_dim": data_dim, "z_dim": z_dim, "hidden": hidden, "depth": depth}
        self.generator = MLPGenerator(z_dim, data_dim, hidden, depth)
        self.discriminator = MLPDiscriminator(data_dim, hidden, depth)


# --------------------------------------------------------------------------- DCGAN
def generator_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Double the spatial size: ConvTranspose2d(4, stride 2, padding 1, no bias) → BatchNorm2d → ReLU.

    A learned upsampling instead of a fixed one (DCGAN guideline 1); batch norm steadies
    training (guideline 2); ReLU inside G (guideline 4).
    """
    return nn.Sequential(nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())


def discriminator_block(in_channels: int, out_channels: int, batch_norm: bool = True) -> nn.Sequential:
    """Halve the spatial size: Conv2d(4, stride 2, padding 1) → [BatchNorm2d] → LeakyReLU(0.2).

    A strided convolution instead of pooling (guideline 1); LeakyReLU in D (guideline 5).
    """
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


def build_discriminator(width: int = 32) -> nn.Sequential:
    """DCGAN's discriminator as one ``nn.Sequential`` of torch layers: (N, 1, 28, 28) → (N, 1) logits.

    The layers of :class:`DCGANDiscriminator` (1×28×28 → w×14×14 → 2w×7×7 → one logit): strided
    convolutions, no pooling, batch norm except on the input layer, LeakyReLU(0.2), one linear layer
    to the logit. (Notebook 05's exercise; DCGANDiscriminator returns (N,) instead of (N, 1).)
    """
    return nn.Sequential(discriminator_block(1, width, batch_norm=False),     # 28 → 14
                         discriminator_block(width, 2 * width),                # 14 → 7
                         nn.Flatten(), nn.Linear(2 * width * 7 * 7, 1))


class DCGANGenerator(nn.Module):
    """z (N, z_dim) → project to 2w×7×7 → 2w×7×7 → w×14×14 → 1×28×28 in [−1, 1] (tanh)."""

    def __init__(self, z_dim: int = 64, width: int = 32):
        super().__init__()
        self.z_dim, self.width = z_dim, width
        self.project = nn.Sequential(nn.Linear(z_dim, 4 * width * 7 * 7, bias=False),
                                     nn.BatchNorm1d(4 * width * 7 * 7), nn.ReLU())
        self.blocks = nn.Sequential(generator_block(4 * width, 2 * width),      # 7 → 14
                                    nn.ConvTranspose2d(2 * width, 1, 4, stride=2, padding=1))  # 14 → 28
        # No batch norm on G's output layer (guideline 2); tanh output (guideline 4).

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"G expects noise of shape (N, {self.z_dim}), got {tuple(z.shape)}")
        h = self.project(z).view(-1, 4 * self.width, 7, 7)
        return torch.tanh(self.blocks(h))


class DCGANDiscriminator(nn.Module):
    """x (N, 1, 28, 28) in [−1, 1] → w×14×14 → 2w×7×7 → one logit per image (N,)."""

    def __init__(self, width: int = 32):
        super().__init__()
        # No batch norm on D's input layer (guideline 2).
        self.blocks = nn.Sequential(discriminator_block(1, width, batch_norm=False),   # 28 → 14
                                    discriminator_block(width, 2 * width))              # 14 → 7
        self.logit = nn.Linear(2 * width * 7 * 7, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"D expects images of shape (N, 1, 28, 28), got {tuple(x.shape)}")
        return self.logit(self.blocks(x).flatten(1)).squeeze(1)


@register_model
class DCGAN(GANBase):
    """The convolutional GAN for 28×28 Fashion-MNIST images in [−1, 1]."""

    def __init__(self, z_dim: int = 64, width: int = 32, d_width: int | None = None):
        super().__init__()
        # d_width: D's own width. At width 32 D had 36.6k parameters against G's 546k and lost every
        # round early; d_width = 64 gives D as many multiply-adds per image as G (6.4M each) and 139k
        # parameters (G's extra 401k sit in its cheap linear projection from z).
        d_width = width if d_width is None else d_width
        self.config = {"z_dim": z_dim, "width": width, "d_width": d_width}
        self.generator = DCGANGenerator(z_dim, width)
        self.discriminator = DCGANDiscriminator(d_width)
        self.apply(dcgan_init)


@torch.no_grad()
def multiply_adds(net: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of one forward pass of ``net`` on one input ``x`` (batch of 1), summed over its
    Linear, Conv2d and ConvTranspose2d layers: the compute a network spends per image (parameters
    alone mislead: G's linear projection from z holds most of its weights but little of its work)."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Linear):
            total += module.in_features * module.out_features
        elif isinstance(module, nn.ConvTranspose2d):      # each input value is spread over out_channels × k × k outputs
            total += inputs[0][0].numel() * module.out_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, nn.Conv2d):               # each output value sums in_channels × k × k products
            total += output[0].numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]

    handles = [m.register_forward_hook(count) for m in net.modules()
               if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    was_training = net.training
    try:
        net.eval()
        net(x)
    finally:
        net.train(was_training)
        for h in handles:
            h.remove()
    return total


def dcgan_init(module: nn.Module) -> None:
    """Weights ~ N(0, 0.02) (the DCGAN paper); batch-norm scales ~ N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------- latent space
def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """Linear interpolation: ``steps`` points z_t = (1 − t) z0 + t z1, t = 0 … 1, shape (steps, z_dim)."""
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device).unsqueeze(1)
    return (1 - t) * z0.reshape(1, -1) + t * z1.reshape(1, -1)


# --------------------------------------------------------------------------- training
def gan_iteration(G: nn.Module, D: nn.Module, opt_d: torch.optim.Optimizer, opt_g: torch.optim.Optimizer,
                  real: torch.Tensor, k: int = 1,
                  generator_loss: Callable[[torch.Tensor], torch.Tensor] = generator_loss_nonsaturating) -> dict[str, float]:
    """One iteration of Algorithm 1 (Goodfellow et al. 2014) on a batch of k·m real samples.

    for each of the k minibatches x of m real samples:      (the discriminator's k steps)
        z ~ N(0, I);  x̃ = G(z), detached (D's step must not send gradients into G)
        descend  −E[log D(x)] − E[log(1 − D(x̃))]  for D's parameters only
    z ~ N(0, I)                                            (the generator's one step)
    descend  generator_loss(D(G(z)))  for G's parameters only (opt_g holds only G's)
    """
    if len(real) < k:
        raise ValueError(f"a batch of {len(real)} real samples cannot be split into k={k} minibatches")
    d_losses = []
    for x in real.tensor_split(k):
        z = torch.randn(len(x), G.z_dim, device=real.device)
        fake = G(z).detach()
        loss_d = discriminator_loss(D(x), D(fake))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        d_losses.append(float(loss_d.detach()))
    z = torch.randn(len(real) // k, G.z_dim, device=real.device)
    fake_logits = D(G(z))
    loss_g = generator_loss(fake_logits)
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    grad_g = torch.sqrt(sum(p.grad.pow(2).sum() for p in G.parameters() if p.grad is not None))
    return {"loss_d": sum(d_losses) / k, "loss_g": float(loss_g.detach()),
            "d_fake": float(torch.sigmoid(fake_logits.detach()).mean()), "grad_g": float(grad_g)}


def make_optimizers(gan: GANBase, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
                    optimizer: str = "adam"):
    """One optimizer for D and one for G, each over its own network's parameters only:
    Adam (DCGAN's choice, β1 = 0.5) or plain SGD (the original paper's kind of update)."""
    if optimizer == "adam":
        make = lambda params: torch.optim.Adam(params, lr=lr, betas=betas)  # noqa: E731
    elif optimizer == "sgd":
        make = lambda params: torch.optim.SGD(params, lr=lr)  # noqa: E731
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    return make(gan.discriminator.parameters()), make(gan.generator.parameters())


def make_step(gan: GANBase, opt_d: torch.optim.Optimizer, opt_g: torch.optim.Optimizer, k: int = 1,
              generator_loss: str | Callable = "nonsaturating") -> Callable[[torch.Tensor], dict[str, float]]:
    """A ``step_fn`` for :func:`lecture13.training.train`: each batch of k·m samples is one
    :func:`gan_iteration`."""
    loss = generator_loss_fn(generator_loss)

    def step(real: torch.Tensor) -> dict[str, float]:
        return gan_iteration(gan.generator, gan.discriminator, opt_d, opt_g, real, k, loss)

    return step


def fit_gan(gan: GANBase, data, k: int = 1, generator_loss: str | Callable = "nonsaturating", lr: float = 2e-4,
            betas: tuple[float, float] = (0.5, 0.999), optimizer: str = "adam", **train_kwargs) -> History:
    """Train ``gan`` on ``data`` (batches of k·m real samples) with :func:`lecture13.training.train`."""
    opt_d, opt_g = make_optimizers(gan, lr, betas, optimizer)
    return train(gan, data, step_fn=make_step(gan, opt_d, opt_g, k, generator_loss), **train_kwargs)


class GeneratorDistribution:
    """A generator seen as a fixed distribution: ``.sample(n, generator)`` draws G(z), detached."""

    def __init__(self, G: nn.Module):
        self.G = G

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.G(torch.randn(n, self.G.z_dim, generator=generator))


def fit_discriminator(D: nn.Module, data_distribution, generator_distribution, steps: int = 1000,
                      batch_size: int = 256, lr: float = 1e-3, seed: int = 0, progress: bool = False,
                      loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = discriminator_loss) -> History:
    """Train D alone against a *fixed* generator (any distribution with ``.sample(n, generator)``),
    descending the discriminator loss; at the optimum D(x) = p_data(x) / (p_data(x) + p_g(x))."""
    real = toy_batches(data_distribution, batch_size, steps, seed)
    fake = toy_batches(generator_distribution, batch_size, steps, seed + 1)

    def loss(model: nn.Module, batch) -> torch.Tensor:
        x, x_fake = batch
        return loss_fn(model(x), model(x_fake))

    return train(D, list(zip(real, fake)), loss, lr=lr, seed=seed, progress=progress, desc="D vs fixed G")


class ToyStream:
    """Fresh batches of a toy distribution: ``batches`` per pass (an "epoch"), seeded once."""

    def __init__(self, distribution, batch_size: int, batches: int, seed: int = 0):
        self.distribution, self.batch_size, self.batches = distribution, batch_size, batches
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        for _ in range(self.batches):
            yield self.distribution.sample(self.batch_size, generator=self.generator)


def train_on_mixture(mixture, generator_loss: str = "nonsaturating", k: int | str = 1, iterations: int = 1200,
                     every: int = 200, batch_size: int = 64, iteration: Callable = None, seed: int = 0,
                     well_share: float = 0.25, samples: int = 1000, progress: bool = True):
    """Train a :class:`ToyGAN` on a 2-D mixture with known modes and measure it every ``every`` iterations.

    ``k="frozen"`` gives D a 300-step head start against the initial G and then freezes it (learning
    rate 0): G's best response to a fixed D is to send every z to D's favourite point (collapse).
    ``iteration`` is the training iteration to use (default :func:`gan_iteration`; a notebook passes
    the student's). Returns ``(model, history, snapshots)``: ``history.epochs`` holds, after each
    block of ``every`` iterations, the modes touched (≥ 1 good sample), the modes *well* covered
    (≥ ``well_share`` of a fair share of the samples), the high-quality fraction and the spread
    (mean distance between samples); ``snapshots`` the samples themselves.
    """
    from .toy import mode_coverage

    iteration = iteration or gan_iteration
    train_seed = seed
    torch.manual_seed(seed)
    model = ToyGAN(data_dim=2, z_dim=2, hidden=64, depth=2)
    opt_d, opt_g = make_optimizers(model, lr=1e-3, betas=(0.5, 0.999))
    label = "D frozen after a 300-step head start" if k == "frozen" else f"{generator_loss}, k={k}"
    if k == "frozen":
        fit_discriminator(model.discriminator, mixture, GeneratorDistribution(model.generator),
                          steps=300, batch_size=batch_size, lr=1e-3, seed=seed)
        opt_d, k, train_seed = torch.optim.SGD(model.discriminator.parameters(), lr=0.0), 1, None
    loss = generator_loss_fn(generator_loss)
    well = max(1, int(well_share * samples / len(mixture.centres)))
    snapshots: list[torch.Tensor] = []

    def step(real: torch.Tensor) -> dict[str, float]:
        return iteration(model.generator, model.discriminator, opt_d, opt_g, real, k, loss)

    def measure(m: ToyGAN) -> dict[str, float]:
        x = m.sample(samples, torch.Generator().manual_seed(seed + 1))
        modes, quality = mode_coverage(x, mixture)
        snapshots.append(x)
        return {"modes": modes, "well_covered": mode_coverage(x, mixture, min_count=well)[0],
                "quality": quality, "spread": float(torch.pdist(x[:300]).mean())}

    history = train(model, ToyStream(mixture, batch_size * k, every, seed=seed), step_fn=step,
                    epochs=iterations // every, eval_fn=measure, seed=train_seed, progress=progress,
                    desc=label)
    return model, history, snapshots


def toy_batches(distribution, batch_size: int, steps: int, seed: int = 0) -> list[torch.Tensor]:
    """``steps`` batches of ``batch_size`` samples of a toy distribution (anything with ``.sample(n, generator)``)."""
    g = torch.Generator().manual_seed(seed)
    return [distribution.sample(batch_size, generator=g) for _ in range(steps)]


# --------------------------------------------------------------------------- recipe
def signed_to_unit(x: torch.Tensor) -> torch.Tensor:
    """[−1, 1] (tanh) → [0, 1]."""
    return ((x + 1) / 2).clamp(0, 1)


def dcgan_samples(model: DCGAN, n: int, seed: int = 0) -> torch.Tensor:
    """n samples in [0, 1] drawn with a fixed seed (what the recorded metrics are computed on)."""
    model.eval()
    return signed_to_unit(model.sample(n, torch.Generator().manual_seed(seed)))


def quality_report(model: DCGAN, subset: str = "embedded") -> dict[str, float]:
    """The course's sample-quality protocol (:mod:`lecture13.metrics`) for a DCGAN: its 1,000 samples
    of seed 0 against the test images of ``subset`` (the embedded 2,000, or the full 10,000): the
    Fréchet distance in the classifier's features and the fraction the classifier is > 90 % sure of."""
    from .metrics import QUALITY_SAMPLES, image_features, protocol_scores

    test, _ = tensors("test", "unit", subset=subset)
    scores = protocol_scores(dcgan_samples(model, QUALITY_SAMPLES, seed=0), image_features(test))
    return {"frechet_distance": scores["frechet"], "confident": scores["confident"],
            "samples": QUALITY_SAMPLES, "test_images": len(test)}


def _fit(model: DCGAN, options: dict) -> History:
    """Adam(2e-4, β1=0.5) for both players, one epoch per ``train`` call so that a time budget
    (``minutes``) can end the run after any epoch; optionally a snapshot after each epoch."""
    k = int(options.get("k", 1))
    data = loader("train", "signed", batch_size=options["batch_size"] * k, seed=options["seed"],
                  subset=options.get("subset", "embedded"))
    deadline = deadline_after(options.get("minutes"))
    snapshot = options.get("snapshot")
    opt_d, opt_g = make_optimizers(model, options["lr"], tuple(options.get("betas", (0.5, 0.999))))
    step = make_step(model, opt_d, opt_g, k, options.get("generator_loss", "nonsaturating"))

    def after_epoch(gan: DCGAN) -> dict[str, float]:
        from .checkpoints import available, save_checkpoint

        if snapshot:
            save_checkpoint(gan, snapshot, recipe="dcgan", note="snapshot after an epoch, not shipped")
        if "classifier" not in available():
            return {}
        was_training = gan.training
        report = quality_report(gan.to("cpu"), "embedded")
        gan.train(was_training)
        return {"frechet_distance": report["frechet_distance"]}

    history = History()
    for epoch in range(options["epochs"]):
        remaining = None if options.get("max_steps") is None else options["max_steps"] - len(history.steps)
        if (remaining is not None and remaining <= 0) or time.monotonic() > deadline:
            break
        history.extend(train(model, UntilDeadline(data, deadline), step_fn=step, epochs=1, max_steps=remaining,
                             device=options.get("device", "cpu"), seed=options["seed"] if epoch == 0 else None,
                             progress=options.get("progress", True), desc=f"DCGAN epoch {epoch + 1}",
                             eval_fn=after_epoch))
        print(f"epoch {epoch + 1}: {len(history.steps)} steps, {history.seconds:.0f} s, {history.epochs[-1]}", flush=True)
    return history


def _evaluate(model: DCGAN, subset: str) -> dict[str, float]:
    return quality_report(model.to("cpu"), subset)


register_recipe(Recipe(
    name="dcgan",
    description="DCGAN on Fashion-MNIST in [-1, 1], D twice G's width, non-saturating loss, k=1; scored by the Fréchet distance",
    build=lambda **kw: DCGAN(**{"d_width": 64, **kw}),
    fit=_fit,
    evaluate=_evaluate,
    sample=dcgan_samples,
    defaults={"epochs": 20, "batch_size": 64, "lr": 2e-4, "k": 1, "generator_loss": "nonsaturating", "minutes": None},
))

from . import classifier  # noqa: E402,F401  (registers the classifier's recipe and model)
