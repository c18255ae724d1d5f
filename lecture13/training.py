"""One training loop for every model in the course.

Every model, from the factorized Bernoulli to the DCGAN, is trained by :func:`train`. It
knows nothing about the model: it moves batches to the device, calls either

* ``loss_fn(model, batch)``, which returns a scalar loss (or a dict with a ``"loss"`` entry and
  other parts to log, e.g. the reconstruction and KL terms of a VAE), followed by the usual
  zero_grad / backward / step; or
* ``step_fn(batch)``, which does a whole update itself and returns the numbers to log (a GAN's
  k discriminator steps and one generator step),

and records a :class:`History` for loss curves, with a ``tqdm`` progress bar.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np
import torch
from torch import nn

LossOutput = torch.Tensor | Mapping[str, torch.Tensor]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA); return a CPU generator with that seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


COURSE_THREADS = 2  # the 2-core laptop every notebook's run time is measured on


def set_threads(default: int = COURSE_THREADS) -> int:
    """Fix torch's CPU threads so timings are reproducible: ``$OMP_NUM_THREADS`` when it is set
    (the test suite gives each of its parallel workers one), else ``default``, at most the cores."""
    import os

    wanted = os.environ.get("OMP_NUM_THREADS", "")
    threads = int(wanted) if wanted.isdigit() and int(wanted) > 0 else default
    threads = max(1, min(threads, os.cpu_count() or 1))
    torch.set_num_threads(threads)
    return threads


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple's MPS, then the CPU; anything else is taken as given."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def to_device(batch, device: torch.device):
    """Move a tensor, or a tuple/list/dict of tensors, to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def deadline_after(minutes: float | None) -> float:
    """A ``time.monotonic()`` deadline ``minutes`` from now (never, for None)."""
    return math.inf if minutes is None else time.monotonic() + 60 * float(minutes)


class UntilDeadline:
    """Iterate over ``data`` (epoch after epoch, when reused) but stop as soon as the wall clock
    passes ``deadline``: a time budget for long CPU runs. Training is deterministic step by step,
    so a run cut off after N steps is the same as ``max_steps=N``; the history records N."""

    def __init__(self, data, deadline: float):
        self.data, self.deadline = data, deadline

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        for batch in self.data:
            if time.monotonic() > self.deadline:
                return
            yield batch


@dataclass
class History:
    """What a training run logged: one dict per step, one per epoch, and the wall time."""

    steps: list[dict[str, float]] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def series(self, key: str = "loss", per: str = "step") -> list[float]:
        rows = self.steps if per == "step" else self.epochs
        return [row[key] for row in rows if key in row]

    def keys(self) -> list[str]:
        return sorted({k for row in self.steps for k in row})

    def extend(self, other: "History") -> "History":
        """Append another run (a continued training) to this one."""
        self.steps += other.steps
        self.epochs += other.epochs
        self.seconds += other.seconds
        return self


def _split_loss(output: LossOutput) -> tuple[torch.Tensor, dict[str, float]]:
    if isinstance(output, torch.Tensor):
        loss, parts = output, {}
    elif isinstance(output, Mapping) and "loss" in output:
        loss = output["loss"]
        parts = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
                 for k, v in output.items() if k != "loss"}
    else:
        raise TypeError("loss_fn must return a scalar tensor or a dict with a 'loss' entry, "
                        f"got {type(output).__name__}")
    if loss.dim() != 0:
        raise ValueError(f"loss_fn must return a scalar (0-dim) loss, got shape {tuple(loss.shape)}; "
                         "reduce it with .mean() over the batch")
    if not torch.isfinite(loss):
        raise FloatingPointError(f"the loss became {loss.item()}; lower the learning rate or check the model")
    return loss, {"loss": float(loss.detach()), **parts}


PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def autocast(model: nn.Module, precision: str = "fp32"):
    """A context in which the forward pass runs in ``precision``.

    "bf16" runs matrix products and convolutions in bfloat16 (weights, gradients and the
    optimizer stay float32; losses such as BCE are autocast back to float32). On a CPU with
    AVX-512 BF16 this trains the convolutional models 1.5–1.9× faster (benchmarks/results.md);
    evaluation and the recorded metrics always run in float32.
    """
    check_precision(precision)
    device_type = next(model.parameters()).device.type
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16")


def gradient_step(model: nn.Module, loss_fn: Callable[[nn.Module, object], LossOutput],
                  optimizer: torch.optim.Optimizer, grad_clip: float | None = None,
                  precision: str = "fp32") -> Callable:
    """The ordinary update, as a step function: loss (in ``precision``), backward, (clip), step."""
    check_precision(precision)

    def step(batch) -> dict[str, float]:
        optimizer.zero_grad(set_to_none=True)
        with autocast(model, precision):
            output = loss_fn(model, batch)
        loss, logged = _split_loss(output)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        return logged

    return step


def train(model: nn.Module, data: Iterable, loss_fn: Callable[[nn.Module, object], LossOutput] | None = None, *,
          step_fn: Callable[[object], Mapping[str, float]] | None = None,
          optimizer: torch.optim.Optimizer | None = None, lr: float = 1e-3,
          epochs: int = 1, max_steps: int | None = None, device: str | torch.device | None = "auto",
          seed: int | None = 0, grad_clip: float | None = None, precision: str = "fp32",
          eval_fn: Callable[[nn.Module], Mapping[str, float]] | None = None,
          progress: bool = True, desc: str | None = None) -> History:
    """Train ``model`` on ``data`` (any iterable of batches, typically a DataLoader).

    Give exactly one of ``loss_fn`` (the optimizer defaults to Adam with ``lr``) or
    ``step_fn``. ``max_steps`` stops early (for short runs in notebooks); ``eval_fn(model)``
    runs after each epoch (in eval mode, without gradients) and its numbers go into
    ``history.epochs``. ``seed`` seeds everything first, so a notebook's run is repeatable.
    ``precision="bf16"`` runs the forward pass of ``loss_fn`` under :func:`autocast`.
    """
    if (loss_fn is None) == (step_fn is None):
        raise ValueError("give exactly one of loss_fn (a loss to minimise) or step_fn (a whole update)")
    if step_fn is not None and precision != "fp32":
        raise ValueError("precision applies to loss_fn; a step_fn runs its own forward pass: build it with "
                         "gradient_step(..., precision=...) or use lecture13.training.autocast inside it")
    if seed is not None:
        seed_everything(seed)
    device = pick_device(device)
    model.to(device)
    if step_fn is None:
        optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
        step_fn = gradient_step(model, loss_fn, optimizer, grad_clip, precision)
    try:
        total = epochs * len(data)  # type: ignore[arg-type]
    except TypeError:
        total = None
    if max_steps is not None:
        total = min(total, max_steps) if total is not None else max_steps

    from tqdm.auto import tqdm

    history, started, step = History(), time.perf_counter(), 0
    bar = tqdm(total=total, desc=desc or type(model).__name__, disable=not progress, leave=True)
    try:
        for epoch in range(epochs):
            model.train()
            sums: dict[str, float] = {}
            count = 0
            for batch in data:
                logged = dict(step_fn(to_device(batch, device)))
                step += 1
                count += 1
                history.steps.append({"step": step, "epoch": epoch, **logged})
                for k, v in logged.items():
                    sums[k] = sums.get(k, 0.0) + v
                bar.update(1)
                if "loss" in logged:
                    bar.set_postfix(loss=f"{logged['loss']:.4g}", refresh=False)
                if max_steps is not None and step >= max_steps:
                    break
            row = {"epoch": epoch, **{k: v / max(count, 1) for k, v in sums.items()}}
            if eval_fn is not None:
                model.eval()
                with torch.no_grad():
                    row.update({f"eval_{k}": float(v) for k, v in eval_fn(model).items()})
            history.epochs.append(row)
            if max_steps is not None and step >= max_steps:
                break
    finally:
        bar.close()
        model.eval()
        history.seconds = time.perf_counter() - started
    return history


@torch.no_grad()
def evaluate_mean(model: nn.Module, data: Iterable, metric_fn: Callable[[nn.Module, object], torch.Tensor],
                  device: str | torch.device | None = "auto") -> float:
    """Mean over every example of ``metric_fn(model, batch)``, which returns one value per example
    (e.g. the NLL of each image)."""
    device = pick_device(device)
    model.to(device).eval()
    total, count = 0.0, 0
    for batch in data:
        values = metric_fn(model, to_device(batch, device))
        total += float(values.double().sum())
        count += values.numel()
    if count == 0:
        raise ValueError("evaluate_mean got no data")
    return total / count
