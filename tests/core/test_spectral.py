"""Invariants of the spectral core, and equality with diffusers' FreeInit filter and mix for even shapes."""

import math

import numpy as np
import pytest
import torch
from diffusers.pipelines.free_init_utils import FreeInitMixin

from freeinit_lab import spectral
from freeinit_lab.spectral import (
    FILTER_METHODS,
    apply_lowpass,
    band_masks,
    band_power,
    default_band_edges,
    lowpass_filter,
    reinit_noise,
    spatial_spectrum,
    temporal_spectrum,
)

SHAPES = [(1, 2, 8, 16, 16), (2, 3, 7, 9, 12), (5, 11, 13), (1, 4, 16, 12, 20), (3, 1, 1, 5)]


def _mirror(t: torch.Tensor) -> torch.Tensor:
    for dim in (-3, -2, -1):
        n = t.shape[dim]
        t = t.index_select(dim, (-torch.arange(n)) % n)
    return t


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("method", FILTER_METHODS)
def test_mask_in_unit_interval_dc_one_and_symmetric(shape, method):
    mask = lowpass_filter(shape, method, d_s=0.4, d_t=0.3)
    assert mask.shape == torch.Size(shape)
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
    core = mask.reshape(-1, *shape[-3:])[0]
    assert float(core[0, 0, 0]) == 1.0
    assert torch.equal(_mirror(core), core), "mask must be exactly symmetric under f -> -f"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("method", FILTER_METHODS)
def test_filtered_spectrum_is_exactly_mask_times_spectrum(shape, method):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    mask = lowpass_filter(shape, method, d_s=0.3, d_t=0.5, dtype=torch.float64)
    low = apply_lowpass(x, mask)
    got = torch.fft.fftn(low, dim=(-3, -2, -1))
    want = torch.fft.fftn(x, dim=(-3, -2, -1)) * mask
    assert torch.allclose(got, want, atol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
def test_lowpass_plus_highpass_reconstructs(shape):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g)
    mask = lowpass_filter(shape, "gaussian")
    low = apply_lowpass(x, mask)
    high = apply_lowpass(x, 1 - mask)
    assert torch.allclose(low + high, x, atol=1e-5)


def test_reinit_noise_takes_low_from_diffused_and_high_from_noise():
    g = torch.Generator().manual_seed(2)
    shape = (2, 4, 8, 16, 16)
    z = torch.randn(shape, generator=g, dtype=torch.float64)
    eta = torch.randn(shape, generator=g, dtype=torch.float64)
    mask = lowpass_filter(shape, "butterworth", dtype=torch.float64)
    mixed = reinit_noise(z, eta, mask)
    spec = torch.fft.fftn(mixed, dim=(-3, -2, -1))
    want = torch.fft.fftn(z, dim=(-3, -2, -1)) * mask + torch.fft.fftn(eta, dim=(-3, -2, -1)) * (1 - mask)
    assert torch.allclose(spec, want, atol=1e-9)
    # the identity mask keeps z; the zero mask keeps eta
    assert torch.allclose(reinit_noise(z, eta, torch.ones(shape[-3:], dtype=torch.float64)), z, atol=1e-12)
    assert torch.allclose(reinit_noise(z, eta, torch.zeros(shape[-3:], dtype=torch.float64)), eta, atol=1e-12)


def test_reinit_noise_dtype_roundtrip_and_asymmetric_mask_fallback():
    shape = (1, 2, 5, 6, 7)
    g = torch.Generator().manual_seed(3)
    z = torch.randn(shape, generator=g).to(torch.bfloat16)
    eta = torch.randn(shape, generator=g).to(torch.bfloat16)
    out = reinit_noise(z, eta, lowpass_filter(shape))
    assert out.dtype == torch.bfloat16 and out.shape == z.shape
    # an asymmetric user mask (e.g. diffusers' mask for odd sizes) takes the full-FFT path: real part of the mix
    asym = torch.rand(shape[-3:], generator=g)
    zf, ef = z.float(), eta.float()
    want = torch.fft.ifftn(
        torch.fft.fftn(zf, dim=(-3, -2, -1)) * asym + torch.fft.fftn(ef, dim=(-3, -2, -1)) * (1 - asym), dim=(-3, -2, -1)
    ).real
    assert torch.allclose(reinit_noise(zf, ef, asym), want, atol=1e-5)


@pytest.mark.parametrize("method", ["gaussian", "butterworth", "ideal"])
@pytest.mark.parametrize("shape", [(1, 4, 16, 32, 32), (1, 2, 8, 12, 20), (2, 4, 6, 10, 8)])
@pytest.mark.parametrize("d_s,d_t", [(0.25, 0.25), (0.4, 0.2)])
def test_masks_equal_diffusers_for_even_shapes(method, shape, d_s, d_t):
    ref = FreeInitMixin._get_free_init_freq_filter(None, shape, "cpu", method, 4, d_s, d_t)
    ref = torch.fft.ifftshift(ref, dim=(-3, -2, -1))
    ours = lowpass_filter(shape, method, d_s, d_t, legacy_ideal_threshold=(method == "ideal"))
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


def test_reinit_matches_diffusers_apply_freq_filter():
    shape = (2, 4, 8, 16, 16)
    g = torch.Generator().manual_seed(4)
    z, eta = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    ref_mask = FreeInitMixin._get_free_init_freq_filter(None, shape, "cpu", "butterworth", 4, 0.25, 0.25)
    ref = FreeInitMixin._apply_freq_filter(None, z, eta, ref_mask)
    ours = reinit_noise(z, eta, lowpass_filter(shape, "butterworth"))
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


def test_ideal_threshold_correct_vs_legacy():
    shape = (16, 64, 64)
    correct = lowpass_filter(shape, "ideal", 0.25, 0.25)
    legacy = lowpass_filter(shape, "ideal", 0.25, 0.25, legacy_ideal_threshold=True)
    radius = spectral.frequency_radius(shape)
    assert torch.equal(correct.bool(), radius <= 0.25 + 1e-12)
    assert torch.equal(legacy.bool(), radius**2 <= 0.5 + 1e-12)  # radius sqrt(2 d_s) = 0.707
    frac_correct, frac_legacy = correct.mean().item(), legacy.mean().item()
    assert frac_correct < 0.01 < 0.15 < frac_legacy < 0.2


def test_box_is_symmetric_rectangular_with_separate_axes():
    mask = lowpass_filter((8, 8, 16), "box", d_s=0.25, d_t=0.5)
    ft, fh, fw = (spectral.normalized_frequencies(n).abs() for n in (8, 8, 16))
    want = (ft[:, None, None] <= 0.5) & (fh[None, :, None] <= 0.25) & (fw[None, None, :] <= 0.25)
    assert torch.equal(mask.bool(), want)
    assert int(mask.sum()) == 5 * 3 * 5


@pytest.mark.parametrize("method", FILTER_METHODS)
@pytest.mark.parametrize("d_s,d_t", [(1e-300, 1e-300), (1e-160, 0.25), (0.25, 1e-320), (1.0, 5e-324), (1e-200, 1.0)])
def test_tiny_cutoffs_inside_the_valid_range_give_a_dc_only_mask(method, d_s, d_t):
    """Cut-offs anywhere in (0, 1] are accepted by the checks, so the mask must be built for them too: a tiny
    cut-off keeps the DC bin only (no ZeroDivisionError, no NaN from 0 * inf at the DC bin)."""
    shape = (1, 2, 5, 8, 7)
    mask = lowpass_filter(shape, method, d_s, d_t, dtype=torch.float64)
    core = mask[0, 0]
    assert bool(torch.isfinite(core).all())
    assert float(core[0, 0, 0]) == 1.0
    if d_s < 1e-100:  # every bin with a spatial frequency is cut
        assert float(core[:, 1:].abs().max()) < 1e-12 and float(core[:, :, 1:].abs().max()) < 1e-12
    if d_t < 1e-100:  # every bin with a temporal frequency is cut
        assert float(core[1:].abs().max()) < 1e-12
    x = torch.randn(shape, dtype=torch.float64)
    assert bool(torch.isfinite(reinit_noise(x, torch.randn_like(x), mask)).all())
    r = spectral.frequency_radius(shape, d_s, d_t)
    assert not bool(torch.isnan(r).any()) and float(r[0, 0, 0]) == 0.0  # (d_s / d_t) f_t may overflow to inf


def test_mask_is_cached_and_vectorised():
    from freeinit_lab.core.spectral import _cached_mask

    lowpass_filter((1, 4, 16, 64, 64))
    hits = _cached_mask.cache_info().hits
    b = lowpass_filter((2, 4, 16, 64, 64))
    assert _cached_mask.cache_info().hits == hits + 1, "one mask build per (frame, height, width) and parameters"
    with pytest.raises(RuntimeError):
        b.add_(1)  # an expanded view: in-place writes over its broadcast dims are refused


def test_editing_a_returned_mask_never_changes_a_later_one():
    shape = (1, 4, 8, 16, 16)
    reference = lowpass_filter(shape, "gaussian", 0.25, 0.25).clone()
    first = lowpass_filter(shape, "gaussian", 0.25, 0.25)
    first[0, 0].zero_()  # a writable (1, 1, F, H, W) result, edited in place
    lowpass_filter(shape[-3:], "gaussian", 0.25, 0.25).mul_(-1.0)  # the un-expanded shape too
    assert torch.equal(lowpass_filter(shape, "gaussian", 0.25, 0.25), reference)
    # and so a FreeInit mix on that grid is unchanged
    g = torch.Generator().manual_seed(0)
    z, eta = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    expected = reinit_noise(z, eta, reference)
    assert torch.equal(reinit_noise(z, eta, lowpass_filter(shape, "gaussian", 0.25, 0.25)), expected)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"shape": (16, 16)}, "rank 2"),
        ({"shape": (4, 8, 8), "d_s": 0.0}, r"d_s=0.0 is outside \(0, 1\]"),
        ({"shape": (4, 8, 8), "d_t": 1.5}, r"d_t=1.5 is outside \(0, 1\]"),
        ({"shape": (4, 8, 8), "d_s": float("nan")}, "outside"),
        ({"shape": (4, 8, 8), "order": 0}, "order=0.0 must be > 0"),
        ({"shape": (4, 8, 8), "method": "hann"}, "unknown filter method 'hann'"),
    ],
)
def test_bad_filter_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lowpass_filter(**kwargs)


@pytest.mark.parametrize("kwargs", [{"d_s": True}, {"d_t": np.bool_(True)}, {"method": "butterworth", "order": True}])
def test_a_boolean_is_not_a_cut_off_or_an_order(kwargs):
    """float(True) is 1.0: a flag passed as d_s once gave the widest filter without a word."""
    with pytest.raises(TypeError, match="boolean"):
        lowpass_filter((4, 8, 8), **{"method": "gaussian", **kwargs})


def test_bad_tensor_inputs():
    mask = lowpass_filter((4, 8, 8))
    with pytest.raises(ValueError, match="rank 2"):
        apply_lowpass(torch.zeros(8, 8), mask)
    nan = torch.zeros(1, 4, 8, 8)
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        reinit_noise(nan, torch.zeros_like(nan), mask)
    with pytest.raises(ValueError, match="same shape"):
        reinit_noise(torch.zeros(1, 4, 8, 8), torch.zeros(2, 4, 8, 8), mask)
    with pytest.raises(ValueError, match="does not match"):
        reinit_noise(torch.zeros(1, 4, 8, 9), torch.zeros(1, 4, 8, 9), mask)


def test_mask_that_would_enlarge_the_output_is_refused():
    """A mask broadcasts *to* the latent; one with more (or larger) leading dims would silently return a tensor of
    another shape than the latent (e.g. a (2, F, H, W) mask on a batch of one)."""
    x = torch.randn(1, 4, 8, 8)
    for mask in (torch.rand(3, 1, 4, 8, 8), torch.rand(2, 4, 8, 8)):
        with pytest.raises(ValueError, match="does not broadcast to"):
            apply_lowpass(x, mask)
        with pytest.raises(ValueError, match="does not broadcast to"):
            reinit_noise(x, torch.randn_like(x), mask)
        with pytest.raises(ValueError, match="does not broadcast to"):
            spectral.reinit_noise_variance_preserving(x, torch.randn_like(x), mask)
    # masks that do broadcast to the latent's shape keep working, the output has the latent's shape
    for mask in (torch.rand(4, 8, 8), torch.rand(1, 4, 8, 8), lowpass_filter((1, 1, 4, 8, 8))):
        assert apply_lowpass(x, mask).shape == x.shape
        assert reinit_noise(x, torch.randn_like(x), mask).shape == x.shape


def test_non_finite_or_complex_mask_is_refused():
    """A NaN in the mask would silently turn the whole filtered latent into NaN; a complex mask would silently lose
    its imaginary part."""
    x = torch.randn(1, 4, 8, 8)
    nan = torch.ones(4, 8, 8)
    nan[1, 1, 1] = float("nan")
    for fn in (lambda m: apply_lowpass(x, m), lambda m: reinit_noise(x, torch.randn_like(x), m)):
        with pytest.raises(ValueError, match="NaN or inf"):
            fn(nan)
        with pytest.raises(ValueError, match="NaN or inf"):
            fn(torch.full((4, 8, 8), float("inf")))
        with pytest.raises(TypeError, match="real"):
            fn(torch.ones(4, 8, 8, dtype=torch.complex64))


@pytest.mark.parametrize("shape", [(8, 16, 16), (7, 9, 12), (16, 64, 64), (4, 5, 6)])
@pytest.mark.parametrize("num_bands", [1, 2, 4, 6])
def test_band_masks_partition_the_spectrum(shape, num_bands):
    masks = band_masks(shape, num_bands=num_bands)
    assert masks.shape == (num_bands, *shape)
    assert torch.equal(masks.sum(0), torch.ones(shape, dtype=torch.long))
    assert bool(masks[0, 0, 0, 0]), "band 0 holds the DC bin"
    assert (masks.sum(dim=(1, 2, 3)) > 0).all(), "no empty band"
    edges = default_band_edges(shape, num_bands)
    assert edges[0] == 0 and np.all(np.diff(edges) > 0)
    assert math.isclose(edges[-1], float(spectral.frequency_radius(shape).max()))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "x", 0, 0.0, -2.0])
def test_band_functions_refuse_a_non_finite_temporal_scale(bad):
    """A NaN temporal_scale made every radius NaN and was reported as 'a (4, 8, 8) grid has a single frequency
    bin'; an infinite one as non-finite band edges the caller never passed; -2 silently acted as 2 (the radius
    squares it) and 0 put every temporal frequency at radius 0."""
    x = torch.randn(2, 4, 8, 8)
    for fn in (lambda: default_band_edges((4, 8, 8), 3, bad), lambda: band_masks((4, 8, 8), num_bands=3, temporal_scale=bad),
               lambda: band_power(x, num_bands=3, temporal_scale=bad),
               lambda: band_power(x, edges=[0, 0.5, 20.0], temporal_scale=bad)):
        with pytest.raises((ValueError, TypeError), match="temporal_scale"):
            fn()
    with pytest.raises(ValueError, match="must be > 0") if not isinstance(bad, str) and math.isfinite(bad) else \
            pytest.raises((ValueError, TypeError), match="temporal_scale"):
        band_power(x, num_bands=3, temporal_scale=bad)


@pytest.mark.parametrize("bad", [True, 2.5, "3", 0])
def test_band_counts_must_be_integers_everywhere(bad):
    """int() read True as one band and 2.5 as two: every caller of the default edges (band_power, band masks, the
    strategies' and decomposition's band tables) now refuses them, naming num_bands."""
    x = torch.randn(2, 4, 8, 8)
    for fn in (lambda: default_band_edges((4, 8, 8), bad), lambda: band_masks((4, 8, 8), num_bands=bad),
               lambda: band_power(x, num_bands=bad)):
        with pytest.raises(ValueError, match=f"num_bands={bad!r} must be an integer >= 1"):
            fn()
    assert default_band_edges((4, 8, 8), np.int64(3)).tolist() == default_band_edges((4, 8, 8), 3).tolist()


def test_default_edges_can_leave_a_band_empty_on_small_grids_and_band_power_says_so():
    """As documented in default_band_edges: 6 default bands on a 16x8x8 latent leave band 1 without a bin."""
    assert int(spectral.band_counts((16, 8, 8), num_bands=6)[1]) == 0
    with pytest.raises(ValueError, match=r"bands \[1\] hold no frequency bin.*fewer bands"):
        band_power(torch.randn(1, 16, 8, 8))
    for shape in [(4, 4, 4), (4, 7, 5), (9, 4, 6)]:
        assert (spectral.band_counts(shape, num_bands=3) > 0).all()


def test_band_power_white_noise_is_one_and_parseval():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(256, 4, 8, 16, 16, generator=g)
    power = band_power(x)
    assert power.shape == (256, 4, 6)
    mean = power.mean(dim=(0, 1))
    counts = torch.as_tensor(spectral.band_counts((8, 16, 16)), dtype=torch.float64)
    se = (2 / (counts * 1024)).sqrt()  # |X|^2 of unit white noise: mean 1, variance <= 2 per bin
    assert ((mean - 1).abs() < 5 * se).all(), (mean, se)
    # Parseval: count-weighted band powers sum to the total energy of x
    total = (power * counts).sum(-1)
    assert torch.allclose(total, (x.double() ** 2).sum(dim=(-3, -2, -1)), rtol=1e-6)


def test_band_power_pure_tone_lands_in_its_band():
    f, h, w = 8, 16, 16
    t = torch.arange(f, dtype=torch.float64)[:, None, None]
    y = torch.arange(h, dtype=torch.float64)[None, :, None]
    tone = torch.cos(2 * math.pi * (2 * t / f + 3 * y / h)).expand(f, h, w)
    expected_band = int(torch.nonzero(band_masks((f, h, w))[:, 2, 3, 0]).item())
    power = band_power(tone)
    assert int(power.argmax()) == expected_band
    assert float(power.sum() - power.max()) < 1e-20 + 1e-12 * float(power.max())


def test_band_power_custom_edges_and_errors():
    x = torch.randn(2, 8, 16, 16)
    p = band_power(x, edges=[0, 0.5, 2.0])
    assert p.shape == (2, 2)
    with pytest.raises(ValueError, match="start at 0"):
        band_power(x, edges=[0.1, 0.5, 2.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        band_power(x, edges=[0, 0.5, 0.5, 2.0])
    with pytest.raises(ValueError, match="hold no frequency bin"):
        band_power(x, edges=[0, 0.01, 0.02, 2.0])


def test_marginal_spectra():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(64, 8, 16, 16, generator=g)
    freqs, tp = temporal_spectrum(x)
    assert freqs.shape == (8,) and tp.shape == (64, 8)
    assert torch.allclose(tp.mean(0), torch.ones(8, dtype=torch.float64), atol=0.1)
    radius, sp = spatial_spectrum(x)
    assert sp.shape == (64, radius.numel())
    # a video constant in time has all its power at temporal frequency 0
    still = x[:, :1].expand(-1, 8, -1, -1)
    _, tp_still = temporal_spectrum(still)
    assert torch.all(tp_still[:, 1:] < 1e-10)


# ---------------------------------------------------------------------------------------------------------------
# variance-preserving mix
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["gaussian", "butterworth"])
def test_variance_preserving_weights_square_sum_to_one(method):
    H = lowpass_filter((6, 8, 8), method, 0.25, 0.25, dtype=torch.float64)
    w_low, w_high = spectral.variance_preserving_weights(H)
    assert torch.allclose(w_low**2 + w_high**2, torch.ones_like(H), atol=1e-15)
    assert torch.allclose(w_low / w_high.clamp_min(1e-300), H / (1 - H).clamp_min(1e-300), rtol=1e-12)
    assert float(w_low[0, 0, 0]) == 1.0 and float(w_high[0, 0, 0]) == 0.0


def test_variance_preserving_mix_has_unit_variance_in_every_bin_and_freeinit_mix_decays():
    """Both mixes are linear in (z_T, eta): for unit white inputs the per-bin variance is exactly
    w_low² + w_high² = 1 (variance-preserving) and H² + (1 - H)² (FreeInit), seen through the impulse responses."""
    shape = (2, 4, 4)
    n = 32
    H = lowpass_filter(shape, "gaussian", 0.5, 0.5, dtype=torch.float64)
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    zero = torch.zeros_like(eye)
    for fn, expected in ((spectral.reinit_noise_variance_preserving, torch.ones_like(H)),
                         (spectral.reinit_noise, H**2 + (1 - H) ** 2)):
        A = torch.cat([fn(eye, zero, H).reshape(n, n), fn(zero, eye, H).reshape(n, n)])  # rows: impulse responses
        cov = A.T @ A
        spec = torch.fft.fftn(cov.reshape(*shape, *shape).to(torch.complex128), dim=(0, 1, 2), norm="ortho")
        spec = torch.fft.ifftn(spec, dim=(3, 4, 5), norm="ortho").reshape(n, n)
        assert torch.allclose(spec, torch.diag(expected.reshape(-1)).to(spec.dtype), atol=1e-12)


def test_variance_preserving_mix_equals_freeinit_for_binary_masks_and_checks_input():
    g = torch.Generator().manual_seed(0)
    z, eta = torch.randn(2, 3, 8, 16, 16, generator=g), torch.randn(2, 3, 8, 16, 16, generator=g)
    H = lowpass_filter(z.shape, "ideal", 0.4, 0.4)
    assert torch.allclose(spectral.reinit_noise_variance_preserving(z, eta, H), reinit_noise(z, eta, H), atol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        spectral.reinit_noise_variance_preserving(z, eta[:1], H)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        spectral.variance_preserving_weights(torch.full((2, 2, 2), 1.5))
    with pytest.raises(TypeError, match="torch.Tensor"):
        spectral.variance_preserving_weights(np.ones((2, 2, 2)))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_integer_inputs_are_refused_not_rounded(dtype):
    """The filtered latent is returned in the input's dtype: an integer video (e.g. uint8 frames) would come back
    truncated (up to one unit off, negative values wrapped), so it is refused with the cast that fixes it."""
    x = torch.randint(0, 2, (3, 4, 8, 8), generator=torch.Generator().manual_seed(0)).to(dtype)
    mask = lowpass_filter(x.shape, "gaussian", 0.25, 0.25)
    for call in (lambda: apply_lowpass(x, mask), lambda: reinit_noise(x, x, mask),
                 lambda: reinit_noise(x.float(), x, mask),
                 lambda: spectral.reinit_noise_variance_preserving(x, x, mask)):
        with pytest.raises(TypeError, match=r"\.float\(\)"):
            call()


@pytest.mark.parametrize("num_bins", [2.5, True, 0])
def test_spatial_spectrum_bins_must_be_an_integer(num_bins):
    """int() read num_bins=2.5 as 2 bins and True as 1."""
    with pytest.raises(ValueError, match=rf"num_bins={num_bins!r} must be an integer >= 1"):
        spatial_spectrum(torch.randn(1, 4, 8, 8), num_bins=num_bins)


def test_lowpass_switch_and_dtype_are_checked():
    """legacy_ideal_threshold="False" was read as True (radius 0.707 instead of d_s = 0.25); a dtype given as a
    string failed as AttributeError 'str' object has no attribute 'is_floating_point'."""
    with pytest.raises(TypeError, match="legacy_ideal_threshold must be True or False; got 'False'"):
        lowpass_filter((4, 8, 8), "ideal", 0.25, 0.25, legacy_ideal_threshold="False")
    with pytest.raises(TypeError, match="real floating torch dtype"):
        lowpass_filter((4, 8, 8), "ideal", 0.25, 0.25, dtype="float32")
    assert torch.equal(lowpass_filter((4, 8, 8), "ideal", 0.25, 0.25, legacy_ideal_threshold=0),
                       lowpass_filter((4, 8, 8), "ideal", 0.25, 0.25))
