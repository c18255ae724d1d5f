"""The course in a real browser: JupyterLab serves it, a student notebook runs top to bottom,
and ipywidgets render and respond.

Uses Debian's Chromium (/usr/bin/chromium) driven by Playwright; CI installs it (.ci/run).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from notebook_tools import NOTEBOOKS

CHROMIUM = os.environ.get("LECTURE13_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"]
TOKEN = "lecture13-browser-test"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} "
                                "(sudo apt-get install chromium); CI installs it and fails on skips")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _widget_notebook(path: Path) -> None:
    """A tiny notebook with the kind of panel the course uses: a slider that redraws on release."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "import ipywidgets as widgets\n"
        "out = widgets.Output()\n"
        "slider = widgets.IntSlider(value=3, min=0, max=10, description='k', continuous_update=False)\n"
        "def show(change=None):\n"
        "    out.clear_output()\n"
        "    with out:\n"
        "        print(f'square of k is {slider.value ** 2}')\n"
        "slider.observe(show, names='value')\n"
        "show()\n"
        "widgets.VBox([slider, out])")]
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a copy of the student notebooks (so autosave cannot touch the repository)."""
    root = tmp_path_factory.mktemp("lab")
    for nb in NOTEBOOKS.glob("*.ipynb"):
        shutil.copy(nb, root / nb.name)
    _widget_notebook(root / "widget_check.ipynb")
    port = _free_port()
    log = open(root / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.disable_check_xsrf=True"] + (["--allow-root"] if os.geteuid() == 0 else []),
        stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            if server.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("JupyterLab did not start:\n" + (root / "lab.log").read_text()[-2000:])
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


def _open(browser, lab, notebook: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # A workspace of its own, so JupyterLab does not restore another test's open notebooks.
    workspace = Path(notebook).stem.replace("_", "-")
    page.goto(f"{lab}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={TOKEN}", wait_until="domcontentloaded")
    page.wait_for_function(f"() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           f" && window.jupyterapp.shell.currentWidget.context"
                           f" && window.jupyterapp.shell.currentWidget.context.path === {json.dumps(notebook)}",
                           timeout=90_000)
    # Wait until the kernel is connected and idle, then run everything through JupyterLab's own command.
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
                           timeout=90_000)
    return page


def _run_all_and_wait(page, timeout_ms: int) -> None:
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # Every code cell gets an execution count, and the kernel goes back to idle.
    page.wait_for_function(
        """() => {
            const panel = window.jupyterapp.shell.currentWidget;
            const cells = panel.content.widgets.filter(c => c.model.type === 'code');
            const done = cells.every(c => c.model.executionCount !== null && c.model.executionCount !== undefined);
            return done && panel.sessionContext.session.kernel.status === 'idle';
        }""", timeout=timeout_ms, polling=1000)


def _outputs(page) -> list[dict]:
    """Every output of the open notebook, from JupyterLab's model (cells out of view are not in the DOM)."""
    return page.evaluate("""() => {
        const out = [];
        for (const cell of window.jupyterapp.shell.currentWidget.content.model.cells) {
            if (cell.type !== 'code') continue;
            for (let i = 0; i < cell.outputs.length; i++) out.push(cell.outputs.get(i).toJSON());
        }
        return out;
    }""")


def test_lab_serves_the_course(lab):
    with urllib.request.urlopen(f"{lab}/api/contents?token={TOKEN}") as r:
        names = {item["name"] for item in json.load(r)["content"]}
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} <= names
    with urllib.request.urlopen(f"{lab}/lab?token={TOKEN}") as r:
        assert r.status == 200 and "JupyterLab" in r.read().decode()


def test_student_notebook_00_runs_in_jupyterlab(lab, browser):
    page = _open(browser, lab, "00_generative_models.ipynb")
    _run_all_and_wait(page, timeout_ms=240_000)
    outputs = _outputs(page)
    errors = [o for o in outputs if o["output_type"] == "error"]
    assert not errors, [f"{e['ename']}: {e['evalue']}" for e in errors]
    text = "\n".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                      for o in outputs if o["output_type"] == "stream")
    # The exercises are not done in the student version: the checks say so and the notebook carries on.
    assert text.count("is not implemented yet") == 2 and "uses the reference implementation" in text
    assert "nats/image" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 5
    assert page.locator(".jp-OutputArea-output img").count() >= 1  # and the browser renders them
    page.close()


def test_widgets_render_and_respond(lab, browser):
    page = _open(browser, lab, "widget_check.ipynb")
    _run_all_and_wait(page, timeout_ms=60_000)
    page.wait_for_selector(".widget-slider", timeout=30_000)
    page.wait_for_function("() => document.body.innerText.includes('square of k is 9')", timeout=30_000)
    assert page.locator("text=Error displaying widget").count() == 0
    handle = page.locator(".widget-slider .noUi-handle, .widget-slider .ui-slider-handle").first
    handle.focus()
    for _ in range(2):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.body.innerText.includes('square of k is 25')", timeout=30_000)
    page.close()
