"""lecture13: deep generative models, taught as runnable notebooks.

One module per idea: ``data`` (Fashion-MNIST offline), ``toy`` (toy densities),
``training`` (the one training loop), ``checkpoints`` (safe, checksummed weights),
``likelihood`` (NLL units), ``exercises`` (checks with feedback), ``plotting``, and one module
per model family (``factorized`` ...).
"""
__version__ = "0.1.0"


def __getattr__(name: str):
    """``lecture13.pretrained``, imported when first used: ``import lecture13.X`` then does not load
    torch before X needs it (the grader starts its sandbox before loading torch)."""
    if name == "pretrained":
        from .checkpoints import pretrained

        return pretrained
    raise AttributeError(f"module 'lecture13' has no attribute {name!r}")
