"""Tests of freeinit_lab.probes (and freeinit_lab.io) on tiny random-weight pipelines built in code."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import xarray as xr

from freeinit_lab import analysis
from freeinit_lab.hooks.layouts import get_layout
from freeinit_lab.probes.io import load_record, save_record
from freeinit_lab.probes.probe import (
    _ACTIVE,
    CAPTURE_SITES,
    LatentProbe,
    ProbeBudgetError,
    estimate_capture_bytes,
    mark_iteration,
)
from freeinit_lab.testing import (
    TINY_CALL_KWARGS,
    tiny_animatediff_pipeline,
    tiny_cogvideox_pipeline,
    tiny_text_to_video_pipeline,
)

ALL_SITES = CAPTURE_SITES


def _kw(pipe, **over):
    kw = dict(TINY_CALL_KWARGS[type(pipe).__name__])
    kw.update(over)
    return kw


def _run(pipe, seed=0, prompt="a cat", **over):
    return pipe(prompt, generator=torch.Generator().manual_seed(seed), output_type="latent", **_kw(pipe, **over)).frames


def _assert_clean(pipe, cls):
    """Nothing the probe installed is left on the pipeline or its scheduler."""
    assert type(pipe) is cls
    assert "step" not in vars(pipe.scheduler) and "set_timesteps" not in vars(pipe.scheduler)
    assert id(pipe) not in _ACTIVE


@pytest.fixture(scope="module")
def animatediff():
    return tiny_animatediff_pipeline(seed=0)


@pytest.fixture(scope="module")
def t2v():
    return tiny_text_to_video_pipeline(seed=0)


@pytest.fixture(scope="module")
def cogvideox():
    return tiny_cogvideox_pipeline(seed=0)


@pytest.fixture(scope="module")
def full_run(animatediff):
    """One probed 3-step AnimateDiff call with every capture site, plus the unprobed reference output."""
    ref = _run(animatediff, num_inference_steps=3)
    with LatentProbe(animatediff, capture=ALL_SITES) as probe:
        out = _run(animatediff, num_inference_steps=3)
    return ref, out, probe.to_xarray()


# ------------------------------------------------------------------------------------------------ pipelines
def test_animatediff_output_unchanged_and_record(full_run, animatediff):
    ref, out, ds = full_run
    assert torch.equal(ref, out)  # bit-identical with and without the probe
    _assert_clean(animatediff, type(animatediff))
    assert ds["latents"].dims == ("iteration", "step", "batch", "channel", "frame", "height", "width")
    assert dict(ds.sizes) == {"iteration": 1, "step": 3, "batch": 1, "channel": 4, "frame": 8, "height": 16,
                              "width": 16}
    animatediff.scheduler.set_timesteps(3)
    np.testing.assert_array_equal(ds.timestep.values[0], animatediff.scheduler.timesteps.numpy())
    # the last recorded latent is the output; each step's input is the previous step's output
    np.testing.assert_array_equal(ds.latents.values[0, -1], out.numpy())
    np.testing.assert_array_equal(ds.latents_in.values[0, 1:], ds.latents.values[0, :-1])
    # alpha_bar coords are the scheduler's own alphas_cumprod at each timestep
    ac = animatediff.scheduler.alphas_cumprod.double().numpy()
    np.testing.assert_allclose(ds.alpha_bar.values[0], ac[ds.timestep.values[0].astype(int)], rtol=1e-12)
    # DDIM's pred_original_sample obeys x0 = (z_t - b_t eps) / a_t with the recorded coords
    x0 = (ds.latents_in - ds.sigma * ds.model_output) / ds.alpha
    np.testing.assert_allclose(ds.x0_pred.values, x0.values, rtol=1e-4, atol=1e-4)
    assert ds.attrs["pipeline_class"].endswith("AnimateDiffPipeline")
    assert ds.attrs["seed"] == 0 and ds.attrs["schedule_family"] == "ddpm"
    assert '"num_train_timesteps": 1000' in ds.attrs["scheduler_config"]


def test_text_to_video_without_step_callback(t2v):
    """TextToVideoSDPipeline has no callback_on_step_end and steps frames as images: the step wrapper records."""
    assert "callback_on_step_end" not in inspect.signature(type(t2v).__call__).parameters
    ref = _run(t2v, num_inference_steps=2)
    legacy = []
    with LatentProbe(t2v, capture=("latents", "x0_pred")) as probe:
        out = _run(t2v, num_inference_steps=2, callback=lambda i, t, x: legacy.append(i), callback_steps=1)
    assert torch.equal(ref, out)
    assert legacy == [0, 1]
    _assert_clean(t2v, type(t2v))
    ds = probe.to_xarray()
    assert dict(ds.sizes)["frame"] == 8 and dict(ds.sizes)["step"] == 2
    np.testing.assert_array_equal(ds.latents.values[0, -1], out.numpy())
    assert np.isfinite(ds.x0_pred.values).all()


def test_cogvideox_layout_is_canonical(cogvideox):
    """CogVideoX latents are (batch, frame, channel, h, w); the record is canonical."""
    ref = _run(cogvideox)
    with LatentProbe(cogvideox) as probe:
        out = _run(cogvideox)
    assert torch.equal(ref, out)
    ds = probe.to_xarray()
    assert ds.latents.shape[2:] == (1, 4, 5, 8, 8)
    np.testing.assert_array_equal(ds.latents.values[0, -1], get_layout(cogvideox).to_canonical(out).numpy())
    _assert_clean(cogvideox, type(cogvideox))


def test_x0_computed_when_scheduler_has_none():
    """DPM-Solver++ returns no pred_original_sample: x0 comes from the schedule and the model output."""
    from diffusers import DPMSolverMultistepScheduler

    pipe = tiny_animatediff_pipeline(seed=0)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    with LatentProbe(pipe, capture=("latents_in", "x0_pred", "model_output")) as probe:
        _run(pipe, num_inference_steps=2)
    ds = probe.to_xarray()
    ac = pipe.scheduler.alphas_cumprod.double().numpy()[ds.timestep.values[0].astype(int)]
    a = np.sqrt(ac)[:, None, None, None, None, None]
    b = np.sqrt(1 - ac)[:, None, None, None, None, None]
    expected = (ds.latents_in.values[0] - b * ds.model_output.values[0]) / a
    np.testing.assert_allclose(ds.x0_pred.values[0], expected, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------------ callbacks
def test_user_callback_same_arguments_and_return_value(animatediff):
    def make(log):
        def cb(pipe, i, t, kwargs):
            log.append((i, int(t), sorted(kwargs), {k: v.clone() for k, v in kwargs.items()}))
            if i == 1:  # edit the latents: the pipeline (and the record) must continue from the edit
                return {"latents": kwargs["latents"] * 0.5}
            return {}

        return cb

    plain, probed = [], []
    ref = _run(animatediff, num_inference_steps=3, callback_on_step_end=make(plain))
    with LatentProbe(animatediff, capture=("latents",)) as probe:
        out = _run(animatediff, num_inference_steps=3, callback_on_step_end=make(probed))
    assert torch.equal(ref, out)
    assert [(i, t, k) for i, t, k, _ in plain] == [(i, t, k) for i, t, k, _ in probed]
    for (_, _, _, a), (_, _, _, b) in zip(plain, probed):
        assert all(torch.equal(a[k], b[k]) for k in a)
    ds = probe.to_xarray()
    np.testing.assert_array_equal(ds.latents.values[0, 1], (probed[1][3]["latents"] * 0.5).numpy())
    np.testing.assert_array_equal(ds.latents.values[0, -1], out.numpy())


def test_user_callback_tensor_inputs_without_latents(animatediff):
    """A callback that asked only for prompt_embeds still sees only prompt_embeds."""
    seen = []

    def cb(pipe, i, t, kwargs):
        seen.append(sorted(kwargs))
        return kwargs

    with LatentProbe(animatediff, capture=("latents",)) as probe:
        _run(animatediff, num_inference_steps=2, callback_on_step_end=cb,
             callback_on_step_end_tensor_inputs=["prompt_embeds"])
    assert seen == [["prompt_embeds"], ["prompt_embeds"]]
    assert np.isfinite(probe.to_xarray().latents.values).all()


def test_everything_removed_when_the_call_raises(animatediff):
    cls = type(animatediff)
    ref = _run(animatediff, num_inference_steps=2)

    def boom(pipe, i, t, kwargs):
        if i == 1:
            raise RuntimeError("boom")
        return {}

    with pytest.raises(RuntimeError, match="boom"):
        with LatentProbe(animatediff) as probe:
            _run(animatediff, num_inference_steps=2, callback_on_step_end=boom)
    _assert_clean(animatediff, cls)
    assert probe.num_passes == 1  # what was recorded before the error is kept
    assert torch.equal(_run(animatediff, num_inference_steps=2), ref)
    with pytest.raises(KeyError):
        with LatentProbe(animatediff):
            raise KeyError("inside the block")
    _assert_clean(animatediff, cls)


# ------------------------------------------------------------------------------------------------ iterations
def test_diffusers_freeinit_iterations_tagged(animatediff):
    """diffusers' FreeInit runs every pass inside one call: the step index restarts and the timestep jumps up."""
    animatediff.enable_free_init(num_iters=3, use_fast_sampling=True, method="gaussian")
    try:
        ref = _run(animatediff, num_inference_steps=4)
        with LatentProbe(animatediff, capture=("latents",)) as probe:
            out = _run(animatediff, num_inference_steps=4)
    finally:
        animatediff.disable_free_init()
    assert torch.equal(ref, out)
    ds = probe.to_xarray()
    assert ds.sizes["iteration"] == 3
    assert ds.freeinit_iteration.values.tolist() == [0, 1, 2]
    assert ds.run.values.tolist() == [0, 0, 0] and ds.call.values.tolist() == [0, 0, 0]
    assert ds.num_steps.values.tolist() == [1, 2, 4]  # coarse-to-fine: max(1, int(4 / 3 * (i + 1)))
    assert np.isfinite(ds.timestep.values).sum(axis=1).tolist() == [1, 2, 4]
    assert ds.attrs["freeinit_num_iters"] == 3 and ds.attrs["freeinit_method"] == "gaussian"
    np.testing.assert_array_equal(ds.latents.values[2, 3], out.numpy())


def test_freeinit_engine_passes(animatediff):
    """freeinit() runs one pipeline call per pass; the record has one iteration per pass."""
    from freeinit_lab.engine.loop import freeinit

    kw = _kw(animatediff, num_inference_steps=3)
    ref = freeinit(animatediff, num_iters=2, prompt="a cat", generator=torch.Generator().manual_seed(0),
                   output_type="latent", **kw)
    with LatentProbe(animatediff, capture=("latents",)) as probe:
        res = freeinit(animatediff, num_iters=2, prompt="a cat", generator=torch.Generator().manual_seed(0),
                       output_type="latent", **kw)
    assert torch.equal(ref.latents, res.latents)
    ds = probe.to_xarray()
    assert ds.sizes["iteration"] == 2 and ds.call.values.tolist() == [0, 1]
    np.testing.assert_array_equal(ds.latents.values[1, -1], res.latents.numpy())
    np.testing.assert_array_equal(ds.latents.values[0, -1], res.iterations[0].clean_latent.numpy())


def test_freeinit_engine_passes_share_a_run(animatediff):
    from freeinit_lab.engine.loop import freeinit

    with LatentProbe(animatediff, capture=("latents",), mode="band_power") as probe:
        freeinit(animatediff, num_iters=2, prompt="a cat", generator=torch.Generator().manual_seed(0),
                 output_type="latent", **_kw(animatediff, num_inference_steps=2))
    ds = probe.to_xarray()
    assert ds.run.values.tolist() == [0, 0] and ds.freeinit_iteration.values.tolist() == [0, 1]


def test_probe_observes_the_scheduler_the_layout_names(scheduler_at):
    """A pipeline registered with LatentLayout(scheduler="sampler") is recorded exactly as the same pipeline with
    its scheduler at pipe.scheduler: steps, x0, alpha/sigma coords and scheduler attrs from pipe.sampler, none from
    the decoy at pipe.scheduler."""
    from freeinit_lab.engine.loop import freeinit

    records = {}
    for attribute in ("scheduler", "sampler"):
        pipe = scheduler_at(attribute)
        for layout in (None, tuple(get_layout(pipe).dims)):  # dims alone keep the registered scheduler attribute
            with LatentProbe(pipe, capture=ALL_SITES, layout=layout) as probe:
                freeinit(pipe, num_iters=2, num_inference_steps=3, generator=torch.Generator().manual_seed(0),
                         output_type="latent")
            ds = probe.to_xarray()
            ds.attrs.pop("pipeline_class")
            records[attribute, layout is None] = ds
        assert "step" not in vars(pipe.scheduler)
    ref = records["scheduler", True]
    assert ref.sizes["iteration"] == 2 and ref.attrs["scheduler_class"] == "DDIMScheduler"
    for ds in records.values():
        xr.testing.assert_identical(ds, ref)


def test_probe_checks_the_channel_axis_of_the_denoiser_the_layout_names(denoiser_at):
    """A pipeline registered with LatentLayout(denoiser="model") is recorded; a probe layout that names its frame
    axis 'channel' is refused before the first step, as dims (the registered denoiser) or as a LatentLayout, though
    the decoy at pipe.unet has as many channels as the latent has frames."""
    from freeinit_lab.hooks.layouts import LatentLayout

    pipe = denoiser_at("model")
    with LatentProbe(pipe, capture=("latents",)) as probe:
        pipe(num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="latent")
    assert probe.to_xarray().sizes["channel"] == 3
    bfchw = ("batch", "frame", "channel", "height", "width")
    for layout in (bfchw, LatentLayout(bfchw, "model")):
        calls = []
        h = pipe.model.register_forward_pre_hook(lambda m, a: calls.append(1))
        try:
            with pytest.raises(ValueError, match=r"(?s)LatentProbe.*have 8 channels, but its denoiser works on 3"):
                with LatentProbe(pipe, capture=("latents",), layout=layout):
                    pipe(num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="latent")
        finally:
            h.remove()
        assert calls == []


_CAPTURE_ATTRS = """
import json, torch
from freeinit_lab.engine.loop import freeinit
from freeinit_lab.probes.probe import LatentProbe
from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline
pipe = tiny_animatediff_pipeline(seed=0)
with LatentProbe(pipe, capture=("latents",), mode="band_power") as probe:
    res = freeinit(pipe, prompt="a cat", num_iters=2, generator=torch.Generator().manual_seed(0),
                   output_type="latent", **TINY_CALL_KWARGS["AnimateDiffPipeline"])
print(json.dumps([{k: str(v) for k, v in ds.attrs.items()} for ds in (probe.to_xarray(), res.to_xarray())]))
"""


def test_the_scheduler_config_attr_is_the_same_in_every_process():
    """Two identical captures in processes with different string hashing (PYTHONHASHSEED) write identical attrs:
    diffusers' ``_use_default_values`` in the scheduler config (collected from a set) is stored sorted."""
    import json
    import os
    import subprocess
    import sys

    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONHASHSEED": seed}
        proc = subprocess.run([sys.executable, "-c", _CAPTURE_ATTRS], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert runs[0] == runs[1]
    config = json.loads(runs[0][0]["scheduler_config"])
    assert config["_use_default_values"] == sorted(config["_use_default_values"]) != []


def test_mark_iteration_and_separate_calls(animatediff):
    """Explicit marks join separate calls into one run; unmarked calls are new runs."""
    with LatentProbe(animatediff, capture=("latents",), mode="band_power") as probe:
        mark_iteration(animatediff, 0, num_iters=2, method="butterworth")
        _run(animatediff, num_inference_steps=2)
        mark_iteration(animatediff, 1, num_iters=2, method="butterworth")
        _run(animatediff, num_inference_steps=2)
        _run(animatediff, seed=3, num_inference_steps=2)  # an unrelated video
    mark_iteration(animatediff, 0)  # no probe open: a no-op
    ds = probe.to_xarray()
    assert ds.run.values.tolist() == [0, 0, 1]
    assert ds.freeinit_iteration.values.tolist() == [0, 1, 0]
    assert ds.seed.values.tolist() == [0, 0, 3]
    assert ds.attrs["freeinit_num_iters"] == 2


def test_pass_detection_from_timesteps_alone(animatediff):
    """A hand-written loop that restarts without set_timesteps is split where the timestep rises."""
    sched = animatediff.scheduler
    sched.set_timesteps(3)
    g = torch.Generator().manual_seed(0)
    with LatentProbe(animatediff, capture=("latents", "x0_pred")) as probe:
        for _ in range(2):
            x = torch.randn(1, 4, 4, 8, 8, generator=g)
            for t in sched.timesteps:
                x = sched.step(torch.zeros_like(x), t, x).prev_sample
    ds = probe.to_xarray()
    assert ds.sizes["iteration"] == 2 and ds.sizes["step"] == 3
    np.testing.assert_array_equal(ds.timestep.values[0], ds.timestep.values[1])


# ------------------------------------------------------------------------------------------------ memory modes
def test_memory_modes_give_the_same_band_powers(animatediff, full_run, tmp_path):
    def probe_run(**kw):
        with LatentProbe(animatediff, capture=("latents", "x0_pred"), **kw) as probe:
            _run(animatediff, num_inference_steps=3)
        return probe.to_xarray()

    full = full_run[2][["latents", "x0_pred"]]  # same call, every site captured
    ref = analysis.band_power_trajectory(full, "x0_pred")
    band = probe_run(mode="band_power")
    np.testing.assert_allclose(band.x0_pred.values, ref.values, rtol=1e-6)  # float32 |X|^2 in the loop
    np.testing.assert_array_equal(band.band_hi.values, ref.band_hi.values)
    every = probe_run(every=2)
    assert every.step.values.tolist() == [0, 2]  # every 2nd step and the last one
    np.testing.assert_array_equal(every.latents.values, full.latents.sel(step=[0, 2]).values)
    half = probe_run(dtype=torch.float16)
    assert half.latents.dtype == np.float16
    np.testing.assert_allclose(analysis.band_power_trajectory(half, "x0_pred").values, ref.values, rtol=2e-3)
    streamed = probe_run(store=tmp_path / "stream.zarr")
    full_attrs = dict(full.attrs, capture="latents x0_pred")
    xr.testing.assert_equal(streamed.load(), full)
    assert streamed.attrs == full_attrs
    xr.testing.assert_equal(load_record(tmp_path / "stream.zarr"), full)


_ROUND_TRIP_KINDS = {"float32": {}, "float16-every2": {"dtype": torch.float16, "every": 2},
                     "band_power": {"mode": "band_power"}}


@pytest.fixture(scope="module")
def round_trip_records(animatediff):
    records = {}
    for name, kw in _ROUND_TRIP_KINDS.items():
        with LatentProbe(animatediff, capture=("latents", "x0_pred"), **kw) as probe:
            _run(animatediff, num_inference_steps=3)
            _run(animatediff, seed=1, num_inference_steps=2)  # ragged passes: NaN padding must survive too
        records[name] = probe.to_xarray()
    return records


@pytest.mark.parametrize("kind", list(_ROUND_TRIP_KINDS))
@pytest.mark.parametrize("suffix", ["nc", "zarr"])
def test_netcdf_and_zarr_round_trip_bit_identical(round_trip_records, tmp_path, kind, suffix):
    ds = round_trip_records[kind]
    assert np.isnan(ds.latents.values[1, -1]).all()  # the 2-step pass is padded
    if kind == "float32":  # analysis keeps the padding as NaN
        bp = analysis.band_power_trajectory(ds, "latents")
        assert np.isnan(bp.values[1, -1]).all() and np.isfinite(bp.values[0]).all()
    path = tmp_path / f"record.{suffix}"
    save_record(ds, path)
    back = load_record(path)
    steps = int(np.isfinite(ds.timestep.values).sum())  # save_record adds the number of steps stored
    xr.testing.assert_identical(back, ds.assign_attrs(num_steps_stored=steps))
    for name, var in ds.variables.items():
        assert back[name].dtype == var.dtype
        assert np.asarray(back[name].values).tobytes() == np.asarray(var.values).tobytes(), name
    with pytest.raises(FileExistsError):
        save_record(ds, path)


def test_budget_refused_before_sampling(animatediff):
    calls = []
    handle = animatediff.unet.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        with pytest.raises(ProbeBudgetError) as info:
            with LatentProbe(animatediff, max_bytes=10_000) as probe:
                _run(animatediff, num_inference_steps=3)
    finally:
        handle.remove()
    assert calls == []  # refused before the first denoising step
    msg = str(info.value)
    need = estimate_capture_bytes((1, 4, 8, 16, 16), [3])
    assert need == 2 * 3 * 4 * 8 * 16 * 16 * 4
    for text in ("max_bytes=10000", "96.0 KiB", "float16", "every=2", "band_power", "store="):
        assert text in msg, text
    assert probe.num_passes == 0
    _assert_clean(animatediff, type(animatediff))
    # the estimate is exact: a budget of exactly the estimate passes and holds that much
    with LatentProbe(animatediff, max_bytes=need) as probe:
        _run(animatediff, num_inference_steps=3)
    assert probe.nbytes == need


def test_budget_counts_diffusers_freeinit_passes(animatediff):
    animatediff.enable_free_init(num_iters=3)
    one_pass = estimate_capture_bytes((1, 4, 8, 16, 16), [2], capture=("latents",))
    try:
        with pytest.raises(ProbeBudgetError, match=r"3 pass\(es\)"):
            with LatentProbe(animatediff, capture=("latents",), max_bytes=2 * one_pass):
                _run(animatediff, num_inference_steps=2)
    finally:
        animatediff.disable_free_init()


# ------------------------------------------------------------------------------------------------ API edges
def test_argument_errors_and_reuse(animatediff, tmp_path):
    with pytest.raises(ValueError, match="capture"):
        LatentProbe(animatediff, capture=("latent",))
    with pytest.raises(ValueError, match="mode"):
        LatentProbe(animatediff, mode="fft")
    with pytest.raises(ValueError, match="dtype"):
        LatentProbe(animatediff, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="every"):
        LatentProbe(animatediff, every=0)
    (tmp_path / "x.zarr").mkdir()
    with pytest.raises(FileExistsError, match="new path"):
        LatentProbe(animatediff, store=tmp_path / "x.zarr")
    probe = LatentProbe(animatediff)
    with probe:
        with pytest.raises(RuntimeError, match="already open"):
            probe.__enter__()
    with pytest.raises(RuntimeError, match="new LatentProbe"):
        probe.__enter__()
    assert probe.to_xarray().sizes == {}  # nothing was sampled
    _assert_clean(animatediff, type(animatediff))


def test_band_power_plot_in_one_line(full_run):
    import plotly.express as px

    _, _, ds = full_run
    fig = px.line(analysis.band_power_trajectory(ds).isel(iteration=0, batch=0).mean("channel").to_pandas(), log_y=True)
    assert len(fig.data) == 6  # one line per band


def test_default_pipeline():
    from freeinit_lab import load_default_pipeline

    pipe = load_default_pipeline()
    ref = pipe("a cat", num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="latent")
    with LatentProbe(pipe) as probe:
        out = pipe("a cat", num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="latent")
    first = lambda o: o[0] if isinstance(o, tuple) else getattr(o, "frames", o)  # noqa: E731
    assert torch.equal(first(ref), first(out))
    ds = probe.to_xarray()
    assert ds.sizes["step"] == 2 and np.isfinite(ds.latents.values).all()
