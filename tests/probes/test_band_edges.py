"""Probe band edges go through the spectral kernels' validation: edges short of the grid are refused."""

from __future__ import annotations

import pytest
import torch

from freeinit_lab.core.spectral import frequency_radius
from freeinit_lab.probes.probe import LatentProbe
from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline


def test_probe_band_edges_short_of_the_largest_radius_are_refused():
    pipe = tiny_animatediff_pipeline(seed=0)
    kw = {**TINY_CALL_KWARGS["AnimateDiffPipeline"], "num_inference_steps": 1}
    r_max = float(frequency_radius((8, 16, 16)).max())  # the tiny latent's (frame, height, width)
    with pytest.raises(ValueError, match=rf"stop short of the largest radius .*{r_max!r}"):
        with LatentProbe(pipe, capture="latents", mode="band_power", band_edges=[0.0, 0.25, 1.0]):
            pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent", **kw)
    with LatentProbe(pipe, capture="latents", mode="band_power", band_edges=[0.0, 0.25, r_max]) as probe:
        pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent", **kw)
    assert probe.to_xarray().sizes["band"] == 2


def test_a_layout_override_that_swaps_channels_and_frames_is_refused_before_sampling():
    pipe = tiny_animatediff_pipeline(seed=0)
    kw = {**TINY_CALL_KWARGS["AnimateDiffPipeline"], "num_inference_steps": 2}
    calls = []
    hook = pipe.unet.register_forward_hook(lambda *a: calls.append(1))
    try:
        wrong = ("batch", "frame", "channel", "height", "width")  # the pipeline is (batch, channel, frame, ...)
        with pytest.raises(ValueError, match="names the wrong axis as 'channel'"):
            with LatentProbe(pipe, capture="latents", layout=wrong):
                pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent", **kw)
        assert calls == []  # refused before any denoiser evaluation
        with LatentProbe(pipe, capture="latents", layout=("batch", "channel", "frame", "height", "width")) as probe:
            pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent", **kw)
        assert probe.to_xarray().sizes["channel"] == pipe.unet.config.out_channels
    finally:
        hook.remove()
