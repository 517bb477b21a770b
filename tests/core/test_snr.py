"""Band-wise SNR: closed form vs Monte-Carlo, -inf where there is no signal, xarray labelling."""

import math

import diffusers
import numpy as np
import pytest
import torch

from freeinit_lab import band_snr, inference_band_snr, initialization_gap
from freeinit_lab.spectral import apply_lowpass, band_counts, band_power, lowpass_filter

SD = diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)


def smooth_videos(n=8, shape=(3, 8, 16, 16), seed=0, mean=0.3):
    """Low-pass filtered noise with a mean: a stand-in for natural video with power at low frequencies."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    return mean + 2.0 * apply_lowpass(x, lowpass_filter(x.shape, "gaussian", 0.2, 0.3, dtype=torch.float64))


def test_band_snr_labelled_and_closed_form_value():
    x0 = smooth_videos()
    snr = band_snr(x0, SD, num_bands=5)
    assert snr.dims == ("timestep", "band") and snr.sizes == {"timestep": 1000, "band": 5}
    assert snr.attrs["units"] == "dB" and "ortho" in snr.attrs["convention"]
    for c in ("band_lo", "band_hi", "num_bins", "alpha", "sigma", "snr_db"):
        assert c in snr.coords
    # closed form by hand at one timestep and band
    t, k = 700, 2
    power = band_power(x0, num_bands=5)[..., k].mean()
    a2 = float(SD.alphas_cumprod[t].double())
    want = 10 * math.log10(a2 * float(power) / (1 - a2))
    assert float(snr.sel(timestep=t, band=k)) == pytest.approx(want, abs=1e-6)
    # SNR falls with t in every band and low bands carry more signal than high bands for smooth video
    assert (snr.diff("timestep") < 0).all()
    assert float(snr.sel(timestep=999, band=0)) > float(snr.sel(timestep=999, band=4)) + 20


def test_monte_carlo_agrees_with_closed_form_within_sampling_error():
    x0 = smooth_videos(n=4)
    g = torch.Generator().manual_seed(123)
    ts = [0, 250, 999]
    closed = band_snr(x0, SD, timesteps=ts)
    mc = band_snr(x0, SD, timesteps=ts, method="monte_carlo", num_samples=16, generator=g)
    # relative SE of the noise power estimate in band k: sqrt(2 / (bins * draws * leading elements)) at most
    n = 16 * x0.shape[0] * x0.shape[1]
    rel_se = np.sqrt(2.0 / (band_counts(x0.shape) * n))
    diff_db = np.abs(mc.values - closed.values)
    tol_db = 10 * np.log10(1 + 5 * rel_se)
    assert (diff_db <= tol_db[None, :]).all(), (diff_db, tol_db)
    assert (diff_db > 0).any(), "a Monte-Carlo estimate that never differs is not sampling anything"


@pytest.mark.parametrize(
    "sched",
    [
        diffusers.DDIMScheduler(rescale_betas_zero_snr=True),
        diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0),
    ],
    ids=["zero_terminal_snr", "flow_matching"],
)
def test_no_signal_at_T_is_minus_inf_db(sched):
    x0 = smooth_videos(n=2)
    snr = band_snr(x0, sched)
    last = snr.isel(timestep=-1)
    assert np.all(np.isneginf(last.values))
    assert np.all(np.isfinite(snr.isel(timestep=0).values))


def test_inference_snr_of_pure_noise_is_minus_inf_and_of_known_parts_matches():
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(4, 4, 8, 16, 16, generator=g)
    pure = inference_band_snr(None, noise)
    assert pure.dims == ("band",) and np.all(np.isneginf(pure.values))
    zeros = inference_band_snr(torch.zeros_like(noise), noise)
    assert np.all(np.isneginf(zeros.values))
    signal = 0.1 * noise
    assert np.allclose(inference_band_snr(signal, noise).values, -20.0)


def test_initialization_gap_table():
    # a mean of 1 over 8x16x16 voxels puts power 2048 in the DC bin: band 0 (5 bins) is above 0 dB at T even
    # though the schedule's whole-signal SNR there is -23.3 dB
    x0 = smooth_videos(n=4, mean=1.0)
    gap = initialization_gap(x0, SD, num_bands=4)
    assert gap.dims == ("band", "source")
    assert list(gap.source.values) == ["training z_T", "inference z_T"]
    assert np.all(np.isneginf(gap.sel(source="inference z_T").values))
    assert float(gap.sel(source="training z_T", band=0)) > 0  # the mean of the clip leaks through at T


def test_band_snr_bad_inputs():
    with pytest.raises(ValueError, match="rank 2"):
        band_snr(torch.zeros(8, 8), SD)
    with pytest.raises(ValueError, match="method must be"):
        band_snr(torch.zeros(1, 4, 8, 8), SD, method="exact")
    with pytest.raises(ValueError, match="NaN"):
        band_snr(torch.full((1, 4, 8, 8), float("nan")), SD)
