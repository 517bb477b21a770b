"""The gap as a KL divergence: identities, additivity, Monte-Carlo, grids, normalisation, bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import freeinit_lab as fl
from freeinit_lab.core.snr import gap_kl, gaussian_kl, separable_band_index


@pytest.fixture(scope="module")
def sched():
    return fl.default_scheduler()


@pytest.fixture(scope="module")
def coeffs(sched):
    s = fl.get_schedule(sched)
    return tuple(float(v) for v in s.coefficients(s.terminal_timestep))


@pytest.fixture(scope="module")
def prior_pipe():
    return fl.load_analytic_pipeline(num_frames=4, height=8)


def test_gaussian_kl_kernel():
    assert gaussian_kl(2.0, 2.0) == 0.0 and gaussian_kl(1.0, 1.0, 3.0, 3.0) == 0.0
    assert math.isclose(gaussian_kl(1.0, 4.0), 0.5 * (0.25 - 1 + math.log(4)))
    assert math.isclose(gaussian_kl(1.0, 1.0, 0.0, 2.0), 2.0)  # mean term: d² / (2 var)
    t = gaussian_kl(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 1.0]))
    assert bool((t > 0).all())


def test_kl_is_zero_when_the_training_marginal_is_the_inference_one(sched, coeffs):
    """Inference power a² S + b² in every bin, no mean: the two distributions are equal, KL = 0 both ways."""
    a, b = coeffs
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 2, 4, 8, 8, generator=g, dtype=torch.float64) * 2 + 0.5
    x = x - x.mean(dim=(0, 2, 3, 4), keepdim=True)  # the global mean field is 0
    spec = torch.fft.fftn(x - x.mean(dim=(2, 3, 4), keepdim=True), dim=(-3, -2, -1), norm="ortho").abs() ** 2
    S = spec.mean(0)
    S[:, 0, 0, 0] = 4 * 8 * 8 * x.mean(dim=(2, 3, 4)).pow(2).mean(0)
    ds = gap_kl(x, sched, resolution="bin", inference_power=a * a * S + b * b, num_bootstrap=0)
    for var in ("kl", "kl_reverse"):
        assert np.allclose(ds[var].values, 0.0, atol=1e-12)
    assert abs(float(ds.kl_total)) < 1e-12 and abs(float(ds.kl_dc)) < 1e-12


def test_additivity_over_bins_bands_and_grids(sched):
    x = fl.load_clips(4, 8, segment_step=2)
    kw = dict(resolution="bin", num_bootstrap=0)
    radial = gap_kl(x, sched, num_bands=4, **kw)
    radial6 = gap_kl(x, sched, num_bands=6, **kw)
    sep = gap_kl(x, sched, grid="separable", num_spatial_bands=3, **kw)
    total = float(radial.kl.sum() + radial.kl_dc)
    assert math.isclose(total, float(radial.kl_total), rel_tol=1e-12)
    # per-bin KLs do not depend on how bins are grouped
    for other in (radial6, sep):
        assert math.isclose(float(other.kl.sum() + other.kl_dc), total, rel_tol=1e-10)
        assert math.isclose(float(other.kl_total_reverse), float(radial.kl_total_reverse), rel_tol=1e-10)
    # two channels = the sum of each on its own
    parts = [float(gap_kl(x[:, c : c + 1], sched, num_bands=4, **kw).kl_total) for c in range(3)]
    assert math.isclose(sum(parts), total, rel_tol=1e-10)
    # band resolution: the same bins, averaged power per band (Jensen: not the same number)
    band = gap_kl(x, sched, num_bands=4, num_bootstrap=0)
    assert int(band.num_bins.sum()) == 4 * 8 * 8 - 1 and float(band.kl_dc) == float(radial.kl_dc)


def test_kl_matches_monte_carlo_log_likelihood_ratio(prior_pipe, sched, coeffs):
    """E_{z ~ N(0, 1)}[log p_inf(z) - log p_train(z)] from 4000 white latents equals the closed form, for a
    training marginal with a mean field and a coloured spectrum (the analytic prior's)."""
    a, b = coeffs
    unet = prior_pipe.unet
    x = unet.sample_prior(4096, generator=torch.Generator().manual_seed(1)).double()
    ds = gap_kl(x, sched, resolution="bin", num_bootstrap=0)
    # the model gap_kl fitted: per-bin variance and mean field, from the same clips
    mu = x.mean(dim=(0, 2, 3, 4))
    cm = x.mean(dim=(2, 3, 4))
    nvox = 4 * 8 * 8
    S = (torch.fft.fftn(x - cm[..., None, None, None], dim=(-3, -2, -1), norm="ortho").abs() ** 2).mean(0)
    S[:, 0, 0, 0] = nvox * (cm - mu).pow(2).mean(0)
    var = a * a * S + b * b
    mean = torch.zeros_like(var)
    mean[:, 0, 0, 0] = a * mu * math.sqrt(nvox)

    def logp(z, m, v):
        Z = torch.fft.fftn(z, dim=(-3, -2, -1), norm="ortho")
        return -0.5 * ((Z - m).abs() ** 2 / v + torch.log(2 * math.pi * v)).sum(dim=(1, 2, 3, 4))

    z = torch.randn(4000, 3, 4, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ratio = logp(z, 0.0, torch.ones_like(var)) - logp(z, mean, var)
    est, se = float(ratio.mean()), float(ratio.std() / math.sqrt(ratio.numel()))
    assert abs(est - float(ds.kl_total)) < 4 * se, (est, se, float(ds.kl_total))
    # the reverse direction from draws of the training marginal
    zt = a * x[:4000] + b * torch.randn(4000, 3, 4, 8, 8, generator=torch.Generator().manual_seed(3),
                                         dtype=torch.float64)
    rev = logp(zt, mean, var) - logp(zt, 0.0, torch.ones_like(var))
    # (the fitted S is the sample's own periodogram mean, so the sample's log-ratio is close to unbiased)
    assert abs(float(rev.mean()) - float(ds.kl_total_reverse)) < 4 * float(rev.std()) / math.sqrt(4000) + 0.05


def test_remove_mean_and_normalization(sched):
    x = fl.load_clips(4, 16, segment_step=4)
    plain = gap_kl(x, sched, num_bootstrap=0)
    centred = gap_kl(x, sched, remove_mean=True, num_bootstrap=0)
    # removing each clip's mean colour touches only the DC bin
    np.testing.assert_allclose(centred.kl.values, plain.kl.values)
    assert float(centred.kl_dc) < 1e-4 < float(plain.kl_dc)
    assert np.isneginf(float(centred.snr_dc_db))
    unit = gap_kl(x, sched, normalization="unit_variance", num_bootstrap=0)
    flat = x.double().transpose(0, 1).reshape(3, -1)
    np.testing.assert_allclose(unit.channel_scale.values, flat.std(dim=1, unbiased=False).numpy())
    # dividing by the scales by hand gives the same numbers as normalisation="unit_variance"
    by_hand = gap_kl(x / torch.from_numpy(unit.channel_scale.values.reshape(1, 3, 1, 1, 1).astype(np.float32)), sched,
                     num_bootstrap=0)
    np.testing.assert_allclose(by_hand.kl.values, unit.kl.values, rtol=1e-5)
    assert unit.attrs["normalization"] == "unit_variance" and plain.attrs["normalization"] == "as_given"


def test_separable_grid_partitions_and_labels():
    idx, s_edges, t_freq = separable_band_index((4, 8, 8), 3)
    assert idx.shape == (4, 8, 8) and t_freq.tolist() == [0.0, 0.5, 1.0]
    assert sorted(torch.unique(idx).tolist()) == list(range(3 * 3))
    # temporal bin of every bin is |f_t|: frames 1 and 3 (f_t = ±0.5) share bin 1
    assert bool((idx[1] % 3 == 1).all()) and torch.equal(idx[1], idx[3])
    ds = gap_kl(fl.load_clips(4, 8, segment_step=2), fl.default_scheduler(), grid="separable", num_spatial_bands=3,
                num_bootstrap=0)
    assert ds.kl.dims == ("spatial_band", "temporal_frequency") and ds.kl.shape == (3, 3)
    assert int(ds.num_bins.sum()) == 4 * 8 * 8 - 1


def test_bootstrap_intervals_and_groups(sched):
    x = fl.load_clips(4, 8, segment_step=2)
    ds = gap_kl(x, sched, num_bootstrap=300, seed=1)
    assert bool((ds.kl_low <= ds.kl_high).all())
    assert float(ds.kl_total_low) <= float(ds.kl_total) * 1.5 and float(ds.kl_total_low) <= float(ds.kl_total_high)
    again = gap_kl(x, sched, num_bootstrap=300, seed=1)
    np.testing.assert_array_equal(ds.kl_low.values, again.kl_low.values)
    # one group per clip: the same as no groups; coarse groups give wider intervals
    n = x.shape[0]
    same = gap_kl(x, sched, num_bootstrap=300, seed=1, groups=np.arange(n))
    np.testing.assert_allclose(same.kl_total_low, ds.kl_total_low)
    coarse = gap_kl(x, sched, num_bootstrap=300, seed=1, groups=np.arange(n) // max(1, n // 4))
    assert coarse.attrs["num_groups"] <= 5
    with pytest.raises(ValueError, match="one clip id per segment"):
        gap_kl(x, sched, groups=[0, 1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(normalization="zscore"), "as_given"),
        (dict(resolution="pixel"), "per-bin periodogram"),
        (dict(grid="polar"), "separable"),
        (dict(inference_power=-1.0), "positive"),
    ],
)
def test_bad_gap_input(sched, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gap_kl(torch.randn(4, 3, 4, 8, 8), sched, num_bootstrap=0, **kwargs)


def test_one_clip_is_refused(sched):
    with pytest.raises(ValueError, match="at least 2 clips"):
        gap_kl(torch.randn(1, 3, 4, 8, 8), sched)


def test_band_snr_intervals(sched):
    """The training band SNR gets bootstrap intervals from the same resamples; identical clips give none."""
    x = fl.load_clips(4, 8, segment_step=2)
    ds = gap_kl(x, sched, num_bands=4, num_bootstrap=300, seed=2)
    assert ds.snr_db_low.dims == ds.snr_db.dims == ds.snr_db_high.dims
    assert bool((ds.snr_db_low <= ds.snr_db + 1e-9).all()) and bool((ds.snr_db <= ds.snr_db_high + 1e-9).all())
    assert float(ds.snr_dc_db_low) <= float(ds.snr_dc_db) <= float(ds.snr_dc_db_high)
    assert bool((ds.snr_db_high > ds.snr_db_low).any())
    same = gap_kl(x[:1].expand(5, -1, -1, -1, -1).contiguous(), sched, num_bands=4, num_bootstrap=100)
    np.testing.assert_allclose(same.snr_db_low, same.snr_db, atol=1e-9)
    np.testing.assert_allclose(same.snr_db_high, same.snr_db, atol=1e-9)
    sep = gap_kl(x, sched, grid="separable", num_spatial_bands=3, num_bootstrap=100)
    assert sep.snr_db_low.dims == ("spatial_band", "temporal_frequency")
