"""fidelity_report: baselines, sensitivity to the differences it claims to measure, and bad input."""

import math

import numpy as np

import pytest
import torch

from freeinit_lab.analysis.fidelity import fidelity_gate, fidelity_report, spatial_band_power, temporal_band_power
from freeinit_lab.embedded.world import subject_videos


@pytest.fixture(scope="module")
def ref():
    return subject_videos(96, 8, 16, seed=900_000_123)


@pytest.fixture(scope="module")
def same(ref):
    return subject_videos(32, 8, 16, seed=900_000_456)


def test_same_distribution_passes(ref, same):
    rep = fidelity_report(same, ref, training=subject_videos(32, 8, 16, seed=1))
    assert rep.accuracy_low < 0.6 and rep.accuracy < 0.7
    assert rep.precision > 0.6 and rep.recall > 0.6
    assert abs(rep.spatial_db).max() < 1.5 and abs(rep.temporal_db).max() < 1.5
    assert rep.memorised_fraction == 0.0
    assert fidelity_gate(rep)["passed"]


def test_detects_white_noise_and_frame_shuffling(ref, same):
    noisy = fidelity_report(same + 0.3 * torch.randn(same.shape, generator=torch.Generator().manual_seed(0)), ref)
    assert noisy.accuracy_low > 0.8 and noisy.spatial_db[-1] > 3 and not fidelity_gate(noisy)["passed"]
    shuffled = fidelity_report(same[:, :, torch.randperm(8, generator=torch.Generator().manual_seed(0))], ref)
    # frame order only changes temporal statistics: spatial power is untouched, temporal power is not
    assert abs(shuffled.spatial_db - fidelity_report(same, ref).spatial_db).max() < 1e-9
    assert abs(shuffled.temporal_db).max() > 1.5
    assert shuffled.accuracy_low > 0.7


def test_feature_shifts_name_what_separates_the_samples(ref, same):
    """The shifts and spreads are the standardised mean difference and SD ratio of the features; a change to
    one property (half the contrast) puts its features first and leaves the baseline near zero."""
    from freeinit_lab.analysis.fidelity import video_features

    rep = fidelity_report(same, ref)
    fs, names = video_features(same)
    fa, _ = video_features(ref[:32])
    fb, _ = video_features(ref[32:64])
    sd = fa.std(0)
    np.testing.assert_allclose(rep.feature_shift, ((fs.mean(0) - fa.mean(0)) / sd).numpy(), atol=1e-5)
    np.testing.assert_allclose(rep.feature_shift_baseline, ((fb.mean(0) - fa.mean(0)) / sd).numpy(), atol=1e-5)
    np.testing.assert_allclose(rep.feature_spread, (fs.std(0) / sd).numpy(), rtol=1e-5)
    assert rep.feature_names == names and len(rep.feature_shift) == len(names)

    mean = same.mean(dim=(2, 3, 4), keepdim=True)
    faded = fidelity_report(mean + 0.5 * (same - mean), ref)  # half the contrast, same mean, same motion
    top = [n for n, _, _ in faded.largest_feature_shifts(3)]
    assert all(n.startswith(("std_c", "spatial_power_db", "temporal_power_db", "mean_gradient", "colourfulness",
                             "rms_frame_difference")) for n in top)
    assert all(v < -2 and abs(b) < 1 for _, v, b in faded.largest_feature_shifts(3))
    for name in ("std_c0", "mean_gradient"):  # their shift is exactly the feature of half-contrast videos
        i = names.index(name)
        half = (0.5 * fs[:, i].mean() - fa[:, i].mean()) / sd[i]
        np.testing.assert_allclose(faded.feature_shift[i], float(half), rtol=1e-4)
    assert "largest feature shifts" in faded.summary() and top[0] in faded.summary()
    assert faded.to_dict()["feature_shift"] == faded.feature_shift.tolist()


def test_feature_tails_name_the_end_of_the_data_the_samples_lack(ref, same):
    """The tails are the shares of the samples beyond the reference's outer tenths, per feature (by hand); data
    like the reference put about a tenth in each, and half-contrast videos leave the high-contrast end empty."""
    from freeinit_lab.analysis.fidelity import TAIL_QUANTILE, video_features

    rep = fidelity_report(same, ref)
    fs, names = video_features(same)
    fa, _ = video_features(ref[:32])
    fb, _ = video_features(ref[32:64])
    lo = np.quantile(fa.double().numpy(), TAIL_QUANTILE, axis=0)
    hi = np.quantile(fa.double().numpy(), 1 - TAIL_QUANTILE, axis=0)
    np.testing.assert_allclose(rep.feature_tail_low, (fs.double().numpy() < lo).mean(0), atol=1e-12)
    np.testing.assert_allclose(rep.feature_tail_high, (fs.double().numpy() > hi).mean(0), atol=1e-12)
    np.testing.assert_allclose(rep.feature_tail_high_baseline, (fb.double().numpy() > hi).mean(0), atol=1e-12)
    # data like the reference: about a tenth beyond each end, averaged over the features and both ends
    both = np.r_[rep.feature_tail_low, rep.feature_tail_high, rep.feature_tail_low_baseline,
                 rep.feature_tail_high_baseline]
    assert 0.05 < both.mean() < 0.2, both.mean()

    mean = same.mean(dim=(2, 3, 4), keepdim=True)
    faded = fidelity_report(mean + 0.5 * (same - mean), ref)  # half the contrast: no video as contrasted as the data's
    thin = faded.thinnest_feature_tails(3)
    assert all(end == "high" and v == 0.0 for _, end, v, _ in thin), thin
    for name in ("std_c0", "mean_gradient"):
        i = names.index(name)
        assert faded.feature_tail_high[i] == 0.0 and faded.feature_tail_low[i] > 0.5, (name, faded.feature_tail_low[i])
        assert faded.feature_tail_high_baseline[i] > 0  # reference set B does reach that end
    assert "thinnest feature tails" in faded.summary() and thin[0][0] in faded.summary()
    assert faded.to_dict()["feature_tail_high"] == faded.feature_tail_high.tolist()


def test_feature_tails_ties_go_to_the_end_reference_b_fills_most(ref, same):
    """Among equally thin ends (empty ones, typically), the end reference set B fills most comes first; the
    empty ends are counted for the samples and for B, and the summary says how many."""
    mean = same.mean(dim=(2, 3, 4), keepdim=True)
    faded = fidelity_report(mean + 0.5 * (same - mean), ref)
    ends = faded.thinnest_feature_tails(2 * len(faded.feature_names))
    for (_, _, v0, b0), (_, _, v1, b1) in zip(ends, ends[1:]):
        assert v0 < v1 or (v0 == v1 and b0 >= b1), ends
    empty = [e for e in ends if e[2] == 0.0]
    assert len(empty) >= 2 and empty[0][3] > empty[-1][3], empty  # the order is B's share, not the features'
    n_empty, n_empty_b = faded.empty_feature_tails()
    assert n_empty == len(empty) == int((faded.feature_tail_low == 0).sum() + (faded.feature_tail_high == 0).sum())
    assert n_empty_b == int((faded.feature_tail_low_baseline == 0).sum()
                            + (faded.feature_tail_high_baseline == 0).sum())
    assert n_empty > n_empty_b  # half-contrast videos miss ends that a second sample of the data reaches
    assert f"{n_empty} of {2 * len(faded.feature_names)} ends empty (baseline {n_empty_b})" in faded.summary()


def test_detects_copies_of_training_videos(ref):
    train = subject_videos(32, 8, 16, seed=5)
    rep = fidelity_report(train.clone(), ref, training=train)
    assert rep.memorised_fraction == 1.0 and rep.memorised_fraction_baseline == 0.0
    assert not fidelity_gate(rep)["passed"]


def test_band_powers_follow_parseval():
    x = torch.randn(4, 3, 8, 16, 16, dtype=torch.float64)
    ps, edges = spatial_band_power(x)
    pt, freqs = temporal_band_power(x)
    # white unit noise: every band has power 1 per bin
    assert torch.allclose(ps[:, 1:].mean(0), torch.ones(ps.shape[1] - 1, dtype=torch.float64), atol=0.25)
    assert len(freqs) == 5 and edges[0] == 0


def test_bad_input(ref, same):
    with pytest.raises(ValueError, match="at least 16 samples"):
        fidelity_report(same[:8], ref)
    with pytest.raises(ValueError, match=r"at least 2 × 32 = 64 reference"):
        fidelity_report(same, ref[:40])
    with pytest.raises(ValueError, match="differ in"):
        fidelity_report(same, subject_videos(64, 8, 8, seed=0))
    bad = same.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fidelity_report(bad, ref)
    with pytest.raises(ValueError, match=r"\(video, channel"):
        fidelity_report(same[0], ref)


def test_bad_settings_are_refused_by_name(same, ref):
    """folds < 2 leaves no training (or no test) set: refused, not an accuracy of 0 or 0.5."""
    for folds in (0, 1, -3):
        with pytest.raises(ValueError, match="folds"):
            fidelity_report(same, ref, folds=folds)
    assert fidelity_report(same[:16], ref, folds=2).accuracy == fidelity_report(same[:16], ref, folds=2).accuracy
    for repeats in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="repeats"):
            fidelity_report(same[:16], ref, repeats=repeats)
    # ridge=NaN made every fit NaN and every prediction one class: accuracy ~0.5, so the gate passed any samples
    for ridge in (float("nan"), float("inf"), -1.0, True, "0.01"):
        with pytest.raises(ValueError, match="ridge must be a finite number >= 0"):
            fidelity_report(same[:16], ref, repeats=1, ridge=ridge)
    # knn_k=2.0 died in kthvalue; True was taken as 1
    for knn_k in (2.0, True, 0, 15):
        with pytest.raises(ValueError, match=r"knn_k=.* must be an integer in \[1, 14\]"):
            fidelity_report(same[:16], ref, repeats=1, knn_k=knn_k)


@pytest.mark.slow
def test_the_accuracy_interval_covers_chance_when_the_sets_share_a_distribution():
    """Cross-validated predictions share training videos, so they are not independent binomial trials: a binomial
    interval on the pooled accuracy covers 0.5 too rarely when both sets come from one distribution. The corrected
    resampled t interval of repeated cross-validation (what fidelity_report reports) reaches its 95 %, measured on
    200 pairs of 16 + 16 Gaussian feature vectors (25 features, like the videos' feature count)."""
    from freeinit_lab.analysis.fidelity import _corrected_t_interval, _logistic_cv_accuracy

    rng = np.random.default_rng(20261205)
    reps, n, folds, z = 200, 16, 5, 1.959964
    corrected = binomial = 0
    for i in range(reps):
        a, b = (torch.from_numpy(rng.standard_normal((n, 25))) for _ in range(2))
        acc = _logistic_cv_accuracy(a, b, folds, 1e-2, seed=i, repeats=5)
        lo, hi = _corrected_t_interval(acc, folds)
        corrected += lo <= 0.5 <= hi
        p = acc[:folds].mean()  # one cross-validation, its predictions taken as independent trials
        half = z * math.sqrt(p * (1 - p) / (2 * n))
        binomial += p - half <= 0.5 <= p + half
    assert corrected / reps >= 0.93, (corrected / reps, binomial / reps)
    assert binomial / reps < 0.93, (corrected / reps, binomial / reps)  # what the binomial interval did


def test_frames_one_pixel_high_or_wide():
    """A frame one pixel high (or wide) has no gradient across that axis: zero, not NaN (which crashed the Fréchet
    distance in scipy); a single pixel has no spatial bands beyond DC and is refused by name."""
    g = torch.Generator().manual_seed(0)
    for shape in ((3, 4, 1, 8), (3, 4, 8, 1)):
        s, r = torch.randn(16, *shape, generator=g), torch.randn(32, *shape, generator=g)
        rep = fidelity_report(s, r)
        assert np.isfinite(rep.frechet) and np.isfinite(rep.feature_shift).all() and 0 <= rep.accuracy <= 1
    with pytest.raises(ValueError, match="1 × 1"):
        fidelity_report(torch.randn(16, 3, 4, 1, 1), torch.randn(32, 3, 4, 1, 1))


# ---------------------------------------------------------------------------------------------------------------
# gap-aware evaluation: training_marginal_latents and band_power_gap
# ---------------------------------------------------------------------------------------------------------------
def test_training_marginal_latents_is_the_forward_process_at_the_first_timestep():
    from freeinit_lab.analysis.fidelity import training_marginal_latents
    from freeinit_lab.embedded.pipelines import default_scheduler

    sch = default_scheduler(set_alpha_to_one=True)
    x = subject_videos(4, 8, 16, seed=900_000_001)
    z = training_marginal_latents(x, sch, 25, generator=torch.Generator().manual_seed(3))
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    ac = sch.alphas_cumprod[999]  # linspace spacing: the first of 25 timesteps is 999
    torch.testing.assert_close(z, ac.sqrt() * x + (1 - ac).sqrt() * eps)
    assert sch.num_inference_steps is None  # the caller's scheduler was not set


def test_training_marginal_latents_refuses_other_schedulers():
    from diffusers import EulerDiscreteScheduler

    from freeinit_lab.analysis.fidelity import training_marginal_latents

    x = subject_videos(16, 8, 16, seed=900_000_001)
    with pytest.raises(ValueError, match="init_noise_sigma"):
        training_marginal_latents(x, EulerDiscreteScheduler(), 10)
    with pytest.raises(TypeError, match="alphas_cumprod"):
        training_marginal_latents(x, object(), 10)


def test_training_marginal_latents_accepts_arrays():
    """Like every other function of the module it takes numpy arrays (it raised AttributeError on them)."""
    from freeinit_lab.analysis.fidelity import training_marginal_latents
    from freeinit_lab.embedded.pipelines import default_scheduler

    x = subject_videos(2, 4, 8, seed=900_000_001)
    z = training_marginal_latents(x.numpy(), default_scheduler(), 10, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(z, training_marginal_latents(x, default_scheduler(), 10,
                                                            generator=torch.Generator().manual_seed(1)))


def test_band_power_gap_measures_known_changes(same):
    from freeinit_lab.analysis.fidelity import band_power_gap

    zero = band_power_gap(same, same, num_bootstrap=200)
    assert abs(zero.spatial_db).max() == 0 and abs(zero.temporal_high - zero.temporal_low).max() == 0
    doubled = band_power_gap(2 * same, same, num_bootstrap=200)
    assert abs(doubled.spatial_db - 20 * math.log10(2.0)).max() < 1e-9
    # a temporal moving average removes power at high temporal frequencies only
    smooth = 0.5 * (same + same.roll(1, dims=2))
    gap = band_power_gap(smooth, same, num_bootstrap=200)
    assert abs(gap.temporal_db[0]) < 1e-9  # cos²(πk/F) = 1 at k = 0
    assert gap.temporal_db[-1] < -40  # the Nyquist frequency is cancelled
    assert (gap.temporal_low <= gap.temporal_db + 1e-9).all() and (gap.temporal_db <= gap.temporal_high + 1e-9).all()
    with pytest.raises(ValueError, match="same shape"):
        band_power_gap(same[:16], same)
    # one pair gave a zero-width "95 %" interval; num_bootstrap=0 died in nanquantile; seed=-1 was taken
    with pytest.raises(ValueError, match="at least 2 paired videos"):
        band_power_gap(same[:1], 1.2 * same[:1])
    for num_bootstrap in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="num_bootstrap"):
            band_power_gap(same[:4], same[:4], num_bootstrap=num_bootstrap)
    for seed in (-1, 1.5, True):
        with pytest.raises(ValueError, match="seed"):
            band_power_gap(same[:4], same[:4], seed=seed)


def _ddim_gain(lam: torch.Tensor, sched, steps: int) -> torch.Tensor:
    """Closed form: the exact-score DDIM (eta=0) map of a Gaussian bin of variance lam is linear, z_0 = G z_T."""
    sched.set_timesteps(steps)
    ac = sched.alphas_cumprod.double()
    ts = [int(t) for t in sched.timesteps]
    g = torch.ones_like(lam)
    for i, t in enumerate(ts):
        a_t, b_t = ac[t].sqrt(), (1 - ac[t]).sqrt()
        prev = ts[i + 1] if i + 1 < len(ts) else None
        acp = ac[prev] if prev is not None else (torch.tensor(1.0, dtype=ac.dtype) if sched.config.set_alpha_to_one
                                                 else ac[0])
        a_s, b_s = acp.sqrt(), (1 - acp).sqrt()
        g = g * (a_s * a_t * lam + b_s * b_t) / (a_t**2 * lam + b_t**2)
    return g


def test_exact_score_model_shows_the_closed_form_gap_and_none_on_the_training_marginal():
    """Plain noise: the DC band of an exact-score model falls short of the data by the closed form; started on the
    training marginal it does not fall short (beyond the sampler's own discretisation, also in closed form)."""
    from freeinit_lab.analysis.fidelity import band_power_gap, spatial_band_power, training_marginal_latents
    from freeinit_lab.embedded.pipelines import default_scheduler, fit_gaussian_prior, load_analytic_pipeline

    clips = subject_videos(64, 8, 16, seed=900_000_777)
    shift, scale = clips.mean(dim=(0, 2, 3, 4), keepdim=True), clips.std(dim=(0, 2, 3, 4), keepdim=True)
    clips = (clips - shift) / scale  # model space: zero-mean (the gap is all in the spectrum), unit variance
    pipe = load_analytic_pipeline(8, 16, clips=clips, scheduler=default_scheduler(set_alpha_to_one=True))
    steps, n = 25, 48
    noise = torch.randn((n, 3, 8, 16, 16), generator=torch.Generator().manual_seed(1))
    plain = pipe(latents=noise, num_inference_steps=steps, output_type="latent").frames.double()
    held_out = subject_videos(n, 8, 16, seed=900_000_778)
    held_out = (held_out - shift) / scale
    start = training_marginal_latents(held_out, pipe.scheduler, steps, generator=torch.Generator().manual_seed(2))
    oracle = pipe(latents=start, num_inference_steps=steps, output_type="latent").frames.double()

    lam = fit_gaussian_prior(clips)["power"].double()  # (3 decorrelated channels, F, H, W)
    g = _ddim_gain(lam, default_scheduler(set_alpha_to_one=True), steps)
    ac_T = default_scheduler().alphas_cumprod[999].double()
    dc = lam[:, :, 0, 0]  # the spatial DC bin at every temporal frequency
    predicted_plain = 10 * torch.log10((g[:, :, 0, 0] ** 2).sum() / dc.sum()).item()
    predicted_oracle = 10 * torch.log10((g[:, :, 0, 0] ** 2 * (ac_T * dc + 1 - ac_T)).sum() / dc.sum()).item()
    assert predicted_plain < -3  # the gap is large in the DC band of these data …
    assert abs(predicted_oracle) < 1.0  # … and (nearly) absent on the training marginal

    # measured against the data's own per-bin expectation (prior power), with the sampling interval of the samples
    # spatial_band_power's DC band is the mean over 3 channels and 8 frames of |FFT2|²/HW; by Parseval in time and
    # the orthogonal colour basis its expectation is the prior's DC-column power summed, over 3 × 8
    ref_power = dc.sum().item() / (3 * 8)
    for samples, predicted in ((plain, predicted_plain), (oracle, predicted_oracle)):
        p, _ = spatial_band_power(samples)
        boot = torch.stack([p[torch.randint(0, n, (n,), generator=torch.Generator().manual_seed(b)), 0].mean()
                            for b in range(400)])
        lo, hi = (10 * torch.log10(torch.quantile(boot, torch.tensor([0.005, 0.995], dtype=boot.dtype)) / ref_power))
        assert lo <= predicted <= hi, (predicted, lo.item(), hi.item())
    assert band_power_gap(plain, oracle).spatial_db[0] < -3


def test_judge_against_data_scales_intervals_and_pairing():
    from freeinit_lab.analysis.fidelity import judge_against_data

    data = subject_videos(48, 8, 16, seed=900_000_789)
    same = subject_videos(24, 8, 16, seed=900_000_790)
    j = judge_against_data({"plain": same, "half": 0.5 * same, "still": same[:, :, :1].expand_as(same).clone()},
                           data, num_bootstrap=400)
    # a rescaled copy: every band exactly 20 log10(0.5) dB from its paired original, and the interval is that point
    assert np.allclose(j.spatial_db_vs_baseline.sel(arm="half"), 20 * math.log10(0.5), atol=1e-9)
    assert np.allclose(j.temporal_db_vs_baseline_high.sel(arm="half"), 20 * math.log10(0.5), atol=1e-9)
    # the same distribution: the intervals of the dB against the data contain 0 (99 %), band distance is small
    assert (j.spatial_db_low.sel(arm="plain") < 0).all() and (j.spatial_db_high.sel(arm="plain") > 0).all()
    # a frozen video: no dynamics, consistency 1, and no temporal power above DC
    assert float(j.dynamics.sel(arm="still")) == 0 and abs(float(j.consistency.sel(arm="still")) - 1) < 1e-6
    assert float(j.dynamics_vs_data_high.sel(arm="still")) < 0
    assert (j.temporal_db.sel(arm="still")[1:] < -100).all()
    assert float(j.band_distance_vs_baseline_low.sel(arm="half")) > 0
    with pytest.raises(ValueError, match="same 24 paired"):
        judge_against_data({"plain": same, "short": same[:10]}, data)
    with pytest.raises(ValueError, match="baseline"):
        judge_against_data({"a": same}, data)
    for bad in (dict(num_bootstrap=0), dict(num_bootstrap=2.5), dict(num_bootstrap=True), dict(seed=-1),
                dict(seed=1.5)):
        with pytest.raises(ValueError, match="num_bootstrap|seed"):
            judge_against_data({"plain": same}, data, **bad)


def test_decomposition_returns_latents_when_asked():
    import freeinit_lab as fl

    pipe = fl.load_analytic_pipeline(num_frames=4, height=8)
    ds = fl.decompose_freeinit(pipe, num_videos=8, controls=["mask_only"], num_inference_steps=2, progress=False,
                               return_latents=True, num_bootstrap=200)
    assert ds.latents.shape == (3, 8, 3, 4, 8, 8)
    assert np.allclose(fl.studies.strategies._dynamics(torch.from_numpy(ds.latents.sel(arm="mask_only").values)),
                       ds.dynamics.sel(arm="mask_only").values, rtol=1e-5)


class _BinaryPosterior(torch.nn.Module):
    """Exact ε-prediction for x0 uniform on {−1, +1} per voxel: E[x0 | z] = tanh(a z / b²), ε̂ = (z − a E[x0|z]) / b."""

    def __init__(self, alphas_cumprod):
        super().__init__()
        self.ac = torch.as_tensor(alphas_cumprod, dtype=torch.float64)

    def forward(self, z, t):
        from freeinit_lab.embedded.models import VideoDenoiserOutput

        ac = self.ac[t].view(-1, 1, 1, 1, 1)
        a, b = ac.sqrt(), (1 - ac).sqrt()
        x0 = torch.tanh(a * z.double() / b**2)
        return VideoDenoiserOutput(sample=((z.double() - a * x0) / b).to(z.dtype))


def _white_gaussian_denoiser(shape, alphas_cumprod):
    from freeinit_lab.embedded.models import GaussianVideoDenoiser

    c, f, h, w = shape
    ac = torch.as_tensor(alphas_cumprod, dtype=torch.float32)
    g = GaussianVideoDenoiser(in_channels=c, num_frames=f, sample_size=h, width=w, num_train_timesteps=ac.numel())
    return g.set_prior(torch.zeros(c), torch.eye(c), torch.ones(c, f, h, w), ac)


def test_denoising_error_of_the_exact_score_model_is_its_closed_form():
    """On draws of its own Gaussian prior the exact-score model's ε-MSE is mean_k a²S/(a²S + b²) (per voxel)."""
    from freeinit_lab.analysis.fidelity import denoising_error
    from freeinit_lab.embedded.models import GaussianVideoDenoiser
    from freeinit_lab.embedded.pipelines import default_scheduler

    ac = default_scheduler().alphas_cumprod
    shape = (3, 4, 8, 8)
    g = torch.Generator().manual_seed(3)
    power = torch.exp(2 * torch.randn(shape, generator=g))  # a spread of per-bin variances, 1/7 … 7 typical
    power = 0.5 * (power + torch.flip(torch.roll(power, (-1, -1, -1), (1, 2, 3)), (1, 2, 3)))  # Hermitian
    basis, _ = torch.linalg.qr(torch.randn(3, 3, generator=g))
    exact = GaussianVideoDenoiser(in_channels=3, num_frames=4, sample_size=8, num_train_timesteps=1000)
    exact.set_prior(torch.zeros(3), basis, power, ac)
    x0 = exact.sample_prior(64, generator=g)
    ts = [50, 400, 800]
    res = denoising_error(exact, exact, x0, ac, ts, generator=g)
    assert np.all(res.db == 0) and np.all(res.db_low == 0)  # a model against itself
    for j, t in enumerate(ts):
        a2, b2 = float(ac[t]), 1 - float(ac[t])
        closed = float((a2 * power / (a2 * power + b2)).mean())
        assert abs(res.model_mse[j] - closed) < 0.02 * closed, (t, res.model_mse[j], closed)
    assert res.model_mse[0] > res.model_mse[1] > res.model_mse[2]  # ε is hardest to see in nearly clean videos


def test_denoising_error_tells_a_model_that_knows_the_data_from_the_spectrum_only_one():
    """Binary data (white, unit variance): the exact binary posterior beats the exact Gaussian model at mid SNR, and
    the sign of the paired dB difference says which is which; at very low SNR both are equally blind."""
    from freeinit_lab.analysis.fidelity import denoising_error
    from freeinit_lab.embedded.pipelines import default_scheduler

    ac = default_scheduler().alphas_cumprod
    x0 = torch.randint(0, 2, (48, 3, 4, 8, 8), generator=torch.Generator().manual_seed(0)).float() * 2 - 1
    gauss, binary = _white_gaussian_denoiser((3, 4, 8, 8), ac), _BinaryPosterior(ac)
    t_mid, t_noise = int(torch.argmin((ac - 0.8).abs())), 999  # SNR +6 dB; SNR −23 dB
    res = denoising_error(binary, gauss, x0, ac, [t_mid, t_noise], generator=torch.Generator().manual_seed(1))
    # closed forms at SNR s = 4: Gaussian ε-MSE s/(1+s) = 0.8; the binary one is s·mmse_BPSK(4) ≈ 0.27
    assert res.reference_mse[0] == pytest.approx(0.8, rel=0.03)
    assert res.db_high[0] < -3.0  # the binary posterior knows more than the spectrum
    assert abs(res.snr_db[0] - 6.0) < 0.1
    swapped = denoising_error(gauss, binary, x0, ac, [t_mid], generator=torch.Generator().manual_seed(1))
    assert swapped.db_low[0] > 3.0 and swapped.db[0] == pytest.approx(-res.db[0])
    assert abs(res.db[1]) < 0.2 and res.db_low[1] < 0 < res.db_high[1] + 0.2
    assert "t= 999" in res.summary() and res.to_dict()["snr_db"][1] < -20


def test_denoising_error_bad_input():
    from freeinit_lab.analysis.fidelity import denoising_error
    from freeinit_lab.embedded.pipelines import default_scheduler

    ac = default_scheduler().alphas_cumprod
    g = _white_gaussian_denoiser((3, 4, 8, 8), ac)
    x0 = torch.randn(4, 3, 4, 8, 8)
    with pytest.raises(ValueError, match="timesteps is empty"):
        denoising_error(g, g, x0, ac, [])
    with pytest.raises(ValueError, match=r"outside the schedule's 0 … 999"):
        denoising_error(g, g, x0, ac, [1000])
    with pytest.raises(ValueError, match="confidence"):
        denoising_error(g, g, x0, ac, [10], confidence=1.0)
    with pytest.raises(ValueError):
        denoising_error(g, g, x0[0], ac, [10])  # not (video, channel, frame, height, width)


def test_denoising_error_refuses_bad_schedules_timesteps_and_counts_before_any_model_call():
    """NaN or out-of-range alphas_cumprod gave NaN dB; 999.7 was truncated to 999 and True read as timestep 1;
    num_bootstrap=0 died in torch.quantile after every model call."""
    from freeinit_lab.analysis.fidelity import denoising_error
    from freeinit_lab.embedded.pipelines import default_scheduler

    ac = default_scheduler().alphas_cumprod
    calls = []

    class Never(torch.nn.Module):
        def forward(self, z, t, **kw):
            calls.append(t)
            raise AssertionError("called before the arguments were checked")

    f, x0 = Never(), torch.randn(4, 3, 4, 8, 8)
    for bad_ac in (torch.full((1000,), float("nan")), torch.full((1000,), 1.5), torch.full((1000,), -0.1)):
        with pytest.raises(ValueError, match=r"alphas_cumprod must be finite and in \[0, 1\]"):
            denoising_error(f, f, x0, bad_ac, [5])
    for ts in ([999.7], [True], [5, 10.0], np.array([3.5]), torch.tensor([True])):
        with pytest.raises(ValueError, match="are not integers"):
            denoising_error(f, f, x0, ac, ts)
    for num_bootstrap in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="num_bootstrap"):
            denoising_error(f, f, x0, ac, [5], num_bootstrap=num_bootstrap)
    with pytest.raises(ValueError, match="seed=-1"):
        denoising_error(f, f, x0, ac, [5], seed=-1)
    for batch_size in (0, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            denoising_error(f, f, x0, ac, [5], batch_size=batch_size)
    assert not calls


def test_an_exact_non_gaussian_model_need_not_match_the_gaussian_models_plain_noise_band_power():
    """Why the card's part 2 (plain-noise band power within ±1.5 dB of the exact-score *Gaussian* model's) is a
    check for Gaussian-like data only. Data: a scale mixture x0 = s·y, y a stationary Gaussian with a 1/f² spectrum,
    s ∈ {0.2, 1.4} per video (32 × 32, DC variance 503 × the mean bin's, so a_T² λ_DC ≈ 2.4). Its exact
    posterior-mean denoiser (closed form), sampled with DDIM from the training
    marginal, reproduces the data as closely as the Gaussian model reproduces Gaussian data; from plain noise it is
    more than 1.5 dB below the Gaussian model of the same spectrum in every band: the gap in the low frequencies
    biases the posterior over s, and that reaches every band. A Gaussian model (one scale) shows no difference."""
    from diffusers import DDIMScheduler

    from freeinit_lab.analysis.fidelity import band_power_gap, spatial_band_power

    sch = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                        set_alpha_to_one=True, clip_sample=False, timestep_spacing="linspace")
    n, h = 1000, 32
    f = torch.fft.fftfreq(h, dtype=torch.float64) * h
    lam = 1.0 / (f[:, None] ** 2 + f[None, :] ** 2).clamp(min=0.05)
    lam = lam / lam.mean()
    g = torch.Generator().manual_seed(0)

    def fft(x):
        return torch.fft.fft2(x, norm="ortho")

    def ifft(x):
        return torch.fft.ifft2(x, norm="ortho").real

    def run(scales, z):
        s = torch.tensor(scales, dtype=torch.float64)
        m2 = (s**2).mean()

        def eps_hat(z, ab, mixture):
            a, b = ab.sqrt(), (1 - ab).sqrt()
            Z = fft(z)
            if not mixture:
                return ifft(Z * b / (a**2 * m2 * lam + b**2))
            var = a**2 * s.view(-1, 1, 1) ** 2 * lam + b**2  # (component, h, w)
            ll = -0.5 * ((Z.abs() ** 2)[:, None] / var + var.log()).sum((-2, -1))
            w = torch.softmax(ll, -1)  # posterior over the scale, per video
            return ifft(Z * torch.einsum("nk,khw->nhw", w, b / var))

        out = []
        for mixture in (True, False):
            x = z.clone()
            sch.set_timesteps(25)
            for t in sch.timesteps:
                x = sch.step(eps_hat(x, sch.alphas_cumprod[t].double(), mixture), t, x).prev_sample
            out.append(x.view(n, 1, 1, h, h))
        return out

    def draw(scales):
        s = torch.tensor(scales, dtype=torch.float64)[torch.randint(0, len(scales), (n,), generator=g)]
        return ifft(fft(torch.randn(n, h, h, generator=g, dtype=torch.float64)) * lam.sqrt()) * s.view(-1, 1, 1)

    plain = torch.randn(n, h, h, generator=g, dtype=torch.float64)
    gaussian_mix, gaussian_ref = run([1.0], plain)
    assert torch.allclose(gaussian_mix, gaussian_ref)  # one scale: the mixture model is the Gaussian model
    mix, ref = run([0.2, 1.4], plain)
    gap = band_power_gap(mix, ref)
    assert np.all(gap.spatial_high[1:] < -1.5), gap.summary()  # (the DC band is one bin: noisier)

    # started on the training marginal, the mixture model reproduces its data as well as the Gaussian model does
    sch.set_timesteps(25)
    ab = sch.alphas_cumprod[sch.timesteps[0]].double()
    db = {}
    for scales in ((0.2, 1.4), (1.0,)):
        x0 = draw(list(scales))
        start = ab.sqrt() * x0 + (1 - ab).sqrt() * torch.randn(n, h, h, generator=g, dtype=torch.float64)
        exact = run(list(scales), start)[0]
        p_s, _ = spatial_band_power(exact)
        p_d, _ = spatial_band_power(x0.view(n, 1, 1, h, h))
        db[scales] = 10 * torch.log10(p_s.mean(0) / p_d.mean(0))
    assert torch.all((db[(1.0,)] - db[(0.2, 1.4)]).abs() < 1.0), db  # same sampler error either way


def test_training_marginal_latents_at_a_later_step_noise_to_that_timestep():
    """``start_step=k`` noises to the sampler's k-th timestep with the same ε as the first (the same generator
    state), ``a_t x_0 + b_t ε``; 0 is the default; a step outside the schedule is refused."""
    from freeinit_lab.analysis.fidelity import training_marginal_latents
    from freeinit_lab.embedded.pipelines import default_scheduler

    sched = default_scheduler(set_alpha_to_one=True)
    x = torch.randn(4, 3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    first = training_marginal_latents(x, sched, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, training_marginal_latents(x, sched, 5, generator=torch.Generator().manual_seed(1),
                                                        start_step=0))
    later = training_marginal_latents(x, sched, 5, generator=torch.Generator().manual_seed(1), start_step=3)
    sched.set_timesteps(5)
    a0, a3 = (float(sched.alphas_cumprod[int(sched.timesteps[i])]) for i in (0, 3))
    eps = (first - math.sqrt(a0) * x) / math.sqrt(1 - a0)
    torch.testing.assert_close(later, math.sqrt(a3) * x + math.sqrt(1 - a3) * eps, atol=1e-5, rtol=1e-5)
    for bad in (5, -1, 1.5, True):
        with pytest.raises(ValueError, match="start_step"):
            training_marginal_latents(x, sched, 5, start_step=bad)


class _OracleWithWave(torch.nn.Module):
    """Knows the clean videos, so ``(z − a x_0) / b`` is ε exactly, and adds a fixed real plane wave of amplitude
    ``amp`` at frequency ``(k_t/F, k_y/H, k_x/W)``: its whole error sits in that wave's two FFT bins."""

    def __init__(self, x0, ac, k, amp):
        super().__init__()
        self.x0, self.ac, self.amp = x0, torch.as_tensor(ac, dtype=torch.float64), amp
        _, _, nf, h, w = x0.shape
        grids = torch.meshgrid(*(torch.arange(m, dtype=torch.float64) / m for m in (nf, h, w)), indexing="ij")
        self.wave = torch.cos(2 * torch.pi * sum(kk * g for kk, g in zip(k, grids)))
        self.anchor = torch.nn.Parameter(torch.zeros((), dtype=torch.float64), requires_grad=False)

    def forward(self, z, t):
        a2 = self.ac[t].view(-1, 1, 1, 1, 1)
        eps = (z.double() - a2.sqrt() * self.x0) / (1 - a2).sqrt()
        return type("Out", (), {"sample": eps + self.amp * self.wave})()


def test_denoising_error_by_frequency_puts_each_error_in_its_bins():
    """The frequency split is exact: an error that is one plane wave lands, whole, in the spatial band of its radius
    and at its temporal frequency (power amp²/2 per voxel), on a non-square grid with an even frame count; and for
    any model the table sums to the ε-MSE (Parseval) and its margins' intervals hold their point values."""
    from freeinit_lab.analysis.fidelity import _spatial_edges, denoising_error
    from freeinit_lab.embedded.pipelines import default_scheduler

    ac = default_scheduler().alphas_cumprod
    x0 = torch.randn(6, 3, 6, 8, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    edges = _spatial_edges(8, 12)
    for k in [(0, 0, 0), (3, 0, 1), (1, 3, 0), (2, -2, 5), (1, 4, 6)]:
        oracle = _OracleWithWave(x0, ac, k, amp=0.3)
        res = denoising_error(oracle, oracle, x0, ac, [100, 700], generator=torch.Generator().manual_seed(1))
        radius = math.hypot(k[1] / 8, k[2] / 12)
        band = int(np.searchsorted(edges, radius, side="right") - 1)
        cos_sq = 1.0 if (k[0] % 3 == 0 and k[1] % 4 == 0 and k[2] % 6 == 0) else 0.5  # Nyquist/DC bins: cos²≡1
        expect = np.zeros((2, len(edges) - 1, 4))
        expect[:, band, abs(k[0])] = 0.3 ** 2 * cos_sq
        np.testing.assert_allclose(res.model_band_mse, expect, atol=1e-12)
        np.testing.assert_allclose(res.model_mse, expect.sum(axis=(1, 2)), rtol=1e-10)

    shape = (3, 6, 8, 12)
    gauss = _white_gaussian_denoiser(shape, ac)
    res = denoising_error(gauss, oracle, x0.float(), ac, [50, 500], generator=torch.Generator().manual_seed(2))
    np.testing.assert_allclose(res.model_band_mse.sum(axis=(1, 2)), res.model_mse, rtol=1e-9)
    np.testing.assert_allclose(res.reference_band_mse.sum(axis=(1, 2)), res.reference_mse, rtol=1e-9)
    for name in ("spatial", "temporal"):
        point, lo, hi = (getattr(res, f"{name}_db{s}") for s in ("", "_low", "_high"))
        assert point.shape == ((2, len(edges) - 1) if name == "spatial" else (2, 4))
        assert np.all((lo <= point + 1e-9) & (point <= hi + 1e-9))
    assert "split by frequency" in res.summary() and len(res.to_dict()["spatial_db"]) == 2


def test_frechet_distance_is_exact_with_a_constant_feature():
    """Grey videos have a colourfulness of 0 in every video, so the feature covariance is singular: the distance is
    the one of the other features (a constant feature adds nothing), with no warning; on full-rank covariances it is
    the textbook formula with a general matrix square root."""
    import warnings

    from scipy import linalg

    from freeinit_lab.analysis.fidelity import _frechet

    rng = np.random.default_rng(3)
    fa = rng.normal(size=(60, 5)) @ rng.normal(size=(5, 5))
    fb = rng.normal(0.3, 1.2, size=(50, 5)) @ rng.normal(size=(5, 5))
    ca, cb = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    mu = fa.mean(0) - fb.mean(0)
    textbook = mu @ mu + np.trace(ca + cb - 2 * np.real(linalg.sqrtm(ca @ cb)))
    assert _frechet(fa, fb) == pytest.approx(textbook, rel=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        constant = _frechet(np.c_[fa, np.zeros(60)], np.c_[fb, np.zeros(50)])
        grey = fidelity_report(torch.randn(16, 1, 4, 8, 8, generator=torch.Generator().manual_seed(0)),
                               torch.randn(32, 1, 4, 8, 8, generator=torch.Generator().manual_seed(1)), folds=4)
    assert constant == pytest.approx(textbook, rel=1e-9)
    assert np.isfinite(grey.frechet) and grey.frechet >= 0
