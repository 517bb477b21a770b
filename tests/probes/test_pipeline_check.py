"""check_pipeline: passes where the probe and FreeInit do what they must, fails (naming the check and the fix) where a
probe, a pipeline or FreeInit changes the result, and refuses bad arguments before the model runs."""

from __future__ import annotations

import warnings

import pytest
import torch

import freeinit_lab as fl
from freeinit_lab.probes import pipeline_check
from freeinit_lab.probes.probe import LatentProbe
from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline, tiny_pipeline

CALL = {**TINY_CALL_KWARGS["AnimateDiffPipeline"], "num_inference_steps": 3}


@pytest.fixture(scope="module")
def animatediff():
    pipe = tiny_animatediff_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _failed(report) -> set[str]:
    return {it.name for it in report.failures}


def test_passes_on_a_pipeline_and_returns_the_runs_it_made(animatediff):
    report = fl.check_pipeline(animatediff, settings={"num_iters": 3}, seed=1, prompt="a cat", **CALL)
    assert report.passed and not report.failures and len(report.items) == len(pipeline_check.FIXES)
    assert [it.name for it in report.items] == list(pipeline_check.FIXES)
    # the runs are returned: the plain run's record and output, FreeInit's passes and their record
    assert report.record.sizes["step"] == 3 and report.record.sizes["iteration"] == 1
    assert report.freeinit_record.sizes["iteration"] == 3 and len(report.freeinit.iterations) == 3
    # the plain run is the pipeline's output for this seed (compared with a run of our own)
    own = animatediff("a cat", generator=torch.Generator().manual_seed(1), output_type="latent", **CALL).frames
    torch.testing.assert_close(report.plain_latents, own, rtol=0, atol=0)
    # plain + FreeInit(1) + three passes, one evaluation per step each
    assert report.num_denoiser_evals == 3 * (1 + 1 + 3)
    text = str(report)
    assert "10 of 10 checks passed" in text and text.count("PASS") == 10
    assert list(report.to_frame().index) == list(pipeline_check.FIXES)


def test_passes_on_a_pipeline_with_another_axis_order():
    """CogVideoX lays latents out (batch, frame, channel, ...): the record is still canonical and matches."""
    name = "CogVideoXPipeline"
    pipe = tiny_pipeline(name, seed=0)
    pipe.set_progress_bar_config(disable=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fl.FreeInitNoGapWarning)  # zero terminal SNR: no gap, still a valid run
        report = fl.check_pipeline(pipe, prompt="a cat", **TINY_CALL_KWARGS[name])
    assert report.passed, str(report)
    canonical = tuple(report.freeinit.iterations[0].clean_latent.shape)
    assert tuple(report.record.latents.shape[2:]) == canonical
    assert tuple(report.plain_latents.shape) != canonical  # the pipeline's own order differs from the canonical one


@pytest.mark.parametrize("scheduler", ["DDIMScheduler", "EulerAncestralDiscreteScheduler"])
def test_fast_sampling_compares_pass_0_with_a_plain_run_of_its_own_steps(animatediff, scheduler):
    """Coarse-to-fine: pass 0 runs n_0 = 1 of N = 3 steps, so it is the plain run of 1 step, not of 3."""
    import diffusers

    pipe = type(animatediff)(**{**animatediff.components,
                                "scheduler": getattr(diffusers, scheduler).from_config(animatediff.scheduler.config)})
    pipe.set_progress_bar_config(disable=True)
    report = fl.check_pipeline(pipe, settings={"num_iters": 3, "fast_sampling": True}, prompt="a cat", **CALL)
    assert report.passed, str(report)
    assert [it.num_inference_steps for it in report.freeinit.iterations] == [1, 2, 3]
    detail = {it.name: it.detail for it in report.items}["first pass is the plain run"]
    assert "plain run of pass 0's 1 steps" in detail
    one_step = pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent",
                    **{**CALL, "num_inference_steps": 1}).frames
    torch.testing.assert_close(report.freeinit.iterations[0].clean_latent, one_step, rtol=1e-5, atol=1e-5)
    # plain + FreeInit(1) + passes of 1, 2, 3 steps + the plain run of 1 step
    assert report.num_denoiser_evals == 3 + 3 + (1 + 2 + 3) + 1


def test_fast_sampling_still_fails_a_first_pass_that_is_not_the_plain_run(animatediff, monkeypatch):
    def perturb(res, kwargs):
        if "settings" in kwargs:
            res.iterations[0].clean_latent = res.iterations[0].clean_latent + 1e-2

    _wrapped_freeinit(monkeypatch, perturb)
    report = fl.check_pipeline(animatediff, settings={"num_iters": 2, "fast_sampling": True}, prompt="a cat",
                               raise_on_failure=False, **CALL)
    assert "first pass is the plain run" in _failed(report)


def test_each_pass_costs_what_a_plain_run_of_its_steps_calls_with_heun(animatediff):
    """Heun evaluates the denoiser 2n - 1 times for n steps: pass costs are not proportional to the step count."""
    import diffusers

    pipe = type(animatediff)(**{**animatediff.components,
                                "scheduler": diffusers.HeunDiscreteScheduler.from_config(animatediff.scheduler.config)})
    pipe.set_progress_bar_config(disable=True)
    report = fl.check_pipeline(pipe, settings={"num_iters": 3, "fast_sampling": True}, prompt="a cat", **CALL)
    assert report.passed, str(report)
    assert [it.num_denoiser_evals for it in report.freeinit.iterations] == [1, 3, 5]
    assert report.record.sizes["step"] == 5  # the plain run of 3 steps: 5 scheduler steps


def _meddling_callback(monkeypatch):
    """A probe whose callback hands the pipeline back changed latents: it no longer only observes."""
    original = LatentProbe._make_callback

    def make(self, user_cb, passed):
        cb, inputs = original(self, user_cb, passed)

        def meddle(pipeline, step_index, timestep, callback_kwargs):
            out = dict(cb(pipeline, step_index, timestep, callback_kwargs) or {})
            out["latents"] = callback_kwargs["latents"] + 0.01
            return out

        return meddle, inputs

    monkeypatch.setattr(LatentProbe, "_make_callback", make)


def test_fails_on_a_probe_that_changes_the_result(animatediff, monkeypatch):
    _meddling_callback(monkeypatch)
    with pytest.raises(fl.PipelineCheckError, match="probe leaves the output unchanged") as err:
        fl.check_pipeline(animatediff, prompt="a cat", **CALL)
    report = err.value.report
    assert "probe leaves the output unchanged" in _failed(report)
    assert "FreeInit with one pass is the pipeline's run" not in _failed(report)  # told apart by an unprobed run
    assert pipeline_check.FIXES["probe leaves the output unchanged"] in str(err.value)
    # the extra unprobed run that told the two apart is counted
    assert report.num_denoiser_evals == 3 * (1 + 1 + 1 + 2)


def test_fails_on_a_pipeline_that_changes_its_latent_after_the_last_step(animatediff):
    """The record's last step is then not the output: the check says so (the output itself is consistent)."""
    import functools

    import diffusers

    class Shifted(diffusers.AnimateDiffPipeline):
        @functools.wraps(diffusers.AnimateDiffPipeline.__call__)  # the same signature
        def __call__(self, *args, **kwargs):
            out = super().__call__(*args, **kwargs)
            if isinstance(out, tuple):  # return_dict=False
                return (out[0] + 0.5, *out[1:])
            out.frames = out.frames + 0.5
            return out

    pipe = Shifted(**animatediff.components)
    pipe.set_progress_bar_config(disable=True)
    report = fl.check_pipeline(pipe, prompt="a cat", raise_on_failure=False, **CALL)
    assert not report.passed
    assert {"record ends at the output", "probe tags every pass"} <= _failed(report)
    assert "probe leaves the output unchanged" not in _failed(report)
    assert "FAIL  record ends at the output" in str(report) and "fix:" in str(report)


@pytest.mark.parametrize("scheduler, defect", [("DDIMScheduler", "ignores"), ("EulerDiscreteScheduler", "unscaled")])
def test_fails_on_a_pipeline_that_does_not_start_from_the_latents_it_is_given(animatediff, scheduler, defect):
    """A pipeline that ignores latents= (draws its own noise) or does not scale it by init_noise_sigma runs other
    passes than FreeInit reports; every other check holds on it, since the plain runs never pass latents=."""
    import inspect

    import diffusers

    base = diffusers.AnimateDiffPipeline

    class OwnNoise(base):
        def prepare_latents(self, *args, **kwargs):
            bound = inspect.signature(base.prepare_latents).bind(self, *args, **kwargs)
            given = bound.arguments.get("latents")
            if given is not None and defect == "unscaled":
                return given
            bound.arguments["latents"] = None
            return base.prepare_latents(*bound.args, **bound.kwargs)

    sched = getattr(diffusers, scheduler).from_config(animatediff.scheduler.config)
    pipe = OwnNoise(**{**animatediff.components, "scheduler": sched})
    pipe.set_progress_bar_config(disable=True)
    report = fl.check_pipeline(pipe, prompt="a cat", raise_on_failure=False, **CALL)
    assert _failed(report) == {"every pass starts from FreeInit's latent"}  # was: every check passed
    assert "passes off: [1]" in str(report) and "fix:" in str(report)
    # the same scheduler on the unmodified pipeline passes
    right = type(animatediff)(**{**animatediff.components, "scheduler": sched})
    right.set_progress_bar_config(disable=True)
    assert fl.check_pipeline(right, prompt="a cat", raise_on_failure=False, **CALL).passed


def _wrapped_freeinit(monkeypatch, change):
    real = pipeline_check.freeinit

    def wrapped(pipe, **kwargs):
        res = real(pipe, **kwargs)
        change(res, kwargs)
        return res

    monkeypatch.setattr(pipeline_check, "freeinit", wrapped)


def test_fails_when_freeinit_with_one_pass_is_not_the_pipeline(animatediff, monkeypatch):
    def perturb(res, kwargs):
        if kwargs.get("num_iters") == 1:
            res.latents = res.latents + 1e-3

    _wrapped_freeinit(monkeypatch, perturb)
    report = fl.check_pipeline(animatediff, prompt="a cat", raise_on_failure=False, **CALL)
    assert _failed(report) == {"FreeInit with one pass is the pipeline's run"}


def test_fails_when_a_pass_costs_more_than_a_plain_run(animatediff, monkeypatch):
    def miscount(res, kwargs):
        if "settings" in kwargs:
            res.iterations[1].num_denoiser_evals += 1

    _wrapped_freeinit(monkeypatch, miscount)
    with pytest.raises(fl.PipelineCheckError, match=r"each pass costs one plain run: 2 passes costing \[3, 4\]"):
        fl.check_pipeline(animatediff, prompt="a cat", **CALL)


def test_fails_on_a_non_finite_pass(animatediff, monkeypatch):
    def diverge(res, kwargs):
        if "settings" in kwargs:
            res.iterations[-1].clean_latent[0, 0, 0, 0, 0] = float("nan")

    _wrapped_freeinit(monkeypatch, diverge)
    report = fl.check_pipeline(animatediff, prompt="a cat", raise_on_failure=False, **CALL)
    assert "every pass is finite" in _failed(report)
    assert "non-finite passes: [1]" in {it.name: it.detail for it in report.items}["every pass is finite"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(generator=torch.Generator()), r"sets \['generator'\] itself"),
        (dict(output_type="np"), r"sets \['output_type'\] itself"),
        (dict(settings={"num_iters": 1}), "at least 2"),
        (dict(settings={"num_iters": 2, "d_s": 0}), "outside"),
        (dict(rtol=-1.0), "tolerances must be >= 0"),
    ],
)
def test_bad_arguments_are_refused_before_sampling(animatediff, refused_before_sampling, kwargs, match):
    call = {**CALL, **kwargs}
    refused_before_sampling(animatediff, lambda p: fl.check_pipeline(p, prompt="a cat", **call), match)


def test_a_pipeline_class_is_refused():
    import diffusers

    with pytest.raises(TypeError, match="is a class; pass a pipeline instance"):
        fl.check_pipeline(diffusers.AnimateDiffPipeline, prompt="a cat")
