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
