"""``make site``: the course as a static website (lecture13/website.py, docs/conf.py).

The staging (what a page shows of a notebook) is tested on the real notebooks and on planted ones;
then the site is built from solutions/ into a temporary folder, and Chromium (tests/test_browser.py's
fixture and marks) opens every page from a loopback server with every other address blocked: each page
loads with no failed request, its math is typeset by the site's own MathJax, every image decodes,
and the navigation follows the course.
"""
from __future__ import annotations

import functools
import http.server
import json
import re
import threading
import time
from pathlib import Path

import nbformat
import pytest

import test_browser
from lecture13 import course, website
from notebook_tools import ROOT, SOLUTIONS, read
from test_browser import browser  # noqa: F401 (a fixture: Debian's Chromium through Playwright)

COURSE = [file for file, _, _ in course.NOTEBOOKS]


def _outputs(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def _figures(nb) -> int:
    return sum("image/png" in o.get("data", {}) for o in _outputs(nb))


# --------------------------------------------------------------------------- staging
@pytest.mark.parametrize("name", COURSE)
def test_a_staged_notebook_is_what_a_reader_needs(name):
    source = read(SOLUTIONS / name)
    staged = website.stage_notebook(source, name)
    ids = [c.get("id") for c in staged.cells]
    assert "colab-setup" not in ids and ids == [c.get("id") for c in source.cells if c.get("id") != "colab-setup"]
    header = staged.cells[0].source
    assert header.startswith("# ") and "mybinder.org/badge_logo.svg" not in header
    for link in (course.binder_url(name), course.colab_url(name), website.github_url(f"notebooks/{name}")):
        assert f"]({link})" in header, link
    text = "\n".join(c.source for c in staged.cells) + json.dumps([dict(o) for o in _outputs(staged)])
    assert "BEGIN HIDDEN TESTS" not in text and website.WIDGET_VIEW not in text and "widgets" not in staged.metadata
    assert "](../" not in text, "a relative link out of solutions/ would be broken on the site"
    assert _figures(staged) >= _figures(source)   # every stored figure, and those interactive panels drew
    assert source == read(SOLUTIONS / name), "staging must not change the source"


def _widget_notebook() -> nbformat.NotebookNode:
    """A notebook with an interactive panel, a progress bar and a widget whose state was not saved."""
    def model(name, **state):
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
                "state": state}

    figure = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})
    state = {
        "panel": model("VBoxModel", children=["IPY_MODEL_choice", "IPY_MODEL_step", "IPY_MODEL_out"]),
        "choice": model("DropdownModel", description="setting", index=1, _options_labels=["a", "b"]),
        "step": model("IntSliderModel", description="k", value=3),
        "out": model("OutputModel", outputs=[dict(figure)]),
        "bar": model("HBoxModel", children=["IPY_MODEL_left", "IPY_MODEL_progress", "IPY_MODEL_right"]),
        "left": model("HTMLModel", value="train:\u2007100%"),
        "progress": model("FloatProgressModel", value=50.0, max=100.0),
        "right": model("HTMLModel", value="\u200750/50\u2007[00:01&lt;00:00]"),
    }

    def view(model_id):
        return nbformat.v4.new_output("display_data", data={
            website.WIDGET_VIEW: {"model_id": model_id, "version_major": 2, "version_minor": 0}, "text/plain": "..."})

    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {website.WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}
    nb.cells = [nbformat.v4.new_code_cell("panel", outputs=[view("panel")]),
                nbformat.v4.new_code_cell("bar", outputs=[view("bar"), nbformat.v4.new_output("stream", text="done\n")]),
                nbformat.v4.new_code_cell("lost", outputs=[view("not-saved")])]
    return nb


def test_widgets_become_what_they_showed():
    staged = website.stage_notebook(_widget_notebook(), "00_generative_models.ipynb")
    panel, bar, lost = (c.outputs for c in staged.cells)
    note = panel[0]["data"]["text/markdown"]
    assert "setting = b, k = 3" in note and course.binder_url("00_generative_models.ipynb") in note
    assert panel[1]["data"]["image/png"] == "iVBORw0KGgo=" and len(panel) == 2
    assert bar[0]["text"] == "train: 100% █████░░░░░ 50/50 [00:01<00:00]\n" and bar[1]["text"] == "done\n"
    assert lost == []


def test_links_out_of_the_site_go_to_github():
    assert website._link("01_autoregressive_models.ipynb") == "01_autoregressive_models.ipynb"
    assert website._link("https://arxiv.org/abs/1708.07747") == "https://arxiv.org/abs/1708.07747"
    assert website._link("#the-baseline") == "#the-baseline"
    assert website._link("../benchmarks/results.md#targets") == website.github_url("benchmarks/results.md") + "#targets"
    assert website._link("figures/a.png") == website.github_url("solutions/figures/a.png")


def test_the_index_lists_the_course_in_order():
    page = website.index_page()
    toctree = page[page.index("```{toctree}"):]
    assert re.findall(r"^(\d\d_\w+)$", toctree, re.M) == [Path(f).stem for f in COURSE]
    assert [page.index(f"]({f})") for f in COURSE] == sorted(page.index(f"]({f})") for f in COURSE)


def test_a_missing_notebook_is_named(tmp_path):
    with pytest.raises(website.SiteError, match=COURSE[0]):
        website.stage(tmp_path / "empty", tmp_path / "stage")


def test_the_site_never_executes_a_notebook():
    conf = (ROOT / "docs" / "conf.py").read_text()
    assert re.search(r'^nb_execution_mode = "off"$', conf, re.M) and 'mathjax_path = "mathjax/' in conf


# --------------------------------------------------------------------------- the built site
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built as `make site` builds it, into a temporary folder."""
    pytest.importorskip("sphinx", reason="the site needs Sphinx: pip install -e '.[site]' (make test installs it)")
    base = tmp_path_factory.mktemp("site")
    started = time.perf_counter()
    index = website.build(out=base / "site", stage_dir=base / "site-src")
    print(f"site built in {time.perf_counter() - started:.1f} s")
    return index.parent


def test_the_site_has_a_page_per_notebook(site):
    assert (site / "index.html").exists()
    for name in COURSE:
        page = (site / name.replace(".ipynb", ".html")).read_text()
        assert course.binder_url(name).replace("&", "&amp;") in page and course.colab_url(name) in page
        assert website.github_url(f"notebooks/{name}") in page
    assert (site / "_static" / "mathjax" / "tex-chtml.js").exists()
    # stored outputs are shown as stored: a line the first notebook printed is on its page
    printed = next(o["text"] for o in _outputs(read(SOLUTIONS / COURSE[0])) if o.get("output_type") == "stream")
    first_line = printed.strip().splitlines()[0]
    assert first_line.split()[0] in (site / COURSE[0].replace(".ipynb", ".html")).read_text()


@pytest.fixture(scope="module")
def served(site):
    """The site on a loopback HTTP server (a free port), as a browser would get it from GitHub Pages."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def in_chromium(test):
    """tests/test_browser.py's marks: ``browser``, and a skip saying how to get Chromium where it is missing."""
    for mark in test_browser.pytestmark:
        test = mark(test)
    return test


def page_problems(browser, origin: str, path: str) -> tuple[list[str], dict]:
    """Open ``origin/path`` with every request elsewhere blocked; what is wrong with it (failed or
    blocked requests, math not typeset, images that do not decode), and what it shows."""
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    problems = []
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(origin)
               else (problems.append(f"request outside the site: {route.request.url}"), route.abort()))
    page.on("requestfailed", lambda r: r.url.startswith(origin) and problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    page.on("pageerror", lambda error: problems.append(f"uncaught error: {error}"))
    try:
        response = page.goto(f"{origin}/{path}", wait_until="load")
        if response is None or response.status != 200:
            problems.append(f"{path}: HTTP {response and response.status}")
        math = page.locator(".math").count()
        if math:
            page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000)
            page.evaluate("() => MathJax.startup.promise.then(() => true)")   # resolves once the page is typeset
        shown = page.evaluate("""() => ({
            math: document.querySelectorAll('.math').length,
            typeset: [...document.querySelectorAll('.math')].filter(m => m.querySelector('mjx-container')).length,
            tex_errors: document.querySelectorAll('mjx-merror').length,
            raw_tex: /\\$\\$|\\\\\\(|\\\\\\[/.test(document.querySelector('main, article, body').innerText),
            images: [...document.images].map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0})),
            nav: [...document.querySelectorAll('nav.bd-docs-nav a.reference.internal')].map(a => a.getAttribute('href')),
        })""")
    finally:
        page.close()
    if shown["typeset"] < shown["math"]:
        problems.append(f"{shown['math'] - shown['typeset']} of {shown['math']} formulas not typeset")
    if shown["tex_errors"] or shown["raw_tex"]:
        problems.append(f"TeX shown raw or with errors ({shown['tex_errors']} errors)")
    problems += [f"image does not decode: {i['src']}" for i in shown["images"] if not i["ok"]]
    return problems, shown


@in_chromium
def test_every_page_loads_offline_with_its_math_and_figures(site, served, browser):
    pages = ["index.html"] + [n.replace(".ipynb", ".html") for n in COURSE] + ["genindex.html", "search.html"]
    assert sorted(pages) == sorted(p.name for p in site.glob("*.html")), "a page of the site is not checked"
    order = [p.replace(".html", "") for p in pages[1:1 + len(COURSE)]]
    failures = {}
    for path in pages:
        problems, shown = page_problems(browser, served, path)
        if path in pages[1:1 + len(COURSE)]:
            name = path.replace(".html", ".ipynb")
            figures = sum("/_images/" in f"/{i['src']}" and i["src"].endswith(".png") for i in shown["images"])
            expected = _figures(website.stage_notebook(read(SOLUTIONS / name), name))
            if figures != expected:
                problems.append(f"{figures} figures shown, the notebook stores {expected}")
            if not shown["math"]:
                problems.append("no formula on the page")
            if [re.sub(r"\.html.*$", "", h) for h in shown["nav"] if not h.startswith("#")] != [
                    o for o in order if o != name.replace(".ipynb", "")]:
                problems.append(f"navigation not in course order: {shown['nav']}")
        if problems:
            failures[path] = problems
    assert not failures, json.dumps(failures, indent=2, ensure_ascii=False)


@in_chromium
def test_the_page_check_catches_what_it_looks_for(site, served, browser):
    """A planted page: an image from elsewhere, one that does not decode, a missing script and raw TeX."""
    (site / "planted.html").write_text(
        "<html><body><main><p>$$x^2$$</p><img src='https://example.org/badge.svg'>"
        "<img src='_images/missing.png'><script src='_static/missing.js'></script></main></body></html>")
    try:
        problems, _ = page_problems(browser, served, "planted.html")
    finally:
        (site / "planted.html").unlink()
    joined = "\n".join(problems)
    assert "request outside the site: https://example.org/badge.svg" in joined
    assert "HTTP 404" in joined and "missing.js" in joined
    assert "image does not decode: _images/missing.png" in joined and "TeX shown raw" in joined
