"""The cutoff explorer without a browser: set control values, inspect figures and numbers."""

import re

import numpy as np
import pytest
import torch

from freeinit_lab import lowpass_filter
from freeinit_lab.plots import band_snr_figure, gap_figure, mask_slices, video_figure
from freeinit_lab.snr import reinit_band_composition
from freeinit_lab.widgets import CutoffExplorer


def _numbers(html: str) -> tuple[float, float]:
    kept = float(re.search(r"kept bins: ([0-9.]+) %", html).group(1))
    mean_h = float(re.search(r"mean H: ([0-9.]+)", html).group(1))
    return kept, mean_h


def test_controls_drive_mask_figure_and_summary():
    ex = CutoffExplorer(shape=(8, 16, 16))
    before_z = np.array(ex.mask_figure.data[0].z)
    kept0, mean0 = _numbers(ex.summary.value)
    assert kept0 == pytest.approx(float((lowpass_filter((8, 16, 16)) >= 0.5).double().mean()) * 100, abs=0.01)
    ex.d_s.value = 0.5
    after_z = np.array(ex.mask_figure.data[0].z)
    kept1, mean1 = _numbers(ex.summary.value)
    assert not np.allclose(before_z, after_z)
    assert kept1 > kept0 and mean1 > mean0
    assert "d_s=0.50" in ex.mask_figure.layout.title.text
    ex.method.value = "ideal"
    assert set(np.unique(np.array(ex.mask_figure.data[0].z))) <= {0.0, 1.0}
    assert ex.order.disabled
    # the central slice shown equals the mask's DC plane, fftshift-ed
    want = torch.fft.fftshift(lowpass_filter((8, 16, 16), "ideal", 0.5, 0.25), dim=(-3, -2, -1))[4].numpy()
    assert np.array_equal(np.array(ex.mask_figure.data[0].z), want)


def test_band_composition_shares_and_variance_decay():
    mask = lowpass_filter((8, 16, 16), "gaussian", 0.25, 0.25)
    comp = reinit_band_composition(mask, 6)
    assert np.allclose(comp.from_diffused + comp.from_noise, 1)
    assert comp.from_diffused[0] > 0.9 and comp.from_diffused[-1] < 0.01  # low band from z_T, high from noise
    assert float(comp.mix_variance.min()) < 0.9  # soft masks lose variance between pass and stop band
    ideal = reinit_band_composition(lowpass_filter((8, 16, 16), "ideal", 0.25, 0.25), 6)
    assert np.allclose(ideal.mix_variance, 1)  # a binary mask keeps unit variance


def test_figures_build():
    import diffusers

    from freeinit_lab import band_snr, initialization_gap

    sched = diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    x0 = 0.5 + torch.randn(2, 3, 8, 16, 16) * 0.1
    fig = band_snr_figure(band_snr(x0, sched, timesteps=[0, 500, 999]))
    assert len(fig.data) == 6
    gap = gap_figure({"SD": initialization_gap(x0, sched)})
    assert len(gap.data) == 2
    vid = video_figure({"a": torch.rand(3, 4, 8, 8), "b": torch.rand(1, 4, 8, 8) * 2 - 1})
    assert len(vid.frames) == 4 and len(vid.data) == 2
    with pytest.raises(ValueError, match="channel, frame, height, width"):
        video_figure([torch.rand(4, 8, 8)])
    assert set(mask_slices(lowpass_filter((4, 6, 8)))) == {
        "height × width (f_t = 0)", "frame × width (f_h = 0)", "frame × height (f_w = 0)"
    }


def test_parts_carry_their_css_class():
    """The browser test (tests/browser) finds the controls, numbers and figures by these classes."""
    ex = CutoffExplorer(shape=(4, 8, 8))
    classes = CutoffExplorer.DOM_CLASSES
    assert len(set(classes.values())) == len(classes)  # one part per class
    for name, css_class in classes.items():
        assert css_class in getattr(ex, name)._dom_classes, name
    assert ex.widget._dom_classes == ("freeinit-explorer",)


def test_band_trajectory_figure_from_a_band_power_probe():
    import numpy as np
    import xarray as xr

    from freeinit_lab.plots import band_trajectory_figure

    traj = xr.DataArray(np.arange(2 * 5 * 3, dtype=float).reshape(2, 5, 3) + 1, dims=("batch", "step", "band"),
                        coords={"step": np.arange(5), "band_lo": ("band", [0, .1, .3]), "band_hi": ("band", [.1, .3, 1])})
    fig = band_trajectory_figure(traj)
    assert len(fig.data) == 3
    np.testing.assert_allclose(fig.data[0].y, traj.isel(band=0).mean("batch").values)
    with pytest.raises(ValueError, match="band_power_trajectory"):
        band_trajectory_figure(traj.isel(band=0))


def _synthetic_cutoff_map():
    import xarray as xr

    d = np.array([0.1, 0.25, 0.5])
    gain = np.add.outer(d, 2 * d)  # distinct value per cell
    return xr.Dataset(
        {"gain": (("d_s", "d_t"), gain), "gain_se": (("d_s", "d_t"), np.full((3, 3), 0.01))},
        coords={"d_s": d, "d_t": d, "video": np.arange(4)},
        attrs={"method": "butterworth", "num_iters": 3, "num_inference_steps": 10, "num_videos": 4},
    )


def test_heatmap_marker_follows_the_sliders(tmp_path):
    from freeinit_lab.cutoff_map import save_cutoff_map

    cmap = _synthetic_cutoff_map()
    path = save_cutoff_map(cmap, tmp_path / "cutoff_map.nc")
    ex = CutoffExplorer(shape=(4, 8, 8), cutoff_map=path)  # read from the NetCDF file, as from data/
    assert ex.cutoff_map is not None and ex.cutoff_map_message is None
    heat, marker = ex.heatmap_figure.data
    assert heat.type == "heatmap" and marker.type == "scatter"
    np.testing.assert_allclose(np.array(heat.z), cmap.gain.values)
    assert (list(marker.x), list(marker.y)) == ([0.25], [0.25])  # the explorer's defaults
    ex.d_s.value = 0.5
    ex.d_t.value = 0.1
    marker = ex.heatmap_figure.data[1]
    assert (list(marker.x), list(marker.y)) == ([0.1], [0.5])
    title = ex.heatmap_figure.layout.title.text
    assert "d_s=0.50, d_t=0.10" in title and f"{float(cmap.gain.sel(d_s=0.5, d_t=0.1)):+.4f}" in title
    ex.d_s.value = 0.45  # between grid values: the marker sits at the slider, the title names the nearest cell
    assert list(ex.heatmap_figure.data[1].y) == [0.45]
    assert "nearest cell d_s=0.50, d_t=0.10" in ex.heatmap_figure.layout.title.text
    assert "measured with" not in ex.heatmap_figure.layout.title.text and "outside" not in ex.heatmap_figure.layout.title.text
    ex.d_t.value = 1.0  # the slider reaches past the grid (0.1 .. 0.5): the edge cell is not this setting's gain
    assert "outside the map's d_t 0.1–0.5" in ex.heatmap_figure.layout.title.text
    assert "d_s " not in ex.heatmap_figure.layout.title.text.split("outside")[1]  # d_s = 0.45 is inside the grid
    ex.d_t.value = 0.1
    ex.method.value = "gaussian"  # the map belongs to one filter: say so when exploring another
    assert "map measured with butterworth, not gaussian" in ex.heatmap_figure.layout.title.text


@pytest.mark.parametrize("broken", [False, True])
def test_missing_or_broken_heatmap_file_shows_how_to_compute_it(tmp_path, broken):
    path = tmp_path / "cutoff_map.nc"
    if broken:
        path.write_bytes(b"not a netcdf file")
    ex = CutoffExplorer(shape=(4, 8, 8), cutoff_map=path)
    assert ex.cutoff_map is None
    assert len(ex.heatmap_figure.data) == 0
    text = ex.heatmap_figure.layout.annotations[0].text
    assert "python scripts/precompute_cutoff_map.py" in text and text == ex.cutoff_map_message
    assert ("could not read" in text) == broken
    ex.d_s.value = 0.5  # the rest of the explorer keeps working
    assert "d_s=0.50" in ex.mask_figure.layout.title.text
    assert ex.heatmap_figure in ex.widget.children


def test_shipped_map_is_shown_only_on_its_own_grid():
    from freeinit_lab.cutoff_map import DEFAULT_CUTOFF_MAP_PATH

    ex = CutoffExplorer()  # the embedded default's grid, the one the shipped map was measured on
    assert ex.cutoff_map is not None and ex.cutoff_map_message is None
    assert tuple(ex.cutoff_map.attrs["latent_shape"]) == (3, 16, 32, 32)
    other = CutoffExplorer(shape=(8, 16, 16), cutoff_map=DEFAULT_CUTOFF_MAP_PATH)
    assert other.cutoff_map is None and len(other.heatmap_figure.data) == 0
    msg = other.heatmap_figure.layout.annotations[0].text
    assert "measured on a 16×32×32 latent grid" in msg and "shows a 8×16×16 grid" in msg
    assert "shape=(16, 32, 32)" in msg


@pytest.mark.parametrize("kind", ["dataarray", "no_gain_se", "number"])
def test_objects_that_are_not_cutoff_maps_show_a_message(kind):
    cmap = _synthetic_cutoff_map()
    source = {"dataarray": cmap.gain, "no_gain_se": cmap.drop_vars("gain_se"), "number": 3}[kind]
    ex = CutoffExplorer(shape=(4, 8, 8), cutoff_map=source)  # documented never to raise
    assert ex.cutoff_map is None and len(ex.heatmap_figure.data) == 0
    text = ex.heatmap_figure.layout.annotations[0].text
    assert {"dataarray": "is a DataArray", "no_gain_se": "missing ['gain_se']", "number": "is a int"}[kind] in text
    ex.d_s.value = 0.5  # the rest keeps working
    assert "d_s=0.50" in ex.mask_figure.layout.title.text


def test_map_without_its_grid_is_shown_with_a_note():
    ex = CutoffExplorer(shape=(4, 8, 8), cutoff_map=_synthetic_cutoff_map())
    assert ex.cutoff_map is not None
    assert "does not record its latent grid" in ex.heatmap_figure.layout.title.text


def test_run_without_a_pipeline_loads_the_embedded_default():
    """The explorer's own pipeline is the embedded default (found through its layer, not a stale relative path)."""
    import freeinit_lab as fl
    from freeinit_lab.viz.widgets import CutoffExplorer

    ex = CutoffExplorer()
    pipe = ex._get_pipeline()
    assert type(pipe).__name__ == "TinyVideoPipeline"
    assert pipe.sample_shape == fl.load_default_pipeline().sample_shape


def test_frame_strip_figure_places_every_frame():
    from freeinit_lab.plots import frame_strip_figure

    a = torch.zeros(3, 5, 4, 6)
    a[0, 3] = 1.0  # frame 3 of video a is red
    b = torch.ones(1, 5, 4, 6) * -1  # black, grey-scale
    fig = frame_strip_figure({"a": a, "b": b}, frames=[0, 3], scale=2, gap=1)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (2 * 8 + 1, 2 * 12 + 1, 3)
    assert tuple(z[0, 0]) == (0, 0, 0) and tuple(z[0, 13]) == (255, 0, 0)  # row a: frame 0, frame 3
    assert tuple(z[9, 0]) == (0, 0, 0) and tuple(z[8, 0]) == (255, 255, 255)  # the white gap between rows
    assert list(fig.layout.yaxis.ticktext) == ["a", "b"] and list(fig.layout.xaxis.ticktext) == ["frame 0", "frame 3"]
    assert len(frame_strip_figure({"a": a}).layout.xaxis.ticktext) == 5  # default: up to six frames spread over all
    with pytest.raises(ValueError, match="outside"):
        frame_strip_figure({"a": a}, frames=[7])
    with pytest.raises(ValueError, match="frame size"):
        frame_strip_figure({"a": a, "c": torch.zeros(3, 5, 8, 8)})


def test_unsorted_or_repeated_map_coordinates():
    import xarray as xr

    cmap = _synthetic_cutoff_map().isel(d_s=[2, 0, 1], d_t=[1, 2, 0])  # measured in another order
    ex = CutoffExplorer(shape=(4, 8, 8), cutoff_map=cmap)  # documented never to raise
    heat = ex.heatmap_figure.data[0]
    assert list(heat.y) == [0.1, 0.25, 0.5] and list(heat.x) == [0.1, 0.25, 0.5]
    np.testing.assert_allclose(np.array(heat.z), _synthetic_cutoff_map().gain.values)
    ex.d_s.value, ex.d_t.value = 0.45, 0.3
    want = float(cmap.gain.sel(d_s=0.5, d_t=0.25))
    assert f"nearest cell d_s=0.50, d_t=0.25: {want:+.4f}" in ex.heatmap_figure.layout.title.text
    repeated = xr.concat([cmap.isel(d_s=[0]), cmap.isel(d_s=[0])], dim="d_s")
    ex = CutoffExplorer(shape=(4, 8, 8), cutoff_map=repeated)
    assert ex.cutoff_map is None and "repeats cut-off values (d_s=" in ex.heatmap_figure.layout.annotations[0].text


def test_heatmap_title_says_when_the_runs_use_another_k_or_order():
    ex = CutoffExplorer(shape=(4, 8, 8), cutoff_map=_synthetic_cutoff_map())  # butterworth, K=3, no order attr
    assert "measured with" not in ex.heatmap_figure.layout.title.text
    ex.num_iters.value = 2  # only the runs change: the map is still K=3
    assert "(map measured with K=3, not K=2)" in ex.heatmap_figure.layout.title.text
    cmap = _synthetic_cutoff_map()
    cmap.attrs["order"] = 4.0
    ex = CutoffExplorer(shape=(4, 8, 8), cutoff_map=cmap)
    ex.order.value = 2
    assert "(map measured with order 4, not order 2)" in ex.heatmap_figure.layout.title.text


@pytest.mark.parametrize("run_kwargs", [{"num_iters": 2}, {"d_s": 0.5}, {"generator": None},
                                        {"output_type": "np"}])
def test_run_kwargs_the_controls_own_are_refused_at_once(run_kwargs):
    with pytest.raises(ValueError, match="run_kwargs"):
        CutoffExplorer(shape=(4, 8, 8), cutoff_map=None, run_kwargs=run_kwargs)


@pytest.mark.parametrize("seed, match", [(-1, r"seed=-1 must be an integer in \[0, "), (0.5, r"seed=0.5 must be an integer"),
                                         (True, r"seed=True must be an integer")])
def test_a_seed_that_is_not_a_generator_seed_is_refused_at_once(seed, match):
    """Not turned into another seed by int() (0.5 -> 0, True -> 1) or by torch (-1 -> 2**64 - 1) at the first run."""
    with pytest.raises(ValueError, match=match):
        CutoffExplorer(shape=(4, 8, 8), cutoff_map=None, seed=seed)


@pytest.mark.parametrize("num_bands", [True, 2.5])
def test_num_bands_must_be_an_integer(num_bands):
    """num_bands=True drew the composition chart with a single band; it is refused when the explorer is built."""
    with pytest.raises(ValueError, match=rf"num_bands={num_bands!r} must be an integer >= 1"):
        CutoffExplorer(shape=(4, 8, 8), cutoff_map=None, num_bands=num_bands)


def test_one_pass_is_not_offered_as_freeinit():
    """K=1 is plain sampling: the slider stops at 2, and a run with K=1 is refused before the pipeline loads."""
    loads = []
    ex = CutoffExplorer(shape=(4, 8, 8), cutoff_map=None, pipeline=lambda: loads.append(1))
    ex.num_iters.value = 1
    assert ex.num_iters.value == 2
    ex.num_iters.min = 1
    ex.num_iters.value = 1
    with pytest.raises(ValueError, match="plain sampling only"):
        ex.run()
    assert loads == []


def test_run_labels_the_passes():
    import freeinit_lab as fl

    pipe = fl.load_analytic_pipeline()
    ex = CutoffExplorer(shape=tuple(pipe.sample_shape[-3:]), pipeline=pipe, cutoff_map=None,
                        run_kwargs={"num_inference_steps": 2})
    ex.num_iters.value = 2
    result = ex.run()
    assert list(result["scores"]) == ["plain sampling", "FreeInit ×1 (K=2)"]  # one reinitialisation, as notebook 06
    assert [t.name for t in result["figure"].data] == [None, None] and result["num_iters"] == 2


def test_a_grid_too_small_for_num_bands_is_refused_when_built():
    """On a 16x8x8 grid band 1 of 6 holds no bin: the composition chart drew a NaN bar and the summary read
    'lowest band variance of the mix: nan'; the explorer is refused when built, naming how many bands fit."""
    with pytest.raises(ValueError, match=r"bands \[1\] of 6 hold no frequency bin.*num_bands="):
        CutoffExplorer(shape=(16, 8, 8), cutoff_map=None)
    ex = CutoffExplorer(shape=(16, 8, 8), cutoff_map=None, num_bands=3)
    assert "nan" not in ex.summary.value


@pytest.mark.parametrize("shape", [(16.5, 32, 32), (True, 8, 8), (4, 0, 8)])
def test_grid_sizes_must_be_integers(shape):
    """int() read a 16.5-frame grid as 16 frames (and showed a map measured on 16 frames as its own)."""
    with pytest.raises(ValueError, match=r"shape\[\d\]=.* must be an integer >= 1"):
        CutoffExplorer(shape=shape, cutoff_map=None)
