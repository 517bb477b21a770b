"""freeinit_lab.refinement: one-iteration refinement equals FreeInit's pass 1; the study's records are consistent.

Runs on the analytic Gaussian reference (exact, FFT-based, fast) with a few videos and steps.
"""

import numpy as np
import pytest
import torch

from freeinit_lab import freeinit
from freeinit_lab.pipelines import load_analytic_pipeline
from freeinit_lab.refinement import cumulative_quality, refine_once, refinement_study
from freeinit_lab.viz.figures import band_snr_iteration_figure, filter_figure, iteration_figure


@pytest.fixture(scope="module")
def pipe():
    p = load_analytic_pipeline()
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def study(pipe):
    return refinement_study(pipe, num_videos=3, seed=1, num_inference_steps=4, num_iters=3,
                            filters=("gaussian", "butterworth", "ideal"))


@pytest.mark.parametrize("method", ["gaussian", "butterworth", "ideal"])
def test_refine_once_equals_freeinit_pass_1(pipe, method):
    eps = torch.randn(2, *pipe.sample_shape, generator=torch.Generator().manual_seed(3))
    res = freeinit(pipe, num_iters=2, method=method, latents=eps.clone(), num_inference_steps=4,
                   generator=torch.Generator().manual_seed(7), output_type="latent", progress=False)
    clean, init, signal = refine_once(pipe, res.iterations[0].clean_latent, eps, method=method, num_inference_steps=4,
                                      generator=torch.Generator().manual_seed(7))
    it = res.iterations[1]
    torch.testing.assert_close(init, it.initial_latent, atol=1e-5, rtol=0)
    torch.testing.assert_close(signal, it.signal, atol=1e-5, rtol=0)
    torch.testing.assert_close(clean, it.clean_latent, atol=1e-4, rtol=0)


def test_study_dims_and_costs(study):
    ds = study
    assert dict(ds.consistency.sizes) == {"sampling": 2, "iteration": 3, "video": 3}
    assert ds.sampling.values.tolist() == ["full", "coarse-to-fine"]
    # full sampling: every pass 4 steps; coarse-to-fine: int(4 / 3 * (i + 1)) = 1, 2, 4
    assert ds.num_inference_steps.sel(sampling="full").values.tolist() == [4, 4, 4]
    assert ds.num_inference_steps.sel(sampling="coarse-to-fine").values.tolist() == [1, 2, 4]
    assert ds.denoiser_evals.values.tolist() == ds.num_inference_steps.values.tolist()  # one forward per step
    # pass 0 starts from pure noise; later passes carry signal, the low band more than the high band
    assert np.all(np.isneginf(ds.band_snr.sel(iteration=0).values))
    later = ds.band_snr.sel(iteration=slice(1, None)).values
    assert np.all(np.isfinite(later)) and np.all(later[:, 0] > later[:, -1])
    assert np.all(np.isfinite(ds.training_snr.values))
    assert ds.source.values.tolist() == ["baseline", "freeinit", "oracle", "data"]
    for name in ("consistency", "filter_consistency", "init_consistency"):
        v = ds[name].values
        assert np.all(np.isfinite(v)) and np.all(np.abs(v) <= 1 + 1e-9), name


def test_study_shares_pass_0_and_first_eta(study):
    ds = study
    # the gaussian filter row is pass 1 of the full run; the baseline row is its pass 0
    np.testing.assert_array_equal(ds.filter_consistency.sel(filter="gaussian").values,
                                  ds.consistency.sel(sampling="full", iteration=1).values)
    np.testing.assert_array_equal(ds.init_consistency.sel(source="baseline").values,
                                  ds.consistency.sel(sampling="full", iteration=0).values)
    np.testing.assert_array_equal(ds.init_consistency.sel(source="freeinit").values,
                                  ds.consistency.sel(sampling="full", iteration=2).values)
    np.testing.assert_array_equal(ds.filter_band_snr.sel(filter="gaussian").values, ds.band_snr.sel(iteration=1).values)
    # full and coarse-to-fine start from the same noise, but pass 0 of coarse-to-fine has fewer steps
    assert not np.allclose(ds.clean_latent.sel(sampling="full", iteration=0),
                           ds.clean_latent.sel(sampling="coarse-to-fine", iteration=0))


def test_study_is_deterministic(pipe, study):
    again = refinement_study(pipe, num_videos=3, seed=1, num_inference_steps=4, num_iters=3,
                             filters=("gaussian", "butterworth", "ideal"))
    for name in ("consistency", "clean_latent", "filter_consistency", "init_consistency", "band_snr"):
        np.testing.assert_array_equal(again[name].values, study[name].values)
    other = refinement_study(pipe, num_videos=3, seed=2, num_inference_steps=4, num_iters=2, filters=("gaussian",))
    assert not np.allclose(other.consistency.sel(iteration=0).values, study.consistency.sel(iteration=0).values)


def test_study_rejects_bad_arguments(pipe):
    with pytest.raises(ValueError, match="num_videos"):
        refinement_study(pipe, num_videos=1)
    with pytest.raises(ValueError, match="num_iters"):
        refinement_study(pipe, num_iters=1)
    with pytest.raises(ValueError, match="reference"):
        refinement_study(pipe, num_videos=2, num_iters=2, num_inference_steps=2, reference=torch.zeros(1, 3, 8, 16, 16))



@pytest.mark.parametrize("kwargs, match", [(dict(filters=("gaussian", "gauss")), "unknown filter method 'gauss'"),
                                           (dict(num_bands=0), "num_bands"),
                                           (dict(filters=("gaussian", "gaussian")), "lists a filter twice"),
                                           (dict(reference=torch.full((4, 3, 8, 16, 16), float("nan"))),
                                            "reference contains NaN or inf")])
def test_study_checks_filters_and_bands_before_sampling(pipe, kwargs, match):
    """A bad filter name or band count is refused before any denoiser runs (it came after both FreeInit runs)."""
    def boom(*_a, **_k):
        raise AssertionError("the denoiser ran before the input was checked")

    h = pipe.unet.register_forward_pre_hook(boom)
    try:
        with pytest.raises(ValueError, match=match):
            refinement_study(pipe, num_videos=2, num_iters=2, num_inference_steps=2, **kwargs)
    finally:
        h.remove()


def test_a_single_filter_name_is_one_filter():
    """filters="ideal" is the ideal filter, not the filters 'i', 'd', 'e', ... ("unknown filter method 'i'")."""
    pipe = load_analytic_pipeline(num_frames=4, height=8)
    kw = dict(num_videos=2, num_iters=2, num_inference_steps=2, num_bands=3)
    one = refinement_study(pipe, filters="ideal", **kw)
    assert one.filter.values.tolist() == ["ideal"]
    listed = refinement_study(pipe, filters=["ideal"], **kw)
    np.testing.assert_array_equal(one.filter_consistency.values, listed.filter_consistency.values)


def test_cumulative_quality_and_figures(study):
    with pytest.raises(ValueError, match=r"metric='band_snr' is not a per-video, per-pass quantity.*'consistency'"):
        cumulative_quality(study, "band_snr")  # was KeyError: 'video'
    q = cumulative_quality(study)
    assert q["cumulative_evals"].sel(sampling="full").values.tolist() == [4, 8, 12]
    assert q["cumulative_evals"].sel(sampling="coarse-to-fine").values.tolist() == [1, 3, 7]
    np.testing.assert_allclose(q["mean"].values, study.consistency.mean("video").values)
    fig = iteration_figure(study)
    assert len(fig.data) == 4  # 2 samplings x 2 panels
    np.testing.assert_allclose(fig.data[0].y, q["mean"].sel(sampling="full").values)
    bars = filter_figure(study)
    assert list(bars.data[0].x) == ["gaussian", "butterworth", "ideal"]
    snr_fig = band_snr_iteration_figure(study)
    assert [t.name for t in snr_fig.data] == ["pass 1 initial latent", "pass 2 initial latent", "training z_T (data)"]


def test_refinement_study_samples_with_the_pipelines_stored_sampler():
    pipe = load_analytic_pipeline(num_frames=4, height=8)
    pipe.default_num_inference_steps = 3
    ds = refinement_study(pipe, num_videos=2, num_iters=2, seed=0, filters=())
    assert ds.attrs["num_inference_steps"] == 3
    assert int(ds.num_inference_steps.sel(sampling="full").max()) == 3
    assert ds.sizes["filter"] == 0 and ds.filter_consistency.shape == (0, 2)  # filters=() compares none


def test_refinement_seed_is_honoured_with_a_stochastic_sampler():
    """The oracle and the one-iteration filter runs are seeded too: with DDIM η > 0 the same seed gives
    bit-identical results whatever the global RNG's state."""
    import freeinit_lab as fl

    pipe = fl.load_analytic_pipeline(num_frames=4, height=8)
    pipe.default_eta = 0.7

    def reference(n, s):
        return torch.randn(n, *pipe.sample_shape, generator=torch.Generator().manual_seed(s)).clamp(-1, 1)

    kw = dict(num_videos=2, num_inference_steps=3, num_iters=2, filters=("gaussian", "box"), reference=reference)
    a = refinement_study(pipe, seed=1, **kw)
    torch.manual_seed(12345)
    b = refinement_study(pipe, seed=1, **kw)
    for var in ("init_consistency", "filter_consistency", "consistency"):
        np.testing.assert_array_equal(a[var].values, b[var].values, err_msg=var)


def test_filter_rows_are_paired_with_the_full_run_under_a_stochastic_sampler():
    """Every filter row is one FreeInit iteration from the shared pass 0 with the full run's first eta and, for a
    stochastic sampler (DDIM eta > 0), its pass-1 sampler draws: the row of a filter is the same whether it is the
    study's own method (pass 1 of the full run) or another one (refine_once)."""
    import freeinit_lab as fl

    pipe = fl.load_analytic_pipeline(num_frames=4, height=8)
    pipe.default_eta = 0.7

    def reference(n, s):
        return torch.randn(n, *pipe.sample_shape, generator=torch.Generator().manual_seed(s)).clamp(-1, 1)

    kw = dict(num_videos=2, seed=3, num_inference_steps=3, num_iters=2, filters=("box", "gaussian"),
              reference=reference)
    own = refinement_study(pipe, method="box", **kw)  # the box row is pass 1 of the full run
    other = refinement_study(pipe, method="gaussian", **kw)  # the box row is refine_once
    np.testing.assert_array_equal(own.init_consistency.sel(source="baseline").values,
                                  other.init_consistency.sel(source="baseline").values)
    for m in ("box", "gaussian"):
        np.testing.assert_allclose(own.filter_consistency.sel(filter=m).values,
                                   other.filter_consistency.sel(filter=m).values, atol=1e-4, err_msg=m)
