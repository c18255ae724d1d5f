"""Toy distributions with known densities and known modes, for the VAE and GAN notebooks.

* :class:`Mixture1D`  a 1-D mixture of Gaussians whose density is exact, so a discriminator
  can be compared with the optimal D*(x) = p_data(x) / (p_data(x) + p_g(x)), and
  :func:`divergences` the KLs and the JSD between densities on a grid.
* :func:`ring_of_gaussians` / :func:`grid_of_gaussians`  2-D mixtures whose mode centres are
  known, so where a generator's samples go can be measured: :func:`mode_shares` (each mode's share
  and the share off every mode), :func:`coverage_from_shares`, :func:`mode_hops`, :func:`spread`.
* Toy GANs by the seed: :class:`ToyGANEnsemble` trains one small MLP GAN per seed side by side
  (each exactly the :class:`lecture13.gan.ToyGAN` of its seed), so that claims about GAN training
  rest on several seeds: :func:`saturation_runs` (1-D, the two generator losses with D ahead),
  :func:`train_ring_gans` and the recorded :func:`ring_sweep` (mode collapse on the ring).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Mixture1D:
    """p(x) = sum_k w_k N(x; mu_k, sigma_k^2)."""

    means: tuple[float, ...] = (-2.0, 2.0)
    stds: tuple[float, ...] = (0.5, 0.5)
    weights: tuple[float, ...] = (0.5, 0.5)

    def __post_init__(self):
        if not (len(self.means) == len(self.stds) == len(self.weights)):
            raise ValueError("means, stds and weights must have the same length")
        if abs(sum(self.weights) - 1.0) > 1e-6 or min(self.weights) < 0:
            raise ValueError(f"weights must be non-negative and sum to 1, got {self.weights}")

    def log_prob(self, x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """log p(x), elementwise, computed with logsumexp over components (in ``dtype``: float64 keeps
        integrals over wide grids exact to ~1e-12, where float32 densities underflow in the tails)."""
        x = torch.as_tensor(x, dtype=dtype).unsqueeze(-1)
        mu, sd, w = (torch.tensor(v, dtype=dtype) for v in (self.means, self.stds, self.weights))
        log_normal = -0.5 * ((x - mu) / sd) ** 2 - torch.log(sd) - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(log_normal + torch.log(w), dim=-1)

    def density(self, x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self.log_prob(x, dtype).exp()

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples of shape (n, 1)."""
        component = torch.multinomial(torch.tensor(self.weights), n, replacement=True, generator=generator)
        mu = torch.tensor(self.means)[component]
        sd = torch.tensor(self.stds)[component]
        return (mu + sd * torch.randn(n, generator=generator)).unsqueeze(1)


@dataclass(frozen=True)
class Mixture2D:
    """An equal-weight mixture of isotropic 2-D Gaussians with known centres."""

    centres: torch.Tensor
    std: float

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        k = torch.randint(len(self.centres), (n,), generator=generator)
        return self.centres[k] + self.std * torch.randn(n, 2, generator=generator)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        d2 = torch.cdist(x, self.centres) ** 2
        log_normal = -0.5 * d2 / self.std ** 2 - math.log(2 * math.pi * self.std ** 2)
        return torch.logsumexp(log_normal, dim=1) - math.log(len(self.centres))


def ring_of_gaussians(modes: int = 8, radius: float = 2.0, std: float = 0.02) -> Mixture2D:
    """``modes`` Gaussians evenly spaced on a circle (the classic mode-collapse benchmark)."""
    angles = torch.arange(modes, dtype=torch.float32) * (2 * math.pi / modes)
    return Mixture2D(torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], dim=1), std)


def grid_of_gaussians(side: int = 5, spacing: float = 1.0, std: float = 0.05) -> Mixture2D:
    """A side x side grid of Gaussians centred on the origin."""
    ticks = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
    return Mixture2D(torch.stack([gx.flatten(), gy.flatten()], dim=1), std)


def mode_coverage(samples: torch.Tensor, mixture: Mixture2D, n_std: float = 3.0,
                  min_count: int | None = None) -> tuple[int, float]:
    """(modes covered, fraction of high-quality samples).

    A sample is high quality when it lies within ``n_std`` standard deviations of its nearest
    centre; a mode is covered when at least ``min_count`` high-quality samples (default: 1% of
    what a uniform share would be, at least 1) fall to it.
    """
    d = torch.cdist(samples.float(), mixture.centres)
    nearest_dist, nearest = d.min(dim=1)
    good = nearest_dist <= n_std * mixture.std
    counts = torch.bincount(nearest[good], minlength=len(mixture.centres))
    if min_count is None:
        min_count = max(1, int(0.01 * len(samples) / len(mixture.centres)))
    return int((counts >= min_count).sum()), float(good.float().mean())


# --------------------------------------------------------------------------- divergences on a grid
def divergences(log_p: torch.Tensor, log_q: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """KL(p‖q), KL(q‖p) and JSD(p‖q) by the trapezoid rule over the last axis of densities given as
    logs on the grid ``x`` (logs, so the tails never underflow; the grid must hold both tails)."""
    log_m = torch.logaddexp(log_p, log_q) - math.log(2)
    p, q = log_p.exp(), log_q.exp()

    def integral(f: torch.Tensor) -> torch.Tensor:
        return torch.trapezoid(f, x, dim=-1)

    return {"kl_pq": integral(p * (log_p - log_q)), "kl_qp": integral(q * (log_q - log_p)),
            "jsd": 0.5 * integral(p * (log_p - log_m)) + 0.5 * integral(q * (log_q - log_m))}


def normal_log_prob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, std²), broadcasting (differentiable in mean and std)."""
    return -0.5 * ((x - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)


# --------------------------------------------------------------------------- measuring mode collapse
def mode_shares(samples: torch.Tensor, mixture: Mixture2D, n_std: float = 3.0) -> torch.Tensor:
    """Where the samples went: each mode's share (within ``n_std`` σ of its centre), then, last, the
    share that lies off every mode. Shape ``(..., modes + 1)`` for samples of shape ``(..., n, 2)``;
    each row sums to 1. Counting *shares* rather than "at least one sample" is what makes a mode
    that holds 2 of 1,000 samples look as empty as it is."""
    return mode_shares_from_centres(samples, mixture.centres, mixture.std, n_std)


def mode_shares_from_centres(samples: torch.Tensor, centres: torch.Tensor, std: float,
                             n_std: float = 3.0) -> torch.Tensor:
    """:func:`mode_shares` with the modes given as plain values: ``centres`` ``(modes, 2)`` and their
    standard deviation ``std`` (the reference of notebook 04's mode-coverage exercise)."""
    d = torch.cdist(samples.float(), centres.float().expand(*samples.shape[:-2], -1, -1))
    nearest_dist, nearest = d.min(dim=-1)
    modes = len(centres)
    nearest = torch.where(nearest_dist <= n_std * float(std), nearest, torch.full_like(nearest, modes))
    counts = F.one_hot(nearest, modes + 1).sum(dim=-2).float()
    return counts / samples.shape[-2]


def coverage_from_shares(shares: torch.Tensor, min_fraction: float = 0.25) -> dict[str, torch.Tensor]:
    """Three numbers per row of :func:`mode_shares`:

    * ``modes``: modes holding at least ``min_fraction`` of a fair share (1/modes) of the samples;
    * ``quality``: the share of samples within 3σ of some mode (1 − the off-mode share);
    * ``effective``: exp(entropy) of the shares among the on-mode samples: 8 for a generator that
      spreads its good samples evenly over 8 modes, 1 for one that puts them all on one mode.
    """
    on_mode = shares[..., :-1]
    fair = 1.0 / on_mode.shape[-1]
    quality = on_mode.sum(-1)
    p = on_mode / quality.clamp_min(1e-12).unsqueeze(-1)
    entropy = -(p * p.clamp_min(1e-12).log()).sum(-1)
    return {"modes": (on_mode >= min_fraction * fair).sum(-1).float(), "quality": quality,
            "effective": torch.where(quality > 0, entropy.exp(), torch.zeros_like(quality))}


def mode_hops(shares: torch.Tensor, held: float = 0.2, left: float = 0.05) -> list[tuple[int, int, int]]:
    """Mode hopping in one run's :func:`mode_shares` over time, ``(measurements, modes + 1)``: every
    ``(from_mode, to_mode, t)`` where mode ``from_mode`` held at least ``held`` of the samples at some
    earlier measurement, and at measurement ``t`` holds less than ``left`` while ``to_mode`` holds at
    least ``held``: the mass has moved, not merely spread over two neighbours."""
    on_mode = shares[:, :-1]
    hops, seen = [], set()
    for t in range(1, len(on_mode)):
        earlier = (on_mode[:t] >= held).any(dim=0)
        for a in torch.nonzero(earlier & (on_mode[t] < left)).flatten().tolist():
            for b in torch.nonzero(on_mode[t] >= held).flatten().tolist():
                if (a, b) not in seen:
                    seen.add((a, b))
                    hops.append((a, b, t))
    return hops


def spread(samples: torch.Tensor) -> torch.Tensor:
    """Mean distance between two different samples, for samples of shape ``(..., n, 2)``: about 2.5 for
    the ring of radius 2, near 0 for a generator that sends every z to almost the same point."""
    n = samples.shape[-2]
    return torch.cdist(samples, samples).sum((-1, -2)) / (n * (n - 1))


# --------------------------------------------------------------------------- many toy GANs at once
class one_thread:
    """Run a block on one CPU thread. The toy GANs' matrices are tiny: a second thread only adds
    waiting (on a busy machine, a lot of it), and one thread makes every run bit-for-bit repeatable."""

    def __enter__(self):
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.threads)


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; the gradient flowing back is multiplied by ``scale``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


class EnsembleMLP(nn.Module):
    """``members`` independent copies of :func:`lecture13.gan.mlp` evaluated in one batched matmul.

    Inputs and outputs keep the sample axis first, ``(n, members, features)``, so code written for a
    single network (``len(x)``, ``x.tensor_split(k)``, a loss that is a mean over the batch) runs on
    the ensemble unchanged.
    """

    def __init__(self, nets: list[nn.Sequential]):
        super().__init__()
        linears = [[m for m in net if isinstance(m, nn.Linear)] for net in nets]
        self.members = len(nets)
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.stack([layers[i].weight.detach().T for layers in linears])) for i in range(len(linears[0]))])
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.stack([layers[i].bias.detach() for layers in linears]).unsqueeze(1))
             for i in range(len(linears[0]))])
        self._layers = list(zip(self.weights, self.biases))   # the same Parameters, without ParameterList lookups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(0, 1)                              # (members, n, features)
        last = len(self._layers) - 1
        for i, (w, b) in enumerate(self._layers):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = F.leaky_relu(h, 0.2)
        return h.transpose(0, 1)


class EnsembleGenerator(nn.Module):
    """Noise ``(n, members · z_dim)`` → points ``(n, members, data_dim)``: each member reads its own slice of z."""

    def __init__(self, nets: list[nn.Sequential], z_dim: int):
        super().__init__()
        self.members, self.member_z_dim = len(nets), z_dim
        self.z_dim = len(nets) * z_dim                      # what torch.randn(m, G.z_dim) must draw
        self.net = EnsembleMLP(nets)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(len(z), self.members, self.member_z_dim))


class EnsembleDiscriminator(nn.Module):
    """Points ``(n, members, data_dim)`` → logits ``(n, members)``: member s judges only member s's points.

    Every loss of the course is a mean over the logits, here over samples *and* members: 1/members of
    each member's own loss. The logits send their gradient back multiplied by ``members``, so each
    member of D, and each member of G upstream of it, receives exactly the gradient it would get
    alone, and SGD or Adam steps each one as if it were alone.
    """

    def __init__(self, nets: list[nn.Sequential]):
        super().__init__()
        self.net = EnsembleMLP(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ScaleGradient.apply(self.net(x).squeeze(-1), self.net.members)


class ToyGANEnsemble(nn.Module):
    """One :class:`lecture13.gan.ToyGAN` per seed, trained side by side at the cost of about one.

    Member s starts from exactly the weights of ``torch.manual_seed(seeds[s]); ToyGAN(...)``. It has a
    ``generator`` and a ``discriminator`` like any GAN of the course, so ``gan.make_optimizers`` and a
    ``gan_iteration`` (the package's or a student's) train it unchanged.
    """

    def __init__(self, seeds: list[int], data_dim: int = 2, z_dim: int = 2, hidden: int = 64, depth: int = 2):
        super().__init__()
        from .gan import ToyGAN

        singles = []
        for seed in seeds:
            torch.manual_seed(seed)
            singles.append(ToyGAN(data_dim=data_dim, z_dim=z_dim, hidden=hidden, depth=depth))
        self.seeds = list(seeds)
        self.generator = EnsembleGenerator([g.generator.net for g in singles], z_dim)
        self.discriminator = EnsembleDiscriminator([g.discriminator.net for g in singles])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples of every member: shape (n, members, data_dim)."""
        return self.generator(torch.randn(n, self.generator.z_dim, generator=generator))


class EnsembleStream:
    """Fresh real batches for every member: ``(batch_size, members, data_dim)``, ``batches`` per pass."""

    def __init__(self, distribution, batch_size: int, members: int, batches: int, seed: int = 0):
        self.distribution, self.batch_size, self.members, self.batches = distribution, batch_size, members, batches
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        for _ in range(self.batches):
            x = self.distribution.sample(self.batch_size * self.members, generator=self.generator)
            yield x.reshape(self.batch_size, self.members, -1)


@dataclass
class RingRuns:
    """What :func:`train_ring_gans` measured: ``shares[t, s]`` is member s's :func:`mode_shares` at
    ``iterations[t]``; ``snapshots[t]`` its samples there, ``(n, members, 2)``; ``history`` the
    training history (losses per step)."""

    setting: dict
    seeds: list[int]
    iterations: list[int]
    shares: torch.Tensor
    snapshots: list[torch.Tensor]
    history: object
    model: ToyGANEnsemble

    def coverage(self, min_fraction: float = 0.25) -> dict[str, torch.Tensor]:
        """:func:`coverage_from_shares` at every measurement, each ``(measurements, seeds)``."""
        return coverage_from_shares(self.shares, min_fraction)


def train_ring_gans(mixture: Mixture2D, seeds: list[int], generator_loss: str = "nonsaturating", k: int = 1,
                    d_steps: int = 6000, every_d_steps: int = 250, batch_size: int = 64, lr: float = 1e-3,
                    optimizer: str = "adam", betas: tuple[float, float] = (0.5, 0.999), hidden: int = 64,
                    z_dim: int = 2, samples: int = 1000, iteration=None, progress: bool = True,
                    desc: str | None = None) -> RingRuns:
    """Train one small MLP GAN per seed on a 2-D mixture with :func:`lecture13.training.train` and record
    every member's :func:`mode_shares` every ``every_d_steps`` discriminator steps.

    The budget is counted in *discriminator* steps: with k D steps per iteration a run has
    ``d_steps / k`` iterations, so settings of k are compared at equal work for D (and G gets k
    times fewer steps: that is what a larger k costs). ``iteration`` defaults to
    :func:`lecture13.gan.gan_iteration`; a notebook passes the student's.
    """
    from . import gan
    from .training import train

    if d_steps % every_d_steps or every_d_steps % k:
        raise ValueError(f"every_d_steps={every_d_steps} must divide d_steps={d_steps} and be a multiple of k={k}")
    iteration = iteration or gan.gan_iteration
    model = ToyGANEnsemble(seeds, z_dim=z_dim, hidden=hidden)
    opt_d, opt_g = gan.make_optimizers(model, lr=lr, betas=betas, optimizer=optimizer)
    loss = gan.generator_loss_fn(generator_loss)
    snapshots: list[torch.Tensor] = []
    probe = torch.Generator().manual_seed(10_000)
    z_eval = torch.randn(samples, model.generator.z_dim, generator=probe)     # the same z at every measurement

    def step(real: torch.Tensor) -> dict[str, float]:
        return iteration(model.generator, model.discriminator, opt_d, opt_g, real, k, loss)

    def measure(m: ToyGANEnsemble) -> dict[str, float]:
        snapshots.append(m.generator(z_eval))
        return {}

    stream = EnsembleStream(mixture, batch_size * k, len(seeds), every_d_steps // k, seed=seeds[0] + 1)
    with one_thread():
        history = train(model, stream, step_fn=step, epochs=d_steps // every_d_steps, eval_fn=measure,
                        seed=seeds[0], progress=progress,
                        desc=desc or f"{generator_loss}, k={k}, {optimizer} lr={lr:g}, {len(seeds)} seeds")
    shares = torch.stack([mode_shares(x.transpose(0, 1), mixture) for x in snapshots])
    setting = {"generator_loss": generator_loss, "k": k, "lr": lr, "optimizer": optimizer, "batch_size": batch_size,
               "hidden": hidden, "z_dim": z_dim}
    return RingRuns(setting, list(seeds), [every_d_steps * (t + 1) for t in range(len(snapshots))], shares,
                    snapshots, history, model)


def per_member_loss(names: list[str]):
    """A generator loss that applies ``names[s]`` (``"saturating"`` or ``"nonsaturating"``) to member
    s's logits, so one ensemble trains both losses side by side. Like every loss of the course it is
    a mean over samples and members (:class:`EnsembleMLP` restores each member's own scale)."""
    from .gan import generator_loss_fn

    losses = [generator_loss_fn(name) for name in names]

    def loss(fake_logits: torch.Tensor) -> torch.Tensor:
        return torch.stack([fn(fake_logits[:, s]) for s, fn in enumerate(losses)]).mean()

    return loss


def member_gradient_norms(module: nn.Module) -> torch.Tensor:
    """‖∂loss/∂θ_s‖ for every member s of an ensemble module, from the gradients its last backward left."""
    return torch.sqrt(sum(p.grad.flatten(1).pow(2).sum(1) for p in module.parameters() if p.grad is not None))


@dataclass
class SaturationRuns:
    """What :func:`saturation_runs` measured, one column per (loss, seed) member: ``d_fake[t]`` is the
    mean D(G(z)) on the batch of G's step t (t = 0: the first, right after D's head start; the last row:
    after training), ``grad_g[t]`` the norm of G's gradient at step t, ``start_means`` /
    ``sample_means`` the mean of each generator's samples before / after training."""

    losses: list[str]
    seeds: list[int]
    d_fake: torch.Tensor
    grad_g: torch.Tensor
    start_means: torch.Tensor
    sample_means: torch.Tensor

    def columns(self, loss: str) -> list[int]:
        return [s for s, name in enumerate(self.losses) if name == loss]


def saturation_runs(data: Mixture1D, seeds: list[int], losses: tuple[str, ...] = ("saturating", "nonsaturating"),
                    head_start: int = 200, iterations: int = 300, batch_size: int = 128, lr: float = 0.05,
                    optimizer: str = "sgd", d_lr: float = 1e-2, hidden: int = 32) -> SaturationRuns:
    """1-D GANs that start where every GAN starts: D, given ``head_start`` Adam steps against the initial
    G, confidently rejects G's samples. Then ``iterations`` of plain SGD (the original paper's update),
    k = 1, with each generator loss, from each seed: member (loss, seed) starts from the same weights
    for both losses, so the two losses are compared on identical starts."""
    from . import gan
    from .training import train

    names = [loss for loss in losses for _ in seeds]
    model = ToyGANEnsemble([s for _ in losses for s in seeds], data_dim=1, z_dim=1, hidden=hidden)
    members = len(names)
    stream = EnsembleStream(data, batch_size, members, head_start, seed=seeds[0])

    def d_loss(D: nn.Module, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            fake = model.generator(torch.randn(len(real), model.generator.z_dim))
        return gan.discriminator_loss(D(real), D(fake))

    with one_thread():
        train(model.discriminator, stream, d_loss, lr=d_lr, seed=seeds[0], progress=False)
    opt_d, opt_g = gan.make_optimizers(model, lr=lr, optimizer=optimizer)
    each_loss, d_fake, grad_g = per_member_loss(names), [], []
    start = model.sample(5000, torch.Generator().manual_seed(0)).mean(0).squeeze(-1)

    def loss(fake_logits: torch.Tensor) -> torch.Tensor:     # G's loss, noting D(G(z)) on G's batch
        d_fake.append(torch.sigmoid(fake_logits.detach()).mean(0))
        return each_loss(fake_logits)

    def step(real: torch.Tensor) -> dict[str, float]:
        logged = gan.gan_iteration(model.generator, model.discriminator, opt_d, opt_g, real, 1, loss)
        grad_g.append(member_gradient_norms(model.generator))
        return logged

    with one_thread():
        train(model, EnsembleStream(data, batch_size, members, iterations, seed=seeds[0] + 1), step_fn=step,
              seed=seeds[0], progress=False)
    with torch.no_grad():
        d_fake.append(torch.sigmoid(model.discriminator(model.generator(torch.randn(batch_size, members)))).mean(0))
    means = model.sample(5000, torch.Generator().manual_seed(0)).mean(0).squeeze(-1)
    return SaturationRuns(names, list(seeds), torch.stack(d_fake), torch.stack(grad_g), start, means)


# --------------------------------------------------------------------------- the recorded ring sweep
RING = {"modes": 8, "radius": 2.0, "std": 0.05}
RING_SEEDS = [0, 1, 2, 3, 4]
RING_D_STEPS, RING_EVERY = 4000, 250
RING_SETTINGS: dict[str, dict] = {
    "non-saturating, Adam, k=1": {"generator_loss": "nonsaturating", "optimizer": "adam", "lr": 1e-3, "k": 1},
    "saturating, Adam, k=1": {"generator_loss": "saturating", "optimizer": "adam", "lr": 1e-3, "k": 1},
    "non-saturating, Adam, k=5": {"generator_loss": "nonsaturating", "optimizer": "adam", "lr": 1e-3, "k": 5},
    "saturating, SGD, k=1": {"generator_loss": "saturating", "optimizer": "sgd", "lr": 0.1, "k": 1},
    "non-saturating, SGD, k=1": {"generator_loss": "nonsaturating", "optimizer": "sgd", "lr": 0.1, "k": 1},
}
RING_SWEEP_PATH = Path(__file__).parent / "data" / "ring_sweep.npz"
RING_SNAPSHOT_POINTS = 300


def ring_sweep(settings: dict[str, dict] | None = None, seeds: list[int] | None = None, d_steps: int = RING_D_STEPS,
               every_d_steps: int = RING_EVERY, progress: bool = False) -> dict[str, RingRuns]:
    """Every setting of :data:`RING_SETTINGS` (or ``settings``) trained from every seed on the ring, at the
    same number of discriminator steps: the experiment behind notebook 04's table of mode collapse."""
    ring = ring_of_gaussians(**RING)
    settings = RING_SETTINGS if settings is None else settings
    return {name: train_ring_gans(ring, seeds or RING_SEEDS, d_steps=d_steps, every_d_steps=every_d_steps,
                                  progress=progress, desc=name, **kw) for name, kw in settings.items()}


def record_ring_sweep(path: Path = RING_SWEEP_PATH, d_steps: int = RING_D_STEPS, every_d_steps: int = RING_EVERY,
                      progress: bool = True) -> dict[str, RingRuns]:
    """Run :func:`ring_sweep` and store what notebook 04 shows: every member's mode counts at every
    measurement (exact integers), at four points of training the first 300 of its samples, and every
    trained generator (4.4k numbers each), so the notebook can sample and probe them.

        python -c "from lecture13 import toy; toy.record_ring_sweep()"
    """
    import json

    import numpy as np

    started = time.perf_counter()
    runs = ring_sweep(d_steps=d_steps, every_d_steps=every_d_steps, progress=progress)
    samples = next(iter(runs.values())).snapshots[0].shape[0]
    counts = np.stack([np.rint(r.shares.numpy() * samples).astype(np.int16) for r in runs.values()])
    at = [len(next(iter(runs.values())).iterations) * q // 4 - 1 for q in (1, 2, 3, 4)]
    snapshots = np.stack([np.stack([r.snapshots[t][:RING_SNAPSHOT_POINTS].transpose(0, 1).numpy() for t in at])
                          for r in runs.values()])                        # (settings, 4, seeds, points, 2)
    generators = {f"generator_{i}_{name}": value.numpy() for i, r in enumerate(runs.values())
                  for name, value in r.model.generator.state_dict().items()}
    meta = {"settings": list(runs), "options": list(RING_SETTINGS.values()), "seeds": RING_SEEDS, "ring": RING,
            "d_steps": d_steps, "every_d_steps": every_d_steps, "samples": samples, "snapshot_index": at,
            "command": 'python -c "from lecture13 import toy; toy.record_ring_sweep()"',
            "torch": torch.__version__, "seconds": round(time.perf_counter() - started, 1)}
    np.savez_compressed(path, counts=counts, snapshots=snapshots.astype(np.float16), meta=json.dumps(meta), **generators)
    return runs


@dataclass
class RecordedRingSweep:
    """The stored :func:`record_ring_sweep`: ``counts[setting][t, s]`` the samples (of ``samples``) each
    mode held at ``iterations[t]`` (last: off every mode), ``snapshots[setting][j, s]`` samples at
    ``iterations[snapshot_index[j]]``."""

    meta: dict
    counts: dict[str, torch.Tensor]
    snapshots: dict[str, torch.Tensor]
    generators: dict[str, dict[str, torch.Tensor]]

    @property
    def iterations(self) -> list[int]:
        every = self.meta["every_d_steps"]
        return [every * (t + 1) for t in range(self.meta["d_steps"] // every)]

    def shares(self, setting: str) -> torch.Tensor:
        return self.counts[setting].float() / self.meta["samples"]

    def coverage(self, setting: str, min_fraction: float = 0.25) -> dict[str, torch.Tensor]:
        return coverage_from_shares(self.shares(setting), min_fraction)

    def generator(self, setting: str, seed: int) -> nn.Module:
        """The trained generator of ``setting`` from ``seed``, as a plain :class:`lecture13.gan.MLPGenerator`."""
        from .gan import MLPGenerator

        s = self.meta["seeds"].index(seed)
        state = self.generators[setting]
        layers = len([k for k in state if k.startswith("net.weights.")])
        G = MLPGenerator(z_dim=2, data_dim=2, hidden=state["net.weights.0"].shape[-1], depth=layers - 1)
        linears = [m for m in G.net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for i, linear in enumerate(linears):
                linear.weight.copy_(state[f"net.weights.{i}"][s].T)
                linear.bias.copy_(state[f"net.biases.{i}"][s, 0])
        return G.eval()


def load_ring_sweep(path: Path = RING_SWEEP_PATH) -> RecordedRingSweep:
    """The recorded ring sweep (see :func:`record_ring_sweep`; ``tests/test_notebook04_claims.py``
    re-runs its first measurements and checks they match)."""
    import json

    import numpy as np

    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
        counts, snapshots = torch.from_numpy(f["counts"].astype(np.int64)), torch.from_numpy(f["snapshots"].astype(np.float32))
        names = meta["settings"]
        generators = {name: {key[len(f"generator_{i}_"):]: torch.from_numpy(f[key]) for key in f.files
                             if key.startswith(f"generator_{i}_")} for i, name in enumerate(names)}
    return RecordedRingSweep(meta, dict(zip(names, counts)), dict(zip(names, snapshots)), generators)
