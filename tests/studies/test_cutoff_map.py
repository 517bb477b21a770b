"""The (d_s, d_t) consistency-gain map: shape, determinism, the freeinit() contract per cell, NetCDF, bad input.

All on the analytic Gaussian pipeline (exact posterior-mean denoiser, FFT-based: milliseconds per call)."""

import numpy as np
import pytest
import torch
import xarray as xr

from freeinit_lab import freeinit, load_analytic_pipeline, metrics
from freeinit_lab.cutoff_map import (
    load_cutoff_map,
    measure_cutoff_map,
    model_fingerprint,
    nearest_cell,
    save_cutoff_map,
)
from freeinit_lab.viz.figures import cutoff_map_figure

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


def test_a_grid_given_out_of_order_is_the_same_map_with_ascending_axes(cmap, pipe):
    """Before, d_s=[1.0, 0.25, 0.5] gave a map whose nearest_cell lookup and figure failed ('index must be
    monotonic'); each cell's numbers do not depend on the order the grid was given in."""
    shuffled = measure_cutoff_map(pipe, **{**SMALL, "d_s": SMALL["d_s"][::-1], "d_t": SMALL["d_t"][::-1]})
    shuffled.attrs["seconds"] = cmap.attrs["seconds"]  # wall time
    xr.testing.assert_identical(shuffled, cmap)
    unsorted = cmap.isel(d_s=[2, 0, 1])  # a map stored unsorted by hand: read sorted
    assert nearest_cell(unsorted, 0.3, 0.7) == nearest_cell(cmap, 0.3, 0.7)
    assert nearest_cell(unsorted, 0.3, 0.7)["d_s"] == 0.25


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
        (dict(d_s=[True, 0.5]), r"d_s=\[True, 0.5\] must be numbers"),  # was silently the cut-off 1.0
        (dict(d_t="0.25"), r"d_t='0.25' must be numbers"),
        (dict(seed=-1), r"seed=-1 must be an integer in \[0, "),  # torch would read -1 as 2**64 - 1
        (dict(seed=1.5), r"seed=1.5 must be an integer"),  # not silently seed 1
        (dict(seed=True), r"seed=True must be an integer"),
        (dict(seed=2**63 - 1), r"seed=9223372036854775807 must be an integer in \[0, 922337203685477580"),  # int64
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


@pytest.mark.parametrize("seeds, match", [([0, -1], r"seeds\[1\]=-1 must be an integer in \[0, "),
                                          ([0.5, 1], r"seeds\[0\]=0.5 must be an integer"),
                                          ([True], r"seeds\[0\]=True must be an integer")])
def test_plain_samples_refuses_seeds_that_are_not_generator_seeds(pipe, seeds, match):
    """-1 was read by torch as 2**64 - 1 and 0.5 as 0: other videos than the seeds named, without a word."""
    from freeinit_lab.cutoff_map import plain_samples

    calls = []
    handle = pipe.unet.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        with pytest.raises(ValueError, match=match):
            plain_samples(pipe, seeds, 2)
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


# ---------------------------------------------------------------------------------------------------------------
# controls, shared plain samples, model-space scoring, the sweep path and the shipped map's freshness
# ---------------------------------------------------------------------------------------------------------------
CTRL = dict(d_s=[0.25, 0.8], d_t=[0.25, 0.8], num_videos=3, num_inference_steps=3, seed=2, num_iters=2,
            progress=False)


@pytest.fixture(scope="module")
def cmap_ctrl(pipe):
    return measure_cutoff_map(pipe, controls=["mask_only"], **CTRL)


def test_mask_only_control_is_the_mix_without_the_clean_signal(pipe, cmap_ctrl):
    """mask_only = IFFT(H·FFT(b_T ε) + (1 − H)·FFT(η)) from the same ε and η as FreeInit's last pass; adding it
    leaves FreeInit's own numbers unchanged."""
    from diffusers.utils.torch_utils import randn_tensor

    from freeinit_lab.core.controls import mask_only_latent
    from freeinit_lab.core.reinit import draw_reinit_noise
    from freeinit_lab.core.schedules import get_schedule
    from freeinit_lab.core.spectral import lowpass_filter
    from freeinit_lab.cutoff_map import map_consistency

    plain_map = measure_cutoff_map(pipe, **CTRL)
    np.testing.assert_array_equal(plain_map.gain_per_video, cmap_ctrl.gain_per_video)
    assert cmap_ctrl.control_consistency.dims == ("control", "d_s", "d_t", "video")
    assert cmap_ctrl.control.values.tolist() == ["mask_only"]
    assert cmap_ctrl.attrs["num_pipeline_videos"] == 3 + 2 * 4 * 3  # baseline, then FreeInit and mask_only per cell

    gens = [torch.Generator().manual_seed(s) for s in (2, 3, 4)]
    shape = (3, *pipe.sample_shape)
    eps = randn_tensor(shape, generator=gens, dtype=torch.float32)
    eta, _ = draw_reinit_noise(shape, gens, renoise="same", initial_noise=eps)
    b_T = float(get_schedule(pipe.scheduler).coefficients(get_schedule(pipe.scheduler).terminal_timestep)[1])
    z = mask_only_latent(eps, eta, lowpass_filter(shape, "gaussian", 0.8, 0.25), b_T)
    out = pipe(latents=z, num_inference_steps=3, output_type="latent").frames
    stored = cmap_ctrl.control_consistency.sel(control="mask_only", d_s=0.8, d_t=0.25)
    np.testing.assert_allclose(stored, map_consistency(pipe, out), atol=1e-5)


def test_given_plain_samples_are_reused_not_resampled(pipe, cmap_ctrl):
    from freeinit_lab.cutoff_map import plain_samples

    eps, plain = plain_samples(pipe, [2, 3, 4], 3)
    again = measure_cutoff_map(pipe, controls=["mask_only"], plain=plain, **CTRL)
    np.testing.assert_array_equal(again.gain_per_video, cmap_ctrl.gain_per_video)
    np.testing.assert_array_equal(again.control_consistency, cmap_ctrl.control_consistency)
    assert again.attrs["num_pipeline_videos"] == cmap_ctrl.attrs["num_pipeline_videos"] - 3
    with pytest.raises(ValueError, match="plain has shape"):
        measure_cutoff_map(pipe, plain=plain[:2], **CTRL)
    for bad, match in ((["shuffled_low"], "at most once"), (["mask_only", "mask_only"], "at most once")):
        with pytest.raises(ValueError, match=match):
            measure_cutoff_map(pipe, controls=bad, **CTRL)
    with pytest.raises(ValueError, match="num_iters >= 2"):
        measure_cutoff_map(pipe, controls=["mask_only"], **{**CTRL, "num_iters": 1})


def test_default_step_count_is_the_pipelines_stored_sampler(pipe):
    old = pipe.default_num_inference_steps
    pipe.default_num_inference_steps = 3
    try:
        got = measure_cutoff_map(pipe, **{k: v for k, v in CTRL.items() if k != "num_inference_steps"})
    finally:
        pipe.default_num_inference_steps = old
    assert got.attrs["num_inference_steps"] == 3
    np.testing.assert_array_equal(got.gain_per_video, measure_cutoff_map(pipe, **CTRL).gain_per_video)


def test_map_consistency_scores_decoded_pixels():
    """In a normalised model space the map scores the decoded video (clipped to [-1, 1]), not the latents."""
    from types import SimpleNamespace

    from freeinit_lab.cutoff_map import map_consistency

    x = torch.randn(2, 3, 6, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.3
    decode = lambda z: 2.0 * z + torch.tensor([0.5, -0.2, 0.1]).view(1, 3, 1, 1, 1)  # noqa: E731
    with_norm = SimpleNamespace(normalizer=SimpleNamespace(decode=decode))
    want = metrics.frame_cosine_similarity(decode(x).clamp(-1, 1)).numpy()
    np.testing.assert_allclose(map_consistency(with_norm, x), want)
    np.testing.assert_allclose(map_consistency(SimpleNamespace(), x), metrics.frame_cosine_similarity(x).numpy())
    assert not np.allclose(want, metrics.frame_cosine_similarity(x).numpy())  # the clip makes them differ


def test_sweep_store_gives_the_same_map(tmp_path, pipe, cmap_ctrl):
    """The shipped map's path: a cutoff_map sweep (one cell per (d_s, d_t), seeds tiling the videos) turned into a
    map equals one measure_cutoff_map call on the same videos, controls included."""
    from freeinit_lab.cutoff_map import cutoff_map_from_sweep
    from freeinit_lab.sweep import run_sweep

    spec = dict(pipeline="analytic", study="cutoff_map", grid={"d_s": [0.25, 0.8], "d_t": [0.25, 0.8]},
                seeds=[0, 1], videos_per_seed=2, sampler={"num_inference_steps": 3},
                options={"num_iters": 2, "controls": ["mask_only"]})
    store = run_sweep(spec, tmp_path / "map.zarr", progress=False).load()
    got = cutoff_map_from_sweep(store, pipe)
    ref = measure_cutoff_map(pipe, controls=["mask_only"], **{**CTRL, "num_videos": 4, "seed": 0})
    np.testing.assert_allclose(got.gain_per_video, ref.gain_per_video, atol=1e-6)
    np.testing.assert_allclose(got.control_consistency, ref.control_consistency, atol=1e-6)
    np.testing.assert_allclose(got.gain_se, ref.gain_se, atol=1e-6)
    assert got.seed.values.tolist() == [0, 1, 2, 3]
    for key in ("model", "num_inference_steps", "num_iters", "method", "num_pipeline_videos", "scheduler_config"):
        assert np.array_equal(np.asarray(got.attrs[key]), np.asarray(ref.attrs[key])), key
    assert got.attrs["sweep_spec_hash"] == store.attrs["sweep_spec_hash"]
    # a grid listed in descending order (d_s: [0.8, 0.25]) gives the same map, axes ascending as measure_cutoff_map's
    xr.testing.assert_identical(cutoff_map_from_sweep(store.isel(d_s=[1, 0], d_t=[1, 0]), pipe), got)
    with pytest.raises(ValueError, match="incomplete"):
        cutoff_map_from_sweep(store.assign(complete=store.complete & False), pipe)
    with pytest.raises(ValueError, match="not a cutoff-map sweep"):
        cutoff_map_from_sweep(store.assign_attrs(sweep_spec='{"study": "freeinit", "grid": {"d_s": [0.25]}}'), pipe)


@pytest.mark.parametrize("which", ["shipped", "replication"])
def test_shipped_map_is_fresh(which):
    """data/cutoff_map.nc (and its replication on other videos, data/cutoff_map_replication.nc) belongs to the
    embedded default's current weights and sampler and to the committed sweep spec: this fails after retraining
    (rerun `python scripts/precompute_cutoff_map.py --overwrite`, and with `--first-seed 3 --out
    data/cutoff_map_replication.nc` for the replication)."""
    import json
    from pathlib import Path

    from freeinit_lab import load_default_pipeline
    from freeinit_lab.cutoff_map import DEFAULT_CUTOFF_MAP_PATH, DEFAULT_REPLICATION_MAP_PATH
    from freeinit_lab.sweep import SweepSpec

    path = DEFAULT_CUTOFF_MAP_PATH if which == "shipped" else DEFAULT_REPLICATION_MAP_PATH
    cmap = load_cutoff_map(path)
    pipe = load_default_pipeline()
    rebuild = (f"stale {path.name}: rerun `python scripts/precompute_cutoff_map.py --overwrite"
               + (" --first-seed 3 --out data/cutoff_map_replication.nc`" if which == "replication" else "`"))
    assert cmap.attrs["model"] == model_fingerprint(pipe), rebuild
    assert int(cmap.attrs["num_inference_steps"]) == pipe.default_num_inference_steps, rebuild
    assert cmap.attrs["scheduler_class"] == type(pipe.scheduler).__name__, rebuild
    assert tuple(int(v) for v in cmap.attrs["latent_shape"]) == tuple(pipe.sample_shape), rebuild
    config = {k: v for k, v in dict(pipe.scheduler.config).items() if not k.startswith("_")}
    assert json.loads(cmap.attrs["scheduler_config"]) == json.loads(json.dumps(config, default=str)), rebuild
    spec = SweepSpec.from_yaml(Path(__file__).resolve().parents[2] / "scripts" / "cutoff_map_sweep.yaml")
    if which == "replication":  # the same sweep on other videos: only its seeds differ, and none is the shipped map's
        seeds = json.loads(cmap.attrs["sweep_spec"])["seeds"]
        assert len(seeds) == len(spec.seeds) and not set(seeds) & set(spec.seeds), seeds
        spec.seeds = seeds
    assert cmap.attrs["sweep_spec_hash"] == spec.spec_hash(), rebuild  # includes the weights files' fingerprint


def test_contrasts_are_paired_t_intervals(cmap_ctrl):
    from scipy import stats

    from freeinit_lab.cutoff_map import cutoff_map_contrasts

    con = cutoff_map_contrasts(cmap_ctrl, confidence=0.9)
    assert con["mean"].dims == ("contrast", "d_s", "d_t")
    assert con.contrast.values.tolist() == ["freeinit - plain", "plain", "freeinit", "mask_only - plain",
                                            "freeinit - mask_only", "mask_only"]
    np.testing.assert_allclose(con["mean"].sel(contrast="freeinit - plain"), cmap_ctrl.gain)
    np.testing.assert_allclose(con["se"].sel(contrast="freeinit - plain"), cmap_ctrl.gain_se)
    d = (cmap_ctrl.freeinit - cmap_ctrl.control_consistency.sel(control="mask_only")).sel(d_s=0.8, d_t=0.25).values
    lo, hi = stats.t.interval(0.9, d.size - 1, loc=d.mean(), scale=stats.sem(d))
    cell = con.sel(contrast="freeinit - mask_only", d_s=0.8, d_t=0.25)
    assert float(cell["low"]) == pytest.approx(lo) and float(cell["high"]) == pytest.approx(hi)
    no_ctrl = cutoff_map_contrasts(cmap_ctrl.drop_vars(["control_consistency", "control"]))
    assert no_ctrl.contrast.values.tolist() == ["freeinit - plain", "plain", "freeinit"]


def test_precompute_script_applies_its_overrides_as_given(tmp_path, capsys):
    """scripts/precompute_cutoff_map.py once replaced a --seeds 0 (or --videos-per-seed 0, or an empty --grid) by
    the spec's value: '--grid 0.25 --seeds 0 --videos-per-seed 2' wrote a map of 6 videos (the spec's 3 seeds) in
    31 s. A given override is now applied as given, and a bad one is a usage error before anything is sampled."""
    import importlib.util
    import os
    from pathlib import Path
    from unittest import mock

    script = Path(__file__).resolve().parents[2] / "scripts" / "precompute_cutoff_map.py"
    spec = importlib.util.spec_from_file_location("precompute_cutoff_map_script", script)
    mod = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ):
        spec.loader.exec_module(mod)
    common = ["--out", str(tmp_path / "map.nc"), "--store", str(tmp_path / "map.zarr")]
    seen = []

    class Stop(Exception):
        pass

    def run_sweep(spec, store, **kw):
        seen.append(spec)
        raise Stop  # before anything is sampled

    with mock.patch("freeinit_lab.sweep.run_sweep", run_sweep):
        for bad, match in ((["--seeds", "0"], "--seeds 0: give at least 1"),
                           (["--videos-per-seed", "0"], "videos_per_seed"),
                           (["--grid", ","], "--grid gives no cut-offs")):
            with pytest.raises(SystemExit) as err:
                mod.main(common + bad)
            assert err.value.code == 2 and match in capsys.readouterr().err
        assert seen == []
        with pytest.raises(Stop):
            mod.main(common + ["--grid", "0.25", "--seeds", "1", "--videos-per-seed", "2"])
        with pytest.raises(SystemExit) as err:
            mod.main(common + ["--first-seed", "-1"])
        assert err.value.code == 2 and "--first-seed -1" in capsys.readouterr().err
        with pytest.raises(Stop):  # other videos than the shipped map's: seeds K .. K+N-1
            mod.main(common + ["--first-seed", "3", "--seeds", "2"])
        with pytest.raises(Stop):  # the spec's count of seeds, from K
            mod.main(common + ["--first-seed", "5"])
    assert seen[0].seeds == [0] and seen[0].videos_per_seed == 2 and seen[0].grid == {"d_s": [0.25], "d_t": [0.25]}
    assert seen[1].seeds == [3, 4]
    # the map records the command that rebuilds it: every argument but where its store lives
    assert mod.rebuild_command(["--first-seed", "3", "--store", "/tmp/x.zarr", "--out", "a.nc", "--overwrite"]) == (
        "python scripts/precompute_cutoff_map.py --overwrite --first-seed 3 --out a.nc")
    assert mod.rebuild_command(["--store=/tmp/x.zarr"]).endswith("(spec scripts/cutoff_map_sweep.yaml)")
    assert seen[2].seeds == [5, 6, 7]  # scripts/cutoff_map_sweep.yaml lists three seeds


def test_a_stochastic_sampler_is_refused_before_the_map_samples():
    """The map shares one plain pass across its cells and calls the pipeline without generators: a sampler that
    draws random numbers while sampling (DDIM with eta > 0) would make every number depend on the global RNG. It
    is refused after one two-step probe of one video, before any of the map's sampling."""
    from freeinit_lab.cutoff_map import plain_samples

    spipe = load_analytic_pipeline(num_frames=4, height=8)
    spipe.default_eta = 0.7
    videos = []
    handle = spipe.unet.register_forward_pre_hook(lambda _, args: videos.append(args[0].shape[0]))
    try:
        with pytest.raises(ValueError, match=r"deterministic sampler.*default_eta = 0"):
            measure_cutoff_map(spipe, d_s=[0.25], d_t=[0.25], num_videos=2, num_iters=2, num_inference_steps=3,
                               progress=False)
        assert sum(videos) <= 2  # the probe: one video, at most two steps
        with pytest.raises(ValueError, match="deterministic sampler"):
            plain_samples(spipe, [0, 1], 3)
    finally:
        handle.remove()
    spipe.default_eta = 0.0  # deterministic again: accepted
    measure_cutoff_map(spipe, d_s=[0.25], d_t=[0.25], num_videos=2, num_iters=2, num_inference_steps=3,
                       progress=False)
