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
