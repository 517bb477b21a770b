"""The latent-layout adapter table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freeinit_lab.layouts import (
    LAYOUTS,
    LatentLayout,
    UnknownPipelineError,
    capture_final_latent,
    get_layout,
    register_layout,
)
from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_pipeline

BFCHW = ("batch", "frame", "channel", "height", "width")


def test_permutation_round_trip_and_shapes():
    layout = LatentLayout(BFCHW, "transformer")
    x = torch.randn(2, 5, 4, 6, 8)  # (B, F, C, H, W)
    canon = layout.to_canonical(x)
    assert canon.shape == (2, 4, 5, 6, 8)
    assert torch.equal(canon[1, 3, 2], x[1, 2, 3])
    assert layout.canonical_shape(x.shape) == (2, 4, 5, 6, 8)
    back = layout.from_canonical(canon)
    assert torch.equal(back, x) and back.is_contiguous()
    assert layout.batch_axis() == 0 and not layout.is_canonical


def test_canonical_layout_is_identity():
    layout = LatentLayout()
    x = torch.randn(1, 4, 3, 2, 2)
    assert layout.to_canonical(x) is x and layout.from_canonical(x) is x


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dims=("batch", "frame", "height", "width")), "permutation"),
        (dict(dims=("batch", "frame", "frame", "height", "width")), "permutation"),
        (dict(final_latent="vae"), "final_latent"),
    ],
)
def test_bad_layouts_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LatentLayout(**kwargs)


def test_wrong_ndim_is_refused():
    with pytest.raises(ValueError, match="5-D"):
        LatentLayout().to_canonical(torch.zeros(4, 8, 8))


def test_unknown_pipeline_error_says_how_to_register():
    class MyVideoPipeline:
        pass

    with pytest.raises(UnknownPipelineError) as info:
        get_layout(MyVideoPipeline())
    msg = str(info.value)
    assert "MyVideoPipeline" in msg and "register_layout(" in msg and "LatentLayout(" in msg
    assert isinstance(info.value, ValueError)


def test_register_and_subclass_lookup():
    class MyVideoPipeline:
        pass

    class MyChildPipeline(MyVideoPipeline):
        pass

    layout = LatentLayout(BFCHW, "transformer", final_latent="scheduler_step")
    try:
        register_layout(MyVideoPipeline, layout)
        assert get_layout(MyChildPipeline) is layout
        register_layout("MyVideoPipeline", layout)  # same entry again: fine
        with pytest.raises(ValueError, match="overwrite=True"):
            register_layout("MyVideoPipeline", LatentLayout())
        register_layout("MyVideoPipeline", LatentLayout(), overwrite=True)
        assert get_layout(MyChildPipeline) == LatentLayout()
    finally:
        LAYOUTS.pop("MyVideoPipeline", None)


@pytest.mark.parametrize("name", sorted(TINY_CALL_KWARGS))
def test_table_entry_matches_the_pipeline(name):
    """Layout axes, denoiser and final-latent capture agree with what the real pipeline does."""
    pipe = tiny_pipeline(name)
    layout = get_layout(pipe)
    kw = {**TINY_CALL_KWARGS[name], "num_inference_steps": 2}
    latent = pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent", **kw).frames
    with capture_final_latent(pipe, layout) as cap:
        frames = pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="np", **kw).frames
    assert torch.equal(cap["latent"], latent)
    # the frame axis of the latent is the one that maps to the decoded frames (temporal VAE factor aside)
    n_frames = latent.shape[layout.dims.index("frame")]
    assert frames.shape[1] in (n_frames, (n_frames - 1) * 2 + 1)
    assert latent.shape[layout.dims.index("channel")] == 4
    assert layout.get_denoisers(pipe)
    # every wrapper is gone afterwards
    assert "decode_latents" not in vars(pipe) and "step" not in vars(layout.get_scheduler(pipe))


@pytest.mark.parametrize("name", ["CogVideoXPipeline", "WanPipeline"])
def test_scheduler_step_capture_keeps_the_pipelines_dtype(name):
    """In bfloat16 CogVideoX's scheduler returns a float32 sample that the pipeline casts back to bfloat16 before
    it continues, returns or decodes it: the captured final latent is that bfloat16 latent, bit for bit."""
    pipe = tiny_pipeline(name).to(dtype=torch.bfloat16)
    kw = {**TINY_CALL_KWARGS[name], "num_inference_steps": 2}
    latent = pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent", **kw).frames
    with capture_final_latent(pipe) as cap:
        pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="np", **kw)
    assert cap["latent"].dtype == latent.dtype
    assert torch.equal(cap["latent"], latent)
    # the same under an open probe, whose own step wrapper takes *args, **kwargs
    from freeinit_lab import LatentProbe

    with LatentProbe(pipe, capture="latents"), capture_final_latent(pipe) as cap:
        pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="np", **kw)
    assert torch.equal(cap["latent"], latent)


def test_the_scheduler_is_read_where_the_layout_says(scheduler_at):
    """A pipeline registered with LatentLayout(scheduler="sampler") is read, stepped and captured through
    pipe.sampler, never through the decoy at pipe.scheduler."""
    from freeinit_lab.core.schedules import get_schedule
    from freeinit_lab.hooks.layouts import get_scheduler, has_scheduler

    pipe = scheduler_at("sampler")
    assert get_scheduler(pipe) is pipe.sampler and get_layout(pipe).get_scheduler(pipe) is pipe.sampler
    assert has_scheduler(pipe) and not has_scheduler(lambda: pipe)  # a pipeline, not a factory
    assert get_schedule(pipe).scheduler_class == "DDIMScheduler"
    assert np.array_equal(get_schedule(pipe).alpha, get_schedule(pipe.sampler).alpha)
    latent = pipe(generator=torch.Generator().manual_seed(0), output_type="latent").frames
    decoy_step = pipe.scheduler.step
    with capture_final_latent(pipe) as cap:
        pipe(generator=torch.Generator().manual_seed(0), output_type="np")
    assert torch.equal(cap["latent"], latent)
    assert pipe.scheduler.step == decoy_step and "step" not in vars(pipe.sampler)


def test_a_layout_naming_a_missing_scheduler_says_which_attribute(scheduler_at, monkeypatch):
    from freeinit_lab.hooks.layouts import get_scheduler

    pipe = scheduler_at("sampler")
    monkeypatch.setitem(LAYOUTS, type(pipe).__name__, LatentLayout(scheduler="noise_scheduler"))
    with pytest.raises(AttributeError, match=r"(?s)'noise_scheduler'.*register_layout"):
        get_scheduler(pipe)

    class UnregisteredPipeline:
        scheduler = "the scheduler"

    assert get_scheduler(UnregisteredPipeline()) == "the scheduler"  # diffusers' attribute without a layout


def test_the_denoiser_is_read_where_the_layout_says(denoiser_at):
    """A pipeline registered with LatentLayout(denoiser="model") has its channel axis checked against pipe.model,
    never against the decoy at pipe.unet, whose 8 channels are the latent's frame count: a layout naming the frame
    axis 'channel' is refused, given as a LatentLayout or as dims (which keep the registered denoiser)."""
    from freeinit_lab.hooks.layouts import check_channel_axis, denoiser_channels, get_denoisers

    pipe = denoiser_at("model")
    assert get_denoisers(pipe) == [pipe.model] and denoiser_channels(pipe) == 3
    assert get_layout(pipe).get_denoisers(pipe) == [pipe.model]
    shape = (1, 3, 8, 16, 16)  # (batch, channel, frame, height, width)
    check_channel_axis(pipe, get_layout(pipe), shape, "test")
    check_channel_axis(pipe, tuple(get_layout(pipe).dims), shape, "test")
    for layout in (LatentLayout(BFCHW, "model"), BFCHW):
        with pytest.raises(ValueError, match=r"(?s)have 8 channels, but its denoiser works on 3.*wrong axis"):
            check_channel_axis(pipe, layout, shape, "test")
    check_channel_axis(pipe, LatentLayout(BFCHW, "unet"), shape, "test")  # a layout naming the decoy reads the decoy


def test_an_unregistered_pipelines_denoiser_is_read_at_diffusers_names():
    from freeinit_lab.hooks.layouts import denoiser_channels, get_denoisers

    class UnregisteredPipeline:
        def __init__(self):
            self.transformer = torch.nn.Conv3d(4, 4, 1)
            self.transformer.config = {"out_channels": 4}

    pipe = UnregisteredPipeline()
    assert get_denoisers(pipe) == [pipe.transformer] and denoiser_channels(pipe) == 4
    assert denoiser_channels(object()) is None
    with pytest.raises(AttributeError, match=r"(?s)no denoiser module at \('unet', 'transformer'.*register_layout"):
        get_denoisers(object())


def test_a_frame_axis_of_half_the_channels_is_not_taken_for_the_channel_axis():
    """Half the declared channel count is a learned-variance model's latent; a denoiser that declares as many input
    as output channels has no variance output, so 2 frames of a 4-channel latent read as 'channel' (CogVideoX's
    frame-first latent under a channel-first layout) are refused, not filtered over the wrong axes."""
    from freeinit_lab.hooks.layouts import check_channel_axis

    def pipeline(**config):
        class UnregisteredPipeline:
            def __init__(self):
                self.transformer = torch.nn.Conv3d(4, 4, 1)
                self.transformer.config = config

        return UnregisteredPipeline()

    frame_first = (1, 2, 4, 8, 8)  # (batch, frame, channel, height, width) with 2 frames, 4 channels
    plain = pipeline(in_channels=4, out_channels=4)
    with pytest.raises(ValueError, match=r"(?s)have 2 channels, but its denoiser works on 4.*wrong axis"):
        check_channel_axis(plain, LatentLayout(denoiser="transformer"), frame_first, "test")  # was accepted
    check_channel_axis(plain, LatentLayout(BFCHW, "transformer"), frame_first, "test")
    # learned variance (4 latent channels in, mean and variance out) or nothing said about the input: half is kept
    for learned in (pipeline(in_channels=4, out_channels=8), pipeline(out_channels=8)):
        check_channel_axis(learned, LatentLayout(denoiser="transformer"), (1, 4, 2, 8, 8), "test")
    # an image-conditioned denoiser (8 channels in, 4 out) works on a 4-channel latent
    check_channel_axis(pipeline(in_channels=8, out_channels=4), LatentLayout(BFCHW, "transformer"), frame_first, "test")
