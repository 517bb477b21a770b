"""Tests for freeinit_lab.pipelines: the diffusers-compatible TinyVideoPipeline and the shipped default."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor

from freeinit_lab.models import TinyVideoUNet
from freeinit_lab.pipelines import (
    DEFAULT_MODEL_DIR,
    TinyVideoPipeline,
    default_scheduler,
    load_analytic_pipeline,
    load_default_pipeline,
)


@pytest.fixture(scope="module")
def pipe():
    return load_default_pipeline()


def test_default_scheduler_is_sd_ddpm():
    s = default_scheduler()
    assert isinstance(s, DDIMScheduler)
    assert s.config.beta_schedule == "scaled_linear"
    assert (s.config.beta_start, s.config.beta_end, s.config.num_train_timesteps) == (0.00085, 0.012, 1000)
    assert abs(float(s.alphas_cumprod[999]) - 0.004660) < 1e-5
    s.set_timesteps(25)
    assert int(s.timesteps[0]) == 999  # linspace spacing: starts where FreeInit re-diffuses to


def test_default_pipeline_loads_offline(pipe):
    assert isinstance(pipe, DiffusionPipeline) and isinstance(pipe, TinyVideoPipeline)
    assert isinstance(pipe.unet, TinyVideoUNet)
    log = json.loads((DEFAULT_MODEL_DIR / "training_log.json").read_text())
    assert pipe.sample_shape == (3, log["frames"], log["height"], log["width"])
    assert log["frames"] >= 16 and min(log["height"], log["width"]) >= 32  # the minimum clip size
    assert pipe.normalizer is not None  # the default works in model space (unit variance per channel)
    weights = DEFAULT_MODEL_DIR / "unet" / "diffusion_pytorch_model.safetensors"
    assert weights.exists() and weights.stat().st_size < 25e6
    for key in ("seed", "data_generator", "steps", "loss_curve", "model_config", "scheduler"):
        assert key in log
    assert log["steps"] == log["loss_curve"]["step"][-1] or log["steps"] >= log["loss_curve"]["step"][-1]


def test_output_types(pipe):
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    c, f, h, w = pipe.sample_shape
    lat = pipe(generator=g(), output_type="latent", num_inference_steps=4).frames
    assert lat.shape == (1, c, f, h, w)
    arr = pipe(generator=g(), output_type="np", num_inference_steps=4).frames
    assert isinstance(arr, np.ndarray) and arr.shape == (1, f, h, w, c)
    assert arr.min() >= 0 and arr.max() <= 1
    display = pipe.normalizer.decode(lat)  # model space -> display video in [-1, 1]
    np.testing.assert_allclose(arr, ((display.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 4, 1).numpy(), atol=1e-6)
    pt = pipe(generator=g(), output_type="pt", num_inference_steps=4).frames
    assert pt.shape == (1, f, c, h, w)
    pil = pipe(generator=g(), output_type="pil", num_inference_steps=4).frames
    assert len(pil) == 1 and len(pil[0]) == f and pil[0][0].size == (w, h)
    (tup,) = pipe(generator=g(), output_type="latent", num_inference_steps=4, return_dict=False)
    assert torch.equal(tup, lat)
    with pytest.raises(ValueError, match="output_type"):
        pipe(output_type="mp4", num_inference_steps=1)
    with pytest.raises(TypeError, match="unexpected"):
        pipe(num_inference_step=3)


def test_prepare_latents_draws_like_diffusers(pipe):
    g = torch.Generator().manual_seed(3)
    shape = pipe.sample_shape
    lat = pipe.prepare_latents(2, *shape, torch.float32, "cpu", g)
    ref = randn_tensor((2, *shape), generator=torch.Generator().manual_seed(3)) * pipe.scheduler.init_noise_sigma
    assert torch.equal(lat, ref)
    with pytest.raises(ValueError, match="one generator per video"):
        pipe.prepare_latents(3, *shape, torch.float32, "cpu", [torch.Generator()] * 2)


def test_latents_and_generator_lists(pipe):
    gens = [torch.Generator().manual_seed(s) for s in (10, 11)]
    both = pipe(batch_size=2, generator=gens, output_type="latent", num_inference_steps=5).frames
    one = pipe(generator=torch.Generator().manual_seed(11), output_type="latent", num_inference_steps=5).frames
    # one video takes the per-frame 2-D convolutions, two the channels-last 3-D ones: the same sums in another
    # order, so float round-off, amplified over 5 steps (1.3e-5 at most on values up to 1.6, measured)
    assert torch.allclose(both[1:], one, atol=1e-4)
    noise = randn_tensor((2, *pipe.sample_shape), generator=[torch.Generator().manual_seed(s) for s in (10, 11)])
    again = pipe(latents=noise, output_type="latent", num_inference_steps=5).frames
    assert torch.allclose(again, both, atol=1e-5)
    per_prompt = pipe(prompt=["a", "b"], num_videos_per_prompt=2, generator=torch.Generator().manual_seed(0),
                      output_type="latent", num_inference_steps=2).frames
    assert per_prompt.shape[0] == 4


def test_an_empty_batch_is_refused_by_name(pipe):
    """No videos to sample (batch_size=0, num_videos_per_prompt=0, an empty prompt list) is a ValueError naming the
    arguments, before any work (it was a RuntimeError from a reshape inside the network)."""
    for kw in (dict(batch_size=0), dict(num_videos_per_prompt=0), dict(prompt=[])):
        with pytest.raises(ValueError, match="batch_size"):
            pipe(num_inference_steps=1, output_type="latent", **kw)


def test_callback_on_step_end(pipe):
    seen = []

    def cb(p, i, t, kw):
        seen.append((i, int(t), sorted(kw)))
        return {"latents": kw["latents"] * 0} if i == 3 else {}

    out = pipe(generator=torch.Generator().manual_seed(0), num_inference_steps=4, output_type="latent",
               callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["latents", "noise_pred"])
    assert [s[0] for s in seen] == [0, 1, 2, 3]
    assert seen[0][1] == 999 and seen[0][2] == ["latents", "noise_pred"]
    assert torch.equal(out.frames, torch.zeros_like(out.frames))  # the callback's latents replace the state
    with pytest.raises(ValueError, match="not supported"):
        pipe(num_inference_steps=1, callback_on_step_end=cb, callback_on_step_end_tensor_inputs=["prompt_embeds"])


def test_save_pretrained_roundtrip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    again = load_default_pipeline(tmp_path)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    a = pipe(generator=g(), output_type="latent", num_inference_steps=3).frames
    b = again(generator=g(), output_type="latent", num_inference_steps=3).frames
    assert torch.equal(a, b)
    generic = TinyVideoPipeline.from_pretrained(tmp_path, local_files_only=True)  # diffusers' own loader
    assert isinstance(generic.unet, TinyVideoUNet)
    assert type(generic.normalizer) is type(pipe.normalizer)  # the model-space decoding survives the round trip
    c = generic(generator=g(), output_type="np", num_inference_steps=3).frames
    np.testing.assert_array_equal(c, pipe(generator=g(), output_type="np", num_inference_steps=3).frames)
    # the default sampler's step count survives too (a value other than the stored one, so it can fail)
    stored = pipe.default_num_inference_steps
    try:
        pipe.register_to_config(default_num_inference_steps=7)
        pipe.default_num_inference_steps = 7
        pipe.save_pretrained(tmp_path / "seven")
    finally:  # the fixture is shared with other tests
        pipe.register_to_config(default_num_inference_steps=stored)
        pipe.default_num_inference_steps = stored
    assert load_default_pipeline(tmp_path / "seven").default_num_inference_steps == 7
    assert TinyVideoPipeline.from_pretrained(tmp_path / "seven", local_files_only=True).default_num_inference_steps == 7
    with pytest.raises(FileNotFoundError, match="train_default_model"):
        load_default_pipeline(tmp_path / "missing")


def test_analytic_pipeline_same_api():
    ap = load_analytic_pipeline()
    assert isinstance(ap, TinyVideoPipeline)
    out = ap(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="latent", num_inference_steps=5)
    assert out.frames.shape == (2, 3, 8, 16, 16)
    assert torch.isfinite(out.frames).all()
    small = load_analytic_pipeline(4, 8, 8)
    assert small(output_type="latent", num_inference_steps=2).frames.shape == (1, 3, 4, 8, 8)


def test_held_out_videos_of_a_denoiser_the_layout_names(monkeypatch):
    """An exact-score model at the attribute a pipeline's layout names (pipe.model) gives its prior's draws."""
    from freeinit_lab.layouts import LAYOUTS, LatentLayout
    from freeinit_lab.pipelines import held_out_videos

    class PriorAtModelPipeline:
        def __init__(self, model):
            self.model = model

    monkeypatch.setitem(LAYOUTS, "PriorAtModelPipeline", LatentLayout(denoiser="model"))
    small = load_analytic_pipeline(4, 8, 8)
    videos = held_out_videos(PriorAtModelPipeline(small.unet), 2, 0)
    assert torch.equal(videos, held_out_videos(small, 2, 0)) and videos.shape == (2, 3, 4, 8, 8)
    with pytest.raises(ValueError, match="training data are unknown"):
        held_out_videos(PriorAtModelPipeline(torch.nn.Identity()), 2, 0)


@pytest.mark.parametrize("wrap", ["wraps", "passthrough"])
def test_wrapped_scheduler_step_keeps_eta_and_generator(wrap):
    """A wrapper around ``scheduler.step`` (a probe's or a user's) must not change stochastic sampling."""
    import functools

    import freeinit_lab as fl

    pipe = fl.load_analytic_pipeline(num_frames=4, height=8)

    def run():
        return pipe(batch_size=2, generator=torch.Generator().manual_seed(3), num_inference_steps=4, eta=1.0,
                    output_type="latent").frames

    ref = run()
    orig = pipe.scheduler.step
    if wrap == "wraps":
        pipe.scheduler.step = functools.wraps(orig)(lambda *a, **k: orig(*a, **k))
    else:
        pipe.scheduler.step = lambda *a, **k: orig(*a, **k)
    try:
        assert torch.equal(run(), ref)
    finally:
        del pipe.scheduler.step
    # eta = 1 really is stochastic here (so the check above could fail)
    assert not torch.equal(ref, pipe(batch_size=2, generator=torch.Generator().manual_seed(3), num_inference_steps=4,
                                     eta=0.0, output_type="latent").frames)


def test_call_arguments_that_would_be_silently_replaced_are_refused(pipe):
    """A zero size was replaced by the training size (``num_frames or 16``), η < 0 sampled DDIM with the noise's
    sign flipped, non-finite ``latents`` came out as NaN videos (black PIL frames) and a fractional step count
    failed inside the scheduler: each is refused before any sampling, naming the argument."""
    ddim = load_default_pipeline(scheduler=default_scheduler())
    for kw, msg in [(dict(num_frames=0), "num_frames"), (dict(height=0), "height"), (dict(width=-8), "width"),
                    (dict(num_inference_steps=2.5), "num_inference_steps"), (dict(eta=-0.5), "eta"),
                    (dict(num_inference_steps="2"), r"got '2' \(str\)"),  # read "got 2", as if 2 were wrong
                    (dict(num_inference_steps=float("nan")), r"got nan \(float\)"),
                    (dict(num_inference_steps=True), r"got True \(bool\)")]:
        with pytest.raises(ValueError, match=msg):
            ddim(output_type="latent", **dict(dict(num_inference_steps=2), **kw))
    z = torch.randn(1, *pipe.sample_shape)
    z[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"`latents` hold 1 non-finite value"):
        pipe(latents=z, output_type="pil", num_inference_steps=2)
    assert pipe(num_inference_steps=np.int64(1), output_type="latent").frames.shape == (1, *pipe.sample_shape)
    for bad in ("25", 2.5, 0):
        with pytest.raises(ValueError, match="default_num_inference_steps must be a whole number >= 1"):
            TinyVideoPipeline(unet=pipe.unet, scheduler=default_scheduler(), default_num_inference_steps=bad)


def test_encode_videos_gives_the_default_models_own_latents(pipe):
    """For the embedded default, "latents" are the normalised model space (what ``output_type="latent"`` returns
    and ``default_training_videos`` draws); encode_videos returned the display videos unchanged."""
    from freeinit_lab.embedded.pipelines import default_training_videos
    from freeinit_lab.embedded.vae import encode_videos
    from freeinit_lab.embedded.world import subject_videos

    raw = subject_videos(2, *pipe.sample_shape[1:], seed=3)
    torch.testing.assert_close(encode_videos(pipe, raw), default_training_videos(2, seed=3))
    plain = load_analytic_pipeline(4, 8, 8)  # no normaliser: model space is the display video
    x = torch.rand(1, 3, 4, 8, 8) * 2 - 1
    assert torch.equal(encode_videos(plain, x), x)


def test_eta_outside_zero_one_is_refused_everywhere_a_sampler_takes_one(pipe, tmp_path):
    """DDIM with η > 1 takes the square root of a negative variance: eta=1.5 (or inf) gave videos that were NaN in
    every value, and a sampler.json with such an η (or a negative one) was written by store_sampler into a folder
    that then failed to load. Each is refused by name, before any sampling or writing."""
    from freeinit_lab.pipelines import sampler_scheduler, store_sampler

    ddim = load_default_pipeline(scheduler=default_scheduler())
    for eta in (1.5, float("inf"), float("nan"), -0.5):
        with pytest.raises(ValueError, match=r"eta must be a number in \[0, 1\]"):
            ddim(eta=eta, num_inference_steps=2, output_type="latent")
        with pytest.raises(ValueError, match=r"default_eta must be a number in \[0, 1\]"):
            TinyVideoPipeline(unet=pipe.unet, scheduler=default_scheduler(), default_eta=eta)
        with pytest.raises(ValueError, match=r"eta must be a number in \[0, 1\]"):
            sampler_scheduler({"scheduler": "DDIMScheduler", "eta": eta})
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(ValueError, match=r"eta must be a number in \[0, 1\]"):
        store_sampler(tmp_path, {"scheduler": "DDIMScheduler", "num_inference_steps": 4, "eta": 2.0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_index.json"]
    out = ddim(eta=1.0, generator=torch.Generator().manual_seed(0), num_inference_steps=2, output_type="latent")
    assert torch.isfinite(out.frames).all()


def test_video_counts_and_sizes_must_be_integers(pipe):
    """batch_size=True or 1.5 sampled one video, batch_size=-1 with num_videos_per_prompt=-2 two, num_frames=True a
    one-frame video and 2.5 two frames, num_videos_per_prompt=1.5 failed inside torch.randn, and a batch_size beside
    a prompt list was ignored: each is refused by name before any sampling."""
    kw = dict(num_inference_steps=1, output_type="latent")
    for bad, msg in [(dict(batch_size=True), "batch_size=True"), (dict(batch_size=1.5), "batch_size=1.5"),
                     (dict(batch_size=-1, num_videos_per_prompt=-2), "num_videos_per_prompt=-2"),
                     (dict(batch_size=2, num_videos_per_prompt=1.5), "num_videos_per_prompt=1.5"),
                     (dict(num_frames=True), "num_frames=True"), (dict(num_frames=2.5), "num_frames=2.5"),
                     (dict(height=np.float64(32.0)), r"height=.*32\.0"),
                     (dict(prompt=["a"], batch_size=3), "batch_size=3 but 1 prompt"),
                     (dict(latents=torch.randn(1, *pipe.sample_shape), num_videos_per_prompt=0), "batch_size")]:
        with pytest.raises(ValueError, match=msg):
            pipe(**bad, **kw)
    assert pipe(batch_size=np.int64(2), num_videos_per_prompt=np.int64(1), **kw).frames.shape[0] == 2
    assert pipe(prompt=["a", "b"], batch_size=2, **kw).frames.shape[0] == 2


def test_latents_and_generators_of_the_wrong_kind_are_refused(pipe):
    """Integer latents were cast to float and sampled, complex ones lost their imaginary part with a warning, a numpy
    array failed on a missing tensor method, and a seed passed as the generator (generator=0) or a tuple of
    generators failed inside torch: each is a TypeError naming the fix, before any sampling."""
    shape = (1, *pipe.sample_shape)
    kw = dict(num_inference_steps=1, output_type="latent")
    for z, msg in [(torch.ones(shape, dtype=torch.int64), "torch.int64 tensor"),
                   (torch.randn(shape, dtype=torch.complex64), "complex64 tensor"),
                   (np.zeros(shape, dtype=np.float32), "got a ndarray")]:
        with pytest.raises(TypeError, match=f"`latents` must be a real floating-point torch.Tensor.*{msg}"):
            pipe(latents=z, **kw)
    for g, msg in [(0, "got a int"), ((torch.Generator(),), "got a tuple"),
                   ([torch.Generator(), 1], r"\['Generator', 'int'\]")]:
        with pytest.raises(TypeError, match=f"generator must be a torch.Generator.*{msg}.*manual_seed"):
            pipe(generator=g, batch_size=len(g) if isinstance(g, (list, tuple)) else 1, **kw)
    z = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pipe(latents=z, **kw).frames, pipe(latents=z.float(), **kw).frames)


def test_analytic_reference_counts_and_sizes_are_checked_first(tmp_path):
    """held_out_videos of an exact-score pipeline drew int(n) videos (n=2.5 gave 2, n=True 1, n=0 an MKL error),
    load_default_analytic_pipeline fitted its prior to num_videos=1 video (clips= needs two) after loading the model,
    and load_analytic_pipeline(0, 8, 8) failed in an eigen-decomposition: each count is refused by name, first."""
    from freeinit_lab.pipelines import held_out_videos, load_default_analytic_pipeline

    analytic = load_analytic_pipeline(4, 8, 8)
    for n in (2.5, True, 0, -1):
        with pytest.raises(ValueError, match=f"n={n!r} must be an integer >= 1"):
            held_out_videos(analytic, n, seed=0)
    with pytest.raises(ValueError, match="seed=-1 must be an integer"):
        held_out_videos(analytic, 2, seed=-1)
    assert held_out_videos(analytic, np.int64(2), seed=0).shape == (2, 3, 4, 8, 8)
    for nv in (1, True, 2.5):
        with pytest.raises(ValueError, match=f"num_videos={nv!r} must be an integer >= 2"):
            load_default_analytic_pipeline(nv, path=tmp_path / "no_model_here")  # refused before the folder is read
    for size in (dict(num_frames=0), dict(height=8.5), dict(width=True)):
        with pytest.raises(ValueError, match=f"{next(iter(size))}=.* must be an integer >= 1"):
            load_analytic_pipeline(**dict(dict(num_frames=4, height=8, width=8), **size))
