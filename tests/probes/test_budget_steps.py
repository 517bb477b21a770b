"""max_bytes counts the steps of the call being made and every planned FreeInit pass, before any sampling."""

from __future__ import annotations

import re

import pytest
import torch

import freeinit_lab as fl
from freeinit_lab.probes.probe import LatentProbe, ProbeBudgetError, estimate_capture_bytes
from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline


def _count_evals(pipe):
    calls = []
    return calls, pipe.unet.register_forward_pre_hook(lambda m, a: calls.append(1))


def test_budget_uses_the_steps_of_this_call_not_stale_timesteps():
    pipe = fl.load_analytic_pipeline(num_frames=4, height=8)
    shape = (1, *pipe.sample_shape[:1], 4, 8, 8)
    two = estimate_capture_bytes(shape, [2], capture=("latents",))
    # a fresh pipeline: its scheduler still holds the 1000 training timesteps
    with LatentProbe(pipe, capture="latents", max_bytes=4 * two) as probe:
        pipe(num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="latent")
    assert probe.nbytes == two
    # after a 2-step call, a 50-step call is refused before its first denoiser evaluation
    calls, handle = _count_evals(pipe)
    try:
        with pytest.raises(ProbeBudgetError, match=r"of \[50\] steps"):
            with LatentProbe(pipe, capture="latents", max_bytes=10 * two // 2):
                pipe(num_inference_steps=50, generator=torch.Generator().manual_seed(0), output_type="latent")
    finally:
        handle.remove()
    assert calls == []


@pytest.mark.parametrize("num_steps,num_iters", [(5, 2), (7, 3)])
def test_fast_sampling_budget_is_refused_before_any_sampling(num_steps, num_iters):
    pipe = tiny_animatediff_pipeline(seed=0)
    planned = fl.fast_sampling_steps(num_steps, num_iters)
    assert num_steps % num_iters  # N not divisible by K
    need = estimate_capture_bytes((1, 4, 8, 16, 16), planned, capture=("latents",))
    kw = {**TINY_CALL_KWARGS["AnimateDiffPipeline"], "num_inference_steps": num_steps}
    calls, handle = _count_evals(pipe)
    try:
        with pytest.raises(ProbeBudgetError, match=rf"before sampling.* of {re.escape(str(planned))} steps") as info:
            with LatentProbe(pipe, capture="latents", max_bytes=need - 1) as probe:
                fl.freeinit(pipe, num_iters=num_iters, fast_sampling=True, prompt="a cat", output_type="latent",
                            generator=torch.Generator().manual_seed(0), progress=False, **kw)
    finally:
        handle.remove()
    assert calls == [] and probe.num_passes == 0, str(info.value)
    with LatentProbe(pipe, capture="latents", max_bytes=need) as probe:  # the estimate is exact
        fl.freeinit(pipe, num_iters=num_iters, fast_sampling=True, prompt="a cat", output_type="latent",
                    generator=torch.Generator().manual_seed(0), progress=False, **kw)
    assert probe.nbytes == need and probe.num_passes == num_iters
