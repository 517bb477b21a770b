"""The (d_s, d_t) consistency-gain map: shape, determinism, the freeinit() contract per cell, NetCDF, bad input.

All on the analytic Gaussian pipeline (exact posterior-mean denoiser, FFT-based: milliseconds per call)."""

import numpy as np
import pytest
import torch
import xarray as xr

from freeinit_lab import freeinit, load_analytic_pipeline, metrics
from freeinit_lab.cutoff_map import (
    cutoff_map_figure,
    load_cutoff_map,
    measure_cutoff_map,
    model_fingerprint,
    nearest_cell,
    save_cutoff_map,
)

SMALL = dict(d_s=[0.25, 0.5, 1.0], d_t=[0.25, 0.75], num_videos=3, num_inference_steps=4, seed=5, progress=False)


@pytest.fixture(scope="module")
def pipe():
    return load_analytic_pipeline()


@pytest.fixture(scope="module")
def cmap(pipe):
    return measure_cutoff_map(pipe, **SMALL)


def test_shape_labels_and_attrs(cmap, pipe):
    assert cmap.gain.dims == ("d_s", "d_t") and cmap.gain.shape == (3, 2)
    assert cmap.gain_se.shape == (3, 2) and cmap.gain_per_video.shape == (3, 2, 3)
    np.testing.assert_allclose(cmap.d_s, [0.25, 0.5, 1.0])
    np.testing.assert_allclose(cmap.d_t, [0.25, 0.75])
    assert cmap.seed.values.tolist() == [5, 6, 7]
    assert np.isfinite(cmap.gain).all() and (cmap.gain_se > 0).all()
    # the map is the per-video paired gains' mean and standard error
    np.testing.assert_allclose(cmap.gain, cmap.gain_per_video.mean("video"))
    np.testing.assert_allclose(cmap.gain_se, cmap.gain_per_video.std("video", ddof=1) / np.sqrt(3))
    np.testing.assert_allclose(cmap.gain_per_video, cmap.freeinit - cmap.baseline)
    a = cmap.attrs
    assert (a["method"], a["num_iters"], a["num_inference_steps"], a["num_videos"]) == ("gaussian", 3, 4, 3)
    assert a["model"] == model_fingerprint(pipe) and a["pipeline"] == "TinyVideoPipeline"
    assert list(a["seeds"]) == [5, 6, 7]
    # one baseline for the grid; pass 0 reused; passes 1 and 2 for each of the 6 cells
    assert a["num_pipeline_videos"] == 3 + 2 * 6 * 3


def test_deterministic_and_independent_of_batching(cmap, pipe):
    again = measure_cutoff_map(pipe, **{**SMALL, "batch_size": 4})
    np.testing.assert_allclose(again.gain_per_video, cmap.gain_per_video, atol=1e-6)
    np.testing.assert_array_equal(measure_cutoff_map(pipe, **SMALL).gain_per_video, cmap.gain_per_video)


@pytest.mark.parametrize("fast_sampling", [False, True])
def test_each_cell_is_freeinit_with_per_video_generators(pipe, fast_sampling):
    """The documented contract: a cell equals freeinit() with one seeded generator per video, and plain sampling
    with the same generators; a subset of the seeds reproduces those videos."""
    cmap = measure_cutoff_map(pipe, **{**SMALL, "fast_sampling": fast_sampling})
    seeds = [6, 7]  # a subset
    gens = lambda: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    base = pipe(batch_size=2, generator=gens(), num_inference_steps=4, output_type="latent").frames
    res = freeinit(pipe, num_iters=3, method="gaussian", d_s=0.5, d_t=0.75, fast_sampling=fast_sampling,
                   batch_size=2, generator=gens(), num_inference_steps=4, output_type="latent", progress=False)
    gain = metrics.frame_cosine_similarity(res.latents.clamp(-1, 1)) - metrics.frame_cosine_similarity(base.clamp(-1, 1))
    stored = cmap.gain_per_video.sel(d_s=0.5, d_t=0.75).isel(video=[1, 2])
    np.testing.assert_allclose(stored, gain.numpy(), atol=1e-6)
    if fast_sampling:  # plain sampling and FreeInit's short first pass are separate calls
        assert list(cmap.attrs["steps_per_pass"]) == [1, 2, 4]
        assert cmap.attrs["num_pipeline_videos"] == 2 * 3 + 2 * 6 * 3


def test_one_iteration_is_plain_sampling(pipe):
    flat = measure_cutoff_map(pipe, **{**SMALL, "num_iters": 1})
    assert (flat.gain == 0).all() and (flat.gain_se == 0).all()
    assert flat.attrs["num_pipeline_videos"] == 3  # nothing but the baseline is sampled


def test_netcdf_round_trip(cmap, tmp_path):
    path = save_cutoff_map(cmap, tmp_path / "sub" / "map.nc")
    back = load_cutoff_map(path)
    xr.testing.assert_allclose(back, cmap)
    for key, value in cmap.attrs.items():
        assert np.array_equal(np.asarray(back.attrs[key]), np.asarray(value)), key
    with pytest.raises(FileExistsError, match="overwrite"):
        save_cutoff_map(cmap, path)
    save_cutoff_map(cmap, path, overwrite=True)
    assert nearest_cell(back, 0.3, 0.7) == pytest.approx(
        {"d_s": 0.25, "d_t": 0.75, "gain": float(cmap.gain[0, 1]), "gain_se": float(cmap.gain_se[0, 1])})


def test_load_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="precompute_cutoff_map.py"):
        load_cutoff_map(tmp_path / "missing.nc")
    other = tmp_path / "other.nc"
    xr.Dataset({"x": ("a", np.arange(3.0))}).to_netcdf(other)
    with pytest.raises(ValueError, match="not a cutoff map"):
        load_cutoff_map(other)
    with pytest.raises(ValueError, match="not a cutoff map"):
        save_cutoff_map(xr.Dataset({"x": ("a", np.arange(3.0))}), tmp_path / "x.nc")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(d_s=[0.0, 0.5]), r"\(0, 1\]"),
        (dict(d_t=[1.5]), r"\(0, 1\]"),
        (dict(d_s=[0.25, 0.25]), "repeated"),
        (dict(d_t=[]), "non-empty"),
        (dict(num_videos=1), "at least 2 videos"),
        (dict(num_iters=0), "num_iters"),
        (dict(num_inference_steps=0), "num_inference_steps"),
        (dict(batch_size=0), "batch_size"),
        (dict(renoise="new"), "renoise"),
        (dict(method="sinc"), "sinc"),
    ],
)
def test_bad_input_fails_before_sampling(pipe, kwargs, match):
    calls = []
    handle = pipe.unet.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        with pytest.raises(ValueError, match=match):
            measure_cutoff_map(pipe, **{**SMALL, **kwargs})
    finally:
        handle.remove()
    assert not calls


def test_refuses_pipelines_it_cannot_score():
    from freeinit_lab.testing import tiny_animatediff_pipeline

    with pytest.raises(ValueError, match="sample_shape"):  # latent space, no sample_shape: pixels not comparable
        measure_cutoff_map(tiny_animatediff_pipeline(), **SMALL)


def test_figure_has_heatmap_and_marker(cmap):
    fig = cutoff_map_figure(cmap, d_s=0.5, d_t=0.25)
    assert [t.type for t in fig.data] == ["heatmap", "scatter"]
    np.testing.assert_allclose(np.array(fig.data[0].z), cmap.gain.values)
    assert list(fig.data[1].x) == [0.25] and list(fig.data[1].y) == [0.5]
    assert f"{float(cmap.gain.sel(d_s=0.5, d_t=0.25)):+.4f}" in fig.layout.title.text
    empty = cutoff_map_figure(None, message="compute me")
    assert len(empty.data) == 0 and empty.layout.annotations[0].text == "compute me"
