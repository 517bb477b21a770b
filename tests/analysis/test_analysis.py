"""Tests of freeinit_lab.analysis on synthetic trajectories (invariants)."""

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
    expected = band_power(torch.as_tensor(rec.latents_in.values))  # a float64 record: float64, as the kernel
    np.testing.assert_allclose(traj.values, expected.numpy(), rtol=1e-12)
    single = A.band_power_trajectory(rec.latents_in.astype(np.float32))  # a probe's float32 record: float32
    expected = band_power(torch.as_tensor(rec.latents_in.values, dtype=torch.float32))
    np.testing.assert_allclose(single.values, expected.numpy(), rtol=1e-12)
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


def test_follow_fraction_is_nan_where_a_and_b_agree():
    """lambda_k = <M - B, A - B>_k / ||A - B||_k^2 is undefined in a band where A = B: NaN, not inf or 0/0
    (b carries a's band 0, so ||A - B||_0 is round-off; that gave numbers like 1e15)."""
    g = torch.Generator().manual_seed(5)
    a = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    other = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    mask = band_masks(SHAPE)[0].double()
    b = reinit_noise(a, other, mask)  # b's band 0 is a's
    mixed = 0.5 * a + 0.5 * torch.randn(SHAPE, generator=g, dtype=torch.float64)
    for dtype in (torch.float64, torch.float32):
        f = A.follow_fraction(_da(mixed.to(dtype)), _da(a.to(dtype)), _da(b.to(dtype)))
        assert np.isnan(f.isel(band=0).values).all()  # round-off / round-off gave 1e15 here
        assert np.isfinite(f.isel(band=slice(1, None)).values).all()
        np.testing.assert_allclose(f.isel(band=slice(1, None)).values,
                                   A.follow_fraction(_da(mixed), _da(a), _da(other)).isel(band=slice(1, None)).values,
                                   rtol=1e-4)  # the other bands: b is `other` there


def test_band_power_trajectory_keeps_float64_precision():
    """A smooth float64 video's top band is ~1e-21 of unit noise; rounded to float32 first it read 1e-11."""
    x = apply_lowpass(torch.randn(SHAPE, generator=torch.Generator().manual_seed(4), dtype=torch.float64),
                      lowpass_filter(SHAPE, "gaussian", d_s=0.1, d_t=0.1, dtype=torch.float64)) * 100 + 50
    traj = A.band_power_trajectory(_da(x), num_bands=4)
    expected = band_power(x, num_bands=4).numpy()
    assert expected[..., -1].max() < 1e-18
    np.testing.assert_allclose(traj.values, expected, rtol=1e-10)


def _cut(rec: xr.Dataset, keep: int) -> xr.Dataset:
    """``rec`` with a second pass interrupted after ``keep`` steps (NaN beyond, as a probe records it)."""
    second = rec.copy(deep=True)
    for name in ("latents_in", "timestep"):
        v = second[name].values
        v[:, keep:] = np.nan
        second[name] = second[name].copy(data=v)
    two = xr.concat([rec, second], dim="iteration", coords="different", compat="equals")
    return two.assign_coords(num_steps=("iteration", [6, 6]))


def test_an_interrupted_pass_has_no_final_value(synthetic):
    """A pass cut short (complete = 0) has no final latent: its error, convergence, lock-in and SNR are NaN, with an
    IncompleteRecordWarning, not measured against the mid-trajectory step where it stopped (lock-in read 'step 0')."""
    from freeinit_lab.probes.io import IncompleteRecordWarning

    rec, x0 = synthetic
    two = _cut(rec, keep=2)
    whole = A.lock_in_step(A.band_error_trajectory(rec, "latents_in"), band=0, tol=0.1)
    with pytest.warns(IncompleteRecordWarning, match=r"stop before their last step.*'iteration': 1"):
        err = A.band_error_trajectory(two, "latents_in")
    lock = A.lock_in_step(err, band=0, tol=0.1)
    np.testing.assert_array_equal(lock.isel(iteration=0).values, whole.isel(iteration=0).values)  # unchanged
    assert np.isnan(lock.isel(iteration=1).values).all() and np.isnan(err.isel(iteration=1).values).all()
    with pytest.warns(IncompleteRecordWarning, match="convergence is NaN"):
        conv = A.convergence_to_final(A.band_power_trajectory(two, "latents_in"))
    assert np.isnan(conv.isel(iteration=1).values).all() and np.isfinite(conv.isel(iteration=0).values).all()
    with pytest.warns(IncompleteRecordWarning, match="band SNR is NaN"):
        snr = A.band_snr_trajectory(two, "latents_in")
    assert np.isnan(snr.isel(iteration=1).values).all()
    # with a reference given, the latent after the last stored step is not at the clean level (it was +inf dB)
    nominal = A.band_snr_trajectory(two.rename(latents_in="latents"), "latents", method="nominal", reference=_da(x0))
    assert np.isnan(nominal.isel(iteration=1, step=1).values).all()
    assert np.isinf(nominal.isel(iteration=0, step=-1).values).all()  # a pass that ran its last step ends clean


def test_a_shorter_complete_pass_is_not_cut_short(synthetic):
    """FreeInit's fast sampling runs fewer steps on early passes: a pass that ran all of its own steps is whole."""
    import warnings

    rec, _ = synthetic
    two = _cut(rec, keep=4).assign_coords(num_steps=("iteration", [6, 4]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        err = A.band_error_trajectory(two, "latents_in")
    assert np.isfinite(err.isel(iteration=1, step=slice(0, 4)).values).all()
    np.testing.assert_array_equal(err.isel(iteration=1, step=3).values, 0.0)
