"""The subjects world (training data of the embedded default), its normalisation and the model-folder contract."""

import json
from pathlib import Path

import pytest
import torch

from freeinit_lab.embedded.models import TinyVideoUNet
from freeinit_lab.embedded.pipelines import ChannelNormalizer, TinyVideoPipeline, default_scheduler, default_training_videos
from freeinit_lab.embedded.world import (SHAPES, WORLD_VERSION, SubjectsConfig, render_subjects,
                                         subject_parameters, subject_videos)


def test_shape_range_and_determinism():
    a = subject_videos(3, 16, 32, seed=7)
    assert a.shape == (3, 3, 16, 32, 32) and a.dtype == torch.float32
    assert a.abs().max() <= 1
    assert torch.equal(a, subject_videos(3, 16, 32, seed=7))
    assert not torch.equal(a, subject_videos(3, 16, 32, seed=8))
    g = torch.Generator().manual_seed(7)
    assert torch.equal(subject_videos(3, 16, 32, generator=g), a)
    assert subject_videos(2, 5, 24, 40, seed=0).shape == (2, 3, 5, 24, 40)


def test_rendering_in_chunks_gives_the_same_videos():
    """Every random draw precedes rendering, so the chunk size bounds memory without changing a single value."""
    whole, whole_masks = subject_videos(7, 8, 16, seed=11, return_masks=True, chunk_size=7)
    for chunk in (1, 3):
        v, m = subject_videos(7, 8, 16, seed=11, return_masks=True, chunk_size=chunk)
        assert torch.equal(v, whole) and torch.equal(m, whole_masks)


def test_the_version_is_pinned():
    """subjects-v1 must keep drawing the videos the shipped models were trained on: statistics of seed 0, recorded
    when the version was pinned (a change here means a new WORLD_VERSION, not a new expected value)."""
    v = subject_videos(2, 16, 32, seed=0).double()
    got = [v.mean(), v.pow(2).mean(), v[0, 0, 0, 0, 0], v[1, 2, 15, 31, 31], v[:, :, 5].std()]
    want = [-0.129185, 0.106727, -0.386725, 0.042872, 0.301427]
    assert WORLD_VERSION == "subjects-v1"
    assert [float(x) for x in got] == pytest.approx(want, abs=2e-6)


def test_parameters_drawn_apart_render_to_the_same_videos():
    """Training workers draw the parameters and the GPU renders them (scripts/train_default_model.py --render
    device): the two halves give subject_videos exactly, for any chunking."""
    whole = subject_videos(5, 8, 16, seed=21)
    params = subject_parameters(5, 8, 16, seed=21)
    assert set(params["sizes"]) >= {"batch", "num_frames", "height", "width", "supersample"}
    for chunk in (2, 5):
        assert torch.equal(render_subjects(params, chunk_size=chunk), whole)
    with pytest.raises(ValueError, match="chunk_size"):
        render_subjects(params, chunk_size=0)


def test_bad_input_names_the_fix():
    with pytest.raises(ValueError, match="exactly one of"):
        subject_videos(1)
    with pytest.raises(TypeError, match="unknown SubjectsConfig keys.*valid keys"):
        subject_videos(1, seed=0, config={"num_leaves": 3})
    with pytest.raises(ValueError, match="unknown world version"):
        subject_videos(1, seed=0, version="subjects-v0")
    with pytest.raises(ValueError, match="num_objects_max"):
        SubjectsConfig(num_objects_max=len(SHAPES) + 1)
    with pytest.raises(ValueError, match=">= 1"):
        subject_videos(0, seed=0)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        subject_videos(2, seed=0, chunk_size=0)


def test_counts_sizes_and_configuration_values_are_checked():
    """subject_videos(True, ...) drew one video, 2.5 two, num_frames=2.5 two frames and height=8.5 8 rows;
    num_objects_min=1.5 and supersample=1.5 were truncated, aspect_max=0 failed with "math domain error" and a
    negative camera_speed_max or amplitude was drawn as a reversed range: each is refused by name before any draw."""
    for args, msg in [((True, 4, 8), "batch=True"), ((2.5, 4, 8), "batch=2.5"), ((1, 2.5, 8), "num_frames=2.5"),
                      ((1, 2, 8.5), "height=8.5"), ((1, 2, 8, 0), "width=0")]:
        with pytest.raises(ValueError, match=f"{msg} must be an integer >= 1"):
            subject_videos(*args, seed=0)
    for cfg, msg in [(dict(num_objects_min=1.5), "num_objects_min=1.5 must be an integer"),
                     (dict(supersample=1.5), "supersample=1.5 must be an integer"),
                     (dict(supersample=True), "supersample=True must be an integer"),
                     (dict(aspect_max=0.0), "aspect_max=0.0 must be >= 1"),
                     (dict(camera_speed_max=-0.5), "camera_speed_max.*finite numbers >= 0"),
                     (dict(background_amp=float("nan")), "background_amp.*finite numbers >= 0"),
                     (dict(texture_freq_min=3.0), "need texture_freq_min <= texture_freq_max")]:
        with pytest.raises(ValueError, match=msg):
            SubjectsConfig(**cfg)
    assert torch.equal(subject_videos(2, 3, 8, seed=5, config=dict(aspect_max=1.5, supersample=2)),
                       subject_videos(2, 3, 8, seed=5))


def test_subjects_persist_cover_the_frame_and_occlude():
    """Subjects cover a substantial part of the frame, keep their area from frame to frame, and overlap."""
    v, m = subject_videos(32, 16, 32, seed=3, return_masks=True)
    assert m.shape == (32, 4, 16, 32, 32)
    coverage = m.sum(1).clamp(max=1).mean(dim=(1, 2, 3))  # per video
    assert coverage.mean() > 0.25 and (coverage > 0.1).float().mean() > 0.9
    present = m.amax(dim=(2, 3, 4)) > 0.5  # (video, subject)
    area = m.sum(dim=(3, 4))  # (video, subject, frame) visible area
    # identity persists: a present subject is visible in every frame (it starts and ends inside the frame)
    visible = (area > 4)[present]
    assert visible.float().mean() > 0.95
    # visible coverages of a pixel never add up to more than the pixel
    assert (m.sum(1) > 1.0 + 1e-6).sum() == 0
    # occlusion: a subject's visible area changes over the shot by more than its own scaling explains
    # in a good share of videos (a later subject passes over an earlier one)
    lo, hi = area.amin(-1), area.amax(-1)
    changed = ((hi - lo) / hi.clamp_min(1) > 0.25)[present]
    assert changed.float().mean() > 0.2


def test_texture_moves_with_the_subject():
    """With no camera motion and a still background, consecutive frames are highly correlated."""
    cfg = dict(camera_speed_max=0.0, speed_max=0.0, rotation_max=0.0, scale_rate_max=0.0)
    v = subject_videos(4, 8, 32, seed=1, config=cfg)
    assert torch.allclose(v[:, :, 0], v[:, :, -1], atol=1e-5)
    w = subject_videos(4, 8, 32, seed=1)
    assert not torch.allclose(w[:, :, 0], w[:, :, -1], atol=1e-2)


def test_background_has_natural_spatial_statistics():
    """Spatial power falls with frequency roughly as f^-2 or steeper (natural images: ≈ f^-2)."""
    v = subject_videos(16, 1, 64, seed=2).double()
    spec = torch.fft.fft2(v - v.mean(dim=(-2, -1), keepdim=True)).abs() ** 2
    f = torch.sqrt(torch.fft.fftfreq(64).view(-1, 1) ** 2 + torch.fft.fftfreq(64).view(1, -1) ** 2)
    lo = spec[..., (f > 0.04) & (f < 0.08)].mean()
    hi = spec[..., (f > 0.16) & (f < 0.32)].mean()
    slope = torch.log(lo / hi) / torch.log(torch.tensor(4.0))  # power ratio over two octaves
    assert 1.5 < slope < 3.5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_renders_on_gpu_like_cpu():
    a = subject_videos(2, 8, 32, seed=4)
    b = subject_videos(2, 8, 32, seed=4, device="cuda").cpu()
    assert torch.allclose(a, b, atol=1e-4)


def test_channel_normalizer_round_trip_and_errors(tmp_path):
    x = torch.randn(8, 3, 4, 8, 8) * torch.tensor([0.2, 0.5, 1.5]).view(1, 3, 1, 1, 1) + 0.3
    n = ChannelNormalizer.fit(x)
    z = n.encode(x)
    assert torch.allclose(z.mean(dim=(0, 2, 3, 4)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.std(dim=(0, 2, 3, 4)), torch.ones(3), atol=1e-3)
    assert torch.allclose(n.decode(z), x, atol=1e-5)
    n.save_pretrained(tmp_path / "normalizer")
    m = ChannelNormalizer.from_pretrained(tmp_path / "normalizer", low_cpu_mem_usage=False)
    assert torch.allclose(m.encode(x), z)
    with pytest.raises(ValueError, match="scale must be"):
        ChannelNormalizer(shift=(0.0,), scale=(0.0,))
    with pytest.raises(ValueError, match="channels"):
        n.encode(torch.zeros(1, 4, 2, 2, 2))


def _folder(tmp_path, normalizer=True, steps=3):
    unet = TinyVideoUNet(block_channels=(8, 16), sample_size=8, num_frames=4, space_to_depth=2,
                         attention_heads=0, norm_groups=4)
    norm = ChannelNormalizer(shift=(0.1, 0.0, -0.1), scale=(0.4, 0.4, 0.4)) if normalizer else None
    pipe = TinyVideoPipeline(unet=unet, scheduler=default_scheduler(set_alpha_to_one=True), normalizer=norm)
    pipe.save_pretrained(tmp_path)
    if norm is not None:
        norm.save_pretrained(tmp_path / "normalizer")
    (tmp_path / "sampler.json").write_text(json.dumps({"num_inference_steps": steps}))
    log = dict(data_generator=WORLD_VERSION, data_config=dict(SubjectsConfig()), frames=4, height=8, width=8,
               normalization={"kind": "per-channel"} if normalizer else "identity")
    (tmp_path / "training_log.json").write_text(json.dumps(log))
    return tmp_path


def test_model_folder_contract(tmp_path):
    import freeinit_lab as fl

    path = _folder(tmp_path)
    pipe = fl.load_default_pipeline(path)
    assert pipe.default_num_inference_steps == 3
    seen = []
    out = pipe(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="latent",
               callback_on_step_end=lambda p, i, t, kw: seen.append(i) or {})
    assert out.frames.shape == (2, 3, 4, 8, 8) and seen == [0, 1, 2]
    rgb = pipe(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="np").frames
    expect = ((pipe.normalizer.decode(out.frames).clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 4, 1).numpy()
    assert abs(rgb - expect).max() < 1e-6
    x = default_training_videos(5, seed=11, path=path)
    raw = subject_videos(5, 4, 8, seed=11)
    assert torch.allclose(x, pipe.normalizer.encode(raw))


def test_stored_stochastic_sampler_is_the_default_and_other_schedulers_are_refused(tmp_path):
    """sampler.json's η is used when a call gives none (a card that chose η = 1 is what the pipeline samples), and
    a folder whose stored scheduler is not a deterministic sampler the toolkit loads, or whose sampler.json and
    scheduler/ disagree, is refused rather than silently sampled with another one."""
    import freeinit_lab as fl

    path = _folder(tmp_path)
    (path / "sampler.json").write_text(json.dumps({"scheduler": "DDIMScheduler", "num_inference_steps": 3,
                                                   "eta": 1.0}))
    pipe = fl.load_default_pipeline(path)
    assert pipe.default_eta == 1.0 and fl.load_default_analytic_pipeline(num_videos=16, path=path).default_eta == 1.0
    z = torch.randn(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(1))

    def run(**kw):
        return pipe(latents=z, generator=torch.Generator().manual_seed(2), output_type="latent", **kw).frames

    assert torch.equal(run(), run(eta=1.0)) and not torch.allclose(run(), run(eta=0.0))
    pipe.save_pretrained(tmp_path / "copy")
    assert TinyVideoPipeline.from_pretrained(tmp_path / "copy").default_eta == 1.0
    with pytest.raises(ValueError, match="default_eta must be"):
        TinyVideoPipeline(unet=pipe.unet, scheduler=pipe.scheduler, default_eta=-0.5)

    # a stored class that sampler.json and scheduler/ disagree on, or one outside the deterministic samplers
    (path / "sampler.json").write_text(json.dumps({"scheduler": "DPMSolverMultistepScheduler",
                                                   "num_inference_steps": 3}))
    with pytest.raises(ValueError, match="must hold the same class; pass scheduler="):
        fl.load_default_pipeline(path)
    from diffusers import DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler

    other = fl.load_default_pipeline(path, scheduler=DPMSolverMultistepScheduler.from_config(pipe.scheduler.config))
    assert isinstance(other.scheduler, DPMSolverMultistepScheduler)
    with pytest.raises(ValueError, match="takes no eta, so it would be ignored"):
        other(latents=z, output_type="latent", eta=0.5)
    EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config).save_pretrained(path / "scheduler")
    (path / "sampler.json").write_text(json.dumps({"scheduler": "EulerAncestralDiscreteScheduler",
                                                   "num_inference_steps": 3}))
    with pytest.raises(ValueError, match="load one of DDIMScheduler, DPMSolverMultistepScheduler.*scheduler=..."):
        fl.load_default_pipeline(path)


@pytest.mark.parametrize("sampler", [
    dict(scheduler="DPMSolverMultistepScheduler", algorithm_type="dpmsolver++", solver_order=2),
    dict(scheduler="UniPCMultistepScheduler"),
])
def test_stored_multistep_sampler_loads_and_is_what_the_pipeline_samples(tmp_path, sampler):
    """A folder storing a deterministic multistep sampler (as --choose-sampler writes it) loads with that class and
    its settings, samples exactly as the scheduler built from the description, and refuses η > 0 in sampler.json."""
    import freeinit_lab as fl
    from freeinit_lab.pipelines import sampler_scheduler

    path = _folder(tmp_path)
    desc = dict(sampler, num_inference_steps=4, timestep_spacing="linspace", eta=0.0)
    sampler_scheduler(desc).save_pretrained(path / "scheduler")
    (path / "sampler.json").write_text(json.dumps(desc))
    pipe = fl.load_default_pipeline(path)
    assert type(pipe.scheduler).__name__ == sampler["scheduler"] and pipe.default_num_inference_steps == 4
    for k, v in sampler.items():
        if k != "scheduler":
            assert pipe.scheduler.config[k] == v
    z = torch.randn(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    out = pipe(latents=z, output_type="latent").frames
    ddim = fl.load_default_pipeline(path, scheduler=fl.default_scheduler(set_alpha_to_one=True))
    by_hand = fl.load_default_pipeline(path, scheduler=sampler_scheduler(desc))
    assert torch.equal(out, by_hand(latents=z, output_type="latent").frames)
    assert not torch.allclose(out, ddim(latents=z, output_type="latent", num_inference_steps=4).frames, atol=1e-4)
    analytic = fl.load_default_analytic_pipeline(num_videos=16, path=path)
    assert type(analytic.scheduler).__name__ == sampler["scheduler"]
    (path / "sampler.json").write_text(json.dumps(dict(desc, eta=1.0)))
    with pytest.raises(ValueError, match="gives eta=1.0 for the deterministic .*use eta=0.0"):
        fl.load_default_pipeline(path)


def test_sampler_descriptions_are_checked():
    from freeinit_lab.pipelines import sampler_scheduler

    with pytest.raises(ValueError, match="names the sampler EulerDiscreteScheduler; the embedded pipelines load one of.*choose one"):
        sampler_scheduler({"scheduler": "EulerDiscreteScheduler"})
    with pytest.raises(ValueError, match="gives eta=1.0 for the deterministic UniPCMultistepScheduler"):
        sampler_scheduler({"scheduler": "UniPCMultistepScheduler", "eta": 1.0})
    with pytest.raises(ValueError, match=r"has no setting\(s\) \['solver_typo'\]"):
        sampler_scheduler({"scheduler": "DPMSolverMultistepScheduler", "solver_typo": 2})
    assert sampler_scheduler({"scheduler": "DDIMScheduler", "set_alpha_to_one": True}).config.set_alpha_to_one


def test_model_folder_without_its_normalizer_is_refused(tmp_path):
    import shutil

    import freeinit_lab as fl

    path = _folder(tmp_path)
    shutil.rmtree(path / "normalizer")
    with pytest.raises(FileNotFoundError, match="no normalizer/"):
        fl.load_default_pipeline(path)
    with pytest.raises(FileNotFoundError, match="normalizer"):
        default_training_videos(2, seed=0, path=path)


def test_unknown_generator_in_model_folder(tmp_path):
    path = _folder(tmp_path, normalizer=False)
    log = json.loads((path / "training_log.json").read_text())
    log["data_generator"] = "mystery-v9"
    (path / "training_log.json").write_text(json.dumps(log))
    with pytest.raises(ValueError, match="cannot reproduce"):
        default_training_videos(2, seed=0, path=path)


def test_space_to_depth_unet_shapes():
    m = TinyVideoUNet(block_channels=(8, 16), sample_size=8, num_frames=4, space_to_depth=2, attention_heads=0,
                      norm_groups=4)
    y = m(torch.randn(2, 3, 4, 8, 8), torch.tensor([1, 500])).sample
    assert y.shape == (2, 3, 4, 8, 8)
    with pytest.raises(ValueError, match="divisible by 4"):
        m(torch.randn(1, 3, 4, 6, 6), 1)


def test_analytic_reference_of_the_default_data(tmp_path):
    """The Gaussian reference is fitted to the default's own model-space data and shares its sampler and decoding."""
    import freeinit_lab as fl

    path = _folder(tmp_path)
    base = fl.load_default_pipeline(path)
    ref = fl.load_default_analytic_pipeline(num_videos=64, path=path)
    assert ref.sample_shape == base.sample_shape
    assert ref.default_num_inference_steps == base.default_num_inference_steps == 3
    assert ref.normalizer.config.shift == base.normalizer.config.shift
    # the prior's total power per channel equals the data's second moment about the fitted mean
    data = default_training_videos(64, seed=950_000_000, path=path).double()
    var = data.var(dim=(0, 2, 3, 4), unbiased=False).sum()
    prior_power = ref.unet.power.double().mean(dim=(1, 2, 3)).sum()  # Parseval: mean power = variance
    assert abs(float(prior_power) - float(var)) / float(var) < 1e-4
    out = ref(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="latent")
    assert out.frames.shape == (2, *base.sample_shape)
    # fitted to given clips: the same prior as drawing them; other clips, another prior
    same = fl.load_default_analytic_pipeline(path=path, clips=data.float())
    assert torch.equal(same.unet.power, ref.unet.power) and torch.equal(same.unet.mean, ref.unet.mean)
    other = fl.load_default_analytic_pipeline(path=path, clips=default_training_videos(64, seed=1, path=path))
    assert not torch.allclose(other.unet.power, ref.unet.power)
    with pytest.raises(ValueError, match=r"clips has shape \(4, 3, 4, 8, 4\); expected \(N >= 2, 3, 4, 8, 8\)"):
        fl.load_default_analytic_pipeline(path=path, clips=torch.zeros(4, 3, 4, 8, 4))



def test_diffusers_loader_keeps_the_stored_sampler(tmp_path):
    """``TinyVideoPipeline.from_pretrained`` on a folder whose sampler was chosen after export (scheduler/ holds
    UniPC, model_index.json still names the exported DDIM, as the shipped default did until store_sampler) samples
    with the stored class, as load_default_pipeline does; it loaded DDIM from UniPC's config and sampled other
    videos."""
    import freeinit_lab as fl
    from freeinit_lab.pipelines import DEFAULT_MODEL_DIR, sampler_scheduler

    path = _folder(tmp_path)
    desc = dict(scheduler="UniPCMultistepScheduler", num_inference_steps=3, timestep_spacing="linspace", eta=0.0)
    sampler_scheduler(desc).save_pretrained(path / "scheduler")
    (path / "sampler.json").write_text(json.dumps(desc))
    assert json.loads((path / "model_index.json").read_text())["scheduler"] == ["diffusers", "DDIMScheduler"]
    generic = TinyVideoPipeline.from_pretrained(path, local_files_only=True)
    ours = fl.load_default_pipeline(path)
    assert type(generic.scheduler) is type(ours.scheduler) and generic.default_num_inference_steps == 3
    assert dict(generic.scheduler.config) == dict(ours.scheduler.config)
    z = torch.randn(1, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    generic.set_progress_bar_config(disable=True)
    assert torch.equal(generic(latents=z, output_type="latent").frames, ours(latents=z, output_type="latent").frames)
    # a scheduler the caller passes still wins, and the shipped default loads its own sampler
    from diffusers import DDIMScheduler

    assert isinstance(TinyVideoPipeline.from_pretrained(path, scheduler=fl.default_scheduler()).scheduler, DDIMScheduler)
    shipped = TinyVideoPipeline.from_pretrained(DEFAULT_MODEL_DIR, local_files_only=True)
    assert type(shipped.scheduler) is type(fl.load_default_pipeline().scheduler)


def test_store_sampler_writes_one_sampler_everywhere_a_folder_names_it(tmp_path):
    """store_sampler writes sampler.json, scheduler/ and model_index.json from one description, so diffusers'
    loader, TinyVideoPipeline.from_pretrained and load_default_pipeline all sample with it (model_card.py
    --choose-sampler wrote the first two only and left model_index.json naming the exported class); a bad
    description writes nothing. The shipped default names its stored class in all three."""
    import freeinit_lab as fl
    from freeinit_lab.pipelines import DEFAULT_MODEL_DIR, store_sampler

    path = _folder(tmp_path)
    files = (path / "model_index.json", path / "sampler.json", path / "scheduler" / "scheduler_config.json")
    before = [f.read_bytes() for f in files]
    for bad, match in (({"scheduler": "DPMSolverMultistepScheduler", "num_inference_steps": 0}, "num_inference_steps"),
                       ({"scheduler": "DDIMScheduler", "num_inference_steps": 4, "solver_ordr": 2}, "solver_ordr"),
                       ({"scheduler": "EulerAncestralDiscreteScheduler", "num_inference_steps": 4}, "Euler")):
        with pytest.raises(ValueError, match=match):
            store_sampler(path, bad)
    assert [f.read_bytes() for f in files] == before
    desc = dict(scheduler="DPMSolverMultistepScheduler", num_inference_steps=5, algorithm_type="dpmsolver++",
                solver_order=2, eta=0.0)
    store_sampler(path, desc)
    index = json.loads((path / "model_index.json").read_text())
    assert index["scheduler"] == ["diffusers", "DPMSolverMultistepScheduler"]
    assert index["default_num_inference_steps"] == 5 and json.loads((path / "sampler.json").read_text()) == desc
    ours, generic = fl.load_default_pipeline(path), TinyVideoPipeline.from_pretrained(path, local_files_only=True)
    for pipe in (ours, generic):
        assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
        assert pipe.default_num_inference_steps == 5 and pipe.scheduler.config.solver_order == 2
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        store_sampler(tmp_path / "nowhere", desc)
    shipped = json.loads((DEFAULT_MODEL_DIR / "sampler.json").read_text())
    stored = json.loads((DEFAULT_MODEL_DIR / "scheduler" / "scheduler_config.json").read_text())["_class_name"]
    index = json.loads((DEFAULT_MODEL_DIR / "model_index.json").read_text())
    assert index["scheduler"][-1] == stored == shipped["scheduler"]
    assert index["default_num_inference_steps"] == shipped["num_inference_steps"]


def test_a_folder_whose_parts_do_not_belong_together_is_refused_at_load(tmp_path):
    """A weights file missing a tensor (or holding another) loaded with a log line and a randomly initialised
    layer; a 2-channel normaliser failed only when decoding; a training log of another video size than the
    network made default_training_videos draw videos of another size than the model samples."""
    import shutil

    from safetensors.torch import load_file, save_file

    import freeinit_lab as fl

    good = _folder(tmp_path / "good")
    fl.load_default_pipeline(good)  # intact: loads

    def copy(name):
        return Path(shutil.copytree(good, tmp_path / name))

    for name, edit in (("missing", lambda sd: sd.pop(sorted(sd)[3])),
                       ("unexpected", lambda sd: sd.__setitem__("extra.weight", torch.zeros(2)))):
        path = copy(name)
        weights = next((path / "unet").glob("*.safetensors"))
        sd = load_file(weights)
        edit(sd)
        save_file(sd, weights)
        with pytest.raises(ValueError, match=f"{name} \\["):
            fl.load_default_pipeline(path)
    path = copy("normalizer")
    ChannelNormalizer(shift=(0.0, 0.0), scale=(1.0, 1.0)).save_pretrained(path / "normalizer")
    with pytest.raises(ValueError, match="normalizer holds 2 channels but the network takes 3"):
        fl.load_default_pipeline(path)
    path = copy("log")
    log = json.loads((path / "training_log.json").read_text())
    (path / "training_log.json").write_text(json.dumps(dict(log, frames=8)))
    with pytest.raises(ValueError, match="frames 8 in training_log.json but 4 in unet/config.json"):
        fl.load_default_pipeline(path)


def test_sampler_json_settings_that_scheduler_folder_contradicts_are_refused(tmp_path):
    """sampler.json is the sampler the model card judges (scripts/model_card.py builds it with sampler_scheduler);
    the pipeline samples with scheduler/. A setting of sampler.json that scheduler/ does not hold, or holds with
    another value, was silently ignored; it is refused, naming both values."""
    import freeinit_lab as fl
    from freeinit_lab.pipelines import sampler_scheduler

    path = _folder(tmp_path)
    desc = dict(scheduler="DPMSolverMultistepScheduler", algorithm_type="dpmsolver++", solver_order=2,
                num_inference_steps=3, timestep_spacing="linspace", eta=0.0)
    sampler_scheduler(desc).save_pretrained(path / "scheduler")
    (path / "sampler.json").write_text(json.dumps(desc))
    assert fl.load_default_pipeline(path).scheduler.config.solver_order == 2  # agreeing settings load
    (path / "sampler.json").write_text(json.dumps(dict(desc, solver_order=3)))
    with pytest.raises(ValueError, match=r"sampler.json gives solver_order=3 but scheduler/ holds 2"):
        fl.load_default_pipeline(path)
    (path / "sampler.json").write_text(json.dumps(dict(desc, solver_ordr=3)))
    with pytest.raises(ValueError, match=r"has no setting\(s\) \['solver_ordr'\]"):
        fl.load_default_pipeline(path)
    # a scheduler passed by the caller replaces the stored one, so sampler.json's settings do not apply
    fl.load_default_pipeline(path, scheduler=fl.default_scheduler())



def test_from_pretrained_refuses_a_sampler_json_that_scheduler_folder_contradicts(tmp_path):
    """diffusers' loader (TinyVideoPipeline.from_pretrained) once took the step count and η of any sampler.json: one
    copied from a DDIM η = 1, 50-step model beside a UniPC scheduler/ loaded as UniPC with 50 steps and η = 1 and
    failed at every call ('takes no eta'); a DPM-Solver or order-3 description loaded silently as the stored UniPC.
    It refuses them at load, as load_default_pipeline does; agreeing descriptions and scheduler= still load."""
    from diffusers import DDIMScheduler

    from freeinit_lab.pipelines import sampler_scheduler

    path = _folder(tmp_path)
    unipc = dict(scheduler="UniPCMultistepScheduler", num_inference_steps=5, timestep_spacing="linspace", eta=0.0)
    sampler_scheduler(unipc).save_pretrained(path / "scheduler")
    (path / "sampler.json").write_text(json.dumps(unipc))
    loaded = TinyVideoPipeline.from_pretrained(path)
    assert type(loaded.scheduler).__name__ == "UniPCMultistepScheduler" and loaded.default_num_inference_steps == 5
    refused = {
        "names DDIMScheduler but .*scheduler stores UniPCMultistepScheduler.*scheduler=... to from_pretrained":
            dict(scheduler="DDIMScheduler", num_inference_steps=50, set_alpha_to_one=True,
                 timestep_spacing="linspace", eta=1.0),
        "names DPMSolverMultistepScheduler but": dict(unipc, scheduler="DPMSolverMultistepScheduler"),
        "gives eta=1.0 for the deterministic UniPCMultistepScheduler": dict(unipc, eta=1.0),
        r"gives solver_order=3 but scheduler/ holds 2.*scheduler=... to from_pretrained": dict(unipc, solver_order=3),
    }
    for match, desc in refused.items():
        (path / "sampler.json").write_text(json.dumps(desc))
        with pytest.raises(ValueError, match=match):
            TinyVideoPipeline.from_pretrained(path)
    # a scheduler passed by the caller replaces the stored one; sampler.json then gives the step count only
    (path / "sampler.json").write_text(json.dumps(dict(unipc, solver_order=3)))
    ddim = TinyVideoPipeline.from_pretrained(path, scheduler=DDIMScheduler.from_config(loaded.scheduler.config))
    assert isinstance(ddim.scheduler, DDIMScheduler) and ddim.default_num_inference_steps == 5

def test_broken_model_folder_files_are_named(tmp_path):
    """A corrupt JSON file, a missing scheduler/ or a stored step count below 1 are refused at load, naming the
    file (they were a bare JSONDecodeError, a message about reaching huggingface.co, and an error at every call)."""
    import shutil

    import freeinit_lab as fl

    path = _folder(tmp_path / "a")
    (path / "sampler.json").write_text("{\"num_inference_steps\": 3,")
    with pytest.raises(ValueError, match=r"sampler.json is not valid JSON"):
        fl.load_default_pipeline(path)
    (path / "sampler.json").write_text(json.dumps({"num_inference_steps": 0}))
    with pytest.raises(ValueError, match=r"default_num_inference_steps must be a whole number >= 1"):
        fl.load_default_pipeline(path)
    (path / "sampler.json").write_text(json.dumps({"num_inference_steps": 3}))
    (path / "training_log.json").write_text("{")
    with pytest.raises(ValueError, match=r"training_log.json is not valid JSON"):
        default_training_videos(1, seed=0, path=path)
    path = _folder(tmp_path / "b")
    shutil.rmtree(path / "scheduler")
    with pytest.raises(FileNotFoundError, match=r"scheduler/scheduler_config.json missing.*scheduler="):
        fl.load_default_pipeline(path)
    fl.load_default_pipeline(path, scheduler=fl.default_scheduler())  # a given scheduler needs none


def test_missing_folder_parts_are_named_before_the_weights_load(tmp_path):
    """A folder without unet/ was reported as a failed download from huggingface.co, and a missing scheduler/ only
    after the network's weights had loaded (a folder missing both named the weights): each missing part is named
    first, with the fix."""
    import shutil

    import freeinit_lab as fl

    path = _folder(tmp_path / "a")
    shutil.rmtree(path / "unet")
    with pytest.raises(FileNotFoundError, match=r"unet/config.json missing.*train_default_model"):
        fl.load_default_pipeline(path)
    path = _folder(tmp_path / "b")
    shutil.rmtree(path / "scheduler")
    for f in (path / "unet").glob("diffusion_pytorch_model.*"):
        f.unlink()
    with pytest.raises(FileNotFoundError, match=r"scheduler/scheduler_config.json missing.*scheduler="):
        fl.load_default_pipeline(path)


def _weighted_folder(path, *others):
    """A :func:`_folder` model whose network (and each of ``others``) has random weights: a freshly made network
    predicts ε̂ = 0 (its last layer starts at zero), which no sampling correction would change. Returns the
    folder's pipeline and two initial latents."""
    import freeinit_lab as fl

    path = _folder(path)
    pipe = fl.load_default_pipeline(path)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for net in (pipe.unet, *others):
            for w in net.parameters():
                w.copy_(0.2 * torch.randn(w.shape, generator=g))
    pipe.unet.save_pretrained(path / "unet")
    return pipe, torch.randn(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(1))


def _run_seeing_eps(p, z, **kw):
    """``p``'s model-space samples from ``z`` and the ε̂ its scheduler was handed at each step (as a callback sees
    it)."""
    seen = []
    out = p(latents=z, output_type="latent", callback_on_step_end_tensor_inputs=["noise_pred"],
            callback_on_step_end=lambda q, i, t, k: seen.append(k["noise_pred"]) or {}, **kw).frames
    return out, seen


def test_eps_scale_divides_the_networks_eps_at_every_step_and_is_stored_with_the_sampler(tmp_path):
    """``eps_scale=λ`` samples exactly what the same pipeline samples when its network's output is divided by λ
    (callbacks and probes, which read the scheduler's input, see the scaled ε̂); a folder's ``sampler.json`` makes
    it the default for load_default_pipeline, from_pretrained and save_pretrained copies, but not for the
    exact-score reference; bad values are refused before sampling."""
    import freeinit_lab as fl
    from freeinit_lab.pipelines import sampler_scheduler, store_sampler

    path = tmp_path / "m"
    pipe, z = _weighted_folder(path)
    assert pipe.default_eps_scale == 1.0

    def run(p, **kw):
        return _run_seeing_eps(p, z, **kw)

    base, eps_base = run(pipe)
    assert torch.equal(base, run(pipe, eps_scale=1.0)[0])
    scaled, eps_scaled = run(pipe, eps_scale=1.25)
    handle = pipe.unet.register_forward_hook(lambda m, a, out: type(out)(sample=out.sample / 1.25))
    try:
        wrapped, eps_wrapped = run(pipe)
    finally:
        handle.remove()
    assert torch.equal(scaled, wrapped) and not torch.allclose(scaled, base)
    assert all(torch.equal(a, b) for a, b in zip(eps_scaled, eps_wrapped))
    assert torch.allclose(eps_scaled[0], eps_base[0] / 1.25)  # same input at the first step

    desc = dict(scheduler="DDIMScheduler", num_inference_steps=3, eta=0.0, set_alpha_to_one=True, eps_scale=1.25)
    store_sampler(path, desc)
    assert json.loads((path / "model_index.json").read_text())["default_eps_scale"] == 1.25
    assert "eps_scale" not in sampler_scheduler(desc).config
    ours = fl.load_default_pipeline(path)
    generic = TinyVideoPipeline.from_pretrained(path, local_files_only=True)
    ours.save_pretrained(tmp_path / "copy")
    copy = TinyVideoPipeline.from_pretrained(tmp_path / "copy", local_files_only=True)
    for p in (ours, generic, copy):
        assert p.default_eps_scale == 1.25
        assert torch.equal(run(p)[0], scaled)
    assert fl.load_default_analytic_pipeline(num_videos=16, path=path).default_eps_scale == 1.0

    for bad in (0, -1.0, float("nan"), float("inf"), True, "1.01"):
        with pytest.raises(ValueError, match=r"eps_scale=.* must be a finite number > 0"):
            ours(latents=z, output_type="latent", eps_scale=bad)
        with pytest.raises(ValueError, match=r"eps_scale=.* must be a finite number > 0"):
            store_sampler(path, dict(desc, eps_scale=bad))
        with pytest.raises(ValueError, match=r"default_eps_scale=.* must be a finite number > 0"):
            TinyVideoPipeline(unet=ours.unet, scheduler=ours.scheduler, default_eps_scale=bad)
    (path / "sampler.json").write_text(json.dumps(dict(desc, eps_scale=-2)))
    with pytest.raises(ValueError, match=r"eps_scale=-2 must be a finite number > 0"):
        fl.load_default_pipeline(path)


def test_autoguidance_extrapolates_from_the_guide_and_is_stored_with_the_sampler(tmp_path):
    """``guidance_scale=w`` with a guide network samples exactly what a network computing ε̂_g + w (ε̂ − ε̂_g) samples
    (Karras et al. 2024), before ε-scaling; w = 1 never evaluates the guide and equals the unguided pipeline bit
    for bit; the folder's ``guide/`` and ``sampler.json`` make it the default for load_default_pipeline,
    from_pretrained and save_pretrained copies (not for the exact-score reference); FreeInit counts the guide's
    evaluations; a guidance scale without a guide, a guide of another size and bad values are refused before
    sampling or writing."""
    import shutil

    import freeinit_lab as fl
    from freeinit_lab.pipelines import sampler_scheduler, store_sampler

    path = tmp_path / "m"
    guide = TinyVideoUNet(block_channels=(8, 8), sample_size=8, num_frames=4, space_to_depth=2, attention_heads=0,
                          norm_groups=4)
    pipe, z = _weighted_folder(path, guide)

    def run(p, **kw):
        return _run_seeing_eps(p, z, **kw)

    base, _ = run(pipe)
    guided = TinyVideoPipeline(unet=pipe.unet, scheduler=pipe.scheduler, normalizer=pipe.normalizer, guide=guide,
                               default_num_inference_steps=3)
    calls = []
    handle = guide.register_forward_hook(lambda m, a, out: calls.append(1))
    try:
        assert torch.equal(run(guided)[0], base) and not calls  # w = 1: the network alone, the guide never run
    finally:
        handle.remove()

    class Combined(torch.nn.Module):  # the guided ε̂ written out, scaled by 1/λ afterwards
        def __init__(self, w, lam=1.0):
            super().__init__()
            self.w, self.lam, self.config = w, lam, pipe.unet.config

        dtype = property(lambda self: pipe.unet.dtype)
        device = property(lambda self: pipe.unet.device)

        def forward(self, x, t):
            e, eg = pipe.unet(x, t).sample, guide(x, t).sample
            return type(pipe.unet(x, t))(sample=(eg + self.w * (e - eg)) / self.lam)

    expect = TinyVideoPipeline(unet=Combined(1.5), scheduler=pipe.scheduler, default_num_inference_steps=3,
                               normalizer=pipe.normalizer)
    out15, eps15 = run(guided, guidance_scale=1.5)
    ref15, eps_ref = run(expect)
    assert torch.allclose(out15, ref15, atol=1e-6) and not torch.allclose(out15, base, atol=1e-3)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(eps15, eps_ref))  # what callbacks and probes see
    expect.unet.lam = 1.25
    assert torch.allclose(run(guided, guidance_scale=1.5, eps_scale=1.25)[0], run(expect)[0], atol=1e-6)
    res = fl.freeinit(guided, num_iters=2, latents=z, output_type="latent", guidance_scale=1.5, progress=False)
    plain = fl.freeinit(guided, num_iters=2, latents=z, output_type="latent", progress=False)
    assert res.num_denoiser_evals == 2 * plain.num_denoiser_evals  # the guide's evaluations are counted

    # refused: a scale without a guide, bad values, a guide of another size
    for bad in (0.5 - 1, float("nan"), float("inf"), True, "1.5"):
        with pytest.raises(ValueError, match=r"guidance_scale=.* must be a finite number >= 0"):
            guided(latents=z, output_type="latent", guidance_scale=bad)
    with pytest.raises(ValueError, match=r"no guide network.*guidance_scale=1.0"):
        pipe(latents=z, output_type="latent", guidance_scale=1.5)
    with pytest.raises(ValueError, match=r"default_guidance_scale=2.0 needs a guide network"):
        TinyVideoPipeline(unet=pipe.unet, scheduler=pipe.scheduler, default_guidance_scale=2.0)
    small = TinyVideoUNet(block_channels=(8, 8), sample_size=8, num_frames=2, space_to_depth=2, attention_heads=0,
                          norm_groups=4)
    with pytest.raises(ValueError, match=r"frames 4 \(unet\) vs 2 \(guide\)"):
        TinyVideoPipeline(unet=pipe.unet, scheduler=pipe.scheduler, guide=small)

    # stored with the sampler: guide/ in the folder, guidance_scale in sampler.json
    desc = dict(scheduler="DDIMScheduler", num_inference_steps=3, eta=0.0, set_alpha_to_one=True,
                guidance_scale=1.5)
    with pytest.raises(FileNotFoundError, match=r"holds no guide network \(guide/config.json\)"):
        store_sampler(path, desc)
    assert "guidance_scale" not in sampler_scheduler(desc).config
    guide.save_pretrained(path / "guide")
    store_sampler(path, desc)
    assert json.loads((path / "model_index.json").read_text())["default_guidance_scale"] == 1.5
    ours = fl.load_default_pipeline(path)
    generic = TinyVideoPipeline.from_pretrained(path, local_files_only=True)
    ours.save_pretrained(tmp_path / "copy")
    copy = TinyVideoPipeline.from_pretrained(tmp_path / "copy", local_files_only=True)
    for p in (ours, generic, copy):
        assert p.default_guidance_scale == 1.5 and isinstance(p.guide, TinyVideoUNet)
        assert torch.allclose(run(p)[0], out15, atol=1e-6)
    assert torch.equal(run(ours, guidance_scale=1.0)[0], base)
    assert fl.load_default_analytic_pipeline(num_videos=16, path=path).default_guidance_scale == 1.0
    shutil.rmtree(path / "guide")
    with pytest.raises(FileNotFoundError, match=r"stores guidance_scale=1.5 .* holds no guide/ network"):
        fl.load_default_pipeline(path)


def test_a_guidance_interval_guides_only_the_steps_it_holds_and_is_stored_with_the_sampler(tmp_path):
    """``guidance_interval=(t_low, t_high)`` applies autoguidance only at steps whose timestep lies in it (the guide
    is evaluated there and nowhere else) and samples exactly what a network computing ε̂_g + w (ε̂ − ε̂_g) at those
    timesteps and ε̂ elsewhere samples; an interval holding every timestep is full guidance bit for bit; it is
    stored in ``sampler.json`` / ``model_index.json`` and kept by from_pretrained and save_pretrained copies; an
    interval holding none of the timesteps (with w != 1) and malformed intervals are refused before sampling."""
    import freeinit_lab as fl
    from freeinit_lab.pipelines import store_sampler

    path = tmp_path / "m"
    guide = TinyVideoUNet(block_channels=(8, 8), sample_size=8, num_frames=4, space_to_depth=2, attention_heads=0,
                          norm_groups=4)
    pipe, z = _weighted_folder(path, guide)
    guided = TinyVideoPipeline(unet=pipe.unet, scheduler=pipe.scheduler, normalizer=pipe.normalizer, guide=guide,
                               default_num_inference_steps=4)
    guided.scheduler.set_timesteps(4)
    ts = [int(t) for t in guided.scheduler.timesteps]
    assert len(set(ts)) == 4
    low, high = sorted(ts)[1], sorted(ts)[2]        # the two middle timesteps only
    calls = []
    handle = guide.register_forward_hook(lambda m, a, out: calls.append(1))
    try:
        full, eps_full = _run_seeing_eps(guided, z, guidance_scale=1.5)
        assert len(calls) == 4
        assert torch.equal(_run_seeing_eps(guided, z, guidance_scale=1.5, guidance_interval=(0, 999))[0], full)
        calls.clear()
        part, eps_part = _run_seeing_eps(guided, z, guidance_scale=1.5, guidance_interval=[low, high])
        assert len(calls) == 2                      # the guide runs at the steps inside the interval only
        calls.clear()
        unguided = _run_seeing_eps(guided, z, guidance_interval=(low, high))[0]  # w = 1: the interval is moot
        assert not calls and torch.equal(unguided, _run_seeing_eps(pipe, z, num_inference_steps=4)[0])
    finally:
        handle.remove()

    class Windowed(torch.nn.Module):  # the guided ε̂ written out: w applied at t in [low, high] only
        def __init__(self):
            super().__init__()
            self.config = pipe.unet.config

        dtype = property(lambda self: pipe.unet.dtype)
        device = property(lambda self: pipe.unet.device)

        def forward(self, x, t):
            e = pipe.unet(x, t).sample
            if low <= float(t) <= high:
                eg = guide(x, t).sample
                e = eg + 1.5 * (e - eg)
            return type(pipe.unet(x, t))(sample=e)

    expect = TinyVideoPipeline(unet=Windowed(), scheduler=pipe.scheduler, default_num_inference_steps=4,
                               normalizer=pipe.normalizer)
    ref, eps_ref = _run_seeing_eps(expect, z)
    assert torch.allclose(part, ref, atol=1e-6)
    assert not torch.allclose(part, full, atol=1e-4) and not torch.allclose(part, unguided, atol=1e-4)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(eps_part, eps_ref))

    # refused: an interval holding no timestep (only when it would guide), malformed intervals
    gap = (high + 1, sorted(ts)[3] - 1)
    with pytest.raises(ValueError, match=r"holds none of the sampler's timesteps .* widen the interval"):
        guided(latents=z, output_type="latent", guidance_scale=1.5, guidance_interval=gap)
    for bad in ((-1, 500), (600, 500), (float("nan"), 999), (0, float("inf")), (True, 999), "250,999", [250],
                (250, 500, 999), 250):
        with pytest.raises(ValueError, match=r"guidance_interval=.* must be None .* 0 <= t_low <= t_high"):
            guided(latents=z, output_type="latent", guidance_scale=1.5, guidance_interval=bad)
        with pytest.raises(ValueError, match=r"guidance_interval=.* must be None"):
            TinyVideoPipeline(unet=pipe.unet, scheduler=pipe.scheduler, guide=guide, default_guidance_interval=bad)

    # stored with the sampler
    guide.save_pretrained(path / "guide")
    desc = dict(scheduler="DDIMScheduler", num_inference_steps=4, eta=0.0, set_alpha_to_one=True,
                guidance_scale=1.5, guidance_interval=[low, high])
    with pytest.raises(ValueError, match=r"guidance_interval=.* must be None"):
        store_sampler(path, dict(desc, guidance_interval=[high, low]))
    store_sampler(path, desc)
    assert json.loads((path / "model_index.json").read_text())["default_guidance_interval"] == [low, high]
    ours = fl.load_default_pipeline(path)
    ours.save_pretrained(tmp_path / "copy")
    for p in (ours, TinyVideoPipeline.from_pretrained(path, local_files_only=True),
              TinyVideoPipeline.from_pretrained(tmp_path / "copy", local_files_only=True)):
        assert p.default_guidance_interval == (low, high)
        assert torch.allclose(_run_seeing_eps(p, z)[0], part, atol=1e-6)
        assert torch.allclose(_run_seeing_eps(p, z, guidance_interval=(0, 999))[0], full, atol=1e-6)
