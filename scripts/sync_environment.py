"""Write ``environment.yml`` from ``pyproject.toml`` (the dependencies and every extra, same version ranges).

``tests/test_packaging.py`` fails when the committed file differs from what this script writes.

Usage::

    python scripts/sync_environment.py          # rewrite environment.yml
    python scripts/sync_environment.py --check  # exit 1 when it is out of date
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: installed with pip inside the conda env: torch (conda-forge's build is ``pytorch`` and may pull CUDA), packages
#: that drive the system Chromium, and the diffusers stack (kept with torch so pip resolves them together)
PIP_ONLY = {"torch", "diffusers", "transformers", "playwright", "kaleido"}
#: conda-forge spells these differently
CONDA_NAMES = {"netCDF4": "netcdf4", "PyYAML": "pyyaml", "pyyaml": "pyyaml"}


def requirements(pyproject: dict) -> list[str]:
    """Every requirement of the project and its extras, without the project itself, in declaration order."""
    project = pyproject["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += [r for r in extra if not r.startswith(project["name"])]
    seen, out = set(), []
    for r in reqs:
        if r not in seen:
            seen.add(r)
            out.append(r)
    return out


def render(pyproject: dict) -> str:
    """The text of ``environment.yml``."""
    conda, pip = [], []
    for req in requirements(pyproject):
        name = re.match(r"[A-Za-z0-9_.\-]+", req).group(0)
        spec = req[len(name):]
        (pip if name in PIP_ONLY else conda).append(CONDA_NAMES.get(name, name) + spec)
    lines = [
        "# conda env create -f environment.yml && conda activate freeinit_lab",
        "# Generated from pyproject.toml by scripts/sync_environment.py: do not edit by hand.",
        "# The exact versions this project tests with are in constraints.txt. Without a GPU, install torch's CPU",
        "# build first (pip install torch --index-url https://download.pytorch.org/whl/cpu) to avoid CUDA wheels.",
        "name: freeinit_lab",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        *[f"  - {c}" for c in conda],
        "  - pip:",
        *[f"      - {p}" for p in pip],
        "      - -e .",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render(tomllib.loads((ROOT / "pyproject.toml").read_text()))
    target = ROOT / "environment.yml"
    if "--check" in argv:
        if target.read_text() != text:
            print("environment.yml is out of date: run python scripts/sync_environment.py")
            return 1
        return 0
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
