"""The same results on a CUDA device as on the CPU (skipped without one; select with ``-m gpu``)."""

from __future__ import annotations

import pytest
import torch

from freeinit_lab import freeinit, lowpass_filter, reinit_noise
from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_pipeline

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run `pytest -m gpu` on one)"),
]


def test_mask_and_mix_on_cuda_match_cpu():
    shape = (2, 4, 8, 16, 16)
    g = torch.Generator().manual_seed(0)
    z, eta = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    for method in ("gaussian", "butterworth", "ideal", "box"):
        cpu = lowpass_filter(shape, method, 0.25, 0.25)
        gpu = lowpass_filter(shape, method, 0.25, 0.25, device="cuda")
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu)
        torch.testing.assert_close(reinit_noise(z.cuda(), eta.cuda(), gpu).cpu(), reinit_noise(z, eta, cpu),
                                   atol=1e-5, rtol=1e-5)


def test_freeinit_on_cuda_matches_cpu():
    kw = {**TINY_CALL_KWARGS["AnimateDiffPipeline"], "output_type": "latent"}
    runs = {}
    for device in ("cpu", "cuda"):
        pipe = tiny_pipeline("AnimateDiffPipeline").to(device)
        res = freeinit(pipe, num_iters=2, generator=torch.Generator().manual_seed(0), prompt="a cat", **kw)
        runs[device] = res.iterations[-1].clean_latent.float().cpu()
    torch.testing.assert_close(runs["cuda"], runs["cpu"], atol=1e-3, rtol=1e-3)
