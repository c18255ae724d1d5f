"""Checkpoints: saved with how they were made, loaded safely, verified by checksum.

A checkpoint is a ``torch.save`` of a plain dict that ``torch.load(weights_only=True)`` can
read (tensors, numbers, strings, lists, dicts: no pickled code):

    {"format": 1, "model": "PixelCNN", "config": {...constructor kwargs...},
     "state_dict": {...}, "meta": {"command": ..., "seed": ..., "metrics": {...}, ...}}

Models that can be saved are registered with :func:`register_model` and keep their
constructor arguments in ``self.config``. The shipped weights live in ``lecture13/weights/``
and ``manifest.json`` beside them records each file's sha256, which :func:`pretrained`
checks before it reads a byte as a checkpoint.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import sha256_file

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"
FORMAT = 1
MODEL_REGISTRY: dict[str, type[nn.Module]] = {}


class CheckpointError(RuntimeError):
    """A checkpoint is missing, tampered with, truncated, or not a lecture13 checkpoint."""


def register_model(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: make a model class loadable by name from a checkpoint."""
    MODEL_REGISTRY[cls.__name__] = cls
    return cls


def _plain(value: Any) -> Any:
    """Keep metadata to what weights_only loading accepts (and JSON can show)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    # Exact built-in types only: a str or float subclass (torch.__version__ is one) would be
    # pickled as its class, which weights_only loading refuses.
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return str(value)


def environment_info() -> dict[str, str]:
    from . import __version__

    return {"lecture13": __version__, "torch": torch.__version__, "python": sys.version.split()[0],
            "platform": platform.platform()}


def save_checkpoint(model: nn.Module, path: str | Path, **meta: Any) -> str:
    """Save ``model`` (its class must be registered and have ``config``) with ``meta``.
    Writes atomically (temporary file, then rename) and returns the file's sha256."""
    name = type(model).__name__
    if name not in MODEL_REGISTRY:
        raise CheckpointError(f"{name} is not registered; decorate the class with @register_model")
    if not hasattr(model, "config"):
        raise CheckpointError(f"{name} has no .config (its constructor arguments); cannot be rebuilt")
    payload = {
        "format": FORMAT,
        "model": name,
        "config": _plain(model.config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": _plain({**meta, "environment": environment_info()}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; a checkpoint is ordinary data
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return sha256_file(path)


def load_checkpoint(path: str | Path, sha256: str | None = None,
                    map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Load a checkpoint into a fresh model; return ``(model, meta)``.

    With ``sha256``, the file is refused unless its checksum matches. Loading always uses
    ``weights_only=True``, so a file cannot run code; a file that is not a checkpoint, is
    truncated, or does not fit its model gives a :class:`CheckpointError` that says so.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            raise CheckpointError(
                f"checkpoint {path} failed its checksum: sha256 {actual[:16]}… but the manifest records "
                f"{sha256[:16]}…. The file was changed or is incomplete; reinstall the package, or rebuild "
                f"it with the command recorded in {MANIFEST.name}.")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(err).__name__}: {str(err)[:200]}); "
                              "it is truncated, corrupt, or not a lecture13 checkpoint") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "state_dict" not in payload:
        raise CheckpointError(f"{path} is not a lecture13 checkpoint (format {FORMAT})")
    name = payload.get("model")
    if name not in MODEL_REGISTRY:
        _import_model_modules()
    if name not in MODEL_REGISTRY:
        raise CheckpointError(f"{path} holds a {name!r}, which this version of lecture13 does not know")
    model = MODEL_REGISTRY[name](**payload["config"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the weights do not fit {name}({payload['config']}): {err}") from err
    model.eval()
    return model, payload.get("meta", {})


def _import_model_modules() -> None:
    """Import every module that registers models (so a checkpoint can name any of them)."""
    from .recipes import import_families

    import_families()


def read_manifest() -> dict[str, dict]:
    if not MANIFEST.exists():
        return {}
    return json.loads(MANIFEST.read_text())


def write_manifest_entry(name: str, entry: dict) -> None:
    manifest = read_manifest()
    manifest[name] = _plain(entry)
    tmp = MANIFEST.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")
    os.replace(tmp, MANIFEST)


def available() -> list[str]:
    """Names of the shipped checkpoints."""
    return sorted(read_manifest())


def pretrained(name: str, with_meta: bool = False, map_location: str | torch.device = "cpu"):
    """A shipped model, ready to use (eval mode, on ``map_location``), checked by sha256.

    ``pretrained("pixelcnn")``; with ``with_meta=True`` returns ``(model, meta)``, where meta
    holds the training command, seed, time and measured test metrics.
    """
    manifest = read_manifest()
    if name not in manifest:
        raise CheckpointError(f"no shipped checkpoint named {name!r}; available: {', '.join(available()) or 'none'}. "
                              f"Train one with `python -m lecture13 train {name}`.")
    entry = manifest[name]
    model, meta = load_checkpoint(WEIGHTS_DIR / entry["file"], sha256=entry["sha256"], map_location=map_location)
    return (model, meta) if with_meta else model


# --------------------------------------------------------------------------- pre-drawn samples
# Sampling a pixel model is 784 sequential steps, so a notebook that *measures* sample quality on
# a thousand images cannot afford to draw them. The package ships them beside the weights, drawn by
# ``python -m lecture13 samples NAME --ship`` (recorded and checksummed like a checkpoint).
SAMPLE_CHUNK = 250


def draw_samples(name: str, model: nn.Module, n: int, seed: int) -> torch.Tensor:
    """``n`` samples of a model by its recipe, in chunks of :data:`SAMPLE_CHUNK`; chunk ``j`` is
    ``recipe.sample(model, SAMPLE_CHUNK, seed + j)``, so any chunk can be redrawn on its own."""
    from .recipes import get_recipe

    recipe = get_recipe(name)
    if recipe.sample is None:
        raise CheckpointError(f"{name} cannot draw samples")
    chunks = [recipe.sample(model, min(SAMPLE_CHUNK, n - start), seed + j)
              for j, start in enumerate(range(0, n, SAMPLE_CHUNK))]
    return torch.cat(chunks).clamp(0, 1)


def samples_file(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.samples.npz"


def save_samples(name: str, images: torch.Tensor, **meta: Any) -> dict:
    """Store images in [0, 1] as uint8 (k/255) beside the weights and record them in the
    checkpoint's manifest entry under ``"samples"``; returns that record."""
    import numpy as np

    from .data import _save_npz_deterministic

    manifest = read_manifest()
    if name not in manifest:
        raise CheckpointError(f"no shipped checkpoint named {name!r} to attach samples to")
    path = samples_file(name)
    _save_npz_deterministic(path, {"images": (images * 255).round().to(torch.uint8).numpy().astype(np.uint8)})
    record = {"file": path.name, "sha256": sha256_file(path), "n": int(len(images)),
              "checkpoint_sha256": manifest[name]["sha256"], **meta}
    write_manifest_entry(name, {**manifest[name], "samples": record})
    return record


def pretrained_samples(name: str, with_meta: bool = False):
    """The samples shipped with checkpoint ``name``: (n, 1, 28, 28) floats in [0, 1], checked by
    sha256 and against the checkpoint they were drawn from."""
    import numpy as np

    entry = read_manifest().get(name, {})
    record = entry.get("samples")
    if record is None:
        raise CheckpointError(f"no shipped samples for {name!r}; draw them with `python -m lecture13 samples {name} --ship`")
    if record["checkpoint_sha256"] != entry["sha256"]:
        raise CheckpointError(f"the shipped samples of {name} were drawn from another checkpoint; "
                              f"redraw them with `python -m lecture13 samples {name} --ship`")
    path = WEIGHTS_DIR / record["file"]
    if not path.exists() or sha256_file(path) != record["sha256"]:
        raise CheckpointError(f"{path} is missing or failed its checksum; reinstall the package or redraw it "
                              f"with `python -m lecture13 samples {name} --ship`")
    with np.load(path, allow_pickle=False) as archive:
        images = torch.from_numpy(archive["images"].copy()).float() / 255
    return (images, record) if with_meta else images


# --------------------------------------------------------------------------- the README's table of shipped weights
def headline_metric(metrics: dict[str, Any]) -> str:
    """The one number a reader wants from a checkpoint's full-test metrics, with its unit. Sample
    quality is the course's protocol instead (1,000 samples against the 2,000 embedded test images),
    the number notebooks 05 and 06 print."""
    quality = metrics.get("embedded_test", {})
    if "frechet_distance" in quality and quality.get("test_images") == 2000:
        return (f"Fréchet distance {quality['frechet_distance']:.1f} ({quality['samples']:,} samples vs the 2,000 embedded "
                f"test images: the course's sample-quality protocol)")
    m = metrics.get("full_test", {})
    if m.get("per") == "point":   # a flow on 2-D toy points: nats per point, next to the true density's
        return (f"NLL {m['nll_nats']:.3f} nats per point (the true density's: {m['true_nll_nats']:.3f}; "
                f"{m['points']:,} test points)")
    if "nll_bound_nats" in m:     # a diffusion model: an upper bound, on 8-bit grayscale images
        return (f"NLL ≤ {m['nll_bound_nats']:.0f} nats (≤ {m['bound_bits_per_dim']:.3f} bits/dim; variational bound on "
                f"{m['test_images']} 8-bit grayscale test images)")
    if "nll_nats" in m:
        return f"NLL {m['nll_nats']:.1f} nats ({m['bits_per_dim']:.3f} bits/dim)"
    if "iw_k" in m:
        k = m["iw_k"]
        return f"−L_{k} {m[f'iw_nll_k{k}']:.1f} nats (−ELBO {m['neg_elbo']:.1f})"
    if "l2_per_image" in m:
        return f"reconstruction error {m['l2_per_image']:.2f} per image (L2)"
    if "accuracy" in m:
        return f"accuracy {m['accuracy']:.2%}"
    if "frechet_distance" in m:
        return f"Fréchet distance {m['frechet_distance']:.1f} ({m['samples']:,} samples)"
    return "—"


def weights_table(manifest: dict[str, dict] | None = None) -> str:
    """A markdown table of the shipped checkpoints: what each is, its full-test-set metric as
    recorded when it was trained, its size and its training time."""
    manifest = read_manifest() if manifest is None else manifest
    lines = ["| name | model | full test set (recorded) | size | trained |", "|---|---|---|---|---|"]
    for name, entry in sorted(manifest.items()):
        minutes = entry.get("train_seconds", 0) / 60
        took = f"{minutes:.0f} min" if minutes >= 1 else "< 1 min"
        lines.append(f"| `{name}` | {entry['model']} | {headline_metric(entry.get('metrics', {}))} | "
                     f"{entry['bytes'] / 1e6:.2f} MB | {took}, {entry.get('device', 'cpu')} |")
    return "\n".join(lines)
