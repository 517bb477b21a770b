"""A probe never changes a result: bit-identical outputs with and without probes, for stochastic samplers too."""

from __future__ import annotations

import inspect

import pytest
import torch

from freeinit_lab.probes.probe import LatentProbe
from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline, tiny_text_to_video_pipeline


def _scheduler(pipe, name, **over):
    import diffusers

    return getattr(diffusers, name).from_config(pipe.scheduler.config, **over)


def _run(pipe, seed=0, **over):
    kw = {**TINY_CALL_KWARGS[type(pipe).__name__], "num_inference_steps": 3, **over}
    return pipe("a cat", generator=torch.Generator().manual_seed(seed), output_type="latent", **kw).frames


@pytest.fixture(scope="module")
def animatediff():
    return tiny_animatediff_pipeline(seed=0)


def test_probe_keeps_eta_and_generator_visible_to_the_pipeline(animatediff):
    pipe = animatediff
    before = set(inspect.signature(pipe.scheduler.step).parameters)
    with LatentProbe(pipe):
        assert set(inspect.signature(pipe.scheduler.step).parameters) == before
        assert {"eta", "generator"} <= before


def test_ddim_eta_1_is_bit_identical_under_a_probe(animatediff):
    pipe = animatediff
    old = pipe.scheduler
    pipe.scheduler = _scheduler(pipe, "DDIMScheduler")
    try:
        ref = _run(pipe, eta=1.0)
        assert not torch.equal(ref, _run(pipe, eta=0.0))  # eta really reaches the scheduler
        with LatentProbe(pipe) as probe:
            out = _run(pipe, eta=1.0)
        assert torch.equal(ref, out) and probe.num_passes == 1
    finally:
        pipe.scheduler = old


@pytest.mark.parametrize("name", ["DDPMScheduler", "EulerAncestralDiscreteScheduler"])
@pytest.mark.parametrize("builder", [tiny_animatediff_pipeline, tiny_text_to_video_pipeline])
def test_stochastic_samplers_are_seeded_the_same_under_a_probe(builder, name):
    pipe = builder(seed=0)
    pipe.scheduler = _scheduler(pipe, name)
    ref = _run(pipe)
    with LatentProbe(pipe):
        a = _run(pipe)
        b = _run(pipe)
    assert torch.equal(a, b) and torch.equal(a, ref)


def test_a_pass_through_wrapper_of_step_installed_by_someone_else(animatediff):
    pipe = animatediff
    ref = _run(pipe)
    orig = pipe.scheduler.step
    pipe.scheduler.step = lambda *a, **k: orig(*a, **k)
    try:
        with LatentProbe(pipe, capture=("latents", "latents_in", "x0_pred", "model_output")) as probe:
            out = _run(pipe)
        assert torch.equal(ref, out)
        ds = probe.to_xarray()
        assert ds.sizes["step"] == 3 and all(bool(ds[n].notnull().all()) for n in ds.data_vars)
        assert ds.timestep.values.tolist()[0] == pipe.scheduler.timesteps.tolist()
    finally:
        del pipe.scheduler.step


# ------------------------------------------------------------------------------------------------ the matrix
_SCHEDULERS = {
    "ddim-eta0": ("DDIMScheduler", {"eta": 0.0}),
    "ddim-eta1": ("DDIMScheduler", {"eta": 1.0}),
    "ddpm": ("DDPMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-ancestral": ("EulerAncestralDiscreteScheduler", {}),
    "dpm-multistep": ("DPMSolverMultistepScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
}


def _analytic():
    import freeinit_lab as fl

    return fl.load_analytic_pipeline(num_frames=4, height=8)


def _default():
    import freeinit_lab as fl

    return fl.load_default_pipeline()


_PIPELINES = {"animatediff": tiny_animatediff_pipeline, "text-to-video": tiny_text_to_video_pipeline,
              "analytic": _analytic, "default": _default}
_BUILT: dict = {}


def _pipe(name):
    if name not in _BUILT:
        _BUILT[name] = _PIPELINES[name]() if name in ("analytic", "default") else _PIPELINES[name](seed=0)
    return _BUILT[name]


def _call(pipe, sched_kw, freeinit):
    import freeinit_lab as fl

    if type(pipe).__name__ == "TinyVideoPipeline":
        kw = {"num_inference_steps": 3, "output_type": "latent", **sched_kw}
    else:
        kw = {**TINY_CALL_KWARGS[type(pipe).__name__], "num_inference_steps": 3, "output_type": "latent",
              **sched_kw}
    gen = torch.Generator().manual_seed(0)
    if freeinit:
        return fl.freeinit(pipe, num_iters=2, prompt="a cat", generator=gen, progress=False, **kw).latents
    out = pipe("a cat", generator=gen, **kw)
    return out.frames if hasattr(out, "frames") else out[0]


def _install_scheduler(pipe, name):
    import diffusers

    cls_name, _ = _SCHEDULERS[name]
    if not hasattr(pipe, "_base_scheduler_config"):
        pipe._base_scheduler_config = pipe.scheduler.config
    pipe.scheduler = getattr(diffusers, cls_name).from_config(pipe._base_scheduler_config)


@pytest.mark.slow
@pytest.mark.parametrize("freeinit", [False, True], ids=["plain", "freeinit"])
@pytest.mark.parametrize("sched", list(_SCHEDULERS))
@pytest.mark.parametrize("pipeline", list(_PIPELINES))
def test_probe_identity_matrix(pipeline, sched, freeinit):
    """Outputs are bit-identical with no probe, with two nested probes closed in either order, and with a probe
    over a ``scheduler.step`` that someone else wrapped."""
    pipe = _pipe(pipeline)
    _install_scheduler(pipe, sched)
    sched_kw = _SCHEDULERS[sched][1]
    cls, step = type(pipe), pipe.scheduler.step
    ref = _call(pipe, sched_kw, freeinit)
    records = []
    for close_outer_first in (False, True):
        outer = LatentProbe(pipe, capture=("latents", "x0_pred"))
        inner = LatentProbe(pipe, capture="latents", every=2)
        outer.__enter__()
        inner.__enter__()
        try:
            out = _call(pipe, sched_kw, freeinit)
        finally:
            first, second = (outer, inner) if close_outer_first else (inner, outer)
            first.__exit__(None, None, None)
            second.__exit__(None, None, None)
        assert torch.equal(out, ref), f"a probe changed the output (outer closed first: {close_outer_first})"
        assert type(pipe) is cls and pipe.scheduler.step == step and "step" not in vars(pipe.scheduler)
        assert outer.complete and inner.complete
        records.append(outer.to_xarray())
        assert outer.num_passes == (2 if freeinit else 1)
    assert records[0].latents.equals(records[1].latents)
    orig = pipe.scheduler.step
    pipe.scheduler.step = lambda *a, **k: orig(*a, **k)  # a scheduler wrapped by someone else
    try:
        # the wrapper hides eta and generator from diffusers (stochastic steps then draw from the global RNG):
        # compare like for like
        torch.manual_seed(0)
        wrapped_ref = _call(pipe, sched_kw, freeinit)
        torch.manual_seed(0)
        with LatentProbe(pipe, capture="latents") as probe:
            out = _call(pipe, sched_kw, freeinit)
        assert torch.equal(out, wrapped_ref) and probe.num_passes == (2 if freeinit else 1)
    finally:
        del pipe.scheduler.step
