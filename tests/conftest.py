import functools
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


def pytest_collection_modifyitems(config, items):
    """Give notebook cells (collected by nbval from notebooks/) the ``notebooks`` marker, so ``-m`` selects tiers."""
    import pytest

    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebooks)


#: Variables that change how a process started later computes (thread pools, allocator, hashing, devices,
#: offline mode): no test may leave them changed. (Libraries set others once on import, e.g. HDF5_PLUGIN_PATH.)
_GUARDED = ("OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "MALLOC_", "PYTHONHASHSEED", "CUDA_", "TORCH_", "HF_",
            "TRANSFORMERS_", "DIFFUSERS_")


def _guarded_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(_GUARDED)}


@pytest.fixture(autouse=True)
def _environment_left_as_found():
    """No test leaves the thread, allocator, hashing, device or offline variables of this process changed
    (``monkeypatch`` restores its own before this check).

    The notebooks run under nbval in kernels this process starts *after* the tests, and they inherit its
    environment: a leaked ``OMP_NUM_THREADS=1`` (a dask nanny's, dask/distributed#6749) once ran every notebook's
    torch on one thread, about twice as slow.
    """
    before = _guarded_environ()
    yield
    after = _guarded_environ()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, (f"the test left os.environ changed: {[(k, before.get(k), after.get(k)) for k in changed]} "
                         "(set variables with pytest's monkeypatch, which restores them)")



@functools.cache
def _scheduler_at_classes() -> dict:
    """Pipeline classes that read their scheduler from ``scheduler`` or from ``sampler`` (keys ``"scheduler"``,
    ``"sampler"``), or their denoiser from ``model`` instead of ``unet`` (key ``"model"``), with one shared body."""
    import torch
    from diffusers import DiffusionPipeline
    from diffusers.utils.torch_utils import randn_tensor

    from freeinit_lab.embedded.pipelines import TinyVideoPipelineOutput

    class SchedulerAtPipeline(DiffusionPipeline):
        """Unconditional sampling with the scheduler at ``scheduler_attribute``, as a user's own pipeline would."""

        scheduler_attribute = "scheduler"
        denoiser_attribute = "unet"

        def _sampler(self):
            return getattr(self, self.scheduler_attribute)

        def _denoiser(self):
            return getattr(self, self.denoiser_attribute)

        def prepare_latents(self, shape, generator, latents=None):
            if latents is None:
                latents = randn_tensor(shape, generator=generator, dtype=self._denoiser().dtype)
            return latents * self._sampler().init_noise_sigma

        @torch.no_grad()
        def __call__(self, num_inference_steps=3, generator=None, latents=None, output_type="np", return_dict=True,
                     callback_on_step_end=None):
            sampler, denoiser = self._sampler(), self._denoiser()
            c = denoiser.config
            latents = self.prepare_latents((1, c.in_channels, c.num_frames, c.sample_size, c.sample_size), generator,
                                           latents)
            sampler.set_timesteps(num_inference_steps)
            for i, t in enumerate(sampler.timesteps):
                noise_pred = denoiser(sampler.scale_model_input(latents, t), t).sample
                latents = sampler.step(noise_pred, t, latents).prev_sample
                if callback_on_step_end is not None:
                    latents = callback_on_step_end(self, i, t, {"latents": latents}).pop("latents", latents)
            frames = latents if output_type == "latent" else (latents.clamp(-1, 1) + 1).permute(0, 2, 1, 3, 4) / 2
            return TinyVideoPipelineOutput(frames=frames) if return_dict else (frames,)

    class SchedulerAtSchedulerPipeline(SchedulerAtPipeline):
        def __init__(self, unet, scheduler):
            super().__init__()
            self.register_modules(unet=unet, scheduler=scheduler)

    class SchedulerAtSamplerPipeline(SchedulerAtPipeline):
        scheduler_attribute = "sampler"

        def __init__(self, unet, sampler, scheduler):
            super().__init__()
            self.register_modules(unet=unet, sampler=sampler, scheduler=scheduler)

    class DenoiserAtModelPipeline(SchedulerAtPipeline):
        denoiser_attribute = "model"

        def __init__(self, model, scheduler, unet):
            super().__init__()
            self.register_modules(model=model, scheduler=scheduler, unet=unet)

    return {"scheduler": SchedulerAtSchedulerPipeline, "sampler": SchedulerAtSamplerPipeline,
            "model": DenoiserAtModelPipeline}


@pytest.fixture
def scheduler_at(monkeypatch):
    """``make(attribute)``: a tiny video pipeline (random-weight ``TinyVideoUNet``, DDIM) whose scheduler lives at
    ``attribute`` (``"scheduler"`` or ``"sampler"``), its class registered with
    ``LatentLayout(scheduler=attribute, final_latent="scheduler_step")`` for the test; or, with ``"model"``, whose
    denoiser lives at ``pipe.model`` (scheduler at ``scheduler``), registered with
    ``LatentLayout(denoiser="model", final_latent="scheduler_step")``.

    Every build has the same weights and the same real scheduler and runs the same code, so all attributes give
    bit-identical results unless something reads the wrong one. With ``"sampler"`` the pipeline's ``scheduler`` is
    a decoy it never uses: Euler with linear betas, ``init_noise_sigma`` far from 1. With ``"model"`` its ``unet``
    is a decoy it never calls, with 8 channels: the latent's frame count (latents are (1, 3, 8, 16, 16)), so a
    layout naming the frame axis 'channel' looks right to anything that reads ``pipe.unet``.
    """
    import torch
    from diffusers import EulerDiscreteScheduler

    from freeinit_lab.embedded.models import TinyVideoUNet
    from freeinit_lab.embedded.pipelines import default_scheduler
    from freeinit_lab.hooks.layouts import LAYOUTS, LatentLayout

    def make(attribute: str = "sampler"):
        cls = _scheduler_at_classes()[attribute]
        if attribute == "model":
            layout = LatentLayout(denoiser="model", final_latent="scheduler_step")
        else:
            layout = LatentLayout(scheduler=attribute, final_latent="scheduler_step")
        monkeypatch.setitem(LAYOUTS, cls.__name__, layout)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            unet = TinyVideoUNet(block_channels=(8, 16), time_embed_dim=16, norm_groups=4, attention_heads=2).eval()
            # with "model", the decoy at pipe.unet: its channel count is the real latent's frame count
            decoy = TinyVideoUNet(in_channels=8, out_channels=8, block_channels=(8, 16), time_embed_dim=16,
                                  norm_groups=4, attention_heads=2, num_frames=3).eval()
        if attribute == "model":
            pipe = cls(model=unet, scheduler=default_scheduler(), unet=decoy)
        elif attribute == "scheduler":
            pipe = cls(unet=unet, scheduler=default_scheduler())
        else:
            pipe = cls(unet=unet, sampler=default_scheduler(), scheduler=EulerDiscreteScheduler(beta_schedule="linear"))
        pipe.set_progress_bar_config(disable=True)
        return pipe

    return make


@pytest.fixture
def denoiser_at(scheduler_at):
    """``make(attribute)``: the ``scheduler_at`` pipeline whose denoiser lives at ``attribute``: ``"unet"`` (the
    reference) or ``"model"`` (registered with ``LatentLayout(denoiser="model")``, a decoy with the latent's frame
    count as its channels at ``pipe.unet``)."""
    return lambda attribute="model": scheduler_at({"unet": "scheduler", "model": "model"}[attribute])


@pytest.fixture
def refused_before_sampling():
    """``check(pipe, call, match)``: ``call(pipe)`` raises a ValueError matching ``match`` before ``pipe.unet`` is
    called once (a fixture, not an import: tests/browser has a conftest module of the same name)."""
    return _refused_before_sampling


def _refused_before_sampling(pipe, call, match: str) -> None:
    calls = []
    handle = pipe.unet.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        with pytest.raises(ValueError, match=match):
            call(pipe)
    finally:
        handle.remove()
    assert not calls, f"the denoiser ran {len(calls)} time(s) before the refusal"
