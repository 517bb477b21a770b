"""FreeInit around unmodified pipelines: equivalence with diffusers, three pipeline classes, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freeinit_lab import FreeInitNoGapWarning, freeinit
from freeinit_lab.core.spectral import apply_lowpass, lowpass_filter
from freeinit_lab.hooks.layouts import LAYOUTS, LatentLayout, UnknownPipelineError
from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_pipeline

AD = "AnimateDiffPipeline"


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def ad_pipe():
    return tiny_pipeline(AD)


@pytest.fixture(scope="module")
def t2v_pipe():
    return tiny_pipeline("TextToVideoSDPipeline")


@pytest.fixture(scope="module")
def cog_pipe():
    """CogVideoX (batch, frame, channel, H, W) with a terminal-signal schedule, so the reinit is not trivial."""
    return tiny_pipeline("CogVideoXPipeline", zero_terminal_snr=False)


def diffusers_freeinit(pipe, prompt="a cat", seed=0, generator=None, **free_init):
    pipe.enable_free_init(**free_init)
    try:
        return pipe(prompt, generator=generator or gen(seed), **{"output_type": "latent", **TINY_CALL_KWARGS[AD]}).frames
    finally:
        pipe.disable_free_init()


def assert_same_as_diffusers(ours, ref):
    # Both implementations do the same arithmetic except the frequency mix: diffusers takes the real part of
    # ifftn(fftn(z) H + fftn(eta) (1 - H)), freeinit_lab computes eta + irfftn(rfftn(z - eta) H). They differ by
    # float32 rounding (~1 ulp) per pass; with random weights the latents reach |z| ~ 30, so compare at 1e-5
    # relative to that scale (measured: 7.6e-6 absolute, 2.7e-7 relative).
    scale = max(1.0, float(ref.abs().max()))
    err = float((ours - ref).abs().max())
    assert err <= 1e-5 * scale, f"max |diff| = {err:.3g} at latent scale {scale:.3g}"


# ----------------------------------------------------------------------------------------------------------------
# equivalence with diffusers' FreeInitMixin
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["butterworth", "gaussian"])
@pytest.mark.parametrize("fast_sampling", [False, True])
@pytest.mark.parametrize("num_iters", [2, 3])
def test_equals_diffusers_free_init(ad_pipe, method, fast_sampling, num_iters):
    ref = diffusers_freeinit(
        ad_pipe, num_iters=num_iters, use_fast_sampling=fast_sampling, method=method,
        spatial_stop_frequency=0.25, temporal_stop_frequency=0.25, order=4,
    )
    res = freeinit(
        ad_pipe, num_iters=num_iters, method=method, d_s=0.25, d_t=0.25, order=4, fast_sampling=fast_sampling,
        prompt="a cat", generator=gen(0), output_type="latent", **TINY_CALL_KWARGS[AD],
    )
    assert_same_as_diffusers(res.latents, ref)
    n = TINY_CALL_KWARGS[AD]["num_inference_steps"]
    expected_steps = [max(1, int(n / num_iters * (i + 1))) for i in range(num_iters)] if fast_sampling else [n] * num_iters
    assert [it.num_inference_steps for it in res.iterations] == expected_steps
    assert [it.num_denoiser_evals for it in res.iterations] == expected_steps  # guidance 1: one call per step


def test_equals_diffusers_with_generator_list_guidance_and_other_cutoffs(ad_pipe):
    prompts = ["a cat", "a dog"]
    ad_pipe.enable_free_init(num_iters=3, method="butterworth", order=2, spatial_stop_frequency=0.4,
                             temporal_stop_frequency=0.3)
    try:
        ref = ad_pipe(prompts, generator=[gen(1), gen(2)], output_type="latent",
                      **{**TINY_CALL_KWARGS[AD], "guidance_scale": 7.5}).frames
    finally:
        ad_pipe.disable_free_init()
    res = freeinit(
        ad_pipe, num_iters=3, method="butterworth", order=2, d_s=0.4, d_t=0.3, prompt=prompts,
        generator=[gen(1), gen(2)], output_type="latent", **{**TINY_CALL_KWARGS[AD], "guidance_scale": 7.5},
    )
    assert res.latents.shape[0] == 2
    assert res.num_denoiser_evals == 12  # classifier-free guidance is batched: one call per step
    assert_same_as_diffusers(res.latents, ref)


def test_ideal_filter_matches_diffusers_only_with_the_legacy_threshold(ad_pipe):
    ref = diffusers_freeinit(ad_pipe, num_iters=2, method="ideal")
    kw = dict(num_iters=2, method="ideal", prompt="a cat", output_type="latent", **TINY_CALL_KWARGS[AD])
    legacy = freeinit(ad_pipe, legacy_ideal_threshold=True, generator=gen(0), **kw)
    fixed = freeinit(ad_pipe, generator=gen(0), **kw)
    assert_same_as_diffusers(legacy.latents, ref)
    assert (fixed.latents - ref).abs().max() > 1e-2


def test_decoded_output_and_final_latent(ad_pipe):
    kw = dict(num_iters=2, prompt="a cat", **TINY_CALL_KWARGS[AD])
    lat = freeinit(ad_pipe, generator=gen(0), output_type="latent", **kw)
    dec = freeinit(ad_pipe, generator=gen(0), output_type="np", **kw)
    assert torch.equal(dec.latents, lat.latents)  # same tensor the pipeline returns with output_type="latent"
    # frames are what diffusers' own FreeInit decodes for output_type="np"
    ad_pipe.enable_free_init(num_iters=2)
    try:
        ref = ad_pipe("a cat", generator=gen(0), output_type="np", **TINY_CALL_KWARGS[AD]).frames
    finally:
        ad_pipe.disable_free_init()
    assert isinstance(dec.frames, np.ndarray) and dec.frames.shape == ref.shape
    np.testing.assert_allclose(dec.frames, ref, atol=1e-5)
    assert dec.iterations[0].frames is None  # intermediate passes are not decoded unless asked


def test_one_iteration_is_plain_sampling(ad_pipe):
    plain = ad_pipe("a cat", generator=gen(3), output_type="latent", **TINY_CALL_KWARGS[AD]).frames
    res = freeinit(ad_pipe, num_iters=1, prompt="a cat", generator=gen(3), output_type="latent", **TINY_CALL_KWARGS[AD])
    assert torch.equal(res.latents, plain)


def test_user_latents_are_the_first_initial_noise(ad_pipe):
    from diffusers.utils.torch_utils import randn_tensor

    kw = dict(num_iters=2, prompt="a cat", output_type="latent", **TINY_CALL_KWARGS[AD])
    g = gen(0)
    noise = randn_tensor((1, 4, 8, 16, 16), generator=g, dtype=torch.float32)
    with_latents = freeinit(ad_pipe, latents=noise, generator=g, **kw)  # g continues after the noise draw
    drawn = freeinit(ad_pipe, generator=gen(0), **kw)
    assert torch.equal(with_latents.iterations[0].initial_latent, noise)
    assert torch.equal(with_latents.latents, drawn.latents)


# ----------------------------------------------------------------------------------------------------------------
# records
# ----------------------------------------------------------------------------------------------------------------
def test_iteration_records_and_xarray(ad_pipe, tmp_path):
    res = freeinit(ad_pipe, num_iters=3, prompt="a cat", generator=gen(0), output_type="latent",
                   return_iteration_frames=True, **TINY_CALL_KWARGS[AD])
    a_T = res.settings["alpha_T"]
    assert res.has_terminal_signal and 0.03 < a_T < 0.05  # AnimateDiff's "linear" betas: sqrt(0.00158)
    mask = lowpass_filter(res.iterations[0].clean_latent.shape)
    it0 = res.iterations[0]
    assert torch.equal(it0.signal, torch.zeros_like(it0.signal)) and torch.equal(it0.noise, it0.initial_latent)
    for prev, it in zip(res.iterations, res.iterations[1:]):
        torch.testing.assert_close(it.signal + it.noise, it.initial_latent, atol=1e-5, rtol=0)
        torch.testing.assert_close(it.signal, apply_lowpass(a_T * prev.clean_latent, mask), atol=1e-5, rtol=1e-5)
        assert it.frames is not None
    assert torch.equal(res.iterations[-1].clean_latent, res.latents)  # canonical == pipeline order here
    ds = res.to_xarray()
    assert ds["signal"].dims == ("iteration", "batch", "channel", "frame", "height", "width")
    assert ds.sizes["iteration"] == 3 and list(ds["num_denoiser_evals"].values) == [4, 4, 4]
    assert ds.attrs["method"] == "butterworth" and ds.attrs["pipeline_class"] == AD
    path = tmp_path / "fi.nc"
    ds.to_netcdf(path)
    import xarray as xr

    with xr.open_dataset(path) as back:
        np.testing.assert_array_equal(back["clean_latent"].values, ds["clean_latent"].values)
        assert back.attrs["d_s"] == 0.25


def test_deterministic_and_renoise(ad_pipe):
    kw = dict(num_iters=3, prompt="a cat", output_type="latent", **TINY_CALL_KWARGS[AD])
    a = freeinit(ad_pipe, generator=gen(5), **kw)
    b = freeinit(ad_pipe, generator=gen(5), **kw)
    fresh = freeinit(ad_pipe, generator=gen(5), renoise="fresh", **kw)
    assert torch.equal(a.latents, b.latents)
    assert torch.equal(a.iterations[0].clean_latent, fresh.iterations[0].clean_latent)  # pass 0 is shared
    assert (a.iterations[1].initial_latent - fresh.iterations[1].initial_latent).abs().max() > 1e-3
    assert (a.latents - fresh.latents).abs().max() > 1e-3


def test_wrappers_and_hooks_are_removed(ad_pipe):
    freeinit(ad_pipe, num_iters=2, prompt="a cat", generator=gen(0), output_type="np", **TINY_CALL_KWARGS[AD])
    for name in ("prepare_latents", "encode_prompt", "decode_latents"):
        assert name not in vars(ad_pipe)
    assert not ad_pipe.unet._forward_hooks and not ad_pipe.unet._forward_pre_hooks
    with pytest.raises(ValueError):
        freeinit(ad_pipe, num_iters=2, prompt="a cat", latents=torch.zeros(1, 4, 3, 16, 16), **TINY_CALL_KWARGS[AD])
    assert "prepare_latents" not in vars(ad_pipe) and not ad_pipe.unet._forward_pre_hooks


# ----------------------------------------------------------------------------------------------------------------
# other pipeline classes
# ----------------------------------------------------------------------------------------------------------------
def test_text_to_video_sd(t2v_pipe):
    kw = dict(num_iters=3, prompt="a cat", output_type="np", **TINY_CALL_KWARGS["TextToVideoSDPipeline"])
    res = freeinit(t2v_pipe, generator=gen(0), **kw)
    again = freeinit(t2v_pipe, generator=gen(0), **kw)
    plain = t2v_pipe("a cat", generator=gen(0), output_type="latent", **TINY_CALL_KWARGS["TextToVideoSDPipeline"]).frames
    assert res.frames.shape == (1, 8, 32, 32, 3)
    assert torch.equal(res.latents, again.latents)
    assert torch.equal(res.iterations[0].clean_latent, plain)  # pass 0 is the plain pipeline
    assert (res.latents - plain).abs().max() > 1e-3  # FreeInit changed the result
    assert res.num_denoiser_evals == 12 and res.has_terminal_signal


def test_frame_first_layout_cogvideox(cog_pipe):
    """(batch, frame, channel, H, W): the filter must act on the frame axis, not on the channels."""
    kw = dict(prompt="a cat", output_type="np", **TINY_CALL_KWARGS["CogVideoXPipeline"])
    res = freeinit(cog_pipe, num_iters=2, method="ideal", d_s=0.5, d_t=0.5, generator=gen(0), **kw)
    assert tuple(res.latents.shape) == (1, 5, 4, 8, 8)  # pipeline order
    assert res.frames.shape == (1, 9, 16, 16, 3)
    it = res.iterations[1]
    assert tuple(it.signal.shape) == (1, 4, 5, 8, 8)  # canonical order
    mask = lowpass_filter(it.signal.shape, "ideal", 0.5, 0.5)
    # an ideal low-pass is a projection: the signal part lies in its pass band ...
    torch.testing.assert_close(apply_lowpass(it.signal, mask), it.signal, atol=1e-5, rtol=1e-5)
    assert it.signal.abs().max() > 1e-3
    # ... which it would not if frames and channels had been swapped
    swapped = it.signal.transpose(1, 2).contiguous()
    wrong_mask = lowpass_filter(swapped.shape, "ideal", 0.5, 0.5)
    assert (apply_lowpass(swapped, wrong_mask) - swapped).abs().max() > 1e-3
    torch.testing.assert_close(res.layout.from_canonical(res.iterations[-1].clean_latent), res.latents)


@pytest.mark.parametrize("as_pipeline_callback", [False, True])
def test_a_callback_editing_the_latent_gives_the_same_result_decoded_or_not(cog_pipe, as_pipeline_callback):
    """CogVideoX captures its final latent at the scheduler step; a callback_on_step_end that edits the latent
    after it must not make the decoded run's latents (nor, through return_iteration_frames, the passes) differ."""
    from diffusers.callbacks import PipelineCallback

    class Damp(PipelineCallback):
        tensor_inputs = ["latents"]

        def __init__(self):  # PipelineCallback's own __init__ wants a cut-off step
            pass

        def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
            return {"latents": callback_kwargs["latents"] * 0.9}

    def damp(pipeline, step_index, timestep, callback_kwargs):
        return {"latents": callback_kwargs["latents"] * 0.9}

    kw = dict(num_iters=2, prompt="a cat", callback_on_step_end=Damp() if as_pipeline_callback else damp,
              progress=False, **TINY_CALL_KWARGS["CogVideoXPipeline"])
    lat = freeinit(cog_pipe, generator=gen(0), output_type="latent", **kw)
    dec = freeinit(cog_pipe, generator=gen(0), output_type="np", **kw)
    every = freeinit(cog_pipe, generator=gen(0), output_type="np", return_iteration_frames=True, **kw)
    assert torch.equal(dec.latents, lat.latents)  # was 0.039 apart: the latent before the callback's edit
    assert torch.equal(every.latents, lat.latents)
    np.testing.assert_array_equal(every.frames, dec.frames)


def test_zero_terminal_snr_warns_and_has_no_signal():
    pipe = tiny_pipeline("CogVideoXPipeline")  # CogVideoX's own zero-terminal-SNR schedule
    with pytest.warns(FreeInitNoGapWarning, match="no initialization gap"):
        res = freeinit(pipe, num_iters=2, prompt="a cat", generator=gen(0), output_type="latent",
                       **TINY_CALL_KWARGS["CogVideoXPipeline"])
    assert not res.has_terminal_signal and res.settings["alpha_T"] == 0.0
    assert torch.equal(res.iterations[1].signal, torch.zeros_like(res.iterations[1].signal))


def test_reuse_text_encoding_changes_nothing(cog_pipe):
    calls = []
    original = cog_pipe.text_encoder.forward

    def hook(module, args):
        calls.append(1)

    h = cog_pipe.text_encoder.register_forward_pre_hook(hook)
    try:
        kw = dict(num_iters=3, prompt="a cat", output_type="latent", **TINY_CALL_KWARGS["CogVideoXPipeline"])
        reuse = freeinit(cog_pipe, generator=gen(0), **kw)
        n_reuse = len(calls)
        calls.clear()
        again = freeinit(cog_pipe, generator=gen(0), reuse_text_encoding=False, **kw)
        n_again = len(calls)
    finally:
        h.remove()
    assert cog_pipe.text_encoder.forward == original
    assert torch.equal(reuse.latents, again.latents)
    assert n_again == 3 * n_reuse and n_reuse >= 1


# ----------------------------------------------------------------------------------------------------------------
# bad input: clear errors before any denoising
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture()
def denoise_counter(ad_pipe):
    calls = []
    h = ad_pipe.unet.register_forward_pre_hook(lambda m, a: calls.append(1))
    yield calls
    h.remove()


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(num_iters=0), ValueError, "num_iters"),
        (dict(num_iters=2.0), ValueError, "num_iters"),
        (dict(renoise="new"), ValueError, "renoise"),
        (dict(method="sinc"), ValueError, "butterworth"),
        (dict(d_s=0.0), ValueError, r"\(0, 1\]"),
        (dict(d_t=1.5), ValueError, r"\(0, 1\]"),
        (dict(generator=[torch.Generator(), torch.Generator()]), ValueError, "one per video"),
        (dict(latents=torch.zeros(1, 4, 16, 16, 16)), ValueError, r"\(1, 4, 8, 16, 16\)"),
        (dict(return_dict=False), TypeError, "return_dict"),
        (dict(fast_sampling=True, timesteps=[999, 500]), ValueError, "timesteps"),
    ],
)
def test_bad_input_fails_before_denoising(ad_pipe, denoise_counter, kwargs, exc, match):
    call = dict(num_iters=2, prompt="a cat", output_type="latent", **TINY_CALL_KWARGS[AD])
    call.update(kwargs)
    with pytest.raises(exc, match=match):
        freeinit(ad_pipe, **call)
    assert denoise_counter == []


def test_diffusers_free_init_enabled_is_refused(ad_pipe, denoise_counter):
    ad_pipe.enable_free_init(num_iters=2)
    try:
        with pytest.raises(ValueError, match="disable_free_init"):
            freeinit(ad_pipe, num_iters=2, prompt="a cat", **TINY_CALL_KWARGS[AD])
    finally:
        ad_pipe.disable_free_init()
    assert denoise_counter == []


def test_pipeline_without_latents_argument(monkeypatch):
    class NoLatentsPipeline:
        def __call__(self, prompt, output_type="pil"):
            raise AssertionError("must not be called")

    monkeypatch.setitem(LAYOUTS, "NoLatentsPipeline", LatentLayout())
    with pytest.raises(TypeError, match="latents"):
        freeinit(NoLatentsPipeline(), prompt="x")


def test_unknown_pipeline_says_how_to_register():
    class HomeMadeVideoPipeline:
        def __call__(self, prompt, latents=None, output_type="pil"):
            raise AssertionError("must not be called")

    with pytest.raises(UnknownPipelineError, match="register_layout"):
        freeinit(HomeMadeVideoPipeline(), prompt="x")


def test_wrong_layout_is_refused_before_denoising(cog_pipe, monkeypatch):
    """A layout that names CogVideoX's frame axis 'channel' would filter over (channel, height, width): refused."""
    from diffusers import CogVideoXPipeline

    class MisregisteredPipeline(CogVideoXPipeline):
        pass

    monkeypatch.setitem(LAYOUTS, "MisregisteredPipeline", LatentLayout(denoiser="transformer",
                                                                      final_latent="scheduler_step"))
    calls = []
    h = cog_pipe.transformer.register_forward_pre_hook(lambda m, a: calls.append(1))
    original_class = cog_pipe.__class__
    cog_pipe.__class__ = MisregisteredPipeline
    try:
        with pytest.raises(ValueError, match=r"(?s)channel.*register_layout"):
            freeinit(cog_pipe, num_iters=2, prompt="a cat", generator=gen(0), output_type="latent",
                     **TINY_CALL_KWARGS["CogVideoXPipeline"])
    finally:
        cog_pipe.__class__ = original_class
        h.remove()
    assert calls == []
    assert "prepare_latents" not in vars(cog_pipe)


def _freeinit_of_each(make, attributes, output_type):
    """FreeInit (2 passes, 3 steps, seed 0) of ``make(attribute)`` for each attribute: (result, its dataset without
    the pipeline class name, which differs between the two pipelines by construction)."""
    out = []
    for attribute in attributes:
        res = freeinit(make(attribute), num_iters=2, num_inference_steps=3, generator=gen(0), output_type=output_type)
        ds = res.to_xarray()
        ds.attrs.pop("pipeline_class")
        out.append((res, ds))
    return out


def test_the_scheduler_the_layout_names_is_the_one_used(scheduler_at):
    """A pipeline registered with LatentLayout(scheduler="sampler") gets exactly the result of the same pipeline
    with its scheduler at pipe.scheduler: initial noise (init_noise_sigma), schedule, final-latent capture and
    settings all from pipe.sampler; the decoy at pipe.scheduler (Euler, init_noise_sigma ~157) is never read."""
    import xarray as xr

    (ref, ref_ds), (res, ds) = _freeinit_of_each(scheduler_at, ("scheduler", "sampler"), "np")
    for r in (ref, res):
        assert r.settings["scheduler_class"] == "DDIMScheduler" and r.settings["init_noise_sigma"] == 1.0
    assert torch.equal(res.latents, ref.latents) and torch.equal(res.frames, ref.frames)
    xr.testing.assert_identical(ds, ref_ds)


def test_embedded_default_pipeline_class():
    """The embedded default's pipeline class, with random weights."""
    from freeinit_lab.embedded import models, pipelines

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = models.TinyVideoUNet(block_channels=(8, 16), time_embed_dim=16, norm_groups=4, attention_heads=2).eval()
    pipe = pipelines.TinyVideoPipeline(unet=unet, scheduler=pipelines.default_scheduler())
    pipe.set_progress_bar_config(disable=True)
    kw = dict(num_inference_steps=3, output_type="np")
    plain = pipe(generator=gen(0), **{**kw, "output_type": "latent"}).frames
    res = freeinit(pipe, num_iters=2, generator=gen(0), **kw)
    assert torch.equal(res.iterations[0].clean_latent, plain)
    assert res.frames.shape == (1, 8, 16, 16, 3) and res.num_denoiser_evals == 6
    with pytest.raises(ValueError, match="one per video"):
        freeinit(pipe, num_iters=2, batch_size=2, generator=[gen(0)], **kw)
    # without a step count, FreeInit uses the pipeline's stored sampler, as pipe(...) does
    pipe.default_num_inference_steps = 2
    stored = freeinit(pipe, num_iters=2, generator=gen(0), output_type="latent")
    assert stored.num_denoiser_evals == 4
    assert torch.equal(stored.iterations[0].clean_latent, pipe(generator=gen(0), output_type="latent").frames)


def test_flow_sigmas_scheduler_is_read_as_flow_not_ddpm(ad_pipe):
    # Wan's UniPCMultistepScheduler(use_flow_sigmas=True) carries DDPM betas it never uses; its forward process is
    # flow matching (a_T = 1 - sigma_max = 0), so FreeInit warns that there is no gap instead of mixing a DDPM z_T
    from diffusers import UniPCMultistepScheduler

    original = ad_pipe.scheduler
    ad_pipe.scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    try:
        with pytest.warns(FreeInitNoGapWarning, match="a_T = 0"):
            freeinit(ad_pipe, num_iters=2, prompt="a cat", output_type="latent",
                     **{**TINY_CALL_KWARGS[AD], "num_inference_steps": 1})
    finally:
        ad_pipe.scheduler = original


def test_flow_matching_wan_gets_pure_noise_z_T():
    pipe = tiny_pipeline("WanPipeline")
    with pytest.warns(FreeInitNoGapWarning):
        res = freeinit(pipe, num_iters=2, method="ideal", prompt="a cat", generator=gen(0), output_type="np",
                       **TINY_CALL_KWARGS["WanPipeline"])
    assert res.frames.shape == (1, 9, 16, 16, 3) and tuple(res.latents.shape) == (1, 4, 5, 8, 8)
    assert res.schedule.family == "flow" and res.settings["alpha_T"] == 0.0 and res.settings["sigma_T"] == 1.0
    it0, it1 = res.iterations
    assert torch.equal(it1.signal, torch.zeros_like(it1.signal))
    # z_T is the first initial noise itself, so pass 1 starts from its low band plus fresh high frequencies
    mask = lowpass_filter(it0.initial_latent.shape, "ideal")
    torch.testing.assert_close(apply_lowpass(it1.initial_latent, mask), apply_lowpass(it0.initial_latent, mask),
                               atol=1e-5, rtol=1e-5)
    assert (it1.initial_latent - it0.initial_latent).abs().max() > 0.1


def test_band_snr_per_iteration(ad_pipe):
    res = freeinit(ad_pipe, num_iters=3, prompt="a cat", generator=gen(0), output_type="latent", **TINY_CALL_KWARGS[AD])
    snr = res.band_snr(num_bands=4)
    assert snr.dims == ("iteration", "band") and snr.attrs["units"] == "dB"
    assert np.isneginf(snr.sel(iteration=0)).all()  # plain sampling starts from pure noise
    later = snr.sel(iteration=2).values
    assert np.isfinite(later).all() and later[0] > later[-1]  # the reinitialised latent carries low-band signal


def test_variance_preserving_mix(ad_pipe):
    """mix='variance_preserving' changes only the reinitialisation: pass 0 shared, later passes start from
    reinit_noise_variance_preserving(z_T, eta, H); mix='freeinit' is the default (bit for bit)."""
    from freeinit_lab.spectral import reinit_noise_variance_preserving

    kw = dict(num_iters=2, method="gaussian", prompt="a cat", output_type="latent", **TINY_CALL_KWARGS[AD])
    default = freeinit(ad_pipe, generator=gen(7), **kw)
    explicit = freeinit(ad_pipe, generator=gen(7), mix="freeinit", **kw)
    vp = freeinit(ad_pipe, generator=gen(7), mix="variance_preserving", **kw)
    assert torch.equal(default.latents, explicit.latents)
    assert torch.equal(default.iterations[0].clean_latent, vp.iterations[0].clean_latent)
    assert vp.settings["mix"] == "variance_preserving" and default.settings["mix"] == "freeinit"
    # rebuild pass 1's initial latent by hand from eta recovered off FreeInit's mix (same eta, drawn first):
    # FFT(init_fi) = H FFT(z_T) + (1 - H) FFT(eta); H < 1 away from DC, where eta is recovered
    from freeinit_lab.spectral import variance_preserving_weights

    it0 = default.iterations[0]
    z_T = default.schedule.diffuse(it0.clean_latent, default.schedule.terminal_timestep, it0.initial_latent)
    H = lowpass_filter(z_T.shape, "gaussian", 0.25, 0.25, dtype=torch.float64)
    fft = lambda v: torch.fft.fftn(v.double(), dim=(-3, -2, -1))  # noqa: E731
    E = (fft(default.iterations[1].initial_latent) - H * fft(z_T)) / (1 - H).clamp_min(1e-12)
    w_low, w_high = variance_preserving_weights(H)
    expected = w_low * fft(z_T) + w_high * E
    got = fft(vp.iterations[1].initial_latent)
    keep = (1 - H) > 1e-3
    assert torch.allclose(got[keep.expand_as(got)], expected[keep.expand_as(got)], atol=2e-3)
    assert (vp.iterations[1].initial_latent - default.iterations[1].initial_latent).abs().max() > 1e-3


def test_variance_preserving_mix_equals_freeinit_mix_for_the_ideal_filter(ad_pipe):
    kw = dict(num_iters=2, method="ideal", d_s=0.5, d_t=0.5, prompt="a cat", output_type="latent",
              **TINY_CALL_KWARGS[AD])
    a = freeinit(ad_pipe, generator=gen(3), **kw)
    b = freeinit(ad_pipe, generator=gen(3), mix="variance_preserving", **kw)
    assert torch.allclose(a.latents, b.latents, atol=1e-5)


def test_unknown_mix_fails_before_denoising(ad_pipe):
    with pytest.raises(ValueError, match="mix="):
        freeinit(ad_pipe, num_iters=2, mix="average", prompt="a cat", **TINY_CALL_KWARGS[AD])


def test_stored_sampler_steps_are_used_without_num_inference_steps():
    """A pipeline with a stored sampler (default_num_inference_steps) runs FreeInit without a step count."""
    from freeinit_lab.embedded import models, pipelines

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = models.TinyVideoUNet(block_channels=(8, 16), time_embed_dim=16, norm_groups=4, attention_heads=2).eval()
    pipe = pipelines.TinyVideoPipeline(unet=unet, scheduler=pipelines.default_scheduler(), default_num_inference_steps=3)
    pipe.set_progress_bar_config(disable=True)
    res = freeinit(pipe, num_iters=2, generator=gen(0), output_type="latent")
    assert res.num_denoiser_evals == 6
    explicit = freeinit(pipe, num_iters=2, generator=gen(0), output_type="latent", num_inference_steps=3)
    assert torch.equal(res.latents, explicit.latents)


def test_final_latent_does_not_depend_on_output_type_in_bfloat16():
    """CogVideoX (final latent captured at the scheduler step) in bfloat16: decoding the last pass must not change
    res.latents, nor its dtype."""
    pipe = tiny_pipeline("CogVideoXPipeline", zero_terminal_snr=False).to(dtype=torch.bfloat16)
    kw = dict(num_iters=2, prompt="a cat", **{**TINY_CALL_KWARGS["CogVideoXPipeline"], "num_inference_steps": 2})
    lat = freeinit(pipe, generator=gen(0), output_type="latent", **kw)
    dec = freeinit(pipe, generator=gen(0), output_type="np", return_iteration_frames=True, **kw)
    assert dec.latents.dtype == lat.latents.dtype == torch.bfloat16
    assert torch.equal(dec.latents, lat.latents)


def test_the_denoiser_the_layout_names_is_the_one_used(denoiser_at, monkeypatch):
    """A pipeline registered with LatentLayout(denoiser="model") is counted through pipe.model and gets exactly the
    result of the same pipeline with its denoiser at pipe.unet; registered with a layout that names its frame axis
    'channel', it is refused before denoising, although the decoy at pipe.unet has as many channels as the latent
    has frames."""
    import xarray as xr

    (ref, ref_ds), (res, ds) = _freeinit_of_each(denoiser_at, ("unet", "model"), "latent")
    assert torch.equal(res.latents, ref.latents) and res.num_denoiser_evals == ref.num_denoiser_evals == 6
    xr.testing.assert_identical(ds, ref_ds)

    pipe = denoiser_at("model")
    monkeypatch.setitem(LAYOUTS, type(pipe).__name__,
                        LatentLayout(("batch", "frame", "channel", "height", "width"), "model",
                                     final_latent="scheduler_step"))
    calls = []
    h = pipe.model.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        with pytest.raises(ValueError, match=r"(?s)have 8 channels, but its denoiser works on 3.*register_layout"):
            freeinit(pipe, num_iters=2, num_inference_steps=3, generator=gen(0), output_type="latent")
    finally:
        h.remove()
    assert calls == [] and "prepare_latents" not in vars(pipe)
