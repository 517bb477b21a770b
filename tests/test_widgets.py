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
