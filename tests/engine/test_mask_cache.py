"""The low-pass mask cache is private: editing a mask handed out never changes a later FreeInit run."""

from __future__ import annotations

import torch

from freeinit_lab import freeinit
from freeinit_lab.core.spectral import lowpass_filter
from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_pipeline

AD = "AnimateDiffPipeline"


def test_editing_lowpass_filter_result_does_not_change_a_later_freeinit():
    pipe = tiny_pipeline(AD)
    kw = dict(num_iters=2, method="butterworth", d_s=0.25, d_t=0.25, prompt="a cat", output_type="latent",
              **{**TINY_CALL_KWARGS[AD], "num_inference_steps": 2})
    before = freeinit(pipe, generator=torch.Generator().manual_seed(0), **kw).frames
    shape = (1, 4, 8, 16, 16)  # the tiny AnimateDiff latent, canonical order: the grid FreeInit builds a mask for
    for s in (shape, shape[-3:], (1, 1, *shape[-3:])):
        m = lowpass_filter(s, "butterworth", 0.25, 0.25, 4, dtype=torch.float32)
        m.contiguous().zero_()  # an expanded result: edit what it exposes, every element
        m[(0,) * (m.dim() - 3)].zero_()  # and the (frame, height, width) mask itself, in place
    assert float(lowpass_filter(shape, "butterworth", 0.25, 0.25, 4)[0, 0, 0, 0, 0]) == 1.0
    after = freeinit(pipe, generator=torch.Generator().manual_seed(0), **kw).frames
    assert torch.equal(before, after)
