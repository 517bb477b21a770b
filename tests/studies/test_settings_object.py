"""The studies take FreeInit's settings as one FreeInitSettings object as well as keywords, never both."""

import pytest
import torch

import freeinit_lab as fl
from freeinit_lab.core.reinit import FreeInitSettings


@pytest.fixture(scope="module")
def pipe():
    return fl.load_analytic_pipeline(num_frames=4, height=8)


def test_decomposition_settings_object_equals_keywords(pipe):
    kw = dict(num_videos=8, seed=1, controls=["mask_only"], num_bootstrap=200, progress=False, num_inference_steps=2)
    a = fl.decompose_freeinit(pipe, num_iters=2, method="butterworth", d_s=0.4, d_t=0.3, **kw)
    b = fl.decompose_freeinit(pipe, settings=FreeInitSettings(num_iters=2, method="butterworth", d_s=0.4, d_t=0.3),
                              **kw)
    assert a["consistency"].equals(b["consistency"])
    c = fl.decompose_freeinit(pipe, settings=dict(num_iters=2, method="gaussian", d_s=0.4, d_t=0.3), **kw)
    assert not a["consistency"].equals(c["consistency"])  # the object's method is really used
    with pytest.raises(TypeError, match="either as settings= or as keywords"):
        fl.decompose_freeinit(pipe, d_s=0.5, settings=FreeInitSettings(num_iters=2), **kw)


def test_refinement_and_evidence_accept_the_settings_object(pipe):
    with pytest.raises(TypeError, match="either as settings= or as keywords"):
        fl.refinement_study(pipe, num_iters=3, settings=FreeInitSettings(num_iters=2))
    with pytest.raises(TypeError, match="either as settings= or as keywords"):
        fl.studies.evidence.measure_evidence(pipe, method="butterworth", settings=FreeInitSettings(num_iters=2))
    with pytest.raises(TypeError, match="must be a FreeInitSettings"):
        fl.studies.evidence.measure_evidence(pipe, settings=3)


@pytest.mark.parametrize("field, value", [("mix", "variance_preserving"), ("renoise", "fresh"),
                                          ("legacy_ideal_threshold", True), ("fast_sampling", True)])
def test_settings_a_study_cannot_apply_are_refused_before_sampling(pipe, field, value, monkeypatch):
    """A study that takes only num_iters, method, d_s, d_t and order from settings= refuses an object that sets
    another field (it would run FreeInit's defaults and record nothing of it), before any pipeline call."""
    import functools

    calls = []
    original = type(pipe).__call__

    @functools.wraps(original)
    def guarded(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(pipe), "__call__", guarded)
    s = FreeInitSettings(num_iters=2, method="gaussian", **{field: value})
    studies = [
        lambda: fl.decompose_freeinit(pipe, num_videos=8, num_bootstrap=200, progress=False, settings=s),
        lambda: fl.refinement_study(pipe, num_videos=2, num_inference_steps=2, settings=s),
        lambda: fl.studies.evidence.measure_evidence(pipe, num_videos=2, num_inference_steps=2, progress=False,
                                                     settings=s),
    ]
    for run in studies:
        with pytest.raises(TypeError, match=rf"would ignore.*{field}"):
            run()
    assert not calls


def test_refine_once_refuses_fresh_renoise(pipe):
    """refine_once re-diffuses with the given initial noise (renoise="same"); a settings object asking for fresh
    noise is refused, not silently run with the same noise."""
    x = torch.zeros(1, *pipe.sample_shape)
    with pytest.raises(ValueError, match="renoise"):
        fl.studies.refinement.refine_once(pipe, x, x, num_inference_steps=2,
                                          settings=FreeInitSettings(renoise="fresh", method="gaussian"))
