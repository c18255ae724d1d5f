"""environment.yml (conda, Binder) and pyproject.toml must name the same runtime dependencies."""
import re
import tomllib

import yaml

from notebook_tools import ROOT

CONDA_TO_PYPI = {"pytorch": "torch"}


def _split(requirement: str) -> tuple[str, str]:
    match = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", requirement.strip())
    return match.group(1).lower(), match.group(2).replace(" ", "")


def _conda_spec(spec: str) -> tuple[str, str]:
    bracket = re.match(r"^([A-Za-z0-9_.\-]+)\[version='([^']+)'", spec)
    if bracket:
        return bracket.group(1).lower(), bracket.group(2)
    return _split(spec)


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pypi = dict(_split(r) for r in project["dependencies"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    conda = {}
    for item in env["dependencies"]:
        if isinstance(item, dict):
            assert item == {"pip": ["-e ."]}
            continue
        name, version = _conda_spec(item)
        if name in ("python", "pip"):
            continue
        conda[CONDA_TO_PYPI.get(name, name)] = version
    assert conda == pypi, f"pyproject: {pypi}\nenvironment.yml: {conda}"
    assert all(v.startswith(">=") for v in pypi.values()), "runtime dependencies are ranges, not pins"
    assert "build='cpu*'" in (ROOT / "environment.yml").read_text(), "Binder must get CPU-only PyTorch"


def test_python_floor_is_the_same():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert project["requires-python"] == ">=3.10" and "python>=3.10" in env["dependencies"]
