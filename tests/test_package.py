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


@pytest.mark.parametrize("where", ["freeinit_lab"] + [f"freeinit_lab.{layer}" for layer in LAYERS + ["sweep"]])
def test_the_namespaces_hold_no_stray_imports(where):
    """``dir()`` of the package and of each layer (what tab completion shows) lists its public names and its own
    submodules, not what its ``__init__`` imports for its own use (``sys``, ``types``, the lazy-import helper)."""
    mod = importlib.import_module(where)
    own = {n for n in dir(mod) if isinstance(getattr(mod, n, None), types.ModuleType)
           and getattr(mod, n).__name__.startswith(where + ".")}
    stray = [n for n in dir(mod) if not n.startswith("_") and n not in set(mod.__all__) | own]
    assert stray == []


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


def test_engine_does_not_import_the_probe():
    code = "import sys, freeinit_lab.engine.loop; print('freeinit_lab.probes.probe' in sys.modules)"
    assert _fresh(code).strip() == "False", "the engine publishes pass events (hooks.events); probes subscribe"


def test_one_output_reader():
    import torch

    from freeinit_lab.hooks.outputs import read_pipeline_output, read_sample

    x = torch.zeros(1)
    assert read_pipeline_output((x,)) is x and read_pipeline_output(types.SimpleNamespace(frames=x)) is x
    assert read_sample(types.SimpleNamespace(prev_sample=x)) is x and read_sample([x]) is x
    with pytest.raises(TypeError, match="prepare_latents"):
        read_sample("nope", "the output of prepare_latents")


def test_noise_swaps_moved_to_studies_and_still_reachable_from_analysis():
    from freeinit_lab import analysis
    from freeinit_lab.studies import noise_swap

    assert analysis.noise_swap_sweep is noise_swap.noise_swap_sweep is fl.noise_swap_sweep


def test_study_figures_live_in_viz_and_old_names_still_work():
    from freeinit_lab.studies import cutoff_map, refinement
    from freeinit_lab.viz import figures

    assert refinement.iteration_figure is figures.iteration_figure
    assert cutoff_map.cutoff_map_figure is figures.cutoff_map_figure
    with pytest.raises(AttributeError):
        getattr(refinement, "nope")
