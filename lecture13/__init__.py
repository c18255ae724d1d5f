"""lecture13: deep generative models, taught as runnable notebooks.

One module per idea: ``data`` (Fashion-MNIST offline), ``toy`` (toy densities),
``training`` (the one training loop), ``checkpoints`` (safe, checksummed weights),
``likelihood`` (NLL units), ``exercises`` (checks with feedback), ``plotting``, and one module
per model family (``factorized`` ...).
"""
__version__ = "0.1.0"

from .checkpoints import pretrained  # noqa: E402,F401
