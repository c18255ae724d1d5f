"""What each way of installing the course pulls in.

* The runtime dependencies (pyproject.toml's [project.dependencies]) are what the package and its
  notebooks import; JupyterLab, the test tools and the website's tools are extras.
* Colab's set-up cell installs only the runtime: no JupyterLab, no Jupyter server, no test tools.
* environment.yml (conda, Binder) names the runtime packages and the [lab] extra.

Dependencies are resolved from the metadata of what is installed here (no index, no network).
"""
import ast
import functools
import re
import sys
import tomllib
from importlib import metadata

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from lecture13 import course
from notebook_tools import ROOT, SOLUTIONS, read

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CONDA_TO_PYPI = {"pytorch": "torch"}
# What Colab must not get: JupyterLab and its server (Colab runs its own front end and kernel).
JUPYTER_APPS = {"jupyterlab", "jupyter-server", "jupyterlab-server", "notebook", "nbclassic", "jupyter-lsp", "jupyter"}
# Imports that only an instructor's command runs, inside the function that needs them, with the extra
# that provides them. Every other import of the package must be satisfied by the runtime dependencies.
EXTRA_IMPORTS = {"nbclient": "instructor", "sphinx": "site"}


def _name(requirement: str) -> str:
    return canonicalize_name(Requirement(requirement).name)


def resolve(requirements: list[str]) -> set[str]:
    """Every distribution that installing ``requirements`` pulls in (canonical names), following the
    metadata of the installed distributions and their markers; ``lecture13[...]`` is read from
    pyproject.toml, so the answer is about this checkout, not about what was installed from it."""
    pulled: set[str] = set()
    seen: set[tuple[str, frozenset]] = set()
    todo = [(Requirement(r), "the request") for r in requirements]
    while todo:
        requirement, parent = todo.pop()
        name, extras = canonicalize_name(requirement.name), frozenset(requirement.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        pulled.add(name)
        if name == "lecture13":
            unknown = extras - set(PROJECT["optional-dependencies"])
            assert not unknown, f"{parent} asks for extras that pyproject.toml does not define: {sorted(unknown)}"
            lines = PROJECT["dependencies"] + [r for e in sorted(extras) for r in PROJECT["optional-dependencies"][e]]
        else:
            try:
                lines = metadata.distribution(name).requires or []
            except metadata.PackageNotFoundError:
                raise AssertionError(f"{name} (required by {parent}) is not installed here, so its dependencies "
                                     "cannot be followed: pip install -e '.[test]'") from None
        for line in lines:
            child = Requirement(line)
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in ("", *extras)):
                todo.append((child, f"{requirement.name}{'[' + ','.join(sorted(extras)) + ']' if extras else ''}"))
    return pulled


def colab_requirement() -> Requirement:
    """What the Colab set-up cell of every notebook installs."""
    match = re.search(r'%pip install -q "([^"]+)"', course.colab_setup_source())
    assert match, course.colab_setup_source()
    return Requirement(match.group(1))


def test_colab_installs_the_runtime_only():
    requirement = colab_requirement()
    assert requirement.name == "lecture13" and requirement.url.startswith("git+https://github.com/")
    pulled = resolve([f"lecture13[{','.join(sorted(requirement.extras))}]" if requirement.extras else "lecture13"])
    assert {"torch", "numpy", "matplotlib", "ipywidgets", "nbformat"} <= pulled
    assert not pulled & JUPYTER_APPS, f"Colab's install would pull {sorted(pulled & JUPYTER_APPS)}"
    libraries = {"lecture13", "packaging", "pyyaml"}   # the tools' extras also name libraries the runtime may need
    tools = {_name(r) for e in ("test", "site") for r in PROJECT["optional-dependencies"][e]} - libraries
    assert not pulled & tools, f"Colab's install would pull test or site tools: {sorted(pulled & tools)}"
    # the same resolution does see JupyterLab where it is asked for: the check above can fail
    assert {"jupyterlab", "jupyter-server"} <= resolve(["lecture13[lab]"])


def test_the_extras_hold_what_make_lab_and_make_test_need():
    extras = PROJECT["optional-dependencies"]
    assert "jupyterlab" in {_name(r) for r in extras["lab"]} and "ipykernel" in {_name(r) for r in extras["lab"]}
    assert not JUPYTER_APPS & {_name(r) for r in PROJECT["dependencies"]}
    pulled = resolve(["lecture13[test]"])   # what `make test` installs
    assert {"jupyterlab", "nbclient", "sphinx", "myst-nb", "pytest", "nbval", "playwright"} <= pulled
    makefile = (ROOT / "Makefile").read_text()
    assert 'pip install -e ".[lab]"' in makefile and 'pip install -e ".[test]"' in makefile


# --------------------------------------------------------------------------- what the package imports
def imports(source: str) -> tuple[set[str], set[str]]:
    """Top-level names of the modules ``source`` imports, absolute imports only: (those run when the
    module is imported, those inside a function)."""
    at_import, in_functions = set(), set()

    def visit(node, inside_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                names = [child.module]
            (in_functions if inside_function else at_import).update(n.split(".")[0] for n in names)
            visit(child, inside_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    try:
        tree = ast.parse(source)
    except SyntaxError:   # IPython syntax, or a newer Python's: read the import lines instead
        for match in re.finditer(r"^([ \t]*)(?:from[ \t]+(\w+)[\w.]*[ \t]+import\b|import[ \t]+([^\n#;]+))", source, re.M):
            names = [match[2]] if match[2] else [n.split()[0].split(".")[0] for n in match[3].split(",") if n.strip()]
            (in_functions if match[1] else at_import).update(names)
        return at_import, in_functions
    visit(tree, False)
    return at_import, in_functions


def third_party(modules: set[str]) -> set[str]:
    return {m for m in modules if m not in sys.stdlib_module_names and m != "lecture13"}


@functools.cache
def _module_owners() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def distributions(module: str) -> set[str]:
    found = _module_owners().get(module)
    assert found, f"no installed distribution provides the module {module!r}"
    return {canonicalize_name(d) for d in found}


def package_and_notebook_imports() -> tuple[set[str], set[str]]:
    """(modules imported at run time by the package or a notebook, modules imported inside functions)."""
    at_import, in_functions = set(), set()
    for path in sorted((ROOT / "lecture13").glob("*.py")):
        now, later = imports(path.read_text())
        at_import |= now
        in_functions |= later
    for file, _, _ in course.NOTEBOOKS:
        for cell in read(SOLUTIONS / file).cells:
            if cell.cell_type == "code":  # IPython's %magic and !shell lines become `pass`; a notebook runs it all
                at_import |= set().union(*imports(re.sub(r"^(\s*)[%!].*$", r"\1pass", cell.source, flags=re.M)))
    return third_party(at_import), third_party(in_functions)


def test_runtime_dependencies_are_what_the_package_and_notebooks_import():
    at_import, in_functions = package_and_notebook_imports()
    runtime = resolve(["lecture13"])
    for module in sorted(at_import | (in_functions - set(EXTRA_IMPORTS))):
        assert distributions(module) & runtime, (
            f"{module} is imported by the package or a notebook but not installed by its runtime dependencies")
    for module, extra in EXTRA_IMPORTS.items():
        assert module in in_functions and module not in at_import, f"{module} is no longer imported lazily only"
        assert distributions(module) & resolve([f"lecture13[{extra}]"]), f"the [{extra}] extra does not provide {module}"
    imported = set().union(*(distributions(m) for m in at_import | in_functions))
    unused = {_name(r) for r in PROJECT["dependencies"]} - imported
    assert not unused, f"runtime dependencies that neither the package nor a notebook imports: {sorted(unused)}"


def test_the_import_scan_sees_lazy_and_module_level_imports():
    at_import, in_functions = imports("import os\nfrom torch import nn\nclass A:\n    import numpy\n"
                                      "def f():\n    import nbclient\n    from .x import y\n")
    assert at_import == {"os", "torch", "numpy"} and in_functions == {"nbclient"}
    assert third_party(at_import) == {"torch", "numpy"}
    # a cell this Python cannot parse (IPython's `obj?`, a newer f-string): its import lines still count
    at_import, in_functions = imports("import torch, numpy as np\nfrom tqdm.auto import tqdm\nx?\n"
                                      "def f():\n    import nbclient\n")
    assert at_import == {"torch", "numpy", "tqdm"} and in_functions == {"nbclient"}


# --------------------------------------------------------------------------- conda / Binder
def _split(requirement: str) -> tuple[str, str]:
    match = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", requirement.strip())
    return match.group(1).lower(), match.group(2).replace(" ", "")


def _conda_spec(spec: str) -> tuple[str, str]:
    bracket = re.match(r"^([A-Za-z0-9_.\-]+)\[version='([^']+)'", spec)
    if bracket:
        return bracket.group(1).lower(), bracket.group(2)
    return _split(spec)


def test_environment_yml_matches_pyproject():
    pypi = dict(_split(r) for r in PROJECT["dependencies"] + PROJECT["optional-dependencies"]["lab"])
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
    assert conda == pypi, f"pyproject (runtime + [lab]): {pypi}\nenvironment.yml: {conda}"
    assert all(v.startswith(">=") for v in pypi.values()), "runtime dependencies are ranges, not pins"
    assert "build='cpu*'" in (ROOT / "environment.yml").read_text(), "Binder must get CPU-only PyTorch"


def test_python_floor_is_the_same():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert PROJECT["requires-python"] == ">=3.10" and "python>=3.10" in env["dependencies"]
