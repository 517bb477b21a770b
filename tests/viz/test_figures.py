"""Figures fed with the edge inputs users produce: read the plotly data back and compare it with the input."""

import os

import numpy as np
import pytest
import torch
import xarray as xr

from freeinit_lab.viz.figures import band_snr_iteration_figure, cutoff_map_figure
from freeinit_lab.plots import band_trajectory_figure, frame_strip_figure, video_figure


def _cutoff_map(d_s, d_t, gain=None, se=0.01):
    d_s, d_t = np.asarray(d_s, float), np.asarray(d_t, float)
    gain = np.add.outer(d_s, 2 * d_t) if gain is None else np.asarray(gain, float)
    return xr.Dataset(
        {"gain": (("d_s", "d_t"), gain), "gain_se": (("d_s", "d_t"), np.broadcast_to(se, gain.shape).copy())},
        coords={"d_s": d_s, "d_t": d_t, "video": np.arange(4)},
        attrs={"method": "gaussian", "num_iters": 2, "num_inference_steps": 10},
    )


def test_nan_cells_are_blank_and_say_not_measured():
    cmap = _cutoff_map([0.25, 0.5], [0.25, 0.5], gain=[[0.1, np.nan], [-0.05, 0.2]])
    fig = cutoff_map_figure(cmap, d_s=0.25, d_t=0.5)  # the marker on the NaN cell
    heat = fig.data[0]
    assert np.isnan(np.asarray(heat.z, dtype=float)[0, 1])  # not coloured
    text = np.asarray(heat.text)
    assert text[0, 1] == "not measured" and text[1, 0] == "-0.050" and heat.texttemplate == "%{text}"
    assert "not measured" in np.asarray(heat.customdata)[0, 1]
    title = fig.layout.title.text
    assert "nearest cell d_s=0.25, d_t=0.50: not measured (NaN)" in title and "nan" not in title.replace("NaN", "")
    one_video = _cutoff_map([0.25], [0.25], se=np.nan)  # a 1-video map has no standard error
    title = cutoff_map_figure(one_video).layout.title.text
    assert "+0.7500 ± n/a" in title and "nan" not in title


def test_unsorted_map_is_drawn_ascending_with_its_own_numbers():
    cmap = _cutoff_map([0.5, 0.1, 0.25], [0.8, 0.1])  # a sweep given in any order
    fig = cutoff_map_figure(cmap, d_s=0.45, d_t=0.2)  # between grid values
    heat, marker = fig.data
    assert list(heat.x) == [0.1, 0.8] and list(heat.y) == [0.1, 0.25, 0.5]
    for i, y in enumerate(heat.y):
        for j, x in enumerate(heat.x):
            assert np.asarray(heat.z)[i, j] == float(cmap.gain.sel(d_s=y, d_t=x))
    # the marker is drawn in the cell whose edges are the midpoints between grid values, and that cell's numbers
    # are the title's: d_s 0.45 lies in (0.375, 0.65] -> 0.5, d_t 0.2 in (-, 0.45] -> 0.1
    assert (list(marker.x), list(marker.y)) == ([0.2], [0.45])
    want = float(cmap.gain.sel(d_s=0.5, d_t=0.1))
    assert f"nearest cell d_s=0.50, d_t=0.10: {want:+.4f}" in fig.layout.title.text


def test_repeated_cutoffs_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"repeats d_s values \[0.25, 0.25\].*groupby"):
        cutoff_map_figure(_cutoff_map([0.25, 0.25], [0.1, 0.5]))


def test_band_trajectory_in_db_is_drawn_on_a_linear_axis():
    snr = xr.DataArray(np.linspace(-20, 10, 2 * 5 * 3).reshape(2, 5, 3), dims=("batch", "step", "band"),
                       coords={"step": np.arange(5)}, attrs={"units": "dB", "long_name": "band SNR"})
    fig = band_trajectory_figure(snr)
    assert fig.layout.yaxis.type == "linear" and fig.layout.yaxis.title.text == "dB"
    np.testing.assert_allclose(fig.data[0].y, snr.isel(band=0).mean("batch").values)  # negative dB included
    with pytest.raises(ValueError, match="log_y=False"):
        band_trajectory_figure(snr, log_y=True)
    power = xr.DataArray(np.ones((5, 3)), dims=("step", "band"), attrs={"units": "power per bin"})
    assert band_trajectory_figure(power).layout.yaxis.type == "log"


def test_band_trajectory_keeps_freeinit_passes_apart():
    values = np.ones((2, 4, 1, 2))
    values[1] *= 100.0
    values[0, 2:] = np.nan  # a coarse first pass that stopped after 2 steps
    traj = xr.DataArray(values, dims=("iteration", "step", "batch", "band"),
                        coords={"iteration": [0, 1], "step": np.arange(4)}, attrs={"units": "power per bin"})
    fig = band_trajectory_figure(traj)
    assert len(fig.data) == 4
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["band 0, pass 0"].y) == [1.0, 1.0, None, None]
    assert list(by_name["band 0, pass 1"].y) == [100.0] * 4  # not a mean over passes that jumps at step 2
    one_pass = band_trajectory_figure(traj.isel(iteration=[1]))
    assert [t.name for t in one_pass.data] == ["band 0", "band 1"]


def test_videos_of_one_range_look_alike_side_by_side():
    dark, bright = torch.full((3, 2, 4, 4), -0.5), torch.full((3, 2, 4, 4), 0.5)  # both in [-1, 1]
    fig = video_figure({"dark": dark, "bright": bright}, value_range=(-1, 1))
    assert tuple(np.asarray(fig.data[0].z)[0, 0]) == (64, 64, 64)
    assert tuple(np.asarray(fig.data[1].z)[0, 0]) == (191, 191, 191)  # 0.5 in [-1, 1], not in [0, 1]
    strip = frame_strip_figure({"bright": bright}, value_range=(-1, 1), scale=1)
    assert tuple(np.asarray(strip.data[0].z)[0, 0]) == (191, 191, 191)
    with pytest.raises(ValueError, match="2 channels"):
        video_figure({"two": torch.zeros(2, 2, 4, 4)})
    with pytest.raises(ValueError, match="low < high"):
        video_figure([dark], value_range=(1, -1))


def test_band_snr_per_pass_of_a_selection_of_passes():
    snr = xr.DataArray([[1.0, 0.0, -3.0], [2.0, 1.0, -1.0]], dims=("iteration", "band"),
                       coords={"iteration": [1, 2], "band": [0, 1, 2]})
    ds = xr.Dataset({"band_snr": snr, "training_snr": ("band", [3.0, 2.0, 1.0])})
    fig = band_snr_iteration_figure(ds)
    assert [t.name for t in fig.data] == ["pass 1 initial latent", "pass 2 initial latent", "training z_T (data)"]
    assert list(fig.data[1].y) == [2.0, 1.0, -1.0]


@pytest.mark.parametrize("name", ["", "sub/figure", "../figure", ".hidden", "figure.png", "figure.HTML"])
def test_save_figure_refuses_names_that_would_fail_or_escape_under_make_reproduce(name, monkeypatch):
    import plotly.graph_objects as go

    from freeinit_lab.report import FIGURE_DIR_ENV, save_figure

    monkeypatch.delenv(FIGURE_DIR_ENV, raising=False)  # refused in an interactive session too, not only in reports
    with pytest.raises(ValueError, match="save_figure name"):
        save_figure(go.Figure(), name)


def test_save_figure_writes_into_a_missing_folder(tmp_path, monkeypatch):
    import plotly.graph_objects as go

    from freeinit_lab.report import FIGURE_DIR_ENV, save_figure

    out = tmp_path / "not" / "yet"
    monkeypatch.setenv(FIGURE_DIR_ENV, str(out))
    fig = go.Figure(go.Scatter(y=[1, 2]))
    monkeypatch.setattr(fig, "write_image", lambda *args, **kwargs: None)  # no kaleido needed here
    assert save_figure(fig, "04 cutoff-map.v2") is fig
    assert (out / "04 cutoff-map.v2.html").exists()


def _png_size(path):
    """(width, height) from a PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_save_figure_leaves_a_spec_that_render_figures_draws_at_the_saved_size(tmp_path, monkeypatch):
    import plotly.graph_objects as go
    import plotly.io as pio

    from freeinit_lab.report import FIGURE_DIR_ENV, PENDING_SUFFIX, render_figures, save_figure

    monkeypatch.setenv(FIGURE_DIR_ENV, str(tmp_path))
    save_figure(go.Figure(go.Scatter(y=[1, 2], name="first")), "a_first", width=640, height=300)
    save_figure(go.Figure(go.Bar(y=[3, 1], name="second")), "b_second")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a_first.figure.json", "a_first.html", "b_second.figure.json", "b_second.html"]
    calls = []

    def fake_write_images(figs, files, width, height):  # records what one session would draw
        calls.append(([f["data"][0]["name"] for f in figs], [str(p) for p in files], width, height))
        for p in files:
            p.write_bytes(b"png")

    monkeypatch.setattr(pio, "write_images", fake_write_images)
    pngs = render_figures(tmp_path)
    assert calls == [(["first", "second"], [str(tmp_path / "a_first.png"), str(tmp_path / "b_second.png")],
                      [640, 900], [300, 420])]  # one call: one browser session for all figures
    assert pngs == [tmp_path / "a_first.png", tmp_path / "b_second.png"]
    assert not list(tmp_path.glob(f"*{PENDING_SUFFIX}"))  # drawn specs are removed
    assert render_figures(tmp_path) == [] and len(calls) == 1  # nothing pending: nothing drawn


def test_render_figures_keeps_the_specs_and_says_why_when_kaleido_fails(tmp_path, monkeypatch, capsys):
    import plotly.graph_objects as go
    import plotly.io as pio

    from freeinit_lab.report import FIGURE_DIR_ENV, render_figures, save_figure

    monkeypatch.setenv(FIGURE_DIR_ENV, str(tmp_path))
    save_figure(go.Figure(go.Scatter(y=[1, 2])), "fig")

    def broken(*args, **kwargs):
        raise RuntimeError("no Chrome found")

    monkeypatch.setattr(pio, "write_images", broken)
    assert render_figures(tmp_path) == []
    assert "no Chrome found" in capsys.readouterr().out
    assert (tmp_path / "fig.figure.json").exists() and not (tmp_path / "fig.png").exists()


@pytest.mark.parametrize("size", [0, -3, 2.5, True, "900"])
def test_save_figure_refuses_a_size_that_is_not_a_positive_whole_number(size):
    import plotly.graph_objects as go

    from freeinit_lab.report import save_figure

    with pytest.raises(ValueError, match="width"):
        save_figure(go.Figure(), "fig", width=size)


def test_render_figures_draws_real_pngs_with_kaleido(tmp_path, monkeypatch):
    import shutil

    import plotly.graph_objects as go

    from freeinit_lab.report import FIGURE_DIR_ENV, render_figures, save_figure

    browser = os.environ.get("BROWSER_PATH") or shutil.which("chromium")
    if not browser:
        if os.environ.get("FREEINIT_REQUIRE_BROWSER", "") not in ("", "0"):
            pytest.fail("no Chromium for kaleido (FREEINIT_REQUIRE_BROWSER is set)")
        pytest.skip("no Chromium for kaleido: scripts/ensure_browser.sh installs one")
    monkeypatch.setenv("BROWSER_PATH", browser)
    monkeypatch.setenv(FIGURE_DIR_ENV, str(tmp_path))
    save_figure(go.Figure(go.Scatter(y=[1, 3, 2])), "wide", width=500, height=200)
    save_figure(go.Figure(go.Heatmap(z=[[1, 2], [3, 4]])), "tall", width=300, height=400)
    pngs = render_figures(tmp_path)
    assert [p.name for p in pngs] == ["tall.png", "wide.png"]
    assert _png_size(tmp_path / "wide.png") == (500, 200)
    assert _png_size(tmp_path / "tall.png") == (300, 400)
