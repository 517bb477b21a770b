"""FreeInit's reinitialisation kernel and its settings object: one step, validated once, used everywhere."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from freeinit_lab import FreeInitSettings, freeinit, reinitialize
from freeinit_lab.core.reinit import draw_reinit_noise, fast_sampling_steps
from freeinit_lab.core.schedules import get_schedule
from freeinit_lab.core.spectral import apply_lowpass, lowpass_filter, reinit_noise
from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_pipeline

SCHEDULE = get_schedule(DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012))


def _inputs(shape=(2, 4, 8, 16, 16), seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) for _ in range(3))


def test_settings_are_frozen_and_validated_once():
    s = FreeInitSettings(num_iters=2, d_s=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.d_s = 0.1
    assert s.replace(d_t=0.4).d_t == 0.4 and s.d_t == 0.25
    for bad, match in [(dict(num_iters=0), "num_iters"), (dict(renoise="x"), "renoise"), (dict(mix="x"), "mix"),
                       (dict(method="x"), "unknown filter"), (dict(d_t=1.5), "d_t=1.5"), (dict(order=0), "order")]:
        with pytest.raises(ValueError, match=match):
            FreeInitSettings(**bad)


def test_switches_are_booleans_not_anything_truthy():
    """``bool("False")`` is True: a switch given as text (a YAML or form value) must be refused, not read as on."""
    for name in ("fast_sampling", "legacy_ideal_threshold"):
        for bad in ("False", "no", 2, None, 0.5):
            with pytest.raises(TypeError, match=f"{name} must be True or False"):
                FreeInitSettings(**{name: bad})
        for good, want in ((True, True), (False, False), (np.bool_(True), True), (0, False), (1, True)):
            assert getattr(FreeInitSettings(**{name: good}), name) is want


def test_steps_per_pass_is_the_fast_sampling_formula():
    assert FreeInitSettings(num_iters=5, fast_sampling=True).steps_per_pass(25) == fast_sampling_steps(25, 5)
    assert FreeInitSettings(num_iters=3).steps_per_pass(7) == [7, 7, 7]


@pytest.mark.parametrize("mix", ["freeinit", "variance_preserving"])
def test_reinitialize_is_diffuse_then_mix(mix):
    z0, eps, eta = _inputs()
    s = FreeInitSettings(method="gaussian", mix=mix)
    out = reinitialize(z0, eps, eta, schedule=SCHEDULE, settings=s)
    mask = lowpass_filter(z0.shape, "gaussian", 0.25, 0.25)
    z_T = SCHEDULE.diffuse(z0, SCHEDULE.terminal_timestep, eps)
    if mix == "freeinit":
        torch.testing.assert_close(out.latent, reinit_noise(z_T, eta, mask))
        a_T = float(SCHEDULE.coefficients(SCHEDULE.terminal_timestep)[0])
        torch.testing.assert_close(out.signal, apply_lowpass(z0 * a_T, mask))
    torch.testing.assert_close(out.signal + out.noise, out.latent)
    assert reinitialize(z0, eps, eta, schedule=SCHEDULE, settings=s, parts=False).signal is None


def test_draw_order_is_eta_first():
    shape = (1, 4, 2, 4, 4)
    eta, noise = draw_reinit_noise(shape, torch.Generator().manual_seed(1), renoise="fresh", initial_noise=None)
    g = torch.Generator().manual_seed(1)
    torch.testing.assert_close(eta, torch.randn(shape, generator=g))
    torch.testing.assert_close(noise, torch.randn(shape, generator=g))
    eps = torch.ones(shape)
    assert draw_reinit_noise(shape, None, renoise="same", initial_noise=eps)[1] is eps


@pytest.mark.parametrize("renoise", ["Fresh", "new", None])
def test_draw_reinit_noise_refuses_an_unknown_renoise(renoise):
    """Anything but "fresh" was read as "same": renoise="Fresh" silently reused the initial noise."""
    shape = (1, 4, 2, 4, 4)
    g = torch.Generator().manual_seed(1)
    before = g.get_state()
    with pytest.raises(ValueError, match=rf"renoise={renoise!r}; use 'same' .* or 'fresh'"):
        draw_reinit_noise(shape, g, renoise=renoise, initial_noise=torch.ones(shape))
    assert torch.equal(g.get_state(), before)  # refused before drawing eta


def test_freeinit_takes_settings_or_keywords_not_both():
    pipe = tiny_pipeline("AnimateDiffPipeline")
    kw = {**TINY_CALL_KWARGS["AnimateDiffPipeline"], "output_type": "latent", "prompt": "a cat"}
    a = freeinit(pipe, num_iters=2, method="gaussian", d_s=0.4, generator=torch.Generator().manual_seed(0), **kw)
    b = freeinit(pipe, settings=FreeInitSettings(num_iters=2, method="gaussian", d_s=0.4),
                 generator=torch.Generator().manual_seed(0), **kw)
    assert torch.equal(a.latents, b.latents) and a.settings == b.settings
    with pytest.raises(TypeError, match="not both"):
        freeinit(pipe, num_iters=2, settings=FreeInitSettings(), **kw)


@pytest.mark.parametrize("order", [None, "x", [4]])
def test_settings_with_an_unusable_order_raise_a_clear_error_for_every_method(order):
    """``order`` is ignored by the non-Butterworth filters, but the settings still store float(order): a bad value
    raised a bare float() error ("could not convert string to float") for them instead of check_filter's message."""
    with pytest.raises(TypeError, match="order must be a positive number"):
        FreeInitSettings(method="butterworth", order=order)
    with pytest.raises(TypeError, match="order must be a positive number"):
        FreeInitSettings(method="gaussian", order=order)
    assert FreeInitSettings(method="gaussian", order=2).order == 2.0  # stored as given, as before
