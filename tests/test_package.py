"""The package's shape: layers as subpackages, lazy top-level import, old module paths as aliases."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
from pathlib import Path

import pytest

import freeinit_lab as fl
from freeinit_lab._compat import MOVED_MODULES

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["core", "hooks", "engine", "probes", "analysis", "studies", "viz", "embedded"]


ENV = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}


def _fresh(code: str) -> str:
    """Run ``code`` in a fresh interpreter from the checkout and return its stdout."""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env=ENV)
    return out.stdout


def test_import_is_light():
    heavy = ["pandas", "xarray", "diffusers", "transformers", "plotly", "ipywidgets"]
    code = f"import sys, freeinit_lab; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    assert _fresh(code).split() == [], "import freeinit_lab must not import these up front"


@pytest.mark.parametrize("name", sorted(fl.__all__))
def test_every_public_name_resolves(name):
    assert getattr(fl, name) is not None
    assert name in dir(fl)


@pytest.mark.parametrize("layer", LAYERS + ["testing"])
def test_layers_are_attributes(layer):
    assert isinstance(getattr(fl, layer), types.ModuleType)
    for sub in getattr(fl, layer).__all__:
        assert getattr(getattr(fl, layer), sub) is not None


def test_viz_reachable_from_the_package():
    assert fl.plots is fl.viz.plots and fl.widgets is fl.viz.widgets
    assert callable(fl.plots.band_trajectory_figure) and isinstance(fl.widgets.CutoffExplorer, type)


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_old_module_paths_are_the_new_modules(old):
    new = importlib.import_module(f"freeinit_lab.{MOVED_MODULES[old]}")
    assert importlib.import_module(f"freeinit_lab.{old}") is new
    assert new.__spec__.name == f"freeinit_lab.{MOVED_MODULES[old]}", "the alias must not take over the spec"


def test_function_freeinit_is_not_shadowed_by_its_old_module():
    importlib.import_module("freeinit_lab.freeinit")
    from freeinit_lab.freeinit import freeinit

    assert fl.freeinit is freeinit and callable(fl.freeinit)
    assert _fresh("import freeinit_lab.freeinit, freeinit_lab as fl; print(callable(fl.freeinit))").strip() == "True"


def test_unknown_attribute_raises():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        getattr(fl, "nope")


def test_run_old_module_path_as_script():
    out = subprocess.run([sys.executable, "-m", "freeinit_lab.demo"], cwd=ROOT, capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr
    assert "initialization gap" in out.stdout
