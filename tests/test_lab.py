"""``make lab`` as a student meets it, in Chromium: the first notebook opens with no pop-up over it,
closing a notebook shuts its kernel down, and kernels no notebook is connected to are culled.

JupyterLab is started from this environment the way ``make lab`` starts it, with the environment's
own settings (jupyter-config/, installed by ``make lab`` / ``make test``) and an empty user settings
folder (a first start). Only the culling delay is shortened, so the test can watch a cull.
Conventions (Chromium, skips, CI) are those of tests/test_browser.py.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import test_browser
from notebook_tools import NOTEBOOKS, ROOT
from test_browser import CURRENT, Lab, _dismiss_dialogs, browser  # noqa: F401 (browser: a fixture)

pytestmark = test_browser.pytestmark
FIRST = re.search(r"^NOTEBOOK \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)   # what `make lab` opens
NOTIFICATION = "@jupyterlab/apputils-extension:notification"
CULL_S = 20   # the culling delay here (600 s in jupyter-config/): longer than a busy machine takes to connect a kernel
NEWS = "official Jupyter news"


def _installed() -> str | None:
    """Why this environment lacks the course's JupyterLab settings, or None when it has them."""
    for name, relative in {"overrides.json": "share/jupyter/lab/settings/overrides.json",
                           "jupyter_server_config.json": "etc/jupyter/jupyter_server_config.json"}.items():
        path = Path(sys.prefix) / relative
        ours = json.loads((ROOT / "jupyter-config" / name).read_text())
        there = json.loads(path.read_text()) if path.exists() else {}
        if any(there.get(section, {}).get(k) != v for section, values in ours.items() for k, v in values.items()):
            return f"{path} lacks the course's settings: run `{sys.executable} jupyter-config/install.py` (make lab does)"
    return None


class StudentLab(Lab):
    def call(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(f"{self.url}{path}?token={self.token}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            text = r.read().decode()
            return json.loads(text) if text else None

    def kernels(self) -> set[str]:
        return {k["id"] for k in self.call("GET", "/api/kernels")}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    missing = _installed()
    if missing:
        pytest.skip(missing)
    base = tmp_path_factory.mktemp("student-lab")
    root = base / "lecture13"
    shutil.copytree(NOTEBOOKS, root / "notebooks")
    with test_browser.start_lab(root, base, f"--LabApp.user_settings_dir={base / 'user-settings'}",
                                f"--MappingKernelManager.cull_idle_timeout={CULL_S}",
                                "--MappingKernelManager.cull_interval=1", cls=StudentLab) as lab:
        yield lab


@pytest.fixture
def page(request, browser, lab):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is None or report.failed:
            test_browser._save_artifacts(request.node.name, page, lab)
        page.close()


def _open_first_notebook(page, lab: Lab, workspace: str) -> None:
    """What `make lab` opens, in a workspace of its own; returns once its kernel is idle."""
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{FIRST}?reset&token={lab.token}", wait_until="domcontentloaded")
    page.wait_for_function(f"() => window.jupyterapp && {CURRENT} && {CURRENT}.sessionContext && {CURRENT}.sessionContext.session"
                           f" && {CURRENT}.sessionContext.session.kernel"
                           f" && {CURRENT}.sessionContext.session.kernel.status === 'idle'", timeout=120_000)


def _toasts(page) -> list[str]:
    return page.locator(".Toastify__toast").all_inner_texts()


def _wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s:g} s")
        time.sleep(0.5)


def test_the_first_notebook_opens_with_no_pop_up(lab, page):
    _open_first_notebook(page, lab, "first-start")
    page.wait_for_timeout(5_000)                    # the news question comes a moment after the start
    assert _toasts(page) == [] and page.locator(".jp-Dialog").count() == 0, _toasts(page)
    # the check sees the pop-up where the setting is JupyterLab's default ("ask")
    lab.call("PUT", f"/lab/api/settings/{NOTIFICATION}", {"raw": json.dumps({"fetchNews": "none"})})
    try:
        page.reload(wait_until="domcontentloaded")
        page.locator(".Toastify__toast", has_text=NEWS).wait_for(timeout=60_000)
    finally:
        lab.call("PUT", f"/lab/api/settings/{NOTIFICATION}", {"raw": "{}"})


def test_closing_a_notebook_shuts_its_kernel_down(lab, page):
    _open_first_notebook(page, lab, "close")
    kernel = page.evaluate(f"() => {CURRENT}.sessionContext.session.kernel.id")
    assert kernel in lab.kernels()
    page.evaluate(f"() => {CURRENT}.close()")
    _dismiss_dialogs(page)                          # "save your changes?" when JupyterLab touched the file
    # at once, not by the culler (which would take CULL_S of idleness)
    _wait_until(lambda: kernel not in lab.kernels(), CULL_S / 2, "the kernel of the closed notebook was not shut down")


def test_idle_kernels_no_notebook_is_connected_to_are_culled(lab, page):
    _open_first_notebook(page, lab, "cull")
    connected = page.evaluate(f"() => {CURRENT}.sessionContext.session.kernel.id")
    orphan = lab.call("POST", "/api/kernels", {"name": "python3"})["id"]   # a kernel no notebook shows
    _wait_until(lambda: orphan not in lab.kernels(), CULL_S + 40, "an idle kernel with no connection was not culled")
    assert connected in lab.kernels(), "the kernel of the open notebook was culled (cull_connected must be false)"
    assert f"Culling kernels with idle durations > {CULL_S} seconds" in lab.log.read_text()
