"""Initialisation strategies: closed forms on the analytic model, exact covariances, bad input."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import freeinit_lab as fl
from freeinit_lab import strategies as st
from freeinit_lab.pipelines import default_scheduler, load_analytic_pipeline
from freeinit_lab.spectral import lowpass_filter


@pytest.fixture(scope="module")
def small_pipe():
    """Analytic Gaussian reference on 4x8x8 videos, fitted to the real clips."""
    return load_analytic_pipeline(4, 8, scheduler=default_scheduler(set_alpha_to_one=True))


@pytest.fixture(scope="module")
def clips_small():
    return fl.load_clips(4, 8, segment_step=2)


@pytest.fixture(scope="module")
def marginal(small_pipe, clips_small):
    return st.TerminalMarginal.from_latents(clips_small, small_pipe.scheduler)


def _fft_blocks(matrix: torch.Tensor, shape: tuple[int, int, int, int]) -> torch.Tensor:
    """Per-bin C x C blocks of a (N·C) x (N·C) covariance in the unitary 3-D Fourier basis."""
    c, f, h, w = shape
    m = matrix.reshape(c, f, h, w, c, f, h, w)
    m = torch.fft.fftn(m.to(torch.complex128), dim=(1, 2, 3), norm="ortho")
    m = torch.fft.ifftn(m, dim=(5, 6, 7), norm="ortho")  # conj transpose of the right factor
    idx = torch.arange(f * h * w)
    m = m.reshape(c, f * h * w, c, f * h * w)[:, idx, :, idx]  # (bins, C, C) diagonal blocks
    return m.reshape(f, h, w, c, c)


def test_spectrum_matched_noise_has_the_closed_form_covariance_per_bin(marginal):
    """The map white noise -> spectrum-matched latent is linear: A A^T, seen in Fourier, is exactly
    H (a_T² Σ + b_T² I) + (1 - H) I per bin and nothing across bins."""
    shape = marginal.shape
    n = int(np.prod(shape))
    H = lowpass_filter(shape[1:], "gaussian", 0.25, 0.25, dtype=torch.float64)
    impulses = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    mean_field = marginal.sample(torch.zeros(1, *shape, dtype=torch.float64), H)
    A = (marginal.sample(impulses, H) - mean_field).reshape(n, n).T  # columns = responses
    cov = A @ A.T
    blocks = _fft_blocks(cov, shape)
    expected = marginal.covariance_at_T(H)
    assert torch.allclose(blocks, expected, atol=1e-12, rtol=1e-10)
    # nothing between different bins: the total equals the sum of the diagonal blocks' traces
    full = torch.fft.fftn(cov.reshape(*shape, *shape).to(torch.complex128), dim=(1, 2, 3), norm="ortho")
    assert math.isclose(float(torch.linalg.matrix_norm(full.reshape(n, n)) ** 2),
                        float((blocks.abs() ** 2).sum()), rel_tol=1e-9)
    # the mean field is a_T mu H(0): a constant colour
    assert torch.allclose(mean_field[0], (marginal.a_T * marginal.mean).view(-1, 1, 1, 1).expand(shape), atol=1e-14)


def test_spectrum_matched_with_all_pass_equals_the_exact_marginal_of_the_prior(small_pipe):
    """Built from the analytic prior's own moments, the all-pass spectrum-matched latent has exactly the training
    marginal's per-bin covariance a_T² U S U^T + b_T² I."""
    unet = small_pipe.unet
    U, S = unet.color_basis.double(), unet.power.double()
    sigma = torch.einsum("cd,dfhw,ed->fhwce", U, S, U).to(torch.complex128)
    sched = fl.get_schedule(small_pipe.scheduler)
    a, b = (float(v) for v in sched.coefficients(999))
    m = st.TerminalMarginal(mean=unet.mean.double(), covariance=sigma, a_T=a, b_T=b, timestep=999.0)
    expected = a * a * sigma + b * b * torch.eye(3, dtype=torch.complex128)
    assert torch.allclose(m.covariance_at_T(None), expected, atol=1e-15)
    # and per-bin variance in the colour basis is exactly a² S + b²
    diag = torch.einsum("dc,fhwde,ec->cfhw", U.to(torch.complex128), m.covariance_at_T(None), U.to(torch.complex128))
    assert torch.allclose(diag.real, a * a * S + b * b, atol=1e-12)


def test_symmetrized_estimate_is_real_even_and_matches_flip_averaged_data(clips_small, small_pipe):
    m = st.TerminalMarginal.from_latents(clips_small, small_pipe.scheduler)
    cov = m.covariance
    assert float(cov.imag.abs().max()) == 0.0
    flipped = cov.index_select(0, (-torch.arange(cov.shape[0])) % cov.shape[0])
    assert torch.allclose(flipped, cov, atol=1e-12)
    # same moments as estimating from the data and its time-reversed copy, unsymmetrized in space
    x = clips_small.double()
    both = torch.cat([x, x.flip(2), x.flip(3), x.flip(4), x.flip(2, 3), x.flip(2, 4), x.flip(3, 4), x.flip(2, 3, 4)])
    ref = st.TerminalMarginal.from_latents(both, small_pipe.scheduler, symmetrize=False)
    assert torch.allclose(ref.covariance.real, cov.real, atol=1e-9, rtol=1e-9)
    assert torch.allclose(m.mean, x.mean(dim=(0, 2, 3, 4)))


def test_band_averaged_estimate_is_constant_per_band(clips_small, small_pipe):
    m = st.TerminalMarginal.from_latents(clips_small, small_pipe.scheduler, num_bands=3)
    idx = fl.spectral.band_index(clips_small.shape, num_bands=3)
    for k in range(3):
        vals = m.covariance[idx == k]
        assert torch.allclose(vals, vals[:1].expand_as(vals))


def test_strategy_initial_latents(marginal, small_pipe, clips_small):
    g = torch.Generator().manual_seed(3)
    eps = torch.randn(2, *marginal.shape, generator=g)
    assert torch.equal(st.InitStrategy("plain").initial_latent(eps), eps)
    clean = clips_small[:2]
    oracle = st.InitStrategy("o", init="oracle").initial_latent(eps, clean=clean, marginal=marginal)
    assert torch.allclose(oracle, marginal.a_T * clean + marginal.b_T * eps, atol=1e-6)
    same = st.InitStrategy("o", init="oracle").initial_latent(eps, clean=clean, scheduler=small_pipe.scheduler)
    assert torch.allclose(oracle, same, atol=1e-6)
    # the spectrum-matched latent keeps the high band of eps: outside the mask's support it is eps
    sm = st.InitStrategy("sm", init="spectrum_matched", method="ideal", d_s=0.5, d_t=0.5)
    z = sm.initial_latent(eps, marginal=marginal)
    H = sm.lowpass(marginal.shape[1:])
    hi = lambda v: torch.fft.fftn(v.double(), dim=(-3, -2, -1))[..., H == 0]  # noqa: E731
    assert torch.allclose(hi(z), hi(eps), atol=1e-4)


def test_run_counts_evaluations_and_combines_with_freeinit(small_pipe, marginal):
    eps = torch.randn(2, *marginal.shape, generator=torch.Generator().manual_seed(0))
    sm = st.InitStrategy("sm", init="spectrum_matched", num_iters=2)
    res = sm.run(small_pipe, eps, marginal=marginal, num_inference_steps=3)
    assert res.num_denoiser_evals == 6 and len(res.iterations) == 2
    assert torch.allclose(res.iterations[0].initial_latent, sm.initial_latent(eps, marginal=marginal), atol=1e-6)
    assert res.settings["mix"] == "freeinit"


def _sampler_pipe(small_pipe, name):
    """``small_pipe``'s denoiser with the sampler ``name`` of the embedded samplers (same schedule)."""
    from freeinit_lab.pipelines import TinyVideoPipeline, sampler_scheduler

    sampler = {"ddim": dict(scheduler="DDIMScheduler", set_alpha_to_one=True),
               "dpmpp2m": dict(scheduler="DPMSolverMultistepScheduler", algorithm_type="dpmsolver++", solver_order=2),
               "dpmpp3m": dict(scheduler="DPMSolverMultistepScheduler", algorithm_type="dpmsolver++", solver_order=3),
               "unipc": dict(scheduler="UniPCMultistepScheduler")}[name]
    return TinyVideoPipeline(unet=small_pipe.unet, scheduler=sampler_scheduler(sampler))


@pytest.mark.parametrize("name", ["ddim", "dpmpp2m", "dpmpp3m", "unipc"])
def test_analytic_gain_is_the_pipeline_to_float_precision(small_pipe, name):
    """A deterministic sampler with the exact Gaussian denoiser maps FFT(U^T z) bin by bin to
    G · FFT(U^T z) + K m (DDIM: the closed form; multistep solvers: their own step on the coefficients)."""
    pipe = _sampler_pipe(small_pipe, name)
    unet = pipe.unet
    steps = 7
    pipe.scheduler.set_timesteps(3)
    before = pipe.scheduler.timesteps.clone()
    G, K = st.analytic_gain(pipe, steps, return_offset=True)
    assert torch.equal(pipe.scheduler.timesteps, before)  # computed on a copy: the caller's scheduler is untouched
    z = torch.randn(3, *unet.power.shape, generator=torch.Generator().manual_seed(1))
    out = pipe(latents=z.clone(), num_inference_steps=steps, output_type="latent").frames
    y_in, y_out = unet._to_white(z.double(), 0.0), unet._to_white(out.double(), 0.0)
    m = torch.fft.fftn(torch.einsum("cd,c->d", unet.color_basis.double(), unet.mean.double()).view(-1, 1, 1, 1)
                       .expand(unet.power.shape), dim=(-3, -2, -1), norm="ortho")
    expected = G * y_in + K * m
    assert torch.allclose(y_out, expected, atol=1e-5 * float(y_in.abs().max()), rtol=1e-5)


def test_stepped_gain_is_the_ddim_closed_form(small_pipe):
    """The generic path (the scheduler's own step on the coefficients) reproduces DDIM's closed form, so the two
    derivations check each other; and the multistep solvers' gains differ from DDIM's (not a copy of it)."""
    pipe = _sampler_pipe(small_pipe, "ddim")
    G, K = st.analytic_gain(pipe, 6, return_offset=True)
    G2, K2 = st._stepped_gain(pipe.scheduler, pipe.unet.power.double(), 6, True)
    assert torch.allclose(G, G2, rtol=1e-5, atol=1e-7) and torch.allclose(K, K2, rtol=1e-5, atol=1e-6)
    G_dpm = st.analytic_gain(_sampler_pipe(small_pipe, "dpmpp2m"), 6)
    assert float((G_dpm - G).abs().max()) > 1e-3


def test_analytic_gain_refuses_stochastic_samplers(small_pipe):
    from diffusers import DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler
    from freeinit_lab.pipelines import TinyVideoPipeline

    cfg = small_pipe.scheduler.config
    for sched in (DPMSolverMultistepScheduler.from_config(cfg, algorithm_type="sde-dpmsolver++"),
                  EulerAncestralDiscreteScheduler.from_config(cfg)):
        with pytest.raises(TypeError, match="deterministic"):
            st.analytic_gain(TinyVideoPipeline(unet=small_pipe.unet, scheduler=sched), 4)


def test_analytic_gain_reads_the_denoiser_and_scheduler_the_layout_names(small_pipe, monkeypatch):
    """A pipeline registered with LatentLayout(denoiser="model", scheduler="sampler") has the closed forms of its
    pipe.model and pipe.sampler (decoys at pipe.unet and pipe.scheduler), and an error naming pipe.sampler."""
    from diffusers import EulerDiscreteScheduler

    from freeinit_lab.layouts import LAYOUTS, LatentLayout

    class AnalyticAtPipeline:
        def __init__(self, model, sampler):
            self.model, self.sampler = model, sampler
            self.unet, self.scheduler = torch.nn.Identity(), EulerDiscreteScheduler()  # decoys

    monkeypatch.setitem(LAYOUTS, "AnalyticAtPipeline", LatentLayout(denoiser="model", scheduler="sampler"))
    pipe = AnalyticAtPipeline(small_pipe.unet, small_pipe.scheduler)
    G, K = st.analytic_gain(pipe, 4, return_offset=True)
    G_ref, K_ref = st.analytic_gain(small_pipe, 4, return_offset=True)
    assert torch.equal(G, G_ref) and torch.equal(K, K_ref)
    pipe.sampler = EulerDiscreteScheduler.from_config(small_pipe.scheduler.config)
    with pytest.raises(TypeError, match=r"got EulerDiscreteScheduler\); set pipe\.sampler to one of them"):
        st.analytic_gain(pipe, 4)


def test_analytic_prediction_matches_monte_carlo(small_pipe, marginal):
    """analytic_prediction against 512 paired videos per strategy on the exact-score model, to within sampling error.

    Band power of the last pass's initial latent (minus a_T mu): an exact expectation, against the mean over videos.
    Consistency and dynamics of the output: ratios of expectations, against the ratios of means of pooled_metrics
    (bias O(1/n); the mean of per-video ratios would carry a bias of its own that does not shrink with n). Every
    |z| below the two-sided Bonferroni limit for all the comparisons at a family-wise false-alarm rate of 1e-3."""
    from statistics import NormalDist

    strategies = [
        st.InitStrategy("plain"),
        st.InitStrategy("sm", init="spectrum_matched"),
        st.InitStrategy("oracle", init="oracle"),
        st.InitStrategy("same", num_iters=2),
        st.InitStrategy("fresh", num_iters=2, renoise="fresh"),
        st.InitStrategy("vp", num_iters=2, mix="variance_preserving"),
    ]
    n, steps, bands = 512, 5, 3
    g = torch.Generator().manual_seed(11)
    eps = torch.randn(n, *marginal.shape, generator=g)
    x0 = small_pipe.unet.sample_prior(n, generator=g)  # the oracle's clean latents: prior draws, as predicted
    pred = st.analytic_prediction(small_pipe, strategies, marginal, num_inference_steps=steps, num_bands=bands)
    edges = fl.default_band_edges(marginal.shape[1:], bands)
    videos, z_init = {}, []
    for s in strategies:
        res = s.run(small_pipe, eps, marginal=marginal, clean=x0, num_inference_steps=steps,
                    generator=torch.Generator().manual_seed(12))
        videos[s.name] = res.latents.float()
        p = st._band_power_db(res.iterations[-1].initial_latent, marginal.a_T * marginal.mean, edges)  # (n, K)
        z_init.append((p.mean(0) - pred["band_power_T"].sel(row=s.name).values) / (p.std(0, ddof=1) / math.sqrt(n)))
    z_init = np.stack(z_init)
    table = st.closed_form_comparison(videos, pred, quantities=("consistency", "dynamics"))
    assert len(table) == 2 * len(strategies)
    limit = NormalDist().inv_cdf(1 - 1e-3 / (2 * (len(table) + z_init.size)))
    assert np.all(np.abs(table.z) < limit), table[np.abs(table.z) >= limit]
    assert np.all(np.abs(z_init) < limit), z_init.round(1)
    # the check has power: FreeInit's videos are told apart from plain sampling's closed form
    swapped = pred.assign_coords(row=["same" if r == "plain" else r + "_" for r in pred.row.values.tolist()])
    wrong = st.closed_form_comparison({"same": videos["same"]}, swapped, quantities=("consistency",))
    assert abs(float(wrong.z.iloc[0])) > 2 * limit, wrong
    assert list(pred["evals"].values) == [5, 5, 5, 10, 10, 10, 0]


def test_pooled_metrics_are_ratios_of_means_with_delta_method_errors():
    """pooled_metrics on hand-made videos: ratios of summed inner products, sqrt of mean squares; its s.e. is the
    spread of the estimate over independent sets of videos."""
    g = torch.Generator().manual_seed(3)
    n, shape = 64, (2, 5, 4, 4)

    def draw():  # an AR(1) process in time: frames correlated, lag by lag
        w = torch.randn(n, *shape, generator=g, dtype=torch.float64)
        for f in range(1, shape[1]):
            w[:, :, f] = 0.8 * w[:, :, f - 1] + 0.6 * w[:, :, f]
        return w

    v = draw()
    m = st.pooled_metrics(v)
    x = v - v.mean(dim=(2, 3, 4), keepdim=True)
    fr = x.transpose(1, 2).reshape(n, shape[1], -1)
    want = np.mean([float((fr[:, 0] * fr[:, l]).sum() / torch.sqrt((fr[:, 0] ** 2).sum() * (fr[:, l] ** 2).sum()))
                    for l in range(1, shape[1])])
    assert math.isclose(m["consistency"][0], want, rel_tol=1e-12)
    d = v[:, :, 1:] - v[:, :, :-1]
    assert math.isclose(m["dynamics"][0], float(d.pow(2).mean().sqrt()), rel_tol=1e-12)
    assert math.isclose(m["contrast"][0], float(v.var(dim=(-2, -1), unbiased=False).mean().sqrt()), rel_tol=1e-12)
    # the delta-method s.e. (mean over 2000 independent sets of 64 videos) against the spread of the estimate over
    # them; the spread's own relative error is 1 / sqrt(2 x 1999) = 1.6 %, the tolerance 8 % (5 of those)
    keys = ("consistency", "dynamics", "contrast")
    reps = [st.pooled_metrics(draw()) for _ in range(2000)]
    est = np.array([[r[k][0] for k in keys] for r in reps])
    se = np.array([[r[k][1] for k in keys] for r in reps])
    ratio = se.mean(0) / est.std(0, ddof=1)
    assert np.all(np.abs(ratio - 1) < 0.08), dict(zip(keys, ratio.round(3)))
    with pytest.raises(ValueError, match="at least 2 videos"):
        st.pooled_metrics(v[:1])
    with pytest.raises(ValueError, match=r"\(n, C, F, H, W\)"):
        st.pooled_metrics(v[0])
    with pytest.raises(ValueError, match="none of the arms"):
        st.closed_form_comparison({"x": v}, xr_dataset_with_arm("y"))
    with pytest.raises(ValueError, match="unknown quantities"):
        st.closed_form_comparison({"x": v}, xr_dataset_with_arm("x"), quantities=("motion",))


def xr_dataset_with_arm(name):
    import xarray as xr

    return xr.Dataset({"consistency": ("arm", [0.5])}, coords={"arm": [name]})


def test_one_freeinit_iteration_closed_forms(small_pipe, marginal):
    """One FreeInit iteration from white noise: expected per-bin power of the reinitialised latent (minus a_T mu)
    is w_l² (a G + b)² + w_h² with the same noise and w_l² (a² G² + b²) + w_h² with fresh noise, plus the DC
    mean term; w = (H, 1 - H) for FreeInit's mix and the normalised weights for the variance-preserving one."""
    from freeinit_lab.spectral import variance_preserving_weights

    steps = 4
    H = st.InitStrategy("x").lowpass(marginal.shape[1:])
    G, K = st.analytic_gain(small_pipe, steps, return_offset=True)
    unet = small_pipe.unet
    U = unet.color_basis.double()
    a, b = marginal.a_T, marginal.b_T
    n = G[0].numel()
    m = torch.zeros_like(G)
    m[:, 0, 0, 0] = (U.T @ unet.mean.double()) * math.sqrt(n)
    ref = torch.zeros_like(G)
    ref[:, 0, 0, 0] = (U.T @ (a * marginal.mean.double())) * math.sqrt(n)
    e_out = K * m  # mean of the pass-0 output (input mean 0) in whitened coordinates
    cases = []
    for mix, (wl, wh) in (("freeinit", (H, 1 - H)), ("variance_preserving", variance_preserving_weights(H))):
        for renoise, var in (("same", (a * G + b) ** 2), ("fresh", a * a * G * G + b * b)):
            expected = (wl * a * e_out - ref) ** 2 + wl**2 * var + wh**2
            cases.append((st.InitStrategy(f"{mix}-{renoise}", num_iters=2, mix=mix, renoise=renoise),
                          float(expected.mean())))
    pred = st.analytic_prediction(small_pipe, [c[0] for c in cases], marginal, num_inference_steps=steps,
                                  num_bands=1)
    for strategy, expected in cases:
        assert math.isclose(float(pred["band_power_T"].sel(row=strategy.name)[0]), expected, rel_tol=1e-12)
    # same noise adds 2 a b G H² over fresh noise in every bin: the overshoot of the public codes
    got = {s.name: float(pred["band_power_T"].sel(row=s.name)[0]) for s, _ in cases}
    assert math.isclose(got["freeinit-same"] - got["freeinit-fresh"],
                        float((2 * a * b * G * H**2).mean()), rel_tol=1e-9)


def test_summary_table_and_pareto(small_pipe, marginal):
    strategies = [st.InitStrategy("plain"), st.InitStrategy("FreeInit", num_iters=3, report_passes=True)]
    data = small_pipe.unet.sample_prior(8, generator=torch.Generator().manual_seed(5))
    ds = st.evaluate_strategies(small_pipe, strategies, data=data, marginal=marginal, num_videos=4,
                                num_inference_steps=2, num_bands=3)
    assert ds.row.values.tolist() == ["plain", "FreeInit ×1", "FreeInit ×2"]
    assert ds["evals"].values.tolist() == [2, 4, 6]
    table = st.summarize_strategies(ds)
    assert list(table.index) == ["plain", "FreeInit ×1", "FreeInit ×2", "data"]
    for col in ("consistency", "dynamics", "distance", "band_db", "p_consistency", "evals"):
        assert col in table.columns
    from freeinit_lab.viz.figures import pareto_figure

    fig = pareto_figure({"analytic": table})
    assert st.pareto_figure is pareto_figure  # the old path still works for one release
    assert fig.data[0].x.tolist() == [2, 4, 6]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(init="magic"), "init="),
        (dict(num_iters=0), "num_iters"),
        (dict(renoise="old"), "renoise"),
        (dict(mix="average"), "mix"),
        (dict(d_s=0.0), "d_s"),
        (dict(method="sinc"), "unknown filter"),
    ],
)
def test_bad_strategy_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        st.InitStrategy("bad", **kwargs)


def test_bad_inputs(marginal, small_pipe, clips_small):
    eps = torch.randn(2, *marginal.shape)
    with pytest.raises(ValueError, match="needs marginal"):
        st.InitStrategy("sm", init="spectrum_matched").initial_latent(eps)
    with pytest.raises(ValueError, match="needs clean"):
        st.InitStrategy("o", init="oracle").initial_latent(eps, marginal=marginal)
    with pytest.raises(ValueError, match="shape of noise"):
        st.InitStrategy("o", init="oracle").initial_latent(eps, clean=clips_small[:3], marginal=marginal)
    with pytest.raises(ValueError, match="at least 2"):
        st.TerminalMarginal.from_latents(clips_small[:1], small_pipe.scheduler)
    with pytest.raises(TypeError, match="timestep=True must be a number"):  # was read as timestep 1
        st.TerminalMarginal.from_latents(clips_small, small_pipe.scheduler, timestep=True)
    with pytest.raises(ValueError, match="expected"):
        marginal.sample(torch.randn(2, 3, 4, 8, 4))
    with pytest.raises(ValueError, match="does not fit"):
        marginal.sample(eps, lowpass_filter((4, 4, 4)))
    with pytest.raises(ValueError, match="unique"):
        st.evaluate_strategies(small_pipe, [st.InitStrategy("a"), st.InitStrategy("a")], data=clips_small,
                               marginal=marginal)
    with pytest.raises(ValueError, match="oracle_latents"):
        st.evaluate_strategies(small_pipe, [st.InitStrategy("o", init="oracle")], data=clips_small,
                               marginal=marginal, num_videos=2)
    with pytest.raises(TypeError, match="analytic"):
        st.analytic_gain(SimpleNamespace(unet=torch.nn.Identity(), scheduler=small_pipe.scheduler), 3)


def test_empty_strategies_and_unknown_baseline_are_refused(small_pipe, marginal, clips_small):
    with pytest.raises(ValueError, match=r"strategies is empty: pass at least one InitStrategy"):
        st.evaluate_strategies(small_pipe, [], data=clips_small, marginal=marginal, num_videos=2)
    with pytest.raises(TypeError, match="InitStrategy objects"):
        st.evaluate_strategies(small_pipe, ["plain"], data=clips_small, marginal=marginal, num_videos=2)
    data = small_pipe.unet.sample_prior(4, generator=torch.Generator().manual_seed(5))
    ds = st.evaluate_strategies(small_pipe, [st.InitStrategy("plain"), st.InitStrategy("FreeInit", num_iters=2)],
                                data=data, marginal=marginal, num_videos=2, num_inference_steps=1, num_bands=3)
    with pytest.raises(ValueError, match=r"baseline='nope' is not a row of the results; choose one of \['plain', "
                                         r"'FreeInit'\].*baseline=None"):
        st.summarize_strategies(ds, baseline="nope")
    table = st.summarize_strategies(ds, baseline=None)
    assert "p_consistency" not in table.columns and list(table.index) == ["plain", "FreeInit", "data"]
    assert "p_consistency" in st.summarize_strategies(ds, baseline="FreeInit").columns


def _no_denoiser(pipe):
    def boom(*_a, **_k):
        raise AssertionError("the denoiser ran before the input was checked")

    return pipe.unet.register_forward_pre_hook(boom)


def test_non_finite_data_or_oracle_latents_are_refused_before_sampling(small_pipe, marginal, clips_small):
    """NaN data failed only after every strategy had been sampled, blamed on "a diverged sampler"."""
    bad = clips_small.clone()
    bad[1, 0, 0, 0, 0] = float("nan")
    oracle = [st.InitStrategy("o", init="oracle")]
    hook = _no_denoiser(small_pipe)
    try:
        with pytest.raises(ValueError, match="data contains NaN or inf"):
            st.evaluate_strategies(small_pipe, [st.InitStrategy("plain")], data=bad, marginal=marginal, num_videos=2,
                                   num_inference_steps=1, num_bands=3)
        with pytest.raises(ValueError, match="oracle_latents contains NaN or inf"):
            st.evaluate_strategies(small_pipe, oracle, data=clips_small, marginal=marginal, num_videos=2,
                                   oracle_latents=bad[:2], num_inference_steps=1, num_bands=3)
    finally:
        hook.remove()


@pytest.mark.parametrize("num_bands", [True, 2.5])
def test_num_bands_must_be_an_integer(small_pipe, marginal, clips_small, num_bands):
    """num_bands=True ran every strategy and reported a single band; it is refused before sampling, naming it."""
    hook = _no_denoiser(small_pipe)
    try:
        with pytest.raises(ValueError, match=rf"num_bands={num_bands!r} must be an integer >= 1"):
            st.evaluate_strategies(small_pipe, [st.InitStrategy("plain")], data=clips_small, marginal=marginal,
                                   num_videos=2, num_inference_steps=1, num_bands=num_bands)
    finally:
        hook.remove()


def test_a_single_arm_or_quantity_name_is_one_name(small_pipe):
    """arms="mask_only" and quantities="dynamics" were split into their letters ("unknown arm(s) ['m', 'a', ...]")."""
    with pytest.raises(ValueError, match=r"num_iters=2.7 must be an integer"):  # was run as 2 passes
        st.analytic_controls(small_pipe, "mask_only", num_iters=2.7, num_inference_steps=2, num_bands=3)
    one = st.analytic_controls(small_pipe, "mask_only", num_inference_steps=2, num_bands=3)
    listed = st.analytic_controls(small_pipe, ["mask_only"], num_inference_steps=2, num_bands=3)
    assert one.arm.values.tolist() == ["mask_only"]
    np.testing.assert_array_equal(one.band_power.values, listed.band_power.values)
    v = torch.randn(4, *small_pipe.sample_shape, generator=torch.Generator().manual_seed(0))
    table = st.closed_form_comparison({"mask_only": v}, one, quantities="dynamics")
    assert table.index.tolist() == [("mask_only", "dynamics")]
