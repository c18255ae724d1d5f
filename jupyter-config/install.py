"""Install the course's JupyterLab settings and server configuration into a Python environment.

    python jupyter-config/install.py                  # into this interpreter's environment (sys.prefix)
    python jupyter-config/install.py --prefix PREFIX

``make lab`` and ``make test`` run it for ``.venv``, Binder's ``postBuild`` for Binder's environment, so
every JupyterLab started from that environment gets:

* ``overrides.json`` -> ``PREFIX/share/jupyter/lab/settings/overrides.json`` (JupyterLab's defaults for
  that environment; a user's own settings still win): no "Jupyter news" pop-up and no update check
  (both would also reach out to the internet), and closing a notebook shuts its kernel down;
* ``jupyter_server_config.json`` -> ``PREFIX/etc/jupyter/jupyter_server_config.json``: a kernel that no
  notebook is connected to (its tab was closed with the browser) is shut down after 10 minutes idle,
  so the kernels of earlier notebooks do not hold Binder's 1-2 GB of memory.

What those files already hold is kept; ours is merged in, plugin by plugin and class by class.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = {  # file here -> where it goes, relative to the environment's prefix
    "overrides.json": Path("share/jupyter/lab/settings/overrides.json"),
    "jupyter_server_config.json": Path("etc/jupyter/jupyter_server_config.json"),
}


def merged(existing: dict, ours: dict) -> dict:
    """``existing`` with each section (a plugin, a configurable class) of ``ours`` merged into it."""
    out = dict(existing)
    for section, values in ours.items():
        out[section] = {**out.get(section, {}), **values}
    return out


def install(prefix: Path | str = sys.prefix) -> list[Path]:
    written = []
    for name, relative in TARGETS.items():
        target = Path(prefix) / relative
        ours = json.loads((HERE / name).read_text())
        try:
            existing = json.loads(target.read_text()) if target.exists() else {}
        except json.JSONDecodeError as err:
            raise SystemExit(f"{target} is not valid JSON ({err}); fix or remove it, then run this again")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(merged(existing, ours), indent=2) + "\n")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", type=Path, default=Path(sys.prefix),
                        help="the environment to configure (default: this interpreter's, %(default)s)")
    args = parser.parse_args(argv)
    for path in install(args.prefix):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
