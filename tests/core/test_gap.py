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
        (dict(inference_power=float("nan")), "finite and positive"),
        (dict(inference_power=float("inf")), "finite and positive"),
        (dict(inference_power=torch.full((3, 4, 8, 8), float("nan"))), "finite and positive"),
        (dict(inference_power=torch.ones(2, 4, 8, 8)), r"broadcastable to \(C, F, H, W\) = \(3, 4, 8, 8\).*\(2, 4, 8, 8\)"),
        (dict(inference_power=torch.ones(4, 8, 9)), r"broadcastable to \(C, F, H, W\)"),
        (dict(inference_power="1"), r"broadcastable to \(C, F, H, W\).*'1'"),
        (dict(groups=[0, 1, np.nan, np.nan]), "non-finite clip ids"),
    ],
)
def test_bad_gap_input(sched, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gap_kl(torch.randn(4, 3, 4, 8, 8), sched, num_bootstrap=0, **kwargs)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(remove_mean="False"), TypeError, "remove_mean must be True or False"),
        (dict(return_resamples="False"), TypeError, "return_resamples must be True or False"),
        (dict(num_bootstrap=True), ValueError, "num_bootstrap=True must be an integer >= 0"),
        (dict(num_bootstrap=2.5), ValueError, "num_bootstrap=2.5 must be an integer >= 0"),
        (dict(num_bootstrap=-3), ValueError, "num_bootstrap=-3 must be an integer >= 0"),
        (dict(seed=1.7), ValueError, "seed=1.7 must be an integer"),
        (dict(seed=-1), ValueError, "seed=-1 must be an integer"),
    ],
)
def test_switch_counts_and_seed_are_refused_not_coerced(sched, kwargs, error, match):
    """remove_mean="False" read as True, num_bootstrap=True / 2.5 ran 1 / 2 resamples and seed=1.7 ran seed 1, while
    attrs recorded what was passed."""
    with pytest.raises(error, match=match):
        gap_kl(torch.randn(4, 3, 4, 8, 8), sched, **kwargs)


def test_nan_groups_are_refused_by_the_bootstrap_weights():
    """A NaN clip id formed a group with no members (g == nan is False): its clips never entered a resample."""
    from freeinit_lab.core.snr import _bootstrap_weights

    with pytest.raises(ValueError, match="non-finite clip ids"):
        _bootstrap_weights(6, 20, np.random.default_rng(0), groups=[0, 1, np.nan, np.nan, 2, 2])


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


# ---------------------------------------------------------------------------------------------------------------
# the share of the gap a group of bands holds, with its interval from the same resamples
# ---------------------------------------------------------------------------------------------------------------
def _red_clips(n: int = 6, seed: int = 0) -> torch.Tensor:
    """Clips with a red spectrum and a per-clip mean colour: the gap sits in the low bands and DC, unevenly."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, 4, 8, 8, generator=g, dtype=torch.float64).cumsum(-1).cumsum(-2) / 4
    return x + torch.randn(n, 2, 1, 1, 1, generator=g, dtype=torch.float64) * 2


def _hand_bootstrap_share(x, sched, num_bootstrap, seed, confidence, share_of, **kw):
    """The percentile bootstrap written out: resample clips with numpy's default_rng(seed) as gap_kl documents it,
    recompute gap_kl on each resampled set (no bootstrap inside), take the share, then the percentiles."""
    draws = np.random.default_rng(seed).integers(0, x.shape[0], size=(num_bootstrap, x.shape[0]))
    shares = [share_of(gap_kl(x[torch.from_numpy(d)], sched, num_bootstrap=0, **kw)) for d in draws]
    return np.percentile(shares, [50 * (1 - confidence), 50 * (1 + confidence)])


def test_share_interval_is_the_hand_computed_bootstrap_of_the_share(sched):
    x = _red_clips()
    R, seed, conf = 60, 3, 0.9
    ds = gap_kl(x, sched, num_bands=4, num_bootstrap=R, seed=seed, confidence=conf, return_resamples=True)
    s = fl.gap_kl_share(ds, {"band": slice(0, 2)}, include_dc=True)
    point = float((ds.kl.isel(band=slice(0, 2)).sum() + ds.kl_dc) / ds.kl_total)
    lo, hi = _hand_bootstrap_share(x, sched, R, seed, conf,
                                   lambda d: float((d.kl.isel(band=slice(0, 2)).sum() + d.kl_dc) / d.kl_total),
                                   num_bands=4)
    assert s.share == pytest.approx(point, rel=1e-12)
    assert (s.low, s.high) == pytest.approx((lo, hi), rel=1e-9)
    assert s.confidence == conf and s.num_resamples == R
    assert 0 < s.low < s.share < s.high < 1, s  # a non-degenerate interval around the point estimate
    # the ratio of separate marginal bounds (part's lower bound / total's upper bound) is a different number
    bound_ratio = float((ds.kl_low.isel(band=slice(0, 2)).sum() + ds.kl_dc_low) / ds.kl_total_high)
    assert abs(bound_ratio - s.low) > 1e-3, (bound_ratio, s.low)


def test_share_of_one_temporal_frequency_over_the_non_dc_kl_matches_the_hand_bootstrap(sched):
    x = _red_clips(seed=1)
    R, seed, conf = 50, 7, 0.95
    kw = dict(grid="separable", num_spatial_bands=3)
    ds = gap_kl(x, sched, num_bootstrap=R, seed=seed, confidence=conf, return_resamples=True, **kw)
    s = fl.gap_kl_share(ds, {"temporal_frequency": 0}, denominator="bands")
    lo, hi = _hand_bootstrap_share(
        x, sched, R, seed, conf, lambda d: float(d.kl.isel(temporal_frequency=0).sum() / d.kl.sum()), **kw)
    assert s.share == pytest.approx(float(ds.kl.isel(temporal_frequency=0).sum() / ds.kl.sum()), rel=1e-12)
    assert (s.low, s.high) == pytest.approx((lo, hi), rel=1e-9)
    assert "non-DC" in s.what and "temporal_frequency 0" in s.what


def test_share_groups_add_up_and_the_whole_is_one(sched):
    x = _red_clips(seed=2)
    ds = gap_kl(x, sched, num_bands=3, num_bootstrap=100, seed=0, return_resamples=True)
    assert ds.kl_resample.dims == ("resample", "band") and ds.kl_resample.shape == (100, 3)
    assert ds.kl_dc_resample.shape == (100,) and ds.attrs["confidence"] == 0.95
    # the resamples are the ones behind the marginal intervals
    np.testing.assert_allclose(np.percentile(ds.kl_resample.values, [2.5, 97.5], axis=0),
                               np.stack([ds.kl_low.values, ds.kl_high.values]))
    whole = fl.gap_kl_share(ds, None, include_dc=True)
    assert (whole.share, whole.low, whole.high) == pytest.approx((1.0, 1.0, 1.0), abs=1e-12)
    parts = [fl.gap_kl_share(ds, {"band": [k]}).share for k in range(3)]
    dc = float(ds.kl_dc / ds.kl_total)
    assert sum(parts) + dc == pytest.approx(1.0, abs=1e-12)
    assert fl.gap_kl_share(ds, {"band": slice(0, 2)}).share == pytest.approx(parts[0] + parts[1], abs=1e-12)
    # the level can be asked for: a wider level gives a wider interval from the same resamples
    s95, s50 = (fl.gap_kl_share(ds, {"band": 0}, confidence=c) for c in (0.95, 0.5))
    assert s95.low <= s50.low <= s50.high <= s95.high and s50.high - s50.low < s95.high - s95.low


def test_white_data_spreads_the_share_like_the_bins(sched):
    """For white data the (small) gap per bin is about equal, so a band's share tracks its share of the bins;
    for red data the lowest band holds far more than its bins: the share tells the two apart."""
    g = torch.Generator().manual_seed(4)
    white = torch.randn(64, 2, 4, 8, 8, generator=g, dtype=torch.float64) * 3
    red = _red_clips(n=64, seed=4)
    kw = dict(num_bands=3, num_bootstrap=200, seed=0, return_resamples=True, remove_mean=True)
    w, r = gap_kl(white, sched, **kw), gap_kl(red, sched, **kw)
    bins0 = float(w.num_bins[0] / w.num_bins.sum())
    sw, sr = fl.gap_kl_share(w, {"band": 0}, denominator="bands"), fl.gap_kl_share(r, {"band": 0}, denominator="bands")
    assert sw.low < bins0 * 1.5 and sw.high > bins0 / 1.5 and sr.low > 3 * bins0, (bins0, sw, sr)


@pytest.mark.parametrize(
    "make, kwargs, match",
    [
        (dict(num_bootstrap=20), dict(select={"band": 0}), "return_resamples=True"),
        (dict(num_bootstrap=20, return_resamples=True), dict(select={"frame": 0}), "not band dims"),
        (dict(num_bootstrap=20, return_resamples=True), dict(select={"band": []}), "holds no band"),
        (dict(num_bootstrap=20, return_resamples=True), dict(select={"band": 0}, denominator="all"), "'bands'"),
        (dict(num_bootstrap=20, return_resamples=True), dict(select={"band": 0}, include_dc=True,
                                                             denominator="bands"), "denominator='total'"),
        (dict(num_bootstrap=20, return_resamples=True), dict(select={"band": 0}, confidence=1.5), r"\(0, 1\)"),
        (dict(num_bootstrap=20, return_resamples=True), dict(select={"band": [1, 2, 2]}), "more than once"),
        (dict(num_bootstrap=20, return_resamples=True), dict(select={"band": [2, -1]}), "more than once"),
    ],
)
def test_bad_share_input(sched, make, kwargs, match):
    ds = gap_kl(_red_clips(n=4), sched, num_bands=3, **make)
    with pytest.raises(ValueError, match=match):
        fl.gap_kl_share(ds, **kwargs)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # -inf dB SNRs of a zero-SNR z_T
def test_share_refuses_no_gap_and_resamples_without_a_bootstrap(sched):
    with pytest.raises(ValueError, match="num_bootstrap >= 1"):
        gap_kl(_red_clips(n=4), sched, num_bootstrap=0, return_resamples=True)
    with pytest.raises(ValueError, match=r"confidence=0 must lie in \(0, 1\)"):
        gap_kl(_red_clips(n=4), sched, num_bootstrap=20, confidence=0)
    zsnr = __import__("diffusers").DDIMScheduler(beta_schedule="scaled_linear", rescale_betas_zero_snr=True,
                                                   beta_start=0.00085, beta_end=0.012)
    ds = gap_kl(_red_clips(n=4), zsnr, num_bands=3, num_bootstrap=20, return_resamples=True)
    with pytest.raises(ValueError, match="no gap"):
        fl.gap_kl_share(ds, {"band": 0})
    with pytest.raises(TypeError, match="gap_kl returns"):
        fl.gap_kl_share(ds.kl, {"band": 0})


def test_difference_interval_is_the_hand_computed_bootstrap_of_two_independent_sets(sched):
    """gap_kl_difference: resample r of a and resample r of b drawn apart (numpy default_rng of each set's own seed,
    as gap_kl documents it), the difference of the KLs recomputed for each pair, then the percentiles; for bands
    and for the DC bin."""
    a_x, b_x = _red_clips(seed=4), _red_clips(seed=5)[:7] * 0.7
    R, conf = 40, 0.9
    a = gap_kl(a_x, sched, num_bands=3, num_bootstrap=R, seed=1, confidence=conf, return_resamples=True)
    b = gap_kl(b_x, sched, num_bands=3, num_bootstrap=R, seed=2, confidence=conf, return_resamples=True)
    da = np.random.default_rng(1).integers(0, a_x.shape[0], size=(R, a_x.shape[0]))
    db = np.random.default_rng(2).integers(0, b_x.shape[0], size=(R, b_x.shape[0]))
    for select, dc, of in (({"band": slice(0, 2)}, False, lambda d: float(d.kl.isel(band=slice(0, 2)).sum())),
                           (None, True, lambda d: float(d.kl_dc))):
        diff = fl.gap_kl_difference(a, b, select, dc=dc)
        hand = [of(gap_kl(a_x[torch.from_numpy(i)], sched, num_bands=3, num_bootstrap=0))
                - of(gap_kl(b_x[torch.from_numpy(j)], sched, num_bands=3, num_bootstrap=0)) for i, j in zip(da, db)]
        lo, hi = np.percentile(hand, [5, 95])
        assert diff.difference == pytest.approx(of(a) - of(b), rel=1e-12)
        assert (diff.low, diff.high) == pytest.approx((lo, hi), rel=1e-9)
        assert diff.confidence == conf and diff.num_resamples == R
        assert diff.low < diff.difference < diff.high, diff
    assert "DC bin" in str(fl.gap_kl_difference(a, b, dc=True)) and "band 0-1" in fl.gap_kl_difference(
        a, b, {"band": slice(0, 2)}).what


def test_difference_refuses_related_or_incomparable_resamples(sched):
    x = _red_clips(seed=6)
    kw = dict(num_bands=3, num_bootstrap=20, return_resamples=True)
    a, b = gap_kl(x, sched, seed=0, **kw), gap_kl(x[:6], sched, seed=1, **kw)
    with pytest.raises(ValueError, match="one seed"):
        fl.gap_kl_difference(a, gap_kl(x[:6], sched, seed=0, **kw))
    with pytest.raises(ValueError, match="no bootstrap resamples"):
        fl.gap_kl_difference(a, gap_kl(x, sched, num_bands=3, num_bootstrap=20, seed=1))
    with pytest.raises(ValueError, match="other band grids"):
        fl.gap_kl_difference(a, gap_kl(x, sched, num_bands=4, num_bootstrap=20, seed=1, return_resamples=True))
    with pytest.raises(ValueError, match="pass one num_bootstrap"):
        fl.gap_kl_difference(a, gap_kl(x, sched, num_bands=3, num_bootstrap=30, seed=1, return_resamples=True))
    with pytest.raises(ValueError, match="does not record its bootstrap seed"):
        fl.gap_kl_difference(a, _without_seed(b))
    with pytest.raises(ValueError, match="leave select out"):
        fl.gap_kl_difference(a, b, {"band": 0}, dc=True)
    with pytest.raises(ValueError, match="not band dims"):
        fl.gap_kl_difference(a, b, {"frame": 0})
    with pytest.raises(ValueError, match="more than once"):
        fl.gap_kl_difference(a, b, {"band": [0, 0]})
    with pytest.raises(TypeError, match="gap_kl returns"):
        fl.gap_kl_difference(a, b.kl)


def _without_seed(ds):
    """A gap_kl result as one made before it recorded its bootstrap seed."""
    out = ds.copy()
    out.attrs = {k: v for k, v in ds.attrs.items() if k != "bootstrap_seed"}
    return out


def test_block_bootstrap_draws_runs_of_consecutive_segments():
    from freeinit_lab.core.snr import _bootstrap_weights

    n, num = 9, 400
    plain = _bootstrap_weights(n, num, np.random.default_rng(5))
    one = _bootstrap_weights(n, num, np.random.default_rng(5), block_length=1)
    np.testing.assert_array_equal(plain, one)  # L = 1 is the plain bootstrap, draw for draw
    for L in (2, 3, 4):
        w = _bootstrap_weights(n, num, np.random.default_rng(5), block_length=L)
        counts = np.rint(w * n).astype(int)
        assert (counts.sum(1) == n).all()
        # rebuild each resample from the same draws: blocks of L consecutive segments (wrapping), cut to n
        starts = np.random.default_rng(5).integers(0, n, size=(num, -(-n // L)))
        for row, s in zip(counts[:20], starts[:20]):
            picks = np.concatenate([np.arange(a, a + L) % n for a in s])[:n]
            np.testing.assert_array_equal(row, np.bincount(picks, minlength=n))
        # every segment, the first and the last included, is drawn once per resample on average (4 s.e.)
        mean, se = counts.mean(0), counts.std(0) / np.sqrt(num)
        assert (np.abs(mean - 1) < 4 * se).all(), (mean, se)
        # neighbours come together: segment i and i + 1 share resamples more often than in the plain bootstrap
        together = np.mean([(counts[:, i] > 0) & (counts[:, i + 1] > 0) for i in range(n - 1)])
        plain_together = np.mean([(plain[:, i] > 0) & (plain[:, i + 1] > 0) for i in range(n - 1)])
        assert together > plain_together + 0.03, (together, plain_together)
    whole = _bootstrap_weights(n, 50, np.random.default_rng(0), block_length=n)
    np.testing.assert_array_equal(whole, np.full((50, n), 1 / n))  # one block of everything (rotated): no spread


@pytest.mark.parametrize("rho", [0.9, 0.0])
def test_block_bootstrap_widens_the_interval_of_correlated_segments_only(sched, rho):
    # consecutive segments of one slowly varying "film": an AR(1) brightness over 24 segments. With rho = 0.9
    # the plain bootstrap's interval is too narrow for such neighbours and blocks widen it; with independent
    # segments (rho = 0) blocks change little.
    g = torch.Generator().manual_seed(0)
    widths = {1: [], 4: []}
    for film in range(12):
        level = torch.zeros(24)
        level[0] = torch.randn(1, generator=g)
        for i in range(1, 24):
            level[i] = rho * level[i - 1] + math.sqrt(1 - rho ** 2) * torch.randn(1, generator=g)
        x = 0.3 * torch.randn(24, 3, 4, 8, 8, generator=g) + level.view(-1, 1, 1, 1, 1)
        for L in widths:
            ds = gap_kl(x, sched, num_bands=3, num_bootstrap=300, seed=film, confidence=0.9, block_length=L)
            widths[L].append(float(ds.kl_dc_high - ds.kl_dc_low))
            assert ds.attrs["block_length"] == L
            assert ("circular blocks" in ds.attrs["bootstrap"]) == (L > 1)
    ratio = np.array(widths[4]) / np.array(widths[1])
    assert (np.median(ratio) > 1.2) == (rho > 0), ratio


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(block_length=0), "block_length"),
        (dict(block_length=5), "at most the number of segments"),
        (dict(block_length=2.5), "block_length"),
        (dict(block_length=2, groups=[0, 0, 1, 1]), "not both"),
    ],
)
def test_bad_block_length_is_refused_before_work(sched, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gap_kl(torch.randn(4, 3, 4, 8, 8), sched, **kwargs)


@pytest.mark.parametrize("bands", [2.5, True])
def test_separable_spatial_band_count_must_be_an_integer(bands):
    """int() read num_spatial_bands=2.5 as 2 bands and True as 1, in separable_band_index and gap_kl's
    separable grid."""
    with pytest.raises(ValueError, match=rf"num_spatial_bands={bands!r} must be an integer >= 1"):
        separable_band_index((4, 8, 8), bands)
    with pytest.raises(ValueError, match=rf"num_spatial_bands={bands!r} must be an integer >= 1"):
        gap_kl(torch.randn(4, 2, 4, 8, 8), fl.default_scheduler(), grid="separable", num_spatial_bands=bands,
               num_bootstrap=0)
