"""Noise swaps: the mix of two noises, masks of the lowest FFT bins, sweeps over cut-offs (tiny and analytic pipelines)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freeinit_lab.core.spectral import band_masks, frequency_radius, lowpass_filter
from freeinit_lab.embedded.pipelines import load_analytic_pipeline
from freeinit_lab.studies import noise_swap as ns
from freeinit_lab.testing import tiny_animatediff_pipeline

DIMS = ("batch", "channel", "frame", "height", "width")


def _two_noises(shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent standard-normal noises A and B of ``shape`` from one seeded generator."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def test_noise_swap_experiment_on_tiny_pipeline():
    pipe = tiny_animatediff_pipeline(seed=0)
    shape = (1, 4, 4, 8, 8)
    a, b = _two_noises(shape, seed=0)
    ds = ns.noise_swap_experiment(pipe, a, b, prompt="a cat", num_frames=4, height=16, width=16,
                                 num_inference_steps=2, guidance_scale=1.0, generator=torch.Generator().manual_seed(0))
    assert ds.trajectory.values.tolist() == ["a", "b", "mix"]
    assert ds.follow_x0_pred.dims == ("step", "batch", "band")
    # M - B = IFFT(H FFT(A - B)), so band k of the mixed noise follows A by the |A - B|^2-weighted mean of H
    h = lowpass_filter(shape, "butterworth", d_s=0.25, d_t=0.25, order=4).double()
    d = torch.fft.fftn((a - b).double(), dim=(-3, -2, -1), norm="ortho").abs() ** 2
    m = band_masks(shape).double()
    expected = (torch.einsum("bcfhw,kfhw->bk", h * d, m) / torch.einsum("bcfhw,kfhw->bk", d, m)).numpy()
    np.testing.assert_allclose(ds.follow_noise.values, expected, rtol=1e-5, atol=1e-7)  # float32 mix
    assert expected[0, 0] > 0.5 > expected[0, -1]
    np.testing.assert_array_equal(ds.noise.sel(trajectory="a").values, a.numpy())
    assert np.isfinite(ds.follow_x0_pred.values).all()


def test_lowest_bins_mask_keeps_the_lowest_share():
    shape = (8, 16, 16)
    r = frequency_radius(shape)
    for keep in (0.05, 0.2, 0.5, 1.0):
        m = ns.lowest_bins_mask((2, 3, *shape), keep)
        assert m.shape == shape and set(torch.unique(m).tolist()) <= {0.0, 1.0}
        assert keep <= float(m.mean()) < keep + 0.05
        if keep < 1:
            assert float(r[m > 0].max()) < float(r[m == 0].min())  # every kept bin is lower than every dropped one
        # symmetric under f -> -f, so a mix with it stays real
        flipped = torch.roll(torch.flip(m, dims=(-3, -2, -1)), shifts=(1, 1, 1), dims=(-3, -2, -1))
        assert torch.equal(m, flipped)
    with pytest.raises(ValueError, match="share of FFT bins"):
        ns.lowest_bins_mask(shape, 0.0)
    # a flag or a string is no share: True was silently the all-pass mask (keep = 1), "0.2" a TypeError of '<'
    for bad in (True, np.True_, "0.2", None):
        with pytest.raises(TypeError, match=r"keep=.* must be a number in \(0, 1\]"):
            ns.lowest_bins_mask(shape, bad)


def test_noise_swap_sweep_on_analytic_pipeline():
    pipe = load_analytic_pipeline()
    shape = (2, *pipe.sample_shape)
    a, b = _two_noises(shape, seed=3)
    keep = (0.05, 0.5)
    ds = ns.noise_swap_sweep(pipe, a, b, keep=keep, num_inference_steps=3)
    assert ds.trajectory.values.tolist() == ["a", "b", "mix 0", "mix 1"]
    assert ds.latents.dims == ("trajectory", "step", *DIMS) and ds.sizes["step"] == 3
    assert ds.follow_x0_pred.dims == ("cutoff", "step", "batch", "band")
    assert ds.dist_a.dims == ("cutoff", "batch") and ds.dist_ab.dims == ("batch",)
    np.testing.assert_allclose(ds.keep_share.values, [float(ns.lowest_bins_mask(shape, k).mean()) for k in keep])
    # the batched call gives each trajectory what a call of its own gives
    direct = pipe(latents=a.clone(), num_inference_steps=3, output_type="latent").frames
    np.testing.assert_allclose(ds.latents.sel(trajectory="a").isel(step=-1).values, direct.numpy(), atol=1e-5)
    alone = ns.noise_swap_sweep(pipe, a, b, keep=keep, num_inference_steps=3, batched=False, capture=("latents",))
    np.testing.assert_allclose(alone.latents.values, ds.latents.values, atol=1e-5)
    np.testing.assert_allclose(alone.dist_a.values, ds.dist_a.values, rtol=1e-4)
    # the mixes: A below the cut-off, B above it
    np.testing.assert_allclose(ds.follow_noise.isel(band=0).values, 1.0, atol=1e-6)
    np.testing.assert_allclose(ds.follow_noise.isel(band=-1).values, 0.0, atol=1e-6)
    np.testing.assert_array_equal(ds.noise.sel(trajectory="b").values, b.numpy())
    # more of A's spectrum -> closer to A's result; the exact Gaussian model keeps the low band where the noise put it
    assert (ds.dist_a.isel(cutoff=1) < ds.dist_a.isel(cutoff=0)).all()
    assert (ds.dist_a.isel(cutoff=1) < ds.dist_b.isel(cutoff=1)).all()
    np.testing.assert_allclose(ds.follow_latents.isel(step=-1, band=0).values, 1.0, atol=0.02)


def test_noise_swap_sweep_without_capture_gives_the_probed_results():
    pipe = load_analytic_pipeline()
    shape = (3, *pipe.sample_shape)
    a, b = _two_noises(shape, seed=5)
    keep = (0.05, 0.2)
    probed = ns.noise_swap_sweep(pipe, a, b, keep=keep, num_inference_steps=3, capture=("latents",))
    fast = ns.noise_swap_sweep(pipe, a, b, keep=keep, num_inference_steps=3, capture=())
    assert "latents" not in fast and fast.final.dims == ("trajectory", *DIMS)
    np.testing.assert_allclose(fast.final.values, probed.final.values, atol=1e-5)
    for var in ("dist_a", "dist_b", "dist_ab", "noise_dist_a", "noise_dist_b", "follow_final", "follow_noise"):
        np.testing.assert_allclose(fast[var].values, probed[var].values, rtol=1e-4, atol=1e-6, err_msg=var)
    # the identity map's distances are those of the noises themselves
    mix = fast.noise.sel(trajectory="mix 1").values
    expect = np.sqrt(((mix - a.numpy()) ** 2).mean(axis=(1, 2, 3, 4)))
    np.testing.assert_allclose(fast.noise_dist_a.isel(cutoff=1).values, expect, rtol=1e-5)
    # a mix of two independent unit noises: squared distance to A = 2 x the share of bins from B (and vice versa)
    share = float(fast.keep_share[1])
    np.testing.assert_allclose(fast.noise_dist_a.isel(cutoff=1).values ** 2, 2 * (1 - share), rtol=0.1)
    np.testing.assert_allclose(fast.noise_dist_b.isel(cutoff=1).values ** 2, 2 * share, rtol=0.15)


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("generator", ["single", "list"])
def test_trajectories_share_the_samplers_draws(batched, generator):
    """With a stochastic sampler (DDIM eta > 0) and a generator, A, B and every mix get the same sampler draws:
    from equal noises all results are equal, so the distances measure the noises' effect alone."""
    pipe = load_analytic_pipeline(num_frames=4, height=8)
    pipe.default_eta = 0.7
    a, _ = _two_noises((2, *pipe.sample_shape), seed=0)

    def gen():
        return (torch.Generator().manual_seed(1) if generator == "single"
                else [torch.Generator().manual_seed(s) for s in (1, 2)])

    for capture in ((), ("latents",)):
        ds = ns.noise_swap_sweep(pipe, a, a.clone(), keep=(0.2,), capture=capture, batched=batched,
                                 num_inference_steps=3, generator=gen())
        np.testing.assert_array_equal(ds.dist_ab.values, 0.0)
        np.testing.assert_array_equal(ds.dist_a.values, 0.0)
    ex = ns.noise_swap_experiment(pipe, a, a.clone(), capture=("latents",), num_inference_steps=3, generator=gen())
    last = ex["latents"].isel(step=-1)
    np.testing.assert_array_equal(last.sel(trajectory="a").values, last.sel(trajectory="b").values)
    np.testing.assert_array_equal(last.sel(trajectory="a").values, last.sel(trajectory="mix").values)
    # and the draws are really there: another generator gives another result
    other = ns.noise_swap_sweep(pipe, a, a.clone(), keep=(0.2,), capture=(), batched=batched, num_inference_steps=3,
                                generator=torch.Generator().manual_seed(7))
    assert not np.array_equal(other.final.sel(trajectory="a").values, ds.final.sel(trajectory="a").values)


def test_experiment_attrs_describe_the_mask_used():
    """The attrs name the filter that built the mask (a fractional Butterworth order kept as given), and say
    "explicit mask" when the mask was passed in, rather than the unused method/cut-off defaults."""
    pipe = load_analytic_pipeline(num_frames=4, height=8)
    a, b = _two_noises((1, *pipe.sample_shape), seed=0)
    ds = ns.noise_swap_experiment(pipe, a, b, order=1.5, capture=("latents",), num_inference_steps=2)
    assert ds.attrs["order"] == 1.5 and ds.attrs["lowpass_method"] == "butterworth"
    mask = ns.lowest_bins_mask(a.shape, 0.2)
    ds = ns.noise_swap_experiment(pipe, a, b, lowpass=mask, capture=("latents",), num_inference_steps=2)
    assert ds.attrs["lowpass_method"] == "explicit mask" and "d_s" not in ds.attrs
    assert ds.attrs["lowpass_mean"] == pytest.approx(float(mask.mean()))


@pytest.mark.parametrize("scale, offset", [(2.0, 0.0), (1.0, -0.5)])
def test_masks_outside_zero_one_are_refused_before_sampling(scale, offset):
    """A mask value outside [0, 1] is no low-pass filter (H = 2 mixes 2 A - B): refused, not reported as a "share of
    the spectrum taken from A" of 2 or below 0."""
    pipe = load_analytic_pipeline(num_frames=4, height=8)
    a, b = _two_noises((1, *pipe.sample_shape), seed=0)
    bad = ns.lowest_bins_mask(a.shape, 0.2) * scale + offset

    def boom(*_a, **_k):
        raise AssertionError("the denoiser ran before the mask was checked")

    hook = pipe.unet.register_forward_pre_hook(boom)
    try:
        with pytest.raises(ValueError, match=r"masks\[1\] has values outside \[0, 1\]"):
            ns.noise_swap_sweep(pipe, a, b, masks=[ns.lowest_bins_mask(a.shape, 0.2), bad], num_inference_steps=2,
                                num_bands=3)
        with pytest.raises(ValueError, match=r"lowpass has values outside \[0, 1\]"):
            ns.noise_swap_experiment(pipe, a, b, lowpass=bad, num_inference_steps=2)
    finally:
        hook.remove()


def test_a_single_keep_is_one_cut_off():
    """keep=0.2 is the sweep at that one cut-off (it was "'float' object is not iterable"); a string is refused by
    name before sampling, not split into characters."""
    pipe = load_analytic_pipeline(num_frames=4, height=8)
    a, b = _two_noises((1, *pipe.sample_shape), seed=0)
    kw = dict(num_inference_steps=2, num_bands=3, capture=())
    one = ns.noise_swap_sweep(pipe, a, b, keep=0.2, **kw)
    listed = ns.noise_swap_sweep(pipe, a, b, keep=[0.2], **kw)
    np.testing.assert_array_equal(one.keep_share.values, listed.keep_share.values)
    np.testing.assert_array_equal(one.follow_final.values, listed.follow_final.values)
    with pytest.raises(TypeError, match=r"keep='0.2' must be a number"):
        ns.noise_swap_sweep(pipe, a, b, keep="0.2", **kw)
