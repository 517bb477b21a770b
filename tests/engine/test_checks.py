"""freeinit refuses bad calls before any denoiser evaluation, with a message that says what to pass."""

from __future__ import annotations

import pytest
import torch

import freeinit_lab as fl
from freeinit_lab.engine.checks import _forces_one_video_per_prompt
from freeinit_lab.probes.probe import LatentProbe
from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline, tiny_text_to_video_pipeline

AD = "AnimateDiffPipeline"


@pytest.fixture(scope="module")
def ad_pipe():
    return tiny_animatediff_pipeline(seed=0)


@pytest.fixture()
def evals(ad_pipe):
    calls = []
    handle = ad_pipe.unet.register_forward_pre_hook(lambda m, a: calls.append(1))
    yield calls
    handle.remove()


def _freeinit(pipe, **over):
    kw = {**TINY_CALL_KWARGS[AD], "num_inference_steps": 2, "prompt": "a cat", "output_type": "latent",
          "generator": torch.Generator().manual_seed(0), **over}
    return fl.freeinit(pipe, num_iters=2, progress=False, **kw)


def _latents(dtype=torch.float32):
    return torch.randn(1, 4, 8, 16, 16, generator=torch.Generator().manual_seed(0)).to(dtype)


@pytest.mark.parametrize(
    "over,message",
    [
        ({"output_type": "mp4"}, r"output_type='mp4' is not one the pipeline can return; use one of"),
        ({"prompt": []}, r"nothing to sample: the batch is empty"),
        ({"latents": _latents(torch.float16)}, r"latents are float16 but AnimateDiffPipeline's denoiser runs in "
                                                r"float32; pass latents.to\(torch.float32\)"),
        ({"latents": _latents().index_fill_(3, torch.tensor([2]), float("nan"))},
         r"initial latents hold 512 non-finite value\(s\)"),
    ],
    ids=["output_type", "empty-prompts", "fp16-latents", "nan-latents"],
)
def test_bad_calls_are_refused_before_the_model_runs(ad_pipe, evals, over, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _freeinit(ad_pipe, **over)
    assert evals == []


def test_batch_size_zero_is_refused_before_the_model_runs():
    pipe = fl.load_analytic_pipeline(num_frames=4, height=8)
    calls = []
    handle = pipe.unet.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        with pytest.raises(ValueError, match="nothing to sample"):
            fl.freeinit(pipe, num_iters=2, batch_size=0, num_inference_steps=2, output_type="latent", progress=False)
    finally:
        handle.remove()
    assert calls == []


def test_generator_lists_count_what_the_pipeline_really_samples(ad_pipe):
    assert _forces_one_video_per_prompt(type(ad_pipe))
    assert not _forces_one_video_per_prompt(type(tiny_text_to_video_pipeline(seed=0)))
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    # AnimateDiff makes one video per prompt whatever num_videos_per_prompt says: one generator per prompt
    res = _freeinit(ad_pipe, prompt=["a cat", "a dog"], generator=gens, num_videos_per_prompt=3)
    assert res.latents.shape[0] == 2
    with LatentProbe(ad_pipe, capture="latents"):  # also under a probe (a per-instance subclass)
        assert _forces_one_video_per_prompt(type(ad_pipe))
    with pytest.raises(ValueError, match=r"Got 6 generators for a batch of 2 videos \(one per prompt: "
                                         r"AnimateDiffPipeline makes one video per prompt.*pass exactly 2"):
        _freeinit(ad_pipe, prompt=["a cat", "a dog"], generator=[torch.Generator() for _ in range(6)],
                  num_videos_per_prompt=3)


def test_a_pipeline_with_a_stored_sampler_needs_no_step_count():
    """Without num_inference_steps, FreeInit runs every pass with the pipeline's own default (the stored sampler)."""
    pipe = fl.load_analytic_pipeline(num_frames=4, height=8)
    pipe.default_num_inference_steps = 3
    res = fl.freeinit(pipe, num_iters=2, batch_size=1, generator=torch.Generator().manual_seed(0),
                      output_type="latent", progress=False)
    assert [it.num_inference_steps for it in res.iterations] == [3, 3]
    plain = pipe(batch_size=1, generator=torch.Generator().manual_seed(0), output_type="latent").frames
    torch.testing.assert_close(res.iterations[0].clean_latent, plain, rtol=0, atol=0)


def test_studies_take_the_stored_sampler_then_the_fallback_and_name_the_fix_without_either():
    from types import SimpleNamespace

    from freeinit_lab.engine.checks import resolve_num_inference_steps

    stored = SimpleNamespace(default_num_inference_steps=7)
    bare = SimpleNamespace()
    assert resolve_num_inference_steps(stored) == 7
    assert resolve_num_inference_steps(stored, 3) == 3
    assert resolve_num_inference_steps(bare, fallback=25) == 25
    with pytest.raises(ValueError, match="pass num_inference_steps"):
        resolve_num_inference_steps(bare)
    with pytest.raises(ValueError, match=">= 1"):
        resolve_num_inference_steps(stored, 0)



@pytest.mark.parametrize("run", [
    lambda cls: fl.freeinit(cls, num_iters=2, prompt="a cat", num_inference_steps=2),
    lambda cls: fl.decompose_freeinit(cls, num_videos=8, prompt="a cat", num_inference_steps=2, progress=False),
    lambda cls: LatentProbe(cls),
], ids=["freeinit", "decompose_freeinit", "LatentProbe"])
@pytest.mark.parametrize("name", ["AnimateDiffPipeline", "WanPipeline"])
def test_a_pipeline_class_instead_of_an_instance_is_named(run, name):
    # AnimateDiffPipeline's class attribute free_init_enabled (a property) read as "diffusers' FreeInit is enabled";
    # WanPipeline's missing class attribute `scheduler` as a layout to fix
    import diffusers

    with pytest.raises(TypeError, match=rf"{name} is a class.*from_pretrained"):
        run(getattr(diffusers, name))
