"""The course's command line: ``python -m lecture13 <command> --help``.

    train     train a model by its recipe; with --ship, save it as a shipped checkpoint
    evaluate  test metrics of a shipped checkpoint (or a checkpoint file)
    sample    draw samples from a model into a PNG grid
    samples   draw a bank of samples of a shipped model and ship them beside its weights
    release   build the student notebooks/ from solutions/
    data      where the data comes from; build the embedded subset; download
    grade     grade student notebooks against the hidden tests into a CSV (and feedback)
    bench     measure everything the course promises into benchmarks/results.md
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model by its recipe (see `train --list`)",
                       description="Train a model with its recipe, evaluate it on the test set, save a checkpoint.")
    p.add_argument("name", nargs="?", help="recipe name, e.g. factorized, pixelcnn, vae")
    p.add_argument("--list", action="store_true", help="list the recipes and exit")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--max-steps", type=int, help="stop after this many steps")
    p.add_argument("--subset", choices=("embedded", "full"), default="full",
                   help="training data: the embedded subset or the full dataset (default: full)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe-specific option (JSON value), e.g. --option channels=64; repeatable")
    p.add_argument("--out", type=Path, help="checkpoint path (default: runs/<name>.pt)")
    p.add_argument("--ship", action="store_true",
                   help="save into lecture13/weights/ and record it in the manifest")
    p.add_argument("--no-progress", action="store_true")


def _parse_options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--option needs KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def cmd_train(args) -> int:
    from . import recipes
    from .checkpoints import WEIGHTS_DIR, save_checkpoint, write_manifest_entry
    from .data import DataError, locate_full
    from .training import pick_device, seed_everything

    recipes.import_families()
    if args.list or not args.name:
        for name, recipe in sorted(recipes.RECIPES.items()):
            print(f"{name:20s} {recipe.description}")
        return 0
    recipe = recipes.get_recipe(args.name)
    options = {"epochs": 1, "batch_size": 128, "lr": 1e-3, "seed": 0, "max_steps": None, **recipe.defaults}
    for key in ("epochs", "batch_size", "lr", "seed", "max_steps"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    options.update(_parse_options(args.option))
    options.update(subset=args.subset, device=str(pick_device(args.device)), progress=not args.no_progress)
    seed_everything(options["seed"])
    model_overrides = options.pop("model", {}) or {}
    model = recipe.build(**model_overrides)
    print(f"training {args.name}: {type(model).__name__}, {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"options {options}")
    history = recipe.fit(model, options)
    model.to("cpu").eval()
    metrics = {"embedded_test": recipe.evaluate(model, "embedded")}
    try:
        locate_full("fashion-mnist", "test", download=False)
        metrics["full_test"] = recipe.evaluate(model, "full")
    except DataError:
        print("(full test set not found: only the embedded test subset was evaluated)")
    print(json.dumps(metrics, indent=2))
    out = WEIGHTS_DIR / f"{args.name}.pt" if args.ship else (args.out or Path("runs") / f"{args.name}.pt")
    command = "python -m lecture13 " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    meta = {"recipe": args.name, "command": command, "options": {k: v for k, v in options.items() if k != "progress"},
            "model_overrides": model_overrides, "dataset": "fashion-mnist (binarized at 0.5 where the model is binary)",
            "train_subset": args.subset, "seed": options["seed"], "train_seconds": round(history.seconds, 1),
            "steps": len(history.steps), "final_train_loss": history.steps[-1].get("loss") if history.steps else None,
            "metrics": metrics}
    sha = save_checkpoint(model, out, **meta)
    if args.ship:
        write_manifest_entry(args.name, {"file": out.name, "sha256": sha, "model": type(model).__name__,
                                         "command": command, "seed": options["seed"],
                                         "train_seconds": meta["train_seconds"], "device": options["device"],
                                         "metrics": metrics, "bytes": out.stat().st_size})
    print(f"saved {out} (sha256 {sha[:16]}…)")
    if args.ship:
        print("the manifest changed: run `python -m lecture13 release` to refresh the README's weights table")
    return 0


def _load_model(name_or_path: str):
    from .checkpoints import load_checkpoint, pretrained

    if name_or_path.endswith(".pt") or Path(name_or_path).exists():
        return load_checkpoint(name_or_path)
    return pretrained(name_or_path, with_meta=True)


def cmd_evaluate(args) -> int:
    from . import recipes

    model, meta = _load_model(args.model)
    recipe = recipes.get_recipe(meta.get("recipe", args.model))
    measured = recipe.evaluate(model, args.subset)
    recorded = meta.get("metrics", {}).get(f"{args.subset}_test")
    print(json.dumps({"measured": measured, "recorded": recorded}, indent=2))
    return 0


def cmd_sample(args) -> int:
    import matplotlib

    matplotlib.use("Agg")

    from . import recipes
    from .plotting import show_images

    model, meta = _load_model(args.model)
    recipe = recipes.get_recipe(meta.get("recipe", args.model))
    if recipe.sample is None:
        raise SystemExit(f"{args.model} cannot draw samples")
    images = recipe.sample(model, args.n, args.seed)
    ax = show_images(images, nrow=int(args.n ** 0.5 + 0.999), title=f"{args.model}: {args.n} samples, seed {args.seed}")
    ax.figure.savefig(args.out, bbox_inches="tight", dpi=120)
    print(f"wrote {args.out}")
    return 0


def cmd_samples(args) -> int:
    import time

    from .checkpoints import draw_samples, pretrained, save_samples

    model, meta = pretrained(args.model, with_meta=True)
    started = time.perf_counter()
    images = draw_samples(meta.get("recipe", args.model), model, args.n, args.seed)
    seconds = time.perf_counter() - started
    command = "python -m lecture13 " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"drew {len(images)} samples of {args.model} in {seconds:.0f} s")
    if not args.ship:
        return 0
    record = save_samples(args.model, images, seed=args.seed, command=command, seconds=round(seconds, 1))
    print(f"saved {record['file']} (sha256 {record['sha256'][:16]}…)")
    return 0


def cmd_release(args) -> int:
    from .release import release

    stale = release(args.solutions, args.notebooks, check_only=args.check)
    if args.check:
        if stale:
            print("out of date (run `python -m lecture13 release`):\n  " + "\n  ".join(stale))
            return 1
        print("notebooks/ is up to date with solutions/")
        return 0
    print("\n".join(f"wrote {p}" for p in stale) or "nothing to do: notebooks/ is up to date")
    return 0


def cmd_data(args) -> int:
    from . import data

    if args.build_subset:
        info = data.build_embedded_subset(args.source)
        print(json.dumps(info, indent=2))
        return 0
    if args.download:
        for split in ("train", "test"):
            print(f"{args.dataset} {split}: {data.locate_full(args.dataset, split, download=True)}")
        return 0
    print(f"cache directory ($LECTURE13_DATA): {data.cache_dir()}")
    embedded = data.load("test")
    print(f"embedded subset: {data.EMBEDDED_FILE} ({data._embedded_info()['selection']}), checksum ok, "
          f"{len(data.load('train'))} train / {len(embedded)} test")
    for split in ("train", "test"):
        try:
            print(f"full {args.dataset} {split}: {data.locate_full(args.dataset, split, download=False)}")
        except data.DataError as err:
            print(f"full {args.dataset} {split}: not found\n{err}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lecture13", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    p = sub.add_parser("evaluate", help="test metrics of a shipped model or checkpoint file")
    p.add_argument("model", help="shipped name (e.g. factorized) or a .pt file")
    p.add_argument("--subset", choices=("embedded", "full"), default="embedded")
    p = sub.add_parser("sample", help="draw samples into a PNG")
    p.add_argument("model", help="shipped name or a .pt file")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("samples.png"))
    p = sub.add_parser("samples", help="draw a bank of samples of a shipped model (with --ship: save it beside the weights)")
    p.add_argument("model", help="shipped name")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ship", action="store_true", help="save into lecture13/weights/ and record it in the manifest")
    p = sub.add_parser("release", help="build the student notebooks/ from solutions/")
    p.add_argument("--solutions", type=Path, default=Path("solutions"))
    p.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    p.add_argument("--check", action="store_true", help="only check that notebooks/ is up to date (exit 1 if not)")
    p = sub.add_parser("data", help="show where the data comes from; build the subset; download")
    p.add_argument("--dataset", choices=("fashion-mnist", "mnist"), default="fashion-mnist")
    p.add_argument("--download", action="store_true", help="download the full dataset through torchvision")
    p.add_argument("--build-subset", action="store_true", help="rebuild the embedded subset from the full data")
    p.add_argument("--source", type=Path, help="folder with the IDX .gz files (default: search as usual)")
    for extra in _extra_commands():
        extra(sub)
    return parser


def _extra_commands():
    """Subcommands that live in their own modules (grading, benchmarks) register here."""
    from .bench import add_bench_command
    from .grading import add_grade_command

    return [add_grade_command, add_bench_command]


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "sample": cmd_sample, "samples": cmd_samples, "release": cmd_release, "data": cmd_data}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = COMMANDS.get(args.command) or getattr(args, "handler", None)
    from .checkpoints import CheckpointError
    from .data import DataError

    try:
        return handler(args)
    except (DataError, CheckpointError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
