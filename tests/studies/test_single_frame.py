"""Studies that score temporal consistency refuse single-frame videos before they sample anything."""

import pytest
import torch

import freeinit_lab as fl
from freeinit_lab.studies.cutoff_map import measure_cutoff_map
from freeinit_lab.studies.evidence import measure_evidence
from freeinit_lab.studies.refinement import refinement_study
from freeinit_lab.studies.strategies import InitStrategy, TerminalMarginal, evaluate_strategies


@pytest.fixture(scope="module")
def one_frame():
    return fl.load_analytic_pipeline(num_frames=1, height=8)


def _reference(pipe):
    return lambda n, s: torch.randn(n, *pipe.sample_shape, generator=torch.Generator().manual_seed(s)).clamp(-1, 1)


STUDIES = {
    "decompose_freeinit": lambda p: fl.decompose_freeinit(p, num_videos=8, num_bootstrap=200, num_inference_steps=2,
                                                          progress=False, controls=["mask_only"]),
    "measure_evidence": lambda p: measure_evidence(p, num_videos=2, num_inference_steps=2, num_iters=2,
                                                   reference=_reference(p), progress=False),
    "refinement_study": lambda p: refinement_study(p, num_videos=2, num_inference_steps=2, num_iters=2,
                                                   filters=("gaussian",), reference=_reference(p)),
    "measure_cutoff_map": lambda p: measure_cutoff_map(p, d_s=[0.25], d_t=[0.25], num_videos=2, num_iters=2,
                                                       num_inference_steps=2, progress=False),
    "evaluate_strategies": lambda p: evaluate_strategies(
        p, [InitStrategy("plain"), InitStrategy("fi", num_iters=2)], data=_reference(p)(4, 0),
        marginal=TerminalMarginal.from_latents(_reference(p)(4, 0), p.scheduler), num_videos=2,
        num_inference_steps=2),
}


@pytest.mark.parametrize("name", list(STUDIES))
def test_single_frame_videos_are_refused_before_sampling(one_frame, name, refused_before_sampling):
    """Temporal consistency needs two frames: a study on one-frame videos used to sample every arm and pass and
    only then fail in the metric; it now says so, naming itself and the frame count, before the denoiser runs."""
    refused_before_sampling(one_frame, STUDIES[name], rf"{name}.*at least 2 frames.*1 frame")
