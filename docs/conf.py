"""Sphinx configuration of the course website: ``make site`` (lecture13/website.py stages the
notebooks of solutions/ into build/site-src/ and builds them with this file into build/site/)."""
import importlib.util
from pathlib import Path

from lecture13 import course

project = "Deep generative models (lecture13)"
author = "lecture13 contributors"
copyright = "lecture13 contributors; Fashion-MNIST: Zalando Research (MIT)"

extensions = ["myst_nb"]
# MathJax 3 from the site itself, not from a CDN: the copy the sphinx-mathjax-offline package ships
# (its own extension is not declared parallel-safe, so only its files are used).
html_static_path = [str(Path(importlib.util.find_spec("sphinx-mathjax-offline").origin).parent / "static")]
mathjax_path = "mathjax/tex-chtml.js"
exclude_patterns = ["**.ipynb_checkpoints"]

# The notebooks are shown with the outputs solutions/ stores: never executed here.
nb_execution_mode = "off"
nb_ipywidgets_js = {}           # widget outputs are made static when staged: no widget JavaScript from a CDN
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type"]

html_theme = "sphinx_book_theme"
html_title = "Deep generative models"
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {
    "repository_url": f"https://github.com/{course.REPOSITORY}",
    "repository_branch": course.BRANCH,
    "use_repository_button": True,
    "use_download_button": False,
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
