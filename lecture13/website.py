"""``make site`` (``python -m lecture13.website``): the course as a static website, offline.

The pages are the notebooks of ``solutions/`` with the outputs they store (nothing is executed),
in the order of :data:`lecture13.course.NOTEBOOKS`, built by Sphinx with myst-nb and the
sphinx-book-theme (configuration: ``docs/conf.py``) into ``build/site/`` (``index.html`` first).
Nothing is fetched from the internet to build the site or to show it: MathJax is served from the
site itself (sphinx-mathjax-offline) and the Binder/Colab badges are images of the site.

Each notebook is first staged into ``build/site-src/`` as a reader sees it:

* the header's badges open the *student version* (``notebooks/``) on Binder and Colab, and link to
  it and to the source on GitHub;
* the Colab set-up cell is left out, and so are the instructors' hidden tests;
* an ipywidgets output, which needs a kernel, becomes what it showed when the notebook was run: an
  interactive panel its figure (with a line saying where to move its controls), a progress bar
  its last line of text;
* a link to a file of the repository outside the site (``../benchmarks/results.md``) goes to GitHub.

Publish ``build/site/`` as it is (GitHub Pages: see the README).
"""
from __future__ import annotations

import argparse
import copy
import html
import posixpath
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat

from . import course
from .release import BADGE_LINE, HEADER_ID, SETUP_ID, is_test_cell, strip_hidden_tests

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS = REPO_ROOT / "docs"                      # conf.py and the badge images
SOLUTIONS = REPO_ROOT / "solutions"
STAGE = REPO_ROOT / "build" / "site-src"
OUT = REPO_ROOT / "build" / "site"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
CONTROL_SUFFIXES = ("Slider", "Dropdown", "Select", "ToggleButtons", "RadioButtons", "Checkbox", "Text")
PANEL_NOTE = ("*An interactive panel ({controls}), shown as it was first drawn. To move its controls, "
              "run this notebook: {badges}.*")


class SiteError(RuntimeError):
    """The site cannot be built (a missing tool or notebook); the message says what to do."""


def github_url(path: str) -> str:
    return f"https://github.com/{course.REPOSITORY}/blob/{course.BRANCH}/{path}"


def badges(notebook: str) -> str:
    """Binder and Colab badges of the student version, as images of the site itself."""
    return (f"[![Binder](badges/binder.svg)]({course.binder_url(notebook)}) "
            f"[![Open In Colab](badges/colab.svg)]({course.colab_url(notebook)})")


# --------------------------------------------------------------------------- widgets -> static outputs
def _text(value: str) -> str:
    """The text of a widget's HTML value (tqdm writes figure spaces and escapes '<')."""
    return html.unescape(re.sub(r"<[^>]+>", "", value or "")).replace("\u2007", " ").strip()


def _control_value(state: dict) -> str:
    labels, index = state.get("_options_labels"), state.get("index")
    return labels[index] if labels and isinstance(index, int) else str(state.get("value"))


def _walk(model_id: str, models: dict, found: dict) -> None:
    """Collect what a widget and its children show: outputs, text and controls."""
    model = models.get(model_id)
    if model is None:
        found["missing"] = True
        return
    name, state = model["model_name"], model["state"]
    if name == "OutputModel":
        found["outputs"] += [nbformat.from_dict(o) for o in state.get("outputs", [])]
    elif name in ("HTMLModel", "LabelModel", "HTMLMathModel"):
        if _text(state.get("value")):
            found["text"].append(_text(state.get("value")))
    elif name.endswith("ProgressModel") and state.get("max"):
        done = round(10 * state.get("value", 0) / state["max"])
        found["text"].append("█" * done + "░" * (10 - done))
    elif name.removesuffix("Model").endswith(CONTROL_SUFFIXES):
        found["controls"].append(f"{state.get('description') or 'a control'} = {_control_value(state)}")
    for child in state.get("children", []):
        _walk(child.removeprefix("IPY_MODEL_"), models, found)


def static_outputs(output, models: dict, notebook: str) -> list:
    """What a widget output showed, as outputs a static page can render (none where the widget's
    state was not saved with the notebook)."""
    found = {"outputs": [], "text": [], "controls": [], "missing": False}
    _walk(output["data"][WIDGET_VIEW]["model_id"], models, found)
    if found["missing"] and not (found["outputs"] or found["text"]):
        return []
    shown = []
    if found["text"]:
        shown.append(nbformat.v4.new_output("stream", name="stdout", text=" ".join(found["text"]) + "\n"))
    if found["controls"]:
        note = PANEL_NOTE.format(controls=", ".join(found["controls"]), badges=badges(notebook))
        shown.append(nbformat.v4.new_output("display_data", data={"text/markdown": note}))
    return shown + found["outputs"]


# --------------------------------------------------------------------------- one notebook, staged
def _link(target: str) -> str:
    """A relative link of a solutions/ notebook, as it must read on the site."""
    if re.match(r"^([a-z]+:|#|/)", target) or re.match(r"^[\w.-]+\.ipynb(#.*)?$", target):
        return target                          # absolute, an anchor, or another page of the site
    path, _, anchor = target.partition("#")
    return github_url(posixpath.normpath(posixpath.join("solutions", path))) + (f"#{anchor}" if anchor else "")


def _header(source: str, notebook: str) -> str:
    lines = BADGE_LINE.sub("", source).strip().split("\n")
    title = next((i for i, line in enumerate(lines) if line.startswith("# ")), -1)
    links = (f"{badges(notebook)}\n\n*Student version*, with the exercises to fill in: "
             f"[notebooks/{notebook}]({github_url('notebooks/' + notebook)}) · "
             f"this page's source: [solutions/{notebook}]({github_url('solutions/' + notebook)})")
    return "\n".join(lines[: title + 1] + ["", links, ""] + lines[title + 1:])


def stage_notebook(nb, notebook: str):
    """A copy of a solutions notebook, as the site shows it (see the module's docstring)."""
    nb = copy.deepcopy(nb)
    models = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    cells = []
    for cell in nb.cells:
        if cell.get("id") == SETUP_ID:
            continue
        if cell.cell_type == "markdown":
            cell.source = re.sub(r"(\]\()([^)\s]+)(\))", lambda m: m[1] + _link(m[2]) + m[3], cell.source)
            cell.source = _header(cell.source, notebook) if cell.get("id") == HEADER_ID else cell.source
        elif cell.cell_type == "code":
            if is_test_cell(cell):
                cell.source = strip_hidden_tests(cell.source, f"{notebook}, cell {cell.get('id')}")
            outputs = []
            for output in cell.outputs:
                if WIDGET_VIEW in output.get("data", {}):
                    outputs += static_outputs(output, models, notebook)
                else:
                    outputs.append(output)
            cell.outputs = outputs
        cells.append(cell)
    nb.cells = cells
    return nb


def index_page() -> str:
    """The site's home page: what the course is, the notebooks in course order (and the toctree that
    makes them the site's navigation)."""
    rows = "\n".join(f"| [{title}]({file}) | {line} | {badges(file)} |" for file, title, line in course.NOTEBOOKS)
    toctree = "\n".join(Path(file).stem for file, _, _ in course.NOTEBOOKS)
    return f"""# Deep generative models

One lecture on deep generative models, as notebooks you read here and run anywhere: what a generative
model is, autoregressive pixel models (PixelRNN, PixelCNN), autoencoders and variational autoencoders,
generative adversarial networks, and then normalizing flows and diffusion models. Every claim is shown by a measurement in the notebook; the pages
show the notebooks as they ran, with their figures and numbers.

To run them, open a notebook's *student version* (with the exercises to fill in) on Binder or Colab with
its badges, or on your own machine: clone [the repository](https://github.com/{course.REPOSITORY}) and
run `make lab`.

| notebook | what you learn | run it |
|---|---|---|
{rows}

The student versions are in [notebooks/](https://github.com/{course.REPOSITORY}/tree/{course.BRANCH}/notebooks)
on GitHub, these pages' sources in [solutions/](https://github.com/{course.REPOSITORY}/tree/{course.BRANCH}/solutions).

```{{toctree}}
:maxdepth: 1
:caption: The lecture
:hidden:

{toctree}
```
"""


def stage(solutions: Path = SOLUTIONS, out: Path = STAGE) -> list[Path]:
    """Write the site's sources into ``out``: index.md, the badges and every notebook of the course
    found in ``solutions``, staged. Returns the notebooks written."""
    missing = [f for f, _, _ in course.NOTEBOOKS if not (solutions / f).exists()]
    if missing:
        raise SiteError(f"{solutions} lacks notebooks of the course (lecture13/course.py): {', '.join(missing)}")
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(DOCS / "badges", out / "badges")
    (out / "index.md").write_text(index_page())
    written = []
    for file, _, _ in course.NOTEBOOKS:
        nb = stage_notebook(nbformat.read(solutions / file, as_version=4), file)
        nbformat.write(nb, out / file)
        written.append(out / file)
    return written


def build(out: Path = OUT, stage_dir: Path = STAGE, solutions: Path = SOLUTIONS, jobs: int = 2, quiet: bool = True) -> Path:
    """Stage the notebooks and build the site into ``out``; return its index.html."""
    try:
        from sphinx.cmd.build import build_main
    except ImportError as err:
        raise SiteError(f"the site needs Sphinx and its extensions ({err}): pip install -e '.[site]'") from err
    stage(solutions, stage_dir)
    if out.exists():
        shutil.rmtree(out)
    args = ["-b", "html", "-c", str(DOCS), "-d", str(stage_dir.parent / "site-doctrees"), "-j", str(jobs),
            "--fail-on-warning", "--keep-going", *(["-q"] if quiet else []), str(stage_dir), str(out)]
    code = build_main(args)
    if code != 0:
        raise SiteError(f"sphinx-build failed (exit {code}); its messages are above")
    return out / "index.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lecture13.website", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where the site goes (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=2, help="Sphinx processes (default: %(default)s)")
    parser.add_argument("--verbose", action="store_true", help="Sphinx's progress messages too")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        index = build(args.out, jobs=args.jobs, quiet=not args.verbose)
    except SiteError as err:
        print(f"make site: {err}", file=sys.stderr)
        return 1
    print(f"built {index} in {time.perf_counter() - started:.1f} s; open it in a browser, or serve it: "
          f"python -m http.server -d {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
