"""Tests of freeinit_lab.analysis on synthetic trajectories (invariants), plus one tiny-pipeline noise swap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from freeinit_lab import analysis as A
from freeinit_lab.spectral import apply_lowpass, band_masks, band_power, lowpass_filter, reinit_noise

DIMS = ("batch", "channel", "frame", "height", "width")
SHAPE = (2, 3, 8, 16, 16)


def _da(x: torch.Tensor) -> xr.DataArray:
    return xr.DataArray(x.numpy(), dims=DIMS)


@pytest.fixture(scope="module")
def synthetic():
    """z_t = a_t x0 + b_t eps along 6 steps (one pass), a smooth x0, white eps."""
    g = torch.Generator().manual_seed(0)
    x0 = apply_lowpass(torch.randn(SHAPE, generator=g, dtype=torch.float64),
                       lowpass_filter(SHAPE, "gaussian", d_s=0.3, d_t=0.3)) * 10
    alpha = np.linspace(0.1, 1.0, 6)
    sigma = np.sqrt(1 - alpha**2)
    z = torch.stack([float(a) * x0 + float(s) * torch.randn(SHAPE, generator=g, dtype=torch.float64)
                     for a, s in zip(alpha, sigma)])[None]
    rec = xr.Dataset(
        {"latents_in": (("iteration", "step", *DIMS), z.numpy())},
        coords={"step": np.arange(6), "timestep": (("iteration", "step"), 999.0 - 100 * np.arange(6)[None]),
                "alpha": (("iteration", "step"), alpha[None]), "sigma": (("iteration", "step"), sigma[None]),
                "num_steps": ("iteration", [6])},
    )
    return rec, x0


def test_band_power_trajectory_matches_kernel_and_passes_band_records(synthetic):
    rec, _ = synthetic
    traj = A.band_power_trajectory(rec, "latents_in")
    assert traj.dims == ("iteration", "step", "batch", "channel", "band")
    expected = band_power(torch.as_tensor(rec.latents_in.values, dtype=torch.float32))
    np.testing.assert_allclose(traj.values, expected.numpy(), rtol=1e-12)
    assert traj.attrs["units"].startswith("power per bin")
    assert "timestep" in traj.coords and "band_lo" in traj.coords
    assert A.band_power_trajectory(traj) is traj  # already band powers (mode="band_power" records)


def test_white_noise_has_unit_band_power():
    noise = torch.randn(4, 4, 16, 32, 32, generator=torch.Generator().manual_seed(1))
    traj = A.band_power_trajectory(_da(noise))
    np.testing.assert_allclose(traj.mean(("batch", "channel")).values, 1.0, rtol=0.1)


def test_band_error_convergence_and_lock_in(synthetic):
    rec, _ = synthetic
    err = A.band_error_trajectory(rec, "latents_in")
    assert err.dims == ("iteration", "step", "batch", "band")
    np.testing.assert_array_equal(err.isel(step=-1).values, 0.0)  # the final step is its own reference
    assert (err.isel(step=0) > err.isel(step=-2)).all()
    # the smooth signal dominates the low band early: the low band locks in before the high band
    low = A.lock_in_step(err, band=0, tol=0.1)
    high = A.lock_in_step(err, band=-1, tol=0.1)
    assert low.dims == ("iteration", "batch")
    assert (low < high).all()
    assert "lock_in_fraction" in low.coords
    conv = A.convergence_to_final(A.band_power_trajectory(rec, "latents_in"))
    np.testing.assert_array_equal(conv.isel(step=-1).values, 0.0)


def test_lock_in_step_rules():
    err = xr.DataArray([[0.5, 0.3, 0.05, 0.2, 0.05, 0.0, np.nan], [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]],
                       dims=("iteration", "step"), coords={"step": [0, 2, 4, 6, 8, 10, 12]})
    out = A.lock_in_step(err, tol=0.1, band=None)
    assert out.values[0] == 8  # stays below 0.1 from step 8 on (0.2 at step 6 does not count); NaN = not run
    assert np.isnan(out.values[1])  # never


def test_band_snr_empirical_matches_nominal(synthetic):
    """On z = a x0 + b eps with white eps, the measured band SNR equals the schedule's a^2 P(x0) / b^2."""
    rec, x0 = synthetic
    ref = _da(x0)
    emp = A.band_snr_trajectory(rec, "latents_in", method="empirical", reference=ref)
    nom = A.band_snr_trajectory(rec, "latents_in", method="nominal", reference=ref)
    assert emp.attrs["units"] == "dB" and emp.dims == nom.dims == ("iteration", "step", "batch", "band")
    finite = np.isfinite(nom.values)
    assert np.isinf(nom.isel(step=-1).values).all()  # b = 0 at the last step
    np.testing.assert_allclose(emp.values[finite], nom.values[finite], atol=2.5)  # Monte-Carlo, a few bins


def test_follow_fraction_invariants():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    b = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(A.follow_fraction(_da(a), _da(a), _da(b)).values, 1.0)
    np.testing.assert_allclose(A.follow_fraction(_da(b), _da(a), _da(b)).values, 0.0, atol=1e-12)
    np.testing.assert_allclose(A.follow_fraction(_da(0.3 * a + 0.7 * b), _da(a), _da(b)).values, 0.3)
    # a binary "low-pass" equal to band 0: band 0 comes from a, every other band from b
    mask = band_masks(SHAPE)[0].double()
    f = A.follow_fraction(_da(reinit_noise(a, b, mask)), _da(a), _da(b))
    assert f.dims == ("batch", "band")
    np.testing.assert_allclose(f.isel(band=0).values, 1.0, atol=1e-9)
    np.testing.assert_allclose(f.isel(band=slice(1, None)).values, 0.0, atol=1e-9)


def test_noise_swap_experiment_on_tiny_pipeline():
    from freeinit_lab.testing import tiny_animatediff_pipeline

    pipe = tiny_animatediff_pipeline(seed=0)
    g = torch.Generator().manual_seed(0)
    shape = (1, 4, 4, 8, 8)
    a, b = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    ds = A.noise_swap_experiment(pipe, a, b, prompt="a cat", num_frames=4, height=16, width=16,
                                 num_inference_steps=2, guidance_scale=1.0, generator=torch.Generator().manual_seed(0))
    assert ds.trajectory.values.tolist() == ["a", "b", "mix"]
    assert ds.follow_x0_pred.dims == ("step", "batch", "band")
    # M - B = IFFT(H FFT(A - B)), so band k of the mixed noise follows A by the |A - B|^2-weighted mean of H
    h = lowpass_filter(shape, "butterworth", d_s=0.25, d_t=0.25, order=4).double()
    d = torch.fft.fftn((a - b).double(), dim=(-3, -2, -1), norm="ortho").abs() ** 2
    m = band_masks(shape).double()
    expected = (torch.einsum("bcfhw,kfhw->bk", h * d, m) / torch.einsum("bcfhw,kfhw->bk", d, m)).numpy()
    np.testing.assert_allclose(ds.follow_noise.values, expected, rtol=1e-5, atol=1e-7)  # float32 mix
    assert expected[0, 0] > 0.5 > expected[0, -1]
    np.testing.assert_array_equal(ds.noise.sel(trajectory="a").values, a.numpy())
    assert np.isfinite(ds.follow_x0_pred.values).all()


def test_lowest_bins_mask_keeps_the_lowest_share():
    from freeinit_lab.spectral import frequency_radius

    shape = (8, 16, 16)
    r = frequency_radius(shape)
    for keep in (0.05, 0.2, 0.5, 1.0):
        m = A.lowest_bins_mask((2, 3, *shape), keep)
        assert m.shape == shape and set(torch.unique(m).tolist()) <= {0.0, 1.0}
        assert keep <= float(m.mean()) < keep + 0.05
        if keep < 1:
            assert float(r[m > 0].max()) < float(r[m == 0].min())  # every kept bin is lower than every dropped one
        # symmetric under f -> -f, so a mix with it stays real
        flipped = torch.roll(torch.flip(m, dims=(-3, -2, -1)), shifts=(1, 1, 1), dims=(-3, -2, -1))
        assert torch.equal(m, flipped)
    with pytest.raises(ValueError, match="share of FFT bins"):
        A.lowest_bins_mask(shape, 0.0)


def test_noise_swap_sweep_on_analytic_pipeline():
    from freeinit_lab.pipelines import load_analytic_pipeline

    pipe = load_analytic_pipeline()
    g = torch.Generator().manual_seed(3)
    shape = (2, *pipe.sample_shape)
    a, b = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    keep = (0.05, 0.5)
    ds = A.noise_swap_sweep(pipe, a, b, keep=keep, num_inference_steps=3)
    assert ds.trajectory.values.tolist() == ["a", "b", "mix 0", "mix 1"]
    assert ds.latents.dims == ("trajectory", "step", *DIMS) and ds.sizes["step"] == 3
    assert ds.follow_x0_pred.dims == ("cutoff", "step", "batch", "band")
    assert ds.dist_a.dims == ("cutoff", "batch") and ds.dist_ab.dims == ("batch",)
    np.testing.assert_allclose(ds.keep_share.values, [float(A.lowest_bins_mask(shape, k).mean()) for k in keep])
    # the batched call gives each trajectory what a call of its own gives
    direct = pipe(latents=a.clone(), num_inference_steps=3, output_type="latent").frames
    np.testing.assert_allclose(ds.latents.sel(trajectory="a").isel(step=-1).values, direct.numpy(), atol=1e-5)
    alone = A.noise_swap_sweep(pipe, a, b, keep=keep, num_inference_steps=3, batched=False, capture=("latents",))
    np.testing.assert_allclose(alone.latents.values, ds.latents.values, atol=1e-5)
    np.testing.assert_allclose(alone.dist_a.values, ds.dist_a.values, rtol=1e-4)
    # the mixes: A below the cut-off, B above it
    np.testing.assert_allclose(ds.follow_noise.isel(band=0).values, 1.0, atol=1e-6)
    np.testing.assert_allclose(ds.follow_noise.isel(band=-1).values, 0.0, atol=1e-6)
    np.testing.assert_array_equal(ds.noise.sel(trajectory="b").values, b.numpy())
    # more of A's spectrum -> closer to A's result; the exact Gaussian model keeps the low band where the noise put it
    assert (ds.dist_a.isel(cutoff=1) < ds.dist_a.isel(cutoff=0)).all()
    assert (ds.dist_a.isel(cutoff=1) < ds.dist_b.isel(cutoff=1)).all()
    np.testing.assert_allclose(ds.follow_latents.isel(step=-1, band=0).values, 1.0, atol=0.02)
