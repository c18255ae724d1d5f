"""The course's table of contents and its one repository address.

The address appears in the Binder/Colab badges of every notebook, in each notebook's Colab
set-up cell and in the README. They are all generated from :data:`REPOSITORY` by
``python -m lecture13 release``, so a fork changes this one line and re-runs the release.
"""
from __future__ import annotations

REPOSITORY = "lecture13/lecture13"  # GitHub owner/name
BRANCH = "main"

NOTEBOOKS = (
    ("00_generative_models.ipynb", "Generative models",
     "what a generative model is, the taxonomy, the data, and the factorized baseline every model must beat"),
    ("01_autoregressive_models.ipynb", "Autoregressive models",
     "the chain rule, PixelRNN, PixelCNN (masks, blind spot, gated), exact likelihood, fast sampling, what the "
     "samples are worth, and the lecture's 256-way softmax on 8-bit images"),
    ("02_autoencoders.ipynb", "Autoencoders",
     "encoder, latent features, decoder; latent size; features for a classifier with few labels; why decoding "
     "random codes is not generation"),
    ("03_variational_autoencoders.ipynb", "Variational autoencoders",
     "the ELBO derived and checked numerically, the reparameterization trick, importance-weighted likelihood, "
     "a decoder that sees its neighbours (PixelVAE) and posterior collapse"),
    ("04_generative_adversarial_networks.ipynb", "Generative adversarial networks",
     "the minimax game, the optimal discriminator, non-saturating loss, k-step training, mode collapse"),
    ("05_dcgan.ipynb", "DCGAN",
     "convolutional GANs with a balanced discriminator, a memorization check with a planted copy, latent "
     "interpolation, sample quality without a download (Fréchet distance, precision and recall)"),
    ("06_comparing_generative_models.ipynb", "Comparing generative models",
     "the three families side by side on one test set: likelihood (exact or a bound, and what each can decide), "
     "sample quality at one protocol, speed"),
    ("07_flows_and_diffusion.ipynb", "Normalizing flows and diffusion models",
     "the change of variables and affine coupling layers (an exact likelihood, checked), dequantization, "
     "DDPM's forward noising, noise-prediction loss and denoising steps, ancestral sampling against DDIM, and "
     "their sample quality at the course's protocol"),
)


def binder_url(notebook: str, folder: str = "notebooks") -> str:
    return (f"https://mybinder.org/v2/gh/{REPOSITORY}/{BRANCH}"
            f"?urlpath=lab/tree/{folder}/{notebook}")


def colab_url(notebook: str, folder: str = "notebooks") -> str:
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/{folder}/{notebook}"


def badges(notebook: str, folder: str = "notebooks") -> str:
    return (f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(notebook, folder)}) "
            f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(notebook, folder)})")


def colab_setup_source() -> str:
    """The first code cell of every notebook: on Colab, install the course package."""
    return ("# On Colab, install the course package first (about a minute); elsewhere this does nothing.\n"
            "import sys\n"
            "if \"google.colab\" in sys.modules:\n"
            f"    %pip install -q \"lecture13 @ git+https://github.com/{REPOSITORY}@{BRANCH}\"")


def readme_notebook_table(present: set[str] | None = None) -> str:
    """The README's table of notebooks (only those in ``present``, when given)."""
    rows = ["| notebook | what you learn | run it |", "|---|---|---|"]
    for file, title, line in NOTEBOOKS:
        if present is not None and file not in present:
            continue
        rows.append(f"| [{file}](notebooks/{file}) — **{title}** | {line} | {badges(file)} |")
    return "\n".join(rows)
