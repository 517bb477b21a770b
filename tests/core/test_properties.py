"""Property-based invariants of the spectral kernels and the band SNR, on random grids (odd and even sizes).

Each property holds for every shape, cut-off, order and method hypothesis draws; the examples are kept few
(``max_examples``) and small so the file runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import math

import diffusers
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from freeinit_lab.core.snr import band_snr
from freeinit_lab.core.spectral import (
    FILTER_METHODS,
    apply_lowpass,
    band_counts,
    band_masks,
    default_band_edges,
    frequency_radius,
    lowpass_filter,
    reinit_noise,
    reinit_noise_variance_preserving,
    variance_preserving_weights,
)

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DIMS = (-3, -2, -1)

sizes = st.integers(min_value=1, max_value=9)
shapes3 = st.tuples(sizes, sizes, sizes)
cutoffs = st.floats(min_value=0.05, max_value=1.0, allow_nan=False)
orders = st.floats(min_value=0.5, max_value=8.0, allow_nan=False)
methods = st.sampled_from(FILTER_METHODS)
seeds = st.integers(min_value=0, max_value=2**31 - 1)


def _mask(shape, method, d_s, d_t, order):
    return lowpass_filter(shape, method, d_s, d_t, order, dtype=torch.float64)


def _mirror(x: torch.Tensor) -> torch.Tensor:
    """``x(-k)`` in FFT order on the last three axes."""
    for dim in DIMS:
        n = x.shape[dim]
        x = x.index_select(dim, (-torch.arange(n)) % n)
    return x


@FAST
@given(shapes3, methods, cutoffs, cutoffs, orders)
def test_mask_is_symmetric_and_in_unit_interval(shape, method, d_s, d_t, order):
    h = _mask(shape, method, d_s, d_t, order)
    assert torch.equal(_mirror(h), h)  # H(-k) = H(k), exactly
    assert bool(((h >= 0) & (h <= 1)).all())
    assert float(h[0, 0, 0]) == 1.0  # the DC bin always passes


@FAST
@given(shapes3, methods, cutoffs, cutoffs, orders, seeds)
def test_filtering_is_exactly_mask_times_spectrum_and_low_plus_high_is_identity(shape, method, d_s, d_t, order, seed):
    h = _mask(shape, method, d_s, d_t, order)
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    low = apply_lowpass(x, h)
    high = apply_lowpass(x, 1 - h)
    torch.testing.assert_close(torch.fft.fftn(low, dim=DIMS), h * torch.fft.fftn(x, dim=DIMS), rtol=0, atol=1e-10)
    torch.testing.assert_close(low + high, x, rtol=0, atol=1e-12)


@FAST
@given(shapes3, methods, cutoffs, cutoffs, orders, seeds)
def test_mix_gains_per_bin_and_their_variance(shape, method, d_s, d_t, order, seed):
    h = _mask(shape, method, d_s, d_t, order)
    g = torch.Generator().manual_seed(seed)
    z, eta = (torch.randn(256, *shape, generator=g, dtype=torch.float64) for _ in range(2))
    zero = torch.zeros_like(z)
    spec = lambda v: torch.fft.fftn(v, dim=DIMS, norm="ortho")  # noqa: E731
    # FreeInit's mix is linear: H on the diffused latent, 1 - H on the noise, bin by bin
    torch.testing.assert_close(spec(reinit_noise(z, zero, h)), h * spec(z), rtol=0, atol=1e-10)
    torch.testing.assert_close(spec(reinit_noise(zero, eta, h)), (1 - h) * spec(eta), rtol=0, atol=1e-10)
    w_low, w_high = variance_preserving_weights(h)
    torch.testing.assert_close(w_low**2 + w_high**2, torch.ones_like(h), rtol=0, atol=1e-12)
    torch.testing.assert_close(spec(reinit_noise_variance_preserving(z, zero, h)), w_low * spec(z), rtol=0, atol=1e-10)
    # so for independent unit-variance inputs E|mix(k)|^2 = H^2 + (1 - H)^2 (FreeInit) and 1 (variance-preserving);
    # Monte-Carlo over 256 draws and all bins, within 6 standard errors (|X|^2 of a unit Gaussian bin: sd <= 1.5)
    n = z.shape[0] * h.numel()
    tol = 6 * 1.5 / math.sqrt(n)
    expected = float((h**2 + (1 - h) ** 2).mean())
    got = float((spec(reinit_noise(z, eta, h)).abs() ** 2).mean())
    assert abs(got - expected) < tol * max(expected, 0.5)
    got_vp = float((spec(reinit_noise_variance_preserving(z, eta, h)).abs() ** 2).mean())
    assert abs(got_vp - 1.0) < tol


@st.composite
def grid_and_edges(draw):
    shape = draw(shapes3)
    r_max = float(frequency_radius(shape).max())
    if r_max == 0:
        return shape, np.array([0.0, 1.0])
    inner = draw(st.lists(st.floats(min_value=0.01, max_value=0.99), min_size=0, max_size=5, unique=True))
    beyond = draw(st.floats(min_value=0.0, max_value=0.5))
    # np.unique sorts and drops inner radii that distinct fractions round to the same float once scaled
    # (hypothesis found 0.99 and its predecessor both giving 0.66 on a grid with r_max = 2/3)
    edges = np.unique(np.concatenate([[0.0], np.asarray(inner) * r_max, [r_max * (1 + beyond)]]))
    return shape, edges


@FAST
@given(grid_and_edges())
def test_bands_partition_every_bin_exactly_once(case):
    shape, edges = case
    masks = band_masks(shape, edges=edges)
    assert masks.shape == (len(edges) - 1, *shape)
    assert bool((masks.sum(0) == 1).all())  # every bin in exactly one band
    radius = frequency_radius(shape)
    for k, m in enumerate(masks):  # and in the right one
        r = radius[m]
        assert bool((r <= edges[k + 1] + 1e-9).all()) and (k == 0 or bool((r > edges[k] - 1e-9).all()))
    assert int(band_counts(shape, edges=edges).sum()) == math.prod(shape)


@FAST
@given(shapes3, st.integers(min_value=1, max_value=6))
def test_default_edges_partition_and_reach_the_largest_radius(shape, num_bands):
    radii = torch.unique(frequency_radius(shape))
    if radii.numel() < min(num_bands, 3):  # too few distinct radii for that many non-empty bands
        with pytest.raises(ValueError, match="single frequency bin|only two distinct radii"):
            default_band_edges(shape, num_bands)
        return
    edges = default_band_edges(shape, num_bands)
    r_max = float(frequency_radius(shape).max())
    assert edges[0] == 0 and edges[-1] == pytest.approx(r_max if r_max > 0 else 1.0)
    assert bool((band_masks(shape, edges=edges).sum(0) == 1).all())


SD = diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)


@settings(max_examples=12, deadline=None)
@given(st.tuples(st.integers(2, 8), st.integers(2, 8), st.integers(2, 8)), seeds, st.integers(0, 999))
def test_closed_form_snr_matches_monte_carlo(shape, seed, t):
    g = torch.Generator().manual_seed(seed)
    x0 = 0.3 + torch.randn(4, 2, *shape, generator=g)
    edges = default_band_edges(shape, 2)
    closed = band_snr(x0, SD, edges=edges, timesteps=[t])
    mc = band_snr(x0, SD, edges=edges, timesteps=[t], method="monte_carlo", num_samples=16, generator=g)
    # the ratio is the measured noise power per bin; conjugate bins pair up, so about bins / 2 independent ones
    bins = closed.num_bins.values
    n = 16 * 4 * 2
    ratio = 10 ** ((closed.values - mc.values) / 10)
    tol = 6 * np.sqrt(2.0 / (bins * n))
    assert np.all(np.abs(ratio - 1) < tol), (ratio, tol)
