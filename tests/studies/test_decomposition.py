"""FreeInit's controls and the paired decomposition: kernels, closed forms on the analytic model, pipelines, bad input."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
import torch

import freeinit_lab as fl
from freeinit_lab import controls as ct
from freeinit_lab.viz.figures import decomposition_figure
from freeinit_lab.studies.decomposition import (
    decompose_freeinit,
    decomposition_noises,
    decomposition_table,
    min_videos_for_bootstrap,
    paired_bootstrap,
)
from freeinit_lab.core.spectral import lowpass_filter, reinit_noise
from freeinit_lab.studies.strategies import analytic_controls, closed_form_comparison

STEPS = 4


def bonferroni_z(num_tests: int, family_alpha: float = 1e-3) -> float:
    """Two-sided normal limit for ``num_tests`` z-scores with family-wise false-alarm rate ``family_alpha``."""
    return NormalDist().inv_cdf(1 - family_alpha / (2 * num_tests))


@pytest.fixture(scope="module")
def apipe():
    return fl.load_analytic_pipeline(num_frames=4, height=8)


@pytest.fixture(scope="module")
def big(apipe):
    """2048 paired videos of every arm on the analytic model, two FreeInit iterations (3 passes)."""
    return decompose_freeinit(apipe, num_videos=2048, seed=3, num_iters=3, num_inference_steps=STEPS,
                              chunk_size=1024, num_bootstrap=200, progress=False, return_latents=True)


# ------------------------------------------------------------------------------------------------- kernels
def _fft_blocks_diag(cov: torch.Tensor, shape3: tuple[int, int, int]) -> torch.Tensor:
    """Diagonal of an (N x N) covariance of one-channel videos in the unitary 3-D Fourier basis, (F, H, W)."""
    n = int(np.prod(shape3))
    m = cov.reshape(*shape3, *shape3).to(torch.complex128)
    m = torch.fft.fftn(m, dim=(0, 1, 2), norm="ortho")
    m = torch.fft.ifftn(m, dim=(3, 4, 5), norm="ortho")
    return m.reshape(n, n).diagonal().real.reshape(shape3)


def _impulse_covariance(fn, shape3):
    """Covariance of fn(eps, eta) for independent unit white eps, eta: A A^T + B B^T from impulse responses."""
    n = int(np.prod(shape3))
    imp = torch.eye(n, dtype=torch.float64).reshape(n, *shape3)
    zero = torch.zeros_like(imp)
    A = fn(imp, zero).reshape(n, n)
    B = fn(zero, imp).reshape(n, n)
    return A.T @ A + B.T @ B


def test_mask_only_has_per_bin_variance_h2_b2_plus_one_minus_h_squared():
    shape3 = (4, 6, 8)
    b = 0.9977
    H = lowpass_filter(shape3, "gaussian", 0.4, 0.3, dtype=torch.float64)
    cov = _impulse_covariance(lambda e, h: ct.mask_only_latent(e, h, H, b), shape3)
    diag = _fft_blocks_diag(cov, shape3)
    assert torch.allclose(diag, H**2 * b * b + (1 - H) ** 2, atol=1e-12)
    # and it is FreeInit's mix of b_T eps alone
    g = torch.Generator().manual_seed(0)
    eps, eta = torch.randn(2, 3, *shape3, generator=g, dtype=torch.float64)
    assert torch.equal(ct.mask_only_latent(eps, eta, H, b), reinit_noise(b * eps, eta, H))


def test_amplitude_matched_has_the_target_power_in_every_bin_and_is_real():
    shape3 = (4, 8, 8)
    edges = fl.default_band_edges(shape3, 4)
    target = np.array([3.0, 1.5, 0.8, 0.5])
    cov = _impulse_covariance(lambda e, h: ct.amplitude_matched_latent(e, target, edges), shape3)
    diag = _fft_blocks_diag(cov, shape3)
    idx = fl.spectral.band_index(shape3, edges=edges)
    assert torch.allclose(diag, torch.from_numpy(target)[idx], atol=1e-12)
    # nothing between bins: the total squared Fourier covariance equals the diagonal's
    n = int(np.prod(shape3))
    full = torch.fft.fftn(cov.reshape(*shape3, *shape3).to(torch.complex128), dim=(0, 1, 2), norm="ortho")
    full = torch.fft.ifftn(full, dim=(3, 4, 5), norm="ortho").reshape(n, n)
    assert math.isclose(float((full.abs() ** 2).sum()), float((diag**2).sum()), rel_tol=1e-10)
    # unit target leaves eps unchanged
    eps = torch.randn(2, 3, *shape3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(ct.amplitude_matched_latent(eps, np.ones(4), edges), eps, atol=1e-12)


def test_amplitude_target_is_a2_band_power_around_the_mean_plus_b2():
    x = torch.full((3, 2, 4, 8, 8), 0.7, dtype=torch.float64)  # constant: no power around the mean
    edges = fl.default_band_edges(x.shape, 3)
    assert np.allclose(ct.amplitude_target(x, 0.1, 0.99, edges), 0.99**2)
    w = torch.randn(64, 2, 4, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    np.testing.assert_allclose(ct.amplitude_target(3 * w + 5, 0.5, 0.8, edges), 0.25 * 9 + 0.64, rtol=0.05)


@pytest.mark.parametrize("n", [2, 3, 5, 16])
def test_single_cycle_derangement_never_returns_before_n_steps(n):
    perm = ct.single_cycle_derangement(n, torch.Generator().manual_seed(n))
    assert sorted(perm.tolist()) == list(range(n))
    cur = torch.arange(n)
    for step in range(1, n):
        cur = perm[cur]
        assert bool((cur != torch.arange(n)).all()), step
    assert torch.equal(perm[cur], torch.arange(n))  # an n-cycle


def test_reinit_arm_reduces_to_freeinit_and_its_variants():
    g = torch.Generator().manual_seed(2)
    clean, eps, eta, fresh = torch.randn(4, 5, 3, 4, 8, 8, generator=g, dtype=torch.float64)
    H = lowpass_filter(clean.shape, "gaussian", 0.25, 0.25, dtype=torch.float64)
    a, b = 0.07, 0.9975
    kw = dict(eps=eps, eta=eta, fresh=fresh, a_T=a, b_T=b, lowpass=H)
    arms = ct.CONTROL_ARMS
    assert torch.allclose(ct.reinit_arm(arms["freeinit"], clean=clean, **kw), reinit_noise(a * clean + b * eps, eta, H))
    assert torch.allclose(ct.reinit_arm(arms["freeinit_fresh"], clean=clean, **kw),
                          reinit_noise(a * clean + b * fresh, eta, H))
    perm = ct.single_cycle_derangement(5, g)
    assert torch.allclose(ct.reinit_arm(arms["shuffled_low"], clean=clean, permutation=perm, **kw),
                          reinit_noise(a * clean[perm] + b * eps, eta, H))
    assert torch.allclose(ct.reinit_arm(arms["mask_only"], clean=clean, **kw), ct.mask_only_latent(eps, eta, H, b))
    with pytest.raises(ValueError, match="does not reinitialise"):
        ct.reinit_arm(arms["plain"], clean=clean, **kw)


def test_bootstrap_helpers():
    assert min_videos_for_bootstrap(2000) == 8 and math.comb(13, 7) < 2000 <= math.comb(15, 8)
    vals = np.arange(10.0)[None].repeat(2, 0)
    boot = paired_bootstrap(vals, 500, seed=1)
    assert boot.shape == (500, 2) and np.allclose(boot[:, 0], boot[:, 1])  # the same videos in every row
    assert abs(boot.mean() - 4.5) < 0.2


# ------------------------------------------------------------------------------------------------- analytic model
def test_decomposition_matches_the_closed_forms_on_the_analytic_model(apipe, big):
    """Every arm's measured band powers, consistency, dynamics and contrast against analytic_controls' closed forms,
    2048 paired videos of 3 x 4 x 8 x 8 on the exact-score model.

    The tolerance is the sampling error alone: every |z| below the two-sided Bonferroni limit for all the
    comparisons at a family-wise false-alarm rate of 1e-3 (about 4.5 here). Band powers: the mean over videos is
    an unbiased estimate of the closed form's exact expectation. Consistency, dynamics, contrast: the closed forms
    are ratios of expectations, so they are compared with ratios of means (``pooled_metrics``; bias O(1/n), some
    1e-6 here against s.e. of about 1e-3), not with the mean of the per-video ratios, which sits below them by a
    bias that does not shrink with n (about -0.003 in consistency at this size, 2 s.e.; ``ratio_bias``).
    """
    cf = analytic_controls(apipe, num_iters=3, num_inference_steps=STEPS,
                           amplitude_target=big.amplitude_target.values)
    n = big.sizes["video"]
    videos = {a: torch.from_numpy(big.latents.sel(arm=a).values) for a in big.arm.values.tolist()}
    table = closed_form_comparison(videos, cf, quantities=("consistency", "dynamics", "contrast", "band_power"))
    init_z = ((big.band_power_init.mean("video") - cf.band_power_init)
              / (big.band_power_init.std("video", ddof=1) / math.sqrt(n))).values
    limit = bonferroni_z(len(table) + init_z.size)
    assert set(table.index.get_level_values("arm")) == set(big.arm.values.tolist())
    assert len(table) == big.sizes["arm"] * (3 + big.sizes["band"])
    assert np.all(np.abs(table.z) < limit), table[np.abs(table.z) >= limit]
    assert np.all(np.abs(init_z) < limit), init_z.round(1)
    # the check has power: FreeInit's videos are told apart from the closed form of the same mix without the signal
    wrong = closed_form_comparison({"freeinit": videos["freeinit"]}, cf.assign_coords(
        arm=["freeinit" if a == "mask_only" else a + "_" for a in cf.arm.values.tolist()]))
    assert np.abs(wrong.z).max() > 2 * limit, wrong


def test_closed_form_identities(apipe):
    cf = analytic_controls(apipe, num_iters=2, num_inference_steps=STEPS, amplitude_target=np.ones(6))
    a, b = cf.attrs["a_T"], cf.attrs["b_T"]
    H = lowpass_filter((4, 8, 8), "gaussian", 0.25, 0.25, dtype=torch.float64)
    # mask_only: the variance of the mix alone; plain and a unit amplitude target: white
    assert np.allclose(cf.variance_init.sel(arm="mask_only").values, (H**2 * b * b + (1 - H) ** 2).numpy(), atol=1e-14)
    assert np.allclose(cf.variance_init.sel(arm="plain").values, 1.0)
    assert np.allclose(cf.variance_init.sel(arm="amplitude_matched").values, 1.0)
    # FreeInit = mask_only plus the signal: the difference is H² (a² G² + 2 a b G) + mean, never negative
    assert bool((cf.variance_init.sel(arm="freeinit") >= cf.variance_init.sel(arm="mask_only") - 1e-12).all())
    # shuffled_low loses only the cross term 2 a b G H² (the other video's output is independent of eps)
    G = fl.strategies.analytic_gain(apipe, STEPS).mean(0)
    gap = (cf.variance_init.sel(arm="freeinit") - cf.variance_init.sel(arm="shuffled_low")).values
    assert np.allclose(gap, (2 * a * b * G * H**2).numpy(), atol=1e-12)
    # variance-preserving: unit variance wherever there is no signal
    assert abs(float(cf.band_power_init.sel(arm="variance_preserving", band=5)) - 1) < 1e-3


def test_decomposition_arms_are_the_documented_latents(apipe):
    """The freeinit and shuffled_low arms equal a hand-made pass from the recorded noises; plain is the pipeline."""
    n, steps = 8, 3
    ds = decompose_freeinit(apipe, num_videos=n, seed=5, num_inference_steps=steps, progress=False,
                            controls=["shuffled_low", "mask_only"])
    noises = decomposition_noises(n, (3, 4, 8, 8), 5, 2)
    eps, eta, perm = noises["eps"], noises["eta"][0], noises["permutation"]
    plain = apipe(latents=eps.clone(), num_inference_steps=steps, output_type="latent").frames
    a, b = ds.attrs["alpha_T"], ds.attrs["sigma_T"]
    H = lowpass_filter(eps.shape, "gaussian", 0.25, 0.25)
    fi = apipe(latents=reinit_noise(a * plain + b * eps, eta, H), num_inference_steps=steps, output_type="latent").frames
    sh = apipe(latents=reinit_noise(a * plain[perm] + b * eps, eta, H), num_inference_steps=steps,
               output_type="latent").frames
    from freeinit_lab.studies.decomposition import _consistency, _contrast

    np.testing.assert_allclose(ds.consistency.sel(arm="plain").values, _consistency(plain), atol=1e-6)
    np.testing.assert_allclose(ds.consistency.sel(arm="freeinit").values, _consistency(fi), atol=1e-6)
    np.testing.assert_allclose(ds.contrast.sel(arm="shuffled_low").values, _contrast(sh), atol=1e-6)
    assert ds.permutation.values.tolist() == perm.tolist()
    assert ds.passes.sel(arm="mask_only") == 1 and ds.passes.sel(arm="freeinit") == 2
    # explained is the ratio of the effects, inside its own interval
    e = ds.effect
    for c in ("shuffled_low", "mask_only"):
        r = e.sel(arm=c) / e.sel(arm="freeinit")
        np.testing.assert_allclose(ds.explained.sel(control=c).values, r.values)
    ok = (ds.explained_low <= ds.explained + 1e-12) & (ds.explained <= ds.explained_high + 1e-12)
    assert bool(ok.where(np.isfinite(ds.explained), True).all())


@pytest.mark.parametrize("shape", [(3, 4, 8, 8), (3, 16, 32, 32)])  # the analytic test model's, the default's
def test_noises_of_fewer_videos_are_the_first_of_more(shape):
    """decompose_freeinit runs of different sizes (and notebook 06's two models, 24 and 64 videos) share their first
    videos' eps; the draws after eps (eta, fresh, ...) are not shared and need not be."""
    for n, m in ((8, 24), (24, 64)):
        few, many = decomposition_noises(n, shape, 5, 2), decomposition_noises(m, shape, 5, 2)
        assert torch.equal(few["eps"], many["eps"][:n])
        assert not torch.equal(few["eps"], many["eps"][n : 2 * n])  # different videos, different noise


def test_same_noises_whatever_controls_are_chosen(apipe):
    kw = dict(num_videos=8, seed=1, num_inference_steps=2, progress=False, num_bootstrap=200)
    one = decompose_freeinit(apipe, controls=["mask_only"], **kw)
    two = decompose_freeinit(apipe, controls=["legacy_ideal", "mask_only"], **kw)
    for var in ("consistency", "band_power"):
        np.testing.assert_array_equal(one[var].sel(arm=["plain", "freeinit", "mask_only"]).values,
                                      two[var].sel(arm=["plain", "freeinit", "mask_only"]).values)


def test_reference_distance_figure_and_table(apipe):
    ref = apipe.unet.sample_prior(6, generator=torch.Generator().manual_seed(0))
    ds = decompose_freeinit(apipe, num_videos=8, num_inference_steps=2, reference=ref, progress=False,
                            controls=["amplitude_matched", "variance_preserving"])
    assert ds.distance.dims == ("arm", "video") and "distance" in ds.metric.values
    assert ds.amplitude_target.attrs["source"] == "reference"
    assert ds.distance.attrs["units"] == "dB" and ds.band_power.attrs["units"] == "x unit white noise"
    fig = decomposition_figure(ds)
    assert [t.name for t in fig.data] == ["amplitude_matched", "variance_preserving"]
    assert list(fig.data[0].x) == list(ds.metric.values)
    table = decomposition_table(ds, ["consistency", "dynamics"])
    assert table.shape == (2, 2) and "[" in table.iloc[0, 0]


def test_amplitude_target_fitted_on_held_out_videos(apipe):
    """amplitude_reference= fits amplitude_matched's target on its own videos (held out from the reference the arms
    are judged against); the distance stays against the reference; the arm starts from eps scaled to that target."""
    g = torch.Generator().manual_seed(7)
    ref = apipe.unet.sample_prior(16, generator=g)
    held_out = 2.0 * apipe.unet.sample_prior(16, generator=g)  # more power than ref: the two targets differ
    kw = dict(num_videos=8, seed=2, num_inference_steps=2, progress=False, num_bootstrap=200,
              controls=["amplitude_matched"], reference=ref)
    ds = decompose_freeinit(apipe, amplitude_reference=held_out, **kw)
    in_sample = decompose_freeinit(apipe, **kw)
    edges = np.r_[ds.band_lo.values, ds.band_hi.values[-1]]
    a_T, b_T = ds.attrs["alpha_T"], ds.attrs["sigma_T"]
    np.testing.assert_allclose(ds.amplitude_target.values, ct.amplitude_target(held_out, a_T, b_T, edges))
    np.testing.assert_allclose(in_sample.amplitude_target.values, ct.amplitude_target(ref, a_T, b_T, edges))
    assert ds.amplitude_target.attrs["source"] == "amplitude_reference"
    assert in_sample.amplitude_target.attrs["source"] == "reference"
    assert np.all(ds.amplitude_target.values > in_sample.amplitude_target.values)
    np.testing.assert_allclose(ds.reference_band_power.values, in_sample.reference_band_power.values)
    eps = decomposition_noises(8, apipe.sample_shape, 2, 2)["eps"]
    want = ct.amplitude_matched_latent(eps.double(), ds.amplitude_target.values, edges)
    got = fl.band_power(want, edges=edges).mean(1).numpy()
    np.testing.assert_allclose(ds.band_power_init.sel(arm="amplitude_matched").values, got, rtol=1e-5)
    # the arms that do not use the target are untouched
    np.testing.assert_array_equal(ds.consistency.sel(arm=["plain", "freeinit"]).values,
                                  in_sample.consistency.sel(arm=["plain", "freeinit"]).values)


# ------------------------------------------------------------------------------------------------- bad input
class _NoSampling:
    """Fails the test if the denoiser runs."""

    def __init__(self, pipe):
        self.pipe = pipe

    def __enter__(self):
        def boom(*_a, **_k):
            raise AssertionError("the denoiser ran before the input was checked")

        self.h = self.pipe.unet.register_forward_pre_hook(boom)
        return self

    def __exit__(self, *exc):
        self.h.remove()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(controls=["mask_only", "nope"]), r"unknown control.*valid controls are freeinit_fresh, "),
        (dict(controls="mask-only"), "mask_only"),
        (dict(num_videos=4), r"needs at least 8 videos.*num_videos >= 8"),
        (dict(num_videos=8, num_iters=9, controls=["shuffled_low"]), r"num_videos >= 9"),
        (dict(num_iters=1), "at least one FreeInit iteration"),
        (dict(reference=torch.zeros(4, 3, 8, 8, 8)), r"reference has shape \(4, 3, 8, 8, 8\); expected \(M >= 2, 3, 4, 8, 8\)"),
        (dict(amplitude_reference=torch.zeros(4, 3, 8, 8, 8)),
         r"amplitude_reference has shape \(4, 3, 8, 8, 8\); expected \(M >= 2, 3, 4, 8, 8\)"),
        (dict(amplitude_reference=torch.zeros(1, 3, 4, 8, 8)), r"amplitude_reference .* expected \(M >= 2"),
        (dict(reference=torch.full((4, 3, 4, 8, 8), math.nan)), r"reference contains NaN or inf"),
        (dict(amplitude_reference=torch.full((4, 3, 4, 8, 8), math.inf)), r"amplitude_reference contains NaN or inf"),
        (dict(latents=torch.zeros(8, 3, 4, 8, 8)), "cannot be shared by the arms"),
        (dict(generator=torch.Generator()), "sets .*generator"),
        (dict(method="gauss"), "unknown filter method"),
        (dict(prompt=["a", "b"]), "single prompt string"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(chunk_size=-4), "chunk_size"),
        (dict(control_iters={"mask_only": 2}), r"'mask_only', which is not a chained control of this call"),
        (dict(control_iters={"freeinit": 2}), r"not a chained control.*drop it from control_iters"),
        (dict(controls=["mask_only"], control_iters={"legacy_ideal": 2}), r"chained controls here are none"),
        (dict(control_iters={"legacy_ideal": 3}), r"control_iters\['legacy_ideal'\]=3 must be an integer in \[2, 2\]"),
        (dict(num_iters=3, control_iters={"shuffled_low": 1}), r"in \[2, 3\]"),
        (dict(control_iters=[("legacy_ideal", 2)]), r"control_iters must map"),
        (dict(num_bootstrap=1500.5), r"num_bootstrap=1500.5 must be an integer >= 100"),  # was silently 1500
        (dict(num_bootstrap="2000"), r"num_bootstrap='2000' must be an integer >= 100"),
        (dict(num_bands=True), r"num_bands=True must be an integer >= 1"),  # was one band
        (dict(num_bands=2.5), r"num_bands=2.5 must be an integer >= 1"),
    ],
)
def test_bad_input_fails_before_any_sampling(apipe, kwargs, match):
    kw = dict(num_videos=16, num_inference_steps=2, progress=False)
    kw.update(kwargs)
    with _NoSampling(apipe), pytest.raises((ValueError, TypeError), match=match):
        decompose_freeinit(apipe, **kw)


# ------------------------------------------------------------------------------------------------- real pipelines
def test_runs_on_the_tiny_animatediff():
    from freeinit_lab.testing import tiny_animatediff_pipeline

    pipe = tiny_animatediff_pipeline(seed=0)
    ds = decompose_freeinit(pipe, num_videos=8, prompt="a cat", num_frames=4, height=16, width=16,
                            num_inference_steps=2, guidance_scale=1.0, progress=False, chunk_size=16)
    assert ds.attrs["latent_shape"] == "4,4,8,8" and ds.attrs["pipeline_class"] == "AnimateDiffPipeline"
    assert set(ds.arm.values) == set(ct.ARMS) and ds.sizes["video"] == 8
    assert np.isfinite(ds.consistency).all() and np.isfinite(ds.band_power).all()
    # plain starts from eps: its initial band power is that of the recorded noise
    eps = decomposition_noises(8, (4, 4, 8, 8), 0, 2)["eps"]
    np.testing.assert_allclose(ds.band_power_init.sel(arm="plain").values,
                               fl.band_power(eps.double(), edges=np.r_[ds.band_lo.values, ds.band_hi.values[-1]])
                               .mean(1).numpy(), rtol=1e-6)


def test_runs_paired_and_deterministic_on_frame_first_cogvideox():
    """(batch, frame, channel, H, W): arms are paired on the same noise and filtered over (frame, height, width)."""
    from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_pipeline

    pipe = tiny_pipeline("CogVideoXPipeline", zero_terminal_snr=False)
    kw = dict(num_videos=8, seed=2, prompt="a cat", progress=False, chunk_size=8, return_latents=True,
              controls=["mask_only"], **{**TINY_CALL_KWARGS["CogVideoXPipeline"], "num_inference_steps": 2})
    a = decompose_freeinit(pipe, **kw)
    b = decompose_freeinit(pipe, **kw)
    assert a.attrs["latent_shape"] == "4,5,8,8"  # canonical (channel, frame, height, width)
    np.testing.assert_array_equal(a.latents.values, b.latents.values)
    eps = decomposition_noises(8, (4, 5, 8, 8), 2, 2)["eps"]
    np.testing.assert_allclose(a.band_power_init.sel(arm="plain").values,
                               fl.band_power(eps.double(), edges=np.r_[a.band_lo.values, a.band_hi.values[-1]])
                               .mean(1).numpy(), rtol=1e-6)
    assert np.isfinite(a.consistency).all()


def test_wrong_layout_is_refused_before_any_sampling(monkeypatch):
    from diffusers import CogVideoXPipeline

    from freeinit_lab.hooks.layouts import LAYOUTS, LatentLayout
    from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_pipeline

    class MisregisteredPipeline(CogVideoXPipeline):
        pass

    monkeypatch.setitem(LAYOUTS, "MisregisteredPipeline", LatentLayout(denoiser="transformer",
                                                                      final_latent="scheduler_step"))
    pipe = tiny_pipeline("CogVideoXPipeline", zero_terminal_snr=False)
    pipe.__class__ = MisregisteredPipeline
    calls = []
    pipe.transformer.register_forward_pre_hook(lambda m, a: calls.append(1))
    with pytest.raises(ValueError, match=r"(?s)channel.*register_layout"):
        decompose_freeinit(pipe, num_videos=8, prompt="a cat", progress=False,
                           **{**TINY_CALL_KWARGS["CogVideoXPipeline"], "num_inference_steps": 2})
    assert calls == []


def test_runs_on_the_embedded_default_with_its_own_shape():
    pipe = fl.load_default_pipeline()
    ds = decompose_freeinit(pipe, num_videos=8, num_inference_steps=2, progress=False,
                            controls=["mask_only", "shuffled_low"])
    assert tuple(int(s) for s in ds.attrs["latent_shape"].split(",")) == tuple(pipe.sample_shape)
    assert ds.explained.dims == ("control", "metric") and ds.sizes["control"] == 2


def test_every_pass_and_the_oracle_arm(apipe):
    shape = apipe.sample_shape
    ref = torch.randn(10, *shape, generator=torch.Generator().manual_seed(1))
    ds = decompose_freeinit(apipe, num_videos=8, seed=2, num_iters=3, controls=["mask_only", "legacy_ideal"],
                            reference=ref, oracle=True, keep_latents=True, num_inference_steps=STEPS,
                            num_bootstrap=200, progress=False)
    assert ds.arm.values.tolist() == ["plain", "freeinit", "mask_only", "legacy_ideal", "oracle"]
    assert ds.passes.sel(arm="oracle") == 1 and "oracle" not in ds.control.values
    pc = ds.pass_consistency
    assert pc.dims == ("arm", "pass", "video") and ds.sizes["pass"] == 3
    # the last pass is what the arm reports; pass 0 of the chained arms is the shared plain pass; NaN: no output
    for arm in ds.arm.values.tolist():
        np.testing.assert_allclose(pc.sel(arm=arm).isel({"pass": ds.passes.sel(arm=arm).item() - 1 if arm == "plain"
                                                          else -1}), ds.consistency.sel(arm=arm))
    for arm in ("freeinit", "legacy_ideal"):
        np.testing.assert_allclose(pc.sel(arm=arm, **{"pass": 0}), ds.consistency.sel(arm="plain"))
        assert np.isfinite(pc.sel(arm=arm)).all()
    assert np.isnan(pc.sel(arm="plain").isel({"pass": slice(1, None)})).all()
    assert np.isnan(pc.sel(arm="mask_only").isel({"pass": slice(0, -1)})).all()
    np.testing.assert_allclose(ds.pass_latent.sel(arm="plain").isel({"pass": 0}).values.mean(), 
                               ds.pass_latent.sel(arm="freeinit").isel({"pass": 0}).values.mean())
    # the oracle: one pass from a_T x_0 + b_T eps with the plain arm's own eps
    eps = decomposition_noises(8, shape, 2, 3)["eps"]
    z = ds.alpha_T * ref[:8] + ds.sigma_T * eps
    out = apipe(latents=z, num_inference_steps=STEPS, output_type="latent").frames
    np.testing.assert_allclose(ds.pass_latent.sel(arm="oracle").isel({"pass": -1}).values, out.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="oracle=True needs reference"):
        decompose_freeinit(apipe, num_videos=8, oracle=True, num_inference_steps=STEPS, progress=False)


def test_a_control_stopped_early_reports_its_own_last_pass(apipe):
    """control_iters: legacy_ideal stops after one iteration (2 passes) while FreeInit and shuffled_low run 3; its
    output is a hand-made first pass, its share compares with FreeInit's first pass, the other arms do not move."""
    n, seed = 8, 6
    kw = dict(num_videos=n, seed=seed, num_iters=3, num_inference_steps=STEPS, num_bootstrap=200, progress=False,
              controls=["legacy_ideal", "shuffled_low", "mask_only"])
    full = decompose_freeinit(apipe, **kw)
    ds = decompose_freeinit(apipe, control_iters={"legacy_ideal": 2}, **kw)
    assert ds.passes.sel(arm="legacy_ideal") == 2 and ds.passes.sel(arm="shuffled_low") == 3
    assert ds.explained_pass.sel(control="legacy_ideal") == 1
    assert ds.explained_pass.sel(control="shuffled_low") == ds.explained_pass.sel(control="mask_only") == 2
    pc = ds.pass_consistency.sel(arm="legacy_ideal")
    assert np.isfinite(pc.isel({"pass": [0, 1]})).all() and np.isnan(pc.isel({"pass": 2})).all()
    # its reported output is its first reinitialised pass: a_T plain + b_T eps, the legacy ideal mask, eta[0]
    noises = decomposition_noises(n, apipe.sample_shape, seed, 3)
    eps, eta = noises["eps"], noises["eta"][0]
    plain = apipe(latents=eps.clone(), num_inference_steps=STEPS, output_type="latent").frames
    H = lowpass_filter(eps.shape, "ideal", 0.25, 0.25, legacy_ideal_threshold=True)
    z = reinit_noise(ds.alpha_T * plain + ds.sigma_T * eps, eta, H)
    out = apipe(latents=z, num_inference_steps=STEPS, output_type="latent").frames
    from freeinit_lab.studies.decomposition import _band_power, _consistency

    np.testing.assert_allclose(ds.consistency.sel(arm="legacy_ideal").values, _consistency(out), atol=1e-6)
    np.testing.assert_allclose(pc.isel({"pass": 1}).values, _consistency(out), atol=1e-6)
    edges = np.concatenate([ds.band_lo.values[:1], ds.band_hi.values])
    np.testing.assert_allclose(ds.band_power_init.sel(arm="legacy_ideal").values, _band_power(z, edges), rtol=1e-5)
    # its share: against FreeInit after the same two passes, not after FreeInit's last
    fi1 = ds.pass_consistency.sel(arm="freeinit").isel({"pass": 1}) - ds.consistency.sel(arm="plain")
    eff = ds.effect.sel(arm="legacy_ideal", metric="consistency")
    np.testing.assert_allclose(ds.explained.sel(control="legacy_ideal", metric="consistency"), eff / fi1.mean())
    assert not np.isclose(float(fi1.mean()), float(ds.effect.sel(arm="freeinit", metric="consistency")))
    ok = (ds.explained_low <= ds.explained + 1e-12) & (ds.explained <= ds.explained_high + 1e-12)
    assert bool(ok.where(np.isfinite(ds.explained), True).all())
    # the arms that run their usual passes, and their shares, are those of the call without control_iters
    same = ["plain", "freeinit", "shuffled_low", "mask_only"]
    for var in ("consistency", "band_power", "effect"):
        np.testing.assert_array_equal(ds[var].sel(arm=same).values, full[var].sel(arm=same).values)
    for c in ("shuffled_low", "mask_only"):
        np.testing.assert_allclose(ds.explained.sel(control=c).values, full.explained.sel(control=c).values)
        np.testing.assert_allclose(ds.explained_low.sel(control=c).values, full.explained_low.sel(control=c).values)
    assert ds.attrs["control_iters"] == '{"legacy_ideal": 2}' and full.attrs["control_iters"] == "{}"


def test_bootstrap_interval_covers_the_mean_and_keeps_pairs():
    from freeinit_lab.studies.decomposition import bootstrap_interval

    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 1.0, size=(2, 400))
    m, lo, hi = bootstrap_interval(x, confidence=0.99)
    assert m.shape == lo.shape == hi.shape == (2,) and np.all(lo < m) and np.all(m < hi)
    # 99 % interval of a mean of 400 unit-variance values: about +-2.58 / 20 wide on each side
    np.testing.assert_allclose(hi - lo, 2 * 2.576 / 20, rtol=0.15)
    m1, lo1, hi1 = bootstrap_interval(x[0], confidence=0.99)
    assert isinstance(m1, float) and lo1 == pytest.approx(lo[0]) and hi1 == pytest.approx(hi[0])
    with pytest.raises(ValueError, match="too few"):
        bootstrap_interval(np.ones(5))
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval(x, confidence=99)
    # NaN / inf came back as a (nan, nan, nan) or (inf, nan, nan) "interval"; two_sample_interval refuses them
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="non-finite values"):
            bootstrap_interval(np.r_[x[0, :-1], bad])
        with pytest.raises(ValueError, match="non-finite values"):
            bootstrap_interval(np.where(np.arange(400) == 7, bad, x))


def test_two_sample_interval_resamples_the_two_sets_independently():
    from freeinit_lab.studies.decomposition import bootstrap_interval, two_sample_interval

    rng = np.random.default_rng(1)
    a, b = rng.normal(2.0, 1.0, 400), rng.normal(1.0, 2.0, 100)
    d, lo, hi = two_sample_interval(a, b, confidence=0.99)
    assert d == pytest.approx(a.mean() - b.mean()) and lo < d < hi
    # half-width about 2.576 sqrt(1/400 + 4/100): each set's own spread, added
    np.testing.assert_allclose((hi - lo) / 2, 2.576 * math.sqrt(1 / 400 + 4 / 100), rtol=0.15)
    # not paired: one set against itself has a real interval (a paired bootstrap of a - a would be [0, 0])
    _, lo0, hi0 = two_sample_interval(a, a)
    assert lo0 < -0.1 and hi0 > 0.1 and bootstrap_interval(a - a)[1:] == (0.0, 0.0)
    # sets of different sizes, and a ratio of means in dB
    p1, p2 = rng.exponential(2.0, 300), rng.exponential(1.0, 50)
    r, rlo, rhi = two_sample_interval(p1, p2, ratio_db=True)
    assert r == pytest.approx(10 * math.log10(p1.mean() / p2.mean())) and rlo < r < rhi
    assert rlo < 10 * math.log10(2) < rhi
    for kw, match in ((dict(a=np.ones((2, 10)), b=np.ones(10)), r"shape \(2, 10\)"),
                      (dict(a=np.ones(5), b=np.ones(10)), "too few"),
                      (dict(a=np.r_[np.ones(9), np.nan], b=np.ones(10)), "non-finite"),
                      (dict(a=-np.ones(10), b=np.ones(10), ratio_db=True), "ratio_db"),
                      (dict(a=np.ones(10), b=np.ones(10), confidence=99), "confidence")):
        with pytest.raises(ValueError, match=match):
            two_sample_interval(**kw)


@pytest.mark.parametrize("kw, match", [
    (dict(num_bootstrap=True), r"num_bootstrap=True must be an integer >= 1"),  # was one resample: [10.3, 10.3] around 9.5
    (dict(num_bootstrap=2.5), r"num_bootstrap=2.5 must be an integer >= 1"),  # was silently 2
    (dict(num_bootstrap=0), r"num_bootstrap=0 must be an integer >= 1"),  # was an IndexError
    (dict(seed=1.5), r"seed=1.5 must be an integer"),  # was silently seed 1
    (dict(seed=-1), r"seed=-1 must be an integer"),
])
def test_interval_helpers_refuse_counts_and_seeds_that_are_not_integers(kw, match):
    from freeinit_lab.studies.decomposition import bootstrap_interval, two_sample_interval

    x = np.arange(20.0)
    with pytest.raises(ValueError, match=match):
        bootstrap_interval(x, **kw)
    with pytest.raises(ValueError, match=match):
        two_sample_interval(x, x + 1, **kw)


def test_a_registered_signal_free_arm_uses_its_own_mix(apipe):
    """An arm without signal (``signal="none"``) mixes ``b_T ε`` with ``η`` by *its* ``mix``: a registered
    variance-preserving one starts from ``IFFT3D(w_low·FFT3D(b_T ε) + w_high·FFT3D(η))``, not FreeInit's mix."""
    from freeinit_lab.core.spectral import reinit_noise_variance_preserving
    from freeinit_lab.studies.decomposition import _band_power

    arm = ct.ControlArm("mask_only_vp_test", signal="none", mix="variance_preserving")
    ct.register_control(arm)
    try:
        n, steps = 8, 2
        ds = decompose_freeinit(apipe, num_videos=n, seed=4, num_inference_steps=steps, progress=False,
                                num_bootstrap=200, controls=["mask_only", "mask_only_vp_test"])
    finally:
        del ct.CONTROL_ARMS["mask_only_vp_test"]
    noises = decomposition_noises(n, (3, 4, 8, 8), 4, 2)
    eps, eta = noises["eps"], noises["eta"][0]
    b = ds.attrs["sigma_T"]
    H = lowpass_filter(eps.shape, "gaussian", 0.25, 0.25)
    edges = np.concatenate([ds.band_lo.values[:1], ds.band_hi.values])
    want_vp = _band_power(reinit_noise_variance_preserving(b * eps, eta, H), edges)
    want_fi = _band_power(reinit_noise(b * eps, eta, H), edges)
    np.testing.assert_allclose(ds.band_power_init.sel(arm="mask_only_vp_test").values, want_vp, rtol=1e-5)
    np.testing.assert_allclose(ds.band_power_init.sel(arm="mask_only").values, want_fi, rtol=1e-5)
    # the two mixes differ where the mask is soft: the test can tell them apart
    assert np.abs(want_vp - want_fi).max() > 1e-2 * np.abs(want_fi).max()
