"""Band-wise SNR: closed form vs Monte-Carlo, -inf where there is no signal, xarray labelling."""

import math

import diffusers
import numpy as np
import pytest
import torch
import xarray as xr

from freeinit_lab import band_snr, inference_band_snr, initialization_gap
from freeinit_lab.spectral import apply_lowpass, band_counts, band_power, lowpass_filter, reinit_noise

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


# ----------------------------------------------------------------------------------------------------------------
# honest refusals: flow schedules, frame/channel layouts, short band edges
# ----------------------------------------------------------------------------------------------------------------
def test_flow_sigma_scheduler_gap_is_flow_not_ddpm():
    import diffusers

    class MyUniPC(diffusers.UniPCMultistepScheduler):
        pass

    x0 = torch.randn(2, 4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    for sched in (
        diffusers.UniPCMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0),
        MyUniPC(use_flow_sigmas=True, flow_shift=3.0),
    ):
        gap = initialization_gap(x0, sched, num_bands=3)
        # flow: z_T = (1 - sigma_max) x0 + sigma_max eps with sigma_max = 1 -> no signal, not a -43 dB DDPM reading
        assert np.all(np.isneginf(gap.sel(source="training z_T").values))
        snr = band_snr(x0, sched, num_bands=3, timesteps=[500.0])
        assert snr.attrs["schedule_family"] == "flow"
        a = 1 - float(snr.sigma[0])
        assert float(snr.alpha[0]) == pytest.approx(a)


def _bfchw_pipe(channels=4):
    import types

    import diffusers

    class FakePipe:
        def __init__(self):
            self.scheduler = diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
            self.transformer = types.SimpleNamespace(config=types.SimpleNamespace(out_channels=channels))

        @property
        def components(self):
            return {"scheduler": self.scheduler, "transformer": self.transformer}

    return FakePipe()


def test_frames_passed_as_channels_are_refused():
    g = torch.Generator().manual_seed(0)
    bfchw = torch.randn(1, 6, 4, 8, 8, generator=g)  # (batch, frame, channel, H, W)
    dims = ("batch", "frame", "channel", "height", "width")
    with pytest.raises(ValueError, match=r"x0.permute\(0, 2, 1, 3, 4\)"):
        band_snr(bfchw, SD, dims=dims)
    with pytest.raises(ValueError, match=r"diffused.permute\(0, 2, 1, 3, 4\)"):
        reinit_noise(bfchw, torch.randn_like(bfchw), lowpass_filter(bfchw.shape), dims=dims)
    with pytest.raises(ValueError, match=r"x.permute\(0, 2, 1, 3, 4\)"):
        band_power(bfchw, num_bands=3, dims=dims)
    # a pipeline's known channel count catches it without dims=
    with pytest.raises(ValueError, match=r"axis 2 holds.*permute\(0, 2, 1, 3, 4\)"):
        band_snr(bfchw, _bfchw_pipe(4), num_bands=3)
    with pytest.raises(ValueError, match=r"axis 2 holds"):
        initialization_gap(bfchw, _bfchw_pipe(4), num_bands=3)
    with pytest.raises(ValueError, match=r"axis 2 holds"):
        band_snr(bfchw, SD, num_bands=3, channels=4)
    # the right layout passes, named or not
    bcfhw = bfchw.permute(0, 2, 1, 3, 4)
    named = band_snr(bcfhw, _bfchw_pipe(4), num_bands=3, dims=("batch", "channel", "frame", "height", "width"))
    xr.testing.assert_identical(named, band_snr(bcfhw, SD, num_bands=3))
    with pytest.raises(ValueError, match="names 3 axes"):
        band_snr(bcfhw, SD, dims=("frame", "height", "width"))


def test_a_pipelines_channel_count_is_read_where_its_layout_says(denoiser_at):
    """band_snr(x0, pipe) checks x0 against the denoiser at the attribute the pipeline's layout names (pipe.model),
    not the decoy at pipe.unet, whose 8 channels are the latent's frame count."""
    pipe = denoiser_at("model")
    bfchw = torch.randn(1, 8, 3, 8, 8, generator=torch.Generator().manual_seed(0))  # (batch, frame, channel, H, W)
    with pytest.raises(ValueError, match=r"axis 2 holds.*permute\(0, 2, 1, 3, 4\)"):
        band_snr(bfchw, pipe, num_bands=3)
    with pytest.raises(ValueError, match=r"axis 2 holds"):
        initialization_gap(bfchw, pipe, num_bands=3)
    xr.testing.assert_identical(band_snr(bfchw.permute(0, 2, 1, 3, 4), pipe, num_bands=3),
                                band_snr(bfchw.permute(0, 2, 1, 3, 4), SD, num_bands=3))


def test_band_edges_short_of_the_largest_radius_are_refused_naming_it():
    from freeinit_lab.core.spectral import _band_projection, band_masks, frequency_radius

    shape = (4, 8, 8)
    r_max = float(frequency_radius(shape).max())
    short = [0.0, 0.25, 0.5]
    x = torch.randn(1, 4, *shape, generator=torch.Generator().manual_seed(0))
    for call in (
        lambda: band_masks(shape, edges=short),
        lambda: band_power(x, edges=short),
        lambda: band_snr(x, SD, edges=short),
        lambda: _band_projection(shape, tuple(short), 1.0),  # the probe's lean per-step path
    ):
        with pytest.raises(ValueError, match=rf"stop short of the largest radius .*{r_max!r}"):
            call()
    assert band_masks(shape, edges=[0.0, 0.25, r_max]).sum() == 4 * 8 * 8


def test_reinit_power_split_terms_sum_to_the_reinitialised_latent():
    from freeinit_lab.core.snr import reinit_power_split
    from freeinit_lab.core.spectral import band_power, lowpass_filter, reinit_noise

    g = torch.Generator().manual_seed(4)
    shape = (6, 3, 8, 16, 16)
    x0, eps, eps2, eta = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(4))
    x0 = 2.0 * x0 + 0.5  # a mean field too
    H = lowpass_filter(shape, "gaussian", 0.25, 0.25).double()
    a_T, b_T = 0.07, 0.9976
    ds = reinit_power_split(x0, eps, eta, H, a_T, b_T, num_bands=4)
    parts = ds.signal + ds.same_noise + ds.fresh_noise + ds.cross_same + ds.cross_fresh
    np.testing.assert_allclose(parts.values, ds.total.values, rtol=1e-9)
    z = reinit_noise(a_T * x0 + b_T * eps, eta, H)
    np.testing.assert_allclose(ds.total.values, band_power(z, num_bands=4).mean(dim=1).numpy(), rtol=1e-9)
    # x_0 independent of eps: the cross term averages out (|mean| well inside its spread over 6 videos);
    # x_0 made from eps (here x_0 = 2 eps + eps2): it is 2 a_T b_T 2 |H|^2 per bin on average, positive
    assert abs(float(ds.cross_same.isel(band=0).mean())) < 4 * float(ds.cross_same.isel(band=0).std()) / np.sqrt(6)
    corr = reinit_power_split(2 * eps + eps2, eps, eta, H, a_T, b_T, num_bands=4)
    assert (corr.cross_same.isel(band=0) > 0).all()
    # the all-pass split is that of a_T x_0 + b_T eps itself: no fresh noise
    allpass = reinit_power_split(x0, eps, eta, torch.ones(8, 16, 16), a_T, b_T, num_bands=4)
    assert float(abs(allpass.fresh_noise).max()) < 1e-20 and float(abs(allpass.cross_fresh).max()) < 1e-12
    with pytest.raises(ValueError, match="expected"):
        reinit_power_split(x0[0], eps[0], eta[0], H, a_T, b_T)


def test_reinit_band_composition_refuses_masks_that_differ_across_videos():
    """The composition is of one mask: a stack of different masks (one per video) was read as its first mask
    alone; it is refused, while a mask broadcast (expanded) to a latent's shape is one mask and accepted."""
    from freeinit_lab.core.snr import reinit_band_composition
    from freeinit_lab.core.spectral import lowpass_filter

    one = lowpass_filter((2, 4, 4, 8, 8), "gaussian", 0.25, 0.25)
    ref = reinit_band_composition(one[0, 0], num_bands=3)
    assert reinit_band_composition(one, num_bands=3).equals(ref)
    two = torch.stack([one[0, 0], lowpass_filter((4, 8, 8), "ideal", 0.5, 0.5)])
    with pytest.raises(ValueError, match="one mask"):
        reinit_band_composition(two, num_bands=3)


def test_reinit_band_composition_refuses_empty_bands_and_bad_powers():
    """On a 16x8x8 grid band 1 of 6 holds no bin: its shares came back as NaN (0 / 0) beside numbers; refused,
    naming how many bands fit. A diffused_power of the wrong length was broadcast (one value for all bands) or
    failed in numpy; a negative one gave a share above 1; a mask above 1 gave shares of a mask no filter makes."""
    from freeinit_lab.core.snr import reinit_band_composition

    H = lowpass_filter((16, 8, 8), "gaussian", 0.25, 0.25)
    with pytest.raises(ValueError, match=r"reinit_band_composition: bands \[1\] of 6 hold no frequency bin.*num_bands="):
        reinit_band_composition(H, 6)
    ok = reinit_band_composition(H, 3)
    assert np.isfinite(ok.from_diffused).all()
    for power in ([2.0], [2.0, 1.0], [1.0, -1.0, 1.0], [1.0, np.nan, 1.0]):
        with pytest.raises(ValueError, match="diffused_power must hold one finite positive power per band"):
            reinit_band_composition(H, 3, diffused_power=power)
    assert np.allclose(reinit_band_composition(H, 3, diffused_power=[1.0, 1.0, 1.0]).from_diffused, ok.from_diffused)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        reinit_band_composition(3 * H, 3)
    with pytest.raises(TypeError, match="torch.Tensor mask"):
        reinit_band_composition(H.numpy(), 3)


@pytest.mark.parametrize("num_samples", [2.5, True, 0])
def test_monte_carlo_draws_must_be_an_integer(num_samples):
    """int() read num_samples=2.5 as 2 draws and True as 1, returning an SNR from fewer draws than asked."""
    with pytest.raises(ValueError, match=rf"num_samples={num_samples!r} must be an integer >= 1"):
        band_snr(torch.randn(2, 3, 4, 8, 8), SD, 3, timesteps=[999], method="monte_carlo", num_samples=num_samples)


def test_latents_that_carry_a_graph_are_measured():
    """Latents with requires_grad (a model's output outside torch.no_grad) failed in every band SNR with
    "Can't call numpy() on Tensor that requires grad"; they are measured as their values."""
    from freeinit_lab.core.snr import reinit_power_split

    x = torch.randn(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    g = x.clone().requires_grad_(True)
    assert band_snr(g, SD, 3, timesteps=[999]).equals(band_snr(x, SD, 3, timesteps=[999]))
    assert inference_band_snr(g, g, 3).equals(inference_band_snr(x, x, 3))
    assert initialization_gap(g, SD, 3).equals(initialization_gap(x, SD, 3))
    H = lowpass_filter((4, 8, 8), "gaussian", 0.25, 0.25)
    assert reinit_power_split(g, g, g, H, 0.5, 0.8, num_bands=3).equals(
        reinit_power_split(x, x, x, H, 0.5, 0.8, num_bands=3))
