"""Tests for freeinit_lab.data: the procedural generator's statistics and the shipped real clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freeinit_lab.data import (
    CLIPS_DIR,
    GENERATOR_VERSION,
    DeadLeavesConfig,
    clip_frames,
    dead_leaves_videos,
    load_clips,
)


def radial_power_slope(frames: torch.Tensor, f_lo: float = 1 / 32, f_hi: float = 0.25) -> float:
    """Log-log slope of the radially averaged spatial power spectrum of frames ``(..., H, W)``.

    Each frame has its mean removed; power = |FFT2|^2 averaged over all frames; fitted on radial frequency
    (cycles/pixel) in ``[f_lo, f_hi]`` (well below the anti-aliasing roll-off).
    """
    h, w = frames.shape[-2:]
    x = frames.reshape(-1, h, w).double()
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    p = (torch.fft.fft2(x).abs() ** 2).mean(0)
    fy = torch.fft.fftfreq(h).view(-1, 1)
    fx = torch.fft.fftfreq(w).view(1, -1)
    f = torch.sqrt(fx**2 + fy**2)
    m = (f >= f_lo) & (f <= f_hi)
    slope, _ = np.polyfit(np.log(f[m].numpy()), np.log(p[m].numpy()), 1)
    return float(slope)


def test_shape_range_dtype():
    v = dead_leaves_videos(3, 8, 16, seed=0)
    assert v.shape == (3, 3, 8, 16, 16)
    assert v.dtype == torch.float32
    assert v.min() >= -1 and v.max() <= 1
    w = dead_leaves_videos(2, 4, 16, 24, seed=0)
    assert w.shape == (2, 3, 4, 16, 24)


def test_deterministic_and_seed_dependent():
    a = dead_leaves_videos(2, 8, 16, seed=5)
    b = dead_leaves_videos(2, 8, 16, seed=5)
    c = dead_leaves_videos(2, 8, 16, seed=6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    g = torch.Generator().manual_seed(5)
    assert torch.equal(dead_leaves_videos(2, 8, 16, generator=g), a)


def test_argument_errors():
    with pytest.raises(ValueError, match="exactly one"):
        dead_leaves_videos(1, 8, 16)
    with pytest.raises(TypeError, match="valid keys"):
        DeadLeavesConfig(num_leafs=3)
    assert isinstance(GENERATOR_VERSION, str) and GENERATOR_VERSION


def test_counts_and_sizes_are_checked_by_name():
    """dead_leaves_videos(0 / -1 / True, ...) failed inside MKL or torch.rand, num_frames=0 in avg_pool3d and
    supersample=0 on an index; load_clips(0, ...) and frame_stride=0 failed in range(), segment_step=0 silently gave
    the non-overlapping default and names="bigbuckbunny" looked up the clip 'b': each is refused by name."""
    for args, msg in [((0, 2, 8), "batch=0"), ((-1, 2, 8), "batch=-1"), ((True, 2, 8), "batch=True"),
                      ((1, 0, 8), "num_frames=0"), ((1, 2, 8.5), "height=8.5")]:
        with pytest.raises(ValueError, match=f"{msg} must be an integer >= 1"):
            dead_leaves_videos(*args, seed=0)
    for cfg, msg in [(dict(supersample=0), "supersample=0"), (dict(num_leaves=2.5), "num_leaves=2.5")]:
        with pytest.raises(ValueError, match=f"{msg} must be an integer >= 1"):
            dead_leaves_videos(1, 2, 8, seed=0, config=cfg)
    for kw, msg in [(dict(num_frames=0), "num_frames=0"), (dict(frame_stride=0), "frame_stride=0"),
                    (dict(segment_step=0), "segment_step=0"), (dict(segment_step=-1), "segment_step=-1"),
                    (dict(segment_step=2.5), "segment_step=2.5")]:
        with pytest.raises(ValueError, match=f"{msg} must be an integer >= 1"):
            load_clips(**dict(dict(num_frames=4, height=8), **kw))
    with pytest.raises(TypeError, match=r"names must be a list.*\['bigbuckbunny'\]"):
        load_clips(4, 8, names="bigbuckbunny")
    assert torch.equal(load_clips(4, 8, names=["bigbuckbunny"]), load_clips(4, 8))


def test_spatial_spectrum_is_natural():
    """Power falls like 1/f^alpha with alpha near 2, as for natural images (van der Schaaf & van Hateren 1996:
    alpha = 1.88 +- 0.43). Measured at the training resolution (16x16, default config; fitted exponent about
    -2.1 here) and at 64x64 with the smallest leaf scaled down to keep the same size in pixels (about -2.1).
    Leaves smaller than the fit range matter: with a fixed r_min the spectrum steepens towards 1/f^3 (the
    spectrum of a single sharp-edged disc) above f ~ 1 / (2 pi r_min)."""
    v = dead_leaves_videos(96, 1, 16, seed=11)
    slope16 = radial_power_slope(v[:, :, 0], 1 / 16, 0.35)
    v = dead_leaves_videos(48, 1, 64, seed=11, config=DeadLeavesConfig(r_min=0.01))
    slope64 = radial_power_slope(v[:, :, 0], 1 / 32, 0.25)
    print(f"dead-leaves spatial power-spectrum exponent: {slope16:.2f} (16x16), {slope64:.2f} (64x64)")
    assert -2.5 < slope16 < -1.7
    assert -2.5 < slope64 < -1.7


def test_temporally_coherent_but_moving():
    v = dead_leaves_videos(64, 8, 16, seed=12).double()
    x = v - v.mean(dim=(2, 3, 4), keepdim=True)
    flat = x.transpose(1, 2).flatten(2)  # (B, F, C*H*W)
    cons = torch.nn.functional.cosine_similarity(flat[:, 1:], flat[:, :-1], dim=-1)
    # same frame index, different videos: unrelated content
    other = torch.nn.functional.cosine_similarity(flat[1:, 0], flat[:-1, 0], dim=-1)
    print(f"consecutive-frame correlation {cons.mean():.3f}, across videos {other.mean():.3f}")
    assert cons.mean() > 0.5
    assert other.abs().mean() < 0.5 * cons.mean()
    # not static: frames actually change (camera pan / moving leaves)
    assert (v[:, :, 1:] - v[:, :, :-1]).abs().mean() > 0.01
    # temporal spectrum concentrated at low temporal frequency
    pt = (torch.fft.fft(x, dim=2, norm="ortho").abs() ** 2).mean(dim=(0, 1, 3, 4))
    assert pt[0] > 0.5 * pt.sum()


def test_load_clips_tensor_and_xarray():
    x = load_clips(8, 16)
    assert x.ndim == 5 and x.shape[1:] == (3, 8, 16, 16)
    assert x.shape[0] >= 10
    assert x.min() >= -1 and x.max() <= 1
    da = load_clips(8, 16, 24, as_xarray=True)
    assert da.dims == ("clip", "channel", "frame", "height", "width")
    assert da.sizes["width"] == 24
    assert set(da.coords["source"].values) == {"bigbuckbunny"}
    assert "CC-BY" in da.attrs["license"]
    overl = load_clips(8, 16, segment_step=1)
    assert overl.shape[0] > x.shape[0]


def test_clips_ship_with_attribution():
    assert (CLIPS_DIR / "ATTRIBUTION.md").read_text().count("Blender Foundation") >= 1
    frames = clip_frames()
    assert set(frames) == {"bigbuckbunny"}
    assert frames["bigbuckbunny"].dtype == np.uint8
    with pytest.raises(KeyError, match="available"):
        clip_frames("nope")
    with pytest.raises(ValueError, match="too short"):
        load_clips(500, 16)


def test_real_clips_spectrum_also_falls():
    x = load_clips(8, 16)
    slope = radial_power_slope(x[:, :, 0], 1 / 16, 0.35)
    print(f"Big Buck Bunny spatial power-spectrum exponent: {slope:.2f}")
    assert -3.5 < slope < -1.5
