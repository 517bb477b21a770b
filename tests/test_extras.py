"""Optional dependencies: a missing extra is named with its pip line, before any work, never read as damage.

Each test makes one optional library unimportable (``sys.modules[name] = None``) in this process, as a user's
environment without that extra is, and checks what the feature that needs it says.
"""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest
import xarray as xr

from freeinit_lab._extras import EXTRAS, require
from freeinit_lab.probes.io import DamagedRecordError, load_record, save_record

ANALYTIC = {"name": "analytic", "num_frames": 4, "height": 8}
SPEC = dict(pipeline=ANALYTIC, study="freeinit", grid={"d_s": [0.25]}, seeds=[0], videos_per_seed=2,
            sampler={"num_inference_steps": 2})


def _hide(monkeypatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def _record() -> xr.Dataset:
    return xr.Dataset({"x": ("step", np.arange(3.0))})


def test_require_names_the_extra(monkeypatch):
    assert require("zarr", "a test") is importlib.import_module("zarr")
    _hide(monkeypatch, "zarr")
    with pytest.raises(ImportError, match=r"a test needs zarr, which is not installed: pip install "
                                          r"'freeinit_lab\[storage\]'"):
        require("zarr", "a test")


@pytest.mark.parametrize(("suffix", "module"), [(".nc", "netCDF4"), (".zarr", "zarr")])
def test_load_record_without_its_library_is_not_damage(tmp_path, monkeypatch, suffix, module):
    """A sound file read without its library: the pip line, not 'damaged, restore it from a copy'."""
    path = tmp_path / f"r{suffix}"
    save_record(_record(), path)
    _hide(monkeypatch, module)
    with pytest.raises(ImportError, match=r"freeinit_lab\[storage\]") as info:
        load_record(path)
    assert not isinstance(info.value, DamagedRecordError)


@pytest.mark.parametrize(("suffix", "module"), [(".nc", "netCDF4"), (".zarr", "zarr")])
def test_save_record_without_its_library_names_the_extra(tmp_path, monkeypatch, suffix, module):
    _hide(monkeypatch, module)
    with pytest.raises(ImportError, match=r"freeinit_lab\[storage\]"):
        save_record(_record(), tmp_path / f"r{suffix}")
    assert list(tmp_path.iterdir()) == []


def test_shipped_cutoff_map_without_netcdf4(monkeypatch):
    from freeinit_lab.studies.cutoff_map import load_cutoff_map

    _hide(monkeypatch, "netCDF4")
    with pytest.raises(ImportError, match=r"freeinit_lab\[storage\]"):
        load_cutoff_map()


def test_explorer_says_which_library_reads_the_map(monkeypatch):
    """The explorer's heat-map note names the missing library instead of calling the shipped map damaged."""
    from freeinit_lab.studies.cutoff_map import DEFAULT_CUTOFF_MAP_PATH
    from freeinit_lab.viz.widgets import CutoffExplorer

    _hide(monkeypatch, "netCDF4")
    ds, message = CutoffExplorer._load_cutoff_map(DEFAULT_CUTOFF_MAP_PATH)
    assert ds is None and "freeinit_lab[storage]" in message
    assert "damaged" not in message and "precompute" not in message


def test_latent_probe_store_without_zarr_refuses_before_sampling(tmp_path, monkeypatch):
    import freeinit_lab as fl

    pipe = fl.load_analytic_pipeline(num_frames=4, height=8)
    _hide(monkeypatch, "zarr")
    with pytest.raises(ImportError, match=r"LatentProbe\(store=\.\.\.\) needs zarr.*freeinit_lab\[storage\]"):
        fl.LatentProbe(pipe, capture="latents", store=tmp_path / "run.zarr")
    assert not (tmp_path / "run.zarr").exists()


@pytest.mark.parametrize("how", ["workers", "client"])
def test_sweep_on_workers_without_distributed_names_scale(tmp_path, monkeypatch, how):
    from freeinit_lab.sweep import run_sweep

    monkeypatch.delitem(sys.modules, "freeinit_lab.sweep.cluster", raising=False)
    _hide(monkeypatch, "distributed")
    kwargs = {"workers": 2} if how == "workers" else {"client": object()}
    with pytest.raises(ImportError, match=r"needs distributed.*freeinit_lab\[scale\]"):
        run_sweep(SPEC, tmp_path / "out.zarr", progress=False, **kwargs)
    assert not (tmp_path / "out.zarr").exists()


def test_sweep_cli_without_distributed_prints_the_extra(tmp_path, monkeypatch, capsys):
    from freeinit_lab.sweep.__main__ import main

    spec = tmp_path / "spec.yaml"
    spec.write_text("pipeline: {name: analytic, num_frames: 4, height: 8}\nstudy: freeinit\ngrid: {d_s: [0.25]}\n"
                    "seeds: [0]\nvideos_per_seed: 2\nsampler: {num_inference_steps: 2}\n")
    monkeypatch.delitem(sys.modules, "freeinit_lab.sweep.cluster", raising=False)
    _hide(monkeypatch, "distributed")
    monkeypatch.setattr(sys, "argv", ["freeinit_lab.sweep", str(spec), "--store", str(tmp_path / "o.zarr"),
                                      "--workers", "2", "--no-progress"])
    assert main() == 2
    assert "pip install 'freeinit_lab[scale]'" in capsys.readouterr().err


def test_widgets_without_ipywidgets_name_notebooks(monkeypatch):
    monkeypatch.delitem(sys.modules, "freeinit_lab.viz.widgets", raising=False)
    _hide(monkeypatch, "ipywidgets")
    with pytest.raises(ImportError, match=r"needs ipywidgets.*freeinit_lab\[notebooks\]"):
        importlib.import_module("freeinit_lab.viz.widgets")


def test_every_optional_library_has_its_extra():
    """Each library of EXTRAS is one that its extra installs (the pip line a message prints must work)."""
    import tomllib
    from importlib.metadata import packages_distributions
    from pathlib import Path

    from packaging.requirements import Requirement

    extras = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    norm = lambda name: name.lower().replace("_", "-")  # noqa: E731
    provides = packages_distributions()
    for module, extra in EXTRAS.items():
        assert extra in extras, f"{module}: no extra {extra!r} in pyproject.toml"
        declared = {norm(Requirement(r).name) for r in extras[extra]}
        assert {norm(d) for d in provides.get(module, [])} & declared, f"[{extra}] does not install {module}"
