"""Input checks of the control-arm kernels (the kernels' closed forms are tested in tests/studies)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freeinit_lab.core import controls as ct
from freeinit_lab.core.spectral import default_band_edges, lowpass_filter


def _videos(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, n, 2, 3, 5, 6, generator=g, dtype=torch.float64)


def test_amplitude_target_needs_five_dim_clean_latents():
    """The mean field is per channel (axis 1 of (N, C, F, H, W)); a 4-D (C, F, H, W) tensor was silently read with
    its frames as channels (and a 3-D one with its heights as channels)."""
    clean = _videos()[0]
    edges = default_band_edges(clean.shape, 3)
    ct.amplitude_target(clean, 0.5, 0.8, edges)  # (N, C, F, H, W): fine
    for bad in (clean[0], clean[0, 0]):
        with pytest.raises(ValueError, match=r"\(N, C, F, H, W\)"):
            ct.amplitude_target(bad, 0.5, 0.8, edges)


def test_amplitude_target_and_matched_latent_take_the_same_default_edges():
    """amplitude_matched_latent(eps, target, None) uses the default 6 bands; amplitude_target(clean, a, b, None)
    raised a bare TypeError (len(None)) instead of using them too."""
    clean, eps = _videos(n=3)[:2]
    target = ct.amplitude_target(clean, 0.5, 0.8, None)
    np.testing.assert_array_equal(target, ct.amplitude_target(clean, 0.5, 0.8, default_band_edges(clean.shape, 6)))
    assert ct.amplitude_matched_latent(eps, target, None).shape == eps.shape


@pytest.mark.parametrize("bad", [np.inf, np.nan, 0.0, -1.0])
def test_amplitude_matched_latent_needs_finite_positive_powers(bad):
    eps = _videos()[0]
    edges = default_band_edges(eps.shape, 3)
    with pytest.raises(ValueError, match="positive"):
        ct.amplitude_matched_latent(eps, [1.0, bad, 1.0], edges)


def test_shuffled_arm_needs_a_permutation_of_the_videos():
    """signal='other' indexes clean[permutation]: None gave clean[None] (a new leading axis) and a misleading
    'draw the noise with torch.randn(diffused.shape)' error; a wrong length a bare broadcasting RuntimeError."""
    clean, eps, eta, fresh = _videos()
    H = lowpass_filter(clean.shape, "gaussian", dtype=torch.float64)
    kw = dict(clean=clean, eps=eps, eta=eta, fresh=fresh, a_T=0.07, b_T=0.99, lowpass=H)
    arm = ct.CONTROL_ARMS["shuffled_low"]
    for perm in (None, torch.tensor([1, 0]), torch.tensor([1, 1, 2, 3]), torch.tensor([[1, 2, 3, 0]]),
                 torch.tensor([1.0, 2.0, 3.0, 0.0])):
        with pytest.raises(ValueError, match="permutation"):
            ct.reinit_arm(arm, permutation=perm, **kw)
    perm = ct.single_cycle_derangement(4, torch.Generator().manual_seed(0))
    assert ct.reinit_arm(arm, permutation=perm, **kw).shape == clean.shape
    assert ct.reinit_arm(arm, permutation=perm.tolist(), **kw).shape == clean.shape


@pytest.mark.parametrize("field, value", [("renoise", "fresh"), ("mix", "variance_preserving"),
                                          ("legacy_ideal", True)])
@pytest.mark.parametrize("amplitude_matched", [False, True])
def test_an_arm_that_does_not_mix_refuses_mix_settings(field, value, amplitude_matched):
    """An arm with signal=None (plain sampling, or the amplitude-matched ε) never re-diffuses or mixes, so its
    renoise, mix and legacy_ideal settings would be ignored by decompose_freeinit and analytic_controls alike: they
    are refused when the arm is defined."""
    with pytest.raises(ValueError, match=rf"does not mix.*{field}"):
        ct.ControlArm("no_mix_test", signal=None, amplitude_matched=amplitude_matched, **{field: value})
    ct.ControlArm("no_mix_test", signal=None, amplitude_matched=amplitude_matched)  # the defaults are fine


@pytest.mark.parametrize("n, match", [(2.5, r"n=2.5 must be an integer >= 2"), (3.0, r"n=3.0 must be an integer"),
                                      (True, r"n=True must be an integer >= 2"), (1, r"n=1 must be an integer >= 2")])
def test_derangement_size_must_be_an_integer_of_at_least_two(n, match):
    """2.5 videos silently gave a derangement of 2 (int() truncated it); a count is an integer, named in the error."""
    with pytest.raises(ValueError, match=match):
        ct.single_cycle_derangement(n)


@pytest.mark.parametrize("field", ["legacy_ideal", "amplitude_matched"])
def test_arm_switches_must_be_booleans(field):
    """bool("False") is True: ControlArm(..., legacy_ideal="False") ran the reference codes' radius-0.707 ideal
    filter; a switch that is not True/False (or 0/1) is refused naming it."""
    with pytest.raises(TypeError, match=rf"{field} must be True or False; got 'False'"):
        ct.ControlArm("switch_test", signal=None if field == "amplitude_matched" else "own", **{field: "False"})
    assert ct.ControlArm("switch_test", legacy_ideal=np.bool_(False)).legacy_ideal is False
