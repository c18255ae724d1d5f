"""The course in a real browser: JupyterLab serves the student release, every notebook runs top to
bottom, every figure shows, every ipywidgets panel renders and answers its controls.

nbval proves the kernel side runs; only a browser sees what a student sees (a widget that fails to
render, a slider whose callback throws in the front end, a figure that never shows).

* Chromium is Debian's (/usr/bin/chromium, or ``$LECTURE13_CHROMIUM``) driven by Playwright; CI
  installs it (.ci/run) and, with CI=true, a skip is a failure (the root conftest.py).
* Run them alone with ``pytest -m browser`` (or ``make browser``).
* On a failure, a screenshot of the page and JupyterLab's log are saved under the folder printed at
  the end of the run (``$LECTURE13_ARTIFACTS``, by default ``test-artifacts/browser``).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from notebook_tools import NOTEBOOKS, ROOT, SOLUTIONS, exercises, read

CHROMIUM = os.environ.get("LECTURE13_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("LECTURE13_ARTIFACTS", ROOT / "test-artifacts")) / "browser"
STUDENT_NOTEBOOKS = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
FALLBACK = "is not implemented yet"              # what exercises.check prints for a stub (then uses the reference)
RUN_ALL_TIMEOUT_MS = 15 * 60_000                 # notebook 06 takes ~40 s on an idle 2-core CPU; CI may be busy

pytest.importorskip("playwright", reason="the browser tests need Playwright: pip install -e '.[test]'")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"no Chromium at {CHROMIUM}: install it with `sudo apt-get install chromium` "
                              "(or set LECTURE13_CHROMIUM); CI installs it and fails on skips"),
]


# --------------------------------------------------------------------------- what the stored solutions show
def expected_outputs(name: str) -> dict[str, dict]:
    """Per cell id of the executed solution: how many figures it shows and whether it shows widgets.
    The student release has the same cells and ids (tests/test_release.py), so these carry over."""
    cells = {}
    for cell in read(SOLUTIONS / name).cells:
        if cell.cell_type != "code":
            continue
        figures = sum("image/png" in o.get("data", {}) for o in cell.outputs)
        widgets = any(WIDGET_MIME in o.get("data", {}) for o in cell.outputs)
        controls = bool(re.search(r"widgets\.(interact|\w*Slider|Dropdown)", cell.source))
        if figures or widgets:
            cells[cell.id] = {"figures": figures, "widgets": widgets, "controls": controls}
    return cells


# --------------------------------------------------------------------------- JupyterLab and Chromium
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(folder: Path) -> None:
    """JupyterLab settings for the test: every cell in the DOM (no virtual scrolling, so every
    figure and widget can be found), and no news or update pop-ups."""
    for plugin, values in {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = folder / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


class Lab:
    def __init__(self, url: str, token: str, log: Path, root: Path):
        self.url, self.token, self.log, self.root = url, token, log, root

    def api(self, path: str):
        with urllib.request.urlopen(f"{self.url}{path}{'&' if '?' in path else '?'}token={self.token}", timeout=30) as r:
            return r.status, r.read().decode()


@contextlib.contextmanager
def start_lab(root: Path, base: Path, *args: str, cls: type[Lab] = Lab):
    """JupyterLab of this environment serving ``root``, on a free loopback port with a random token,
    its workspaces and log under ``base``, with the extra command-line ``args``; always stopped,
    also on failure."""
    token, port, log_path = secrets.token_hex(16), _free_port(), base / "jupyterlab.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
             f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
             f"--LabApp.workspaces_dir={base / 'workspaces'}", "--ServerApp.disable_check_xsrf=True", *args]
            + (["--allow-root"] if os.geteuid() == 0 else []),
            stdout=log, stderr=subprocess.STDOUT, cwd=root)
        lab = cls(f"http://127.0.0.1:{port}", token, log_path, root)
        try:
            deadline = time.monotonic() + 120
            while True:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start; its log:\n" + log_path.read_text()[-3000:])
                try:
                    if lab.api("/api/status")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.5)
            yield lab
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a temporary copy of the repository's student side (autosave cannot touch the
    checkout), with settings of its own."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "lecture13"
    shutil.copytree(NOTEBOOKS, root / "notebooks")
    shutil.copy(ROOT / "README.md", root / "README.md")
    _write_settings(base / "settings")
    with start_lab(root, base, f"--LabApp.user_settings_dir={base / 'settings'}") as lab:
        yield lab


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(request, browser, lab):
    """A fresh page; uncaught front-end exceptions are collected in ``page.errors``. If the test
    fails, a full-page screenshot and JupyterLab's log are saved as artifacts."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is None or report.failed:
            _save_artifacts(request.node.name, page, lab)
        page.close()


def _save_artifacts(test_name: str, page, lab: Lab) -> None:
    folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", test_name)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=str(folder / "page.png"), full_page=True, timeout=30_000)
    except Exception as error:  # a crashed page must not hide the test's own failure
        (folder / "screenshot-failed.txt").write_text(f"{type(error).__name__}: {error}\n")
    shutil.copy(lab.log, folder / "jupyterlab.log")
    (folder / "page-errors.txt").write_text("\n".join(getattr(page, "errors", [])) + "\n")
    print(f"\nbrowser test artifacts (screenshot, JupyterLab log) saved in {folder}", file=sys.stderr)


# --------------------------------------------------------------------------- driving JupyterLab
CURRENT = "window.jupyterapp.shell.currentWidget"


def _dismiss_dialogs(page) -> None:
    """Accept any JupyterLab dialog (kernel choice, a build notice): the default is what a student clicks."""
    for _ in range(5):
        dialog = page.locator(".jp-Dialog")
        if dialog.count() == 0:
            return
        accept = dialog.locator("button.jp-mod-accept")
        if accept.count():
            accept.first.click()
        else:
            page.keyboard.press("Escape")
        page.wait_for_timeout(500)


def _open(page, lab: Lab, path: str) -> None:
    """Open ``path`` in a workspace of its own and wait until its kernel is connected and idle."""
    workspace = re.sub(r"\W+", "-", Path(path).stem)
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{path}?reset&token={lab.token}", wait_until="domcontentloaded")
    page.wait_for_function(f"() => window.jupyterapp && {CURRENT} && {CURRENT}.context"
                           f" && {CURRENT}.context.path === {json.dumps(path)}", timeout=120_000)
    _dismiss_dialogs(page)
    page.wait_for_function(f"() => {CURRENT}.sessionContext.session && {CURRENT}.sessionContext.session.kernel"
                           f" && {CURRENT}.sessionContext.session.kernel.status === 'idle'", timeout=120_000)


def _run_all_and_wait(page, timeout_ms: int) -> None:
    """Run All through JupyterLab's own command; done when every code cell has an execution count
    and the kernel is idle again."""
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(
        f"""() => {{
            const panel = {CURRENT};
            const cells = panel.content.widgets.filter(c => c.model.type === 'code');
            const done = cells.every(c => c.model.executionCount !== null && c.model.executionCount !== undefined);
            return done && panel.sessionContext.session.kernel.status === 'idle';
        }}""", timeout=timeout_ms, polling=1000)
    _dismiss_dialogs(page)
    # Tag every cell's DOM node with its id, so the checks below can address cells by id.
    page.evaluate(f"() => {CURRENT}.content.widgets.forEach(c => c.node.dataset.cellId = c.model.id)")


def _outputs_by_cell(page) -> dict[str, list[dict]]:
    """Every output of the open notebook, per cell id, from JupyterLab's model."""
    return page.evaluate(f"""() => {{
        const out = {{}};
        for (const cell of {CURRENT}.content.model.cells) {{
            if (cell.type !== 'code') continue;
            out[cell.id] = [];
            for (let i = 0; i < cell.outputs.length; i++) out[cell.id].push(cell.outputs.get(i).toJSON());
        }}
        return out;
    }}""")


def _text(output: dict) -> str:
    text = output.get("text", "")
    return text if isinstance(text, str) else "".join(text)


def _rendered_images(cell) -> list[dict]:
    """The <img> elements of a cell's outputs: their source and whether the browser decoded them."""
    return cell.locator(".jp-OutputArea-output img").evaluate_all(
        "imgs => imgs.map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0}))")


def _error_texts_in_page(page) -> list[str]:
    """Tracebacks the browser shows anywhere, widget outputs included (an exception raised in an
    ``interact`` callback lands in the widget's output area, not in the notebook's model)."""
    return page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").evaluate_all(
        "nodes => nodes.map(n => n.innerText).filter(t => /Traceback|Error:/.test(t)).map(t => t.slice(-400))")


def _panel_image(cell) -> str:
    images = [i for i in _rendered_images(cell) if i["ok"]]
    return images[-1]["src"] if images else ""


def _wait_for_new_image(page, cell, before: str, what: str, timeout_ms: int) -> None:
    try:
        page.wait_for_function(
            "([cell, before]) => [...cell.querySelectorAll('.jp-OutputArea-output img')]"
            ".some(i => i.complete && i.naturalWidth > 0 && (i.currentSrc || i.src) !== before)",
            arg=[cell.element_handle(), before], timeout=timeout_ms)
    except Exception as error:
        shown = _error_texts_in_page(page)
        raise AssertionError(f"the panel's figure did not change after {what}"
                             + (f"; the page shows: {shown}" if shown else "")) from error


def check_panel(page, cell, timeout_ms: int = 60_000) -> int:
    """Move every slider one step and change every drop-down of an interactive panel; after each,
    the panel's figure must be redrawn (a new image). Returns how many controls were moved."""
    cell.scroll_into_view_if_needed()
    cell.locator(".widget-interact").first.wait_for(state="visible", timeout=30_000)
    before = _panel_image(cell)
    assert before, "the panel shows no figure before it is touched"
    sliders, dropdowns = cell.locator(".widget-slider"), cell.locator(".widget-dropdown select")
    assert sliders.count() + dropdowns.count() >= 1, "the panel has no slider or drop-down"
    for i in range(sliders.count()):
        label = sliders.nth(i).locator(".widget-label").inner_text()
        sliders.nth(i).locator(".noUi-handle, .ui-slider-handle").first.focus()
        page.keyboard.press("ArrowLeft")                      # every panel starts off its minimum
        _wait_for_new_image(page, cell, before, f"moving slider {label!r} one step", timeout_ms)
        before = _panel_image(cell)
    for i in range(dropdowns.count()):
        select = dropdowns.nth(i)
        select.select_option(index=0 if select.evaluate("s => s.selectedIndex") != 0 else 1)
        _wait_for_new_image(page, cell, before, f"changing drop-down {i + 1}", timeout_ms)
        before = _panel_image(cell)
    return sliders.count() + dropdowns.count()


# --------------------------------------------------------------------------- the tests
def test_lab_serves_the_course(lab):
    status, body = lab.api("/api/contents/notebooks")
    assert status == 200
    assert {item["name"] for item in json.loads(body)["content"]} >= set(STUDENT_NOTEBOOKS)
    status, body = lab.api("/lab")
    assert status == 200 and "JupyterLab" in body


def test_every_notebook_and_panel_is_checked():
    """The parametrisation follows notebooks/; a release without notebooks or panels would test nothing."""
    assert len(STUDENT_NOTEBOOKS) >= 7 and STUDENT_NOTEBOOKS == sorted(p.name for p in SOLUTIONS.glob("*.ipynb"))
    panels = {name: [c for c, e in expected_outputs(name).items() if e["controls"]] for name in STUDENT_NOTEBOOKS}
    assert sum(map(len, panels.values())) >= 3, panels


@pytest.mark.parametrize("name", STUDENT_NOTEBOOKS)
def test_student_notebook_runs_in_jupyterlab(name, lab, page):
    """Run All on the student version: no error output, the intended exercise fall-backs only,
    every figure displayed, every widget rendered, and every interactive panel answers its controls."""
    _open(page, lab, f"notebooks/{name}")
    _run_all_and_wait(page, RUN_ALL_TIMEOUT_MS)
    outputs = _outputs_by_cell(page)
    flat = [o for cell in outputs.values() for o in cell]

    errors = [f"{o['ename']}: {o['evalue']}" for o in flat if o["output_type"] == "error"]
    errors += [_text(o)[-500:] for o in flat if o["output_type"] == "stream" and "Traceback" in _text(o)]
    errors += _error_texts_in_page(page)
    assert not errors, f"{name}: error output in the browser: {errors}"

    # Each exercise is a stub in the student release: its check says so once and uses the reference.
    printed = "\n".join(_text(o) for o in flat if o["output_type"] == "stream")
    n_exercises = len(exercises(read(NOTEBOOKS / name)))
    assert printed.count(FALLBACK) == n_exercises, (
        f"{name}: expected {n_exercises} '{FALLBACK}' fall-back messages (one per exercise), "
        f"got {printed.count(FALLBACK)}")

    panels = []
    for cell_id, expected in expected_outputs(name).items():
        cell = page.locator(f'[data-cell-id="{cell_id}"]')
        assert cell.count() == 1, f"{name}: cell {cell_id} is not in the page"
        cell.scroll_into_view_if_needed()
        if expected["figures"]:
            shown = sum("image/png" in o.get("data", {}) for o in outputs[cell_id])
            assert shown >= expected["figures"], f"{name}: cell {cell_id} should show {expected['figures']} figure(s), shows {shown}"
            page.wait_for_function("cell => [...cell.querySelectorAll('.jp-OutputArea-output img')]"
                                   ".filter(i => i.complete && i.naturalWidth > 0).length >= 1",
                                   arg=cell.element_handle(), timeout=30_000)
            images = _rendered_images(cell)
            assert len(images) >= expected["figures"] and all(i["ok"] for i in images), (
                f"{name}: cell {cell_id}: figures not rendered by the browser: {[i['ok'] for i in images]}")
        if expected["widgets"]:
            cell.locator(".jupyter-widgets").first.wait_for(state="attached", timeout=30_000)
            assert cell.get_by_text("Error displaying widget").count() == 0, f"{name}: cell {cell_id}: widget error box"
            assert cell.get_by_text("Loading widget...").count() == 0, f"{name}: cell {cell_id}: widget never loaded"
        if expected["controls"]:
            panels.append(cell_id)

    for cell_id in panels:                       # every interactive panel: each control redraws its figure
        try:
            check_panel(page, page.locator(f'[data-cell-id="{cell_id}"]'))
        except AssertionError as error:
            raise AssertionError(f"{name}: the widget panel in cell {cell_id}: {error}") from None
    assert not page.errors, f"{name}: uncaught errors in the page: {page.errors}"


# --------------------------------------------------------------------------- the checks catch planted bugs
def _planted_panel(path: Path, callback_body: str) -> None:
    """A notebook with one interactive panel whose callback is ``callback_body`` (k starts at 3)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "import ipywidgets as widgets\nimport matplotlib.pyplot as plt\n\n"
        "def show(k):\n" + "".join(f"    {line}\n" for line in callback_body.splitlines()) +
        "\nwidgets.interact(show, k=widgets.IntSlider(value=3, min=0, max=5, continuous_update=False));")]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


DRAW = "plt.plot([0, k]); plt.title(f'k = {k}'); plt.show()"


@pytest.mark.parametrize("bug,planted,message", [
    pytest.param("throws-when-moved", f"if k != 3:\n    raise ValueError('planted bug')\n{DRAW}",
                 "ValueError: planted bug", id="throws-when-moved"),
    pytest.param("ignores-its-control", DRAW.replace("{k}", "3").replace("[0, k]", "[0, 3]"), "did not change",
                 id="ignores-its-control"),
])
def test_the_panel_check_catches_a_broken_panel(bug, planted, message, lab, page):
    _planted_panel(lab.root / "planted" / f"{bug}.ipynb", planted)
    _open(page, lab, f"planted/{bug}.ipynb")
    _run_all_and_wait(page, 120_000)
    cell = page.locator(".jp-Notebook .jp-CodeCell").first
    with pytest.raises(AssertionError, match=message):
        check_panel(page, cell, timeout_ms=10_000)     # a working panel redraws in well under a second


def test_a_working_panel_passes_the_check(lab, page):
    """The same planted notebook with a correct callback: the check passes (it is not always failing)."""
    _planted_panel(lab.root / "planted" / "working.ipynb", DRAW)
    _open(page, lab, "planted/working.ipynb")
    _run_all_and_wait(page, 120_000)
    assert check_panel(page, page.locator(".jp-Notebook .jp-CodeCell").first) == 1
    assert not _error_texts_in_page(page) and not page.errors
