"""The course's JupyterLab (``make lab``, Binder): no news pop-up, kernels of closed notebooks shut down.

jupyter-config/install.py writes the settings into an environment; here it is run on a temporary prefix
and the result is read back the way JupyterLab and the Jupyter server read it. tests/test_lab.py
checks the installed environment in a browser.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import pytest
import yaml
from jupyter_core.paths import jupyter_config_path
from jupyterlab_server.settings_utils import get_settings

from notebook_tools import ROOT

INSTALL = ROOT / "jupyter-config" / "install.py"
SCHEMAS = os.path.join(sys.prefix, "share", "jupyter", "lab", "schemas")   # JupyterLab's, of this environment
NOTIFICATION, TRACKER = "@jupyterlab/apputils-extension:notification", "@jupyterlab/notebook-extension:tracker"


def install(prefix) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(INSTALL), "--prefix", str(prefix)], capture_output=True, text=True)


def lab_defaults(prefix, plugin: str) -> dict:
    """The defaults JupyterLab of environment ``prefix`` sends its front end for ``plugin`` (the
    schema's defaults with the environment's overrides.json applied), for a user with no settings."""
    with tempfile.TemporaryDirectory() as user:
        found, _ = get_settings(os.path.join(prefix, "share", "jupyter", "lab", "settings"), SCHEMAS, user,
                                schema_name=plugin)
    return {k: v.get("default") for k, v in found["schema"]["properties"].items()}


def server_config(prefix) -> tuple[list[str], dict[str, str]]:
    """``jupyter server --show-config`` with environment ``prefix`` first on the config path: (the
    config files it loads, the MappingKernelManager options it ends up with)."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "JUPYTER_CONFIG_PATH": os.path.join(prefix, "etc", "jupyter"), "JUPYTER_CONFIG_DIR": home}
        done = subprocess.run([sys.executable, "-m", "jupyter", "server", "--show-config"], env=env,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    files = re.search(r"Loaded config files:\n((?:  .*\n)*)", done.stdout)
    section = re.search(r"^MappingKernelManager\n((?:  \..*\n)*)", done.stdout, re.M)
    options = dict(line.strip()[1:].split(" = ") for line in section.group(1).splitlines()) if section else {}
    return (files.group(1).split() if files else []), options


def test_without_the_settings_jupyterlab_asks_about_news(tmp_path):
    """The default that greets a first start with the pop-up; the test below can tell the difference."""
    assert lab_defaults(tmp_path, NOTIFICATION)["fetchNews"] == "none"
    assert lab_defaults(tmp_path, TRACKER)["kernelShutdown"] is False


def test_installed_settings_turn_the_news_off_and_shut_closed_kernels_down(tmp_path):
    done = install(tmp_path)
    assert done.returncode == 0, done.stderr
    notification = lab_defaults(tmp_path, NOTIFICATION)
    assert notification["fetchNews"] == "false" and notification["checkForUpdates"] is False
    assert lab_defaults(tmp_path, TRACKER)["kernelShutdown"] is True


def test_the_server_culls_idle_kernels_no_notebook_is_connected_to(tmp_path):
    config = str(tmp_path / "etc" / "jupyter" / "jupyter_server_config.json")
    assert config not in server_config(tmp_path)[0]
    assert install(tmp_path).returncode == 0
    files, options = server_config(tmp_path)
    assert config in files
    assert options == {"cull_idle_timeout": "600", "cull_interval": "60", "cull_connected": "False",
                       "cull_busy": "False"}, options
    # an environment's etc/jupyter is on the server's config path: .venv's for `make lab`, Binder's
    assert os.path.join(sys.prefix, "etc", "jupyter") in jupyter_config_path()


def test_the_server_config_names_real_settings():
    """A misspelt option would be ignored silently: each one must be a configurable trait."""
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager

    config = json.loads((ROOT / "jupyter-config" / "jupyter_server_config.json").read_text())
    traits = MappingKernelManager.class_traits(config=True)
    for name, value in config["MappingKernelManager"].items():
        assert name in traits, f"MappingKernelManager has no option {name!r}"
        traits[name].validate(None, value)   # raises for a value of the wrong type


def test_what_is_there_is_kept(tmp_path):
    overrides = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    overrides.parent.mkdir(parents=True)
    overrides.write_text(json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
                                     NOTIFICATION: {"doNotDisturbMode": True, "fetchNews": "true"}}))
    assert install(tmp_path).returncode == 0
    merged = json.loads(overrides.read_text())
    assert merged["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}
    assert merged[NOTIFICATION] == {"doNotDisturbMode": True, "fetchNews": "false", "checkForUpdates": False}
    assert install(tmp_path).returncode == 0 and json.loads(overrides.read_text()) == merged   # idempotent


def test_a_broken_settings_file_is_named(tmp_path):
    config = tmp_path / "etc" / "jupyter" / "jupyter_server_config.json"
    config.parent.mkdir(parents=True)
    config.write_text("{not json")
    done = install(tmp_path)
    assert done.returncode != 0 and f"{config} is not valid JSON" in done.stderr


def test_make_lab_and_binder_install_them():
    makefile = (ROOT / "Makefile").read_text()
    lab_recipe = makefile[makefile.index("$(LAB_STAMP):"):makefile.index("touch $(LAB_STAMP)")]
    assert "$(PY) jupyter-config/install.py" in lab_recipe
    assert "\nlab: $(LAB_STAMP)" in makefile
    post_build = ROOT / "postBuild"   # repo2docker runs it after environment.yml, in that environment
    assert os.access(post_build, os.X_OK) and "python jupyter-config/install.py" in post_build.read_text()
    # repo2docker reads the root's environment.yml and postBuild only when there is no binder/ folder
    assert not (ROOT / "binder").exists() and not (ROOT / ".binder").exists()
    assert yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"][-1] == {"pip": ["-e ."]}


@pytest.mark.parametrize("name", ["overrides.json", "jupyter_server_config.json"])
def test_the_config_files_are_json_objects_of_sections(name):
    config = json.loads((ROOT / "jupyter-config" / name).read_text())
    assert config and all(isinstance(v, dict) and v for v in config.values())
