"""Video data shipped with freeinit_lab: real clips and a procedural natural-video generator.

Two sources, both offline:

* :func:`load_clips` — short real clips (Big Buck Bunny, CC-BY 3.0, Blender Foundation) stored downscaled in
  ``data/clips/`` by ``scripts/build_clips.py``. Cut into fixed-length segments and resized to the model's
  resolution; returned as a tensor or as a labelled :class:`xarray.DataArray`.
* :func:`dead_leaves_videos` — a seeded, on-the-fly generator of videos with natural-image statistics (a
  "dead leaves" model: occluding discs and ellipses whose radii follow ``p(r) ∝ r^-3``, which gives the
  ``1/f^2`` spatial power spectrum of natural images, over a ``1/f`` Gaussian background), seen through a
  panning camera with some leaves moving on their own. The default tiny model is trained on it; these are the
  "training clips" the evidence tests compare against.

Videos are ``(batch, channel, frame, height, width)`` float tensors in ``[-1, 1]`` (RGB).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from freeinit_lab._checks import require_int, require_seed

from .paths import DATA_DIR

__all__ = [
    "GENERATOR_VERSION",
    "CLIPS_DIR",
    "DeadLeavesConfig",
    "dead_leaves_videos",
    "load_clips",
    "clip_frames",
    "to_dataarray",
]

#: Version tag of the procedural generator; bump whenever its output for a given seed changes.
GENERATOR_VERSION = "dead-leaves-v1"

#: Folder with the stored real clips (``clips.npz``, ``README.md``, ``ATTRIBUTION.md``).
CLIPS_DIR = DATA_DIR / "clips"


class DeadLeavesConfig(dict):
    """Parameters of the procedural generator (a plain ``dict`` so it serialises to JSON).

    Keys
    ----
    num_leaves : int
        Occluding shapes per video (painter's order, later ones on top).
    r_min, r_max : float
        Leaf radius range as a fraction of the frame size; radii follow ``p(r) ∝ r^-3`` (scale invariance).
    pan_max : float
        Largest camera speed in pixels per frame (at output resolution); speed is uniform in ``[0, pan_max]``.
    move_prob, move_max : float
        Probability that a leaf moves on its own, and its largest speed in pixels per frame.
    background_amp : float
        Standard deviation of the ``1/f`` background texture (in ``[-1, 1]`` units).
    supersample : int
        Render at this multiple of the output size, then average-pool (anti-aliasing).
    """

    def __init__(self, **overrides):
        base = dict(
            num_leaves=40,
            r_min=0.04,
            r_max=0.6,
            pan_max=1.0,
            move_prob=0.3,
            move_max=1.0,
            background_amp=0.25,
            supersample=2,
        )
        unknown = set(overrides) - set(base)
        if unknown:
            raise TypeError(f"unknown DeadLeavesConfig keys {sorted(unknown)}; valid keys: {sorted(base)}")
        base.update(overrides)
        super().__init__(base)


def _power_law_radii(u: torch.Tensor, r_min: float, r_max: float) -> torch.Tensor:
    """Inverse-CDF sample of ``p(r) ∝ r^-3`` on ``[r_min, r_max]`` from uniforms ``u``."""
    a, b = r_min ** -2, r_max ** -2
    return (a - u * (a - b)) ** -0.5


def _pink_background(g: torch.Generator, batch: int, size: int, amp: float) -> torch.Tensor:
    """``(batch, 3, size, size)`` Gaussian field with ``1/f`` amplitude spectrum, std ``amp`` per channel."""
    white = torch.randn(batch, 3, size, size, generator=g)
    fy = torch.fft.fftfreq(size).view(-1, 1)
    fx = torch.fft.fftfreq(size).view(1, -1)
    f = torch.sqrt(fx ** 2 + fy ** 2)
    f[0, 0] = 1.0
    amp_spec = 1.0 / f
    amp_spec[0, 0] = 0.0
    field = torch.fft.ifft2(torch.fft.fft2(white) * amp_spec).real
    field = field / field.flatten(1).std(dim=1).clamp_min(1e-6).view(-1, 1, 1, 1)
    # mostly luminance: mix channels towards their mean
    lum = field.mean(dim=1, keepdim=True)
    return amp * (0.75 * lum + 0.25 * field)


def dead_leaves_videos(
    batch: int,
    num_frames: int = 8,
    height: int = 16,
    width: int | None = None,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    config: DeadLeavesConfig | dict | None = None,
) -> torch.Tensor:
    """Draw procedural videos with natural-image statistics and natural motion.

    Each video is a "dead leaves" scene: ``num_leaves`` opaque discs/ellipses of random colour with radii
    ``r ~ p(r) ∝ r^-3`` (scale invariant, giving a spatial power spectrum ``∝ 1/f^2`` like natural images)
    composited in painter's order over a ``1/f`` textured background. A camera pans across the scene at a
    constant random velocity and a share of the leaves moves on its own, so consecutive frames are coherent
    (occlusion, translation) but not identical. Rendered at ``supersample``× resolution and average-pooled.

    Parameters
    ----------
    batch : int
        Number of videos.
    num_frames, height, width : int
        Output size; ``width`` defaults to ``height``.
    seed : int, optional
        Seed of a fresh CPU generator, in ``[0, 2**64 - 1]``; the output is a deterministic function of (seed,
        sizes, config, :data:`GENERATOR_VERSION`). Exactly one of ``seed`` / ``generator`` must be given.
    generator : torch.Generator, optional
        CPU generator to draw from (advanced; consumed in place).
    config : DeadLeavesConfig or dict, optional
        Generator parameters (see :class:`DeadLeavesConfig`).

    Returns
    -------
    torch.Tensor
        ``(batch, 3, num_frames, height, width)`` float32 in ``[-1, 1]``.

    Examples
    --------
    >>> v = dead_leaves_videos(2, 8, 16, seed=0)
    >>> tuple(v.shape), bool(v.abs().max() <= 1)
    ((2, 3, 8, 16, 16), True)
    """
    if (seed is None) == (generator is None):
        raise ValueError("pass exactly one of `seed=` (an int) or `generator=` (a torch.Generator)")
    if generator is None:
        generator = torch.Generator().manual_seed(require_seed(seed))
    g = generator
    width = height if width is None else width
    batch, num_frames, height, width = (require_int(k, v, why=" (videos to draw, and their size)") for k, v in
                                        (("batch", batch), ("num_frames", num_frames), ("height", height),
                                         ("width", width)))
    cfg = DeadLeavesConfig(**(config or {}))
    for key in ("num_leaves", "supersample"):
        require_int(key, cfg[key], why=" (a DeadLeavesConfig count)")
    ss = int(cfg["supersample"])
    H, W, T = height * ss, width * ss, num_frames
    K = int(cfg["num_leaves"])
    size = max(H, W)

    # camera: velocity in output pixels/frame, random direction; scene margin so the view stays inside
    speed = torch.rand(batch, generator=g) * cfg["pan_max"]
    ang = torch.rand(batch, generator=g) * 2 * math.pi
    cam_v = torch.stack([speed * torch.cos(ang), speed * torch.sin(ang)], dim=-1) * ss  # (B, 2) px/frame (x, y)

    # leaves: world positions (in render pixels) cover view plus travel
    travel = (cfg["pan_max"] + cfg["move_max"]) * ss * T
    lo, hi = -travel - 0.3 * size, size + travel + 0.3 * size
    cx = lo + (hi - lo) * torch.rand(batch, K, generator=g)
    cy = lo + (hi - lo) * torch.rand(batch, K, generator=g)
    r = _power_law_radii(torch.rand(batch, K, generator=g), cfg["r_min"], cfg["r_max"]) * size
    aspect = torch.exp((torch.rand(batch, K, generator=g) - 0.5) * 1.2)  # ellipse axis ratio
    theta = torch.rand(batch, K, generator=g) * math.pi
    # colours: luminance-dominated with moderate chroma, in [-1, 1]
    lum = torch.rand(batch, K, 1, generator=g) * 1.8 - 0.9
    chroma = (torch.rand(batch, K, 3, generator=g) - 0.5) * 0.8
    color = (lum + chroma - chroma.mean(-1, keepdim=True)).clamp(-1, 1)  # (B, K, 3)
    moves = torch.rand(batch, K, generator=g) < cfg["move_prob"]
    mspeed = torch.rand(batch, K, generator=g) * cfg["move_max"] * ss
    mang = torch.rand(batch, K, generator=g) * 2 * math.pi
    lv = torch.stack([mspeed * torch.cos(mang), mspeed * torch.sin(mang)], -1) * moves[..., None]  # (B, K, 2)

    bg = _pink_background(g, batch, size, cfg["background_amp"])  # static in the world, shifted by camera
    bg_mean = torch.rand(batch, 1, 1, 1, generator=g) * 1.0 - 0.5
    bg = bg + bg_mean

    t = torch.arange(T, dtype=torch.float32)
    # leaf centre in view coordinates per frame: world + leaf motion * t - camera * t
    px = cx[:, :, None] + (lv[..., 0, None] - cam_v[:, None, 0, None]) * t  # (B, K, T)
    py = cy[:, :, None] + (lv[..., 1, None] - cam_v[:, None, 1, None]) * t
    ys = torch.arange(H, dtype=torch.float32) + 0.5
    xs = torch.arange(W, dtype=torch.float32) + 0.5
    dx = xs.view(1, 1, 1, 1, W) - px[..., None, None]  # (B, K, T, 1, W)
    dy = ys.view(1, 1, 1, H, 1) - py[..., None, None]  # (B, K, T, H, 1)
    c, s = torch.cos(theta)[..., None, None, None], torch.sin(theta)[..., None, None, None]
    u = dx * c + dy * s
    v = -dx * s + dy * c
    rr = r[..., None, None, None]
    ar = aspect[..., None, None, None]
    inside = (u / (rr * ar)) ** 2 + (v * ar / rr) ** 2 <= 1.0  # (B, K, T, H, W)
    order = torch.arange(1, K + 1, dtype=torch.int16).view(1, K, 1, 1, 1)
    top = (inside.to(torch.int16) * order).amax(dim=1)  # (B, T, H, W), 0 = background
    palette = torch.cat([torch.zeros(batch, 1, 3), color], dim=1)  # index 0 unused
    idx = top.long().flatten(1)  # (B, T*H*W)
    fg = torch.gather(palette, 1, idx[..., None].expand(-1, -1, 3)).view(batch, T, H, W, 3)
    fg = fg.permute(0, 4, 1, 2, 3)  # (B, 3, T, H, W)

    # background shifted by the camera (integer roll of a periodic field, sub-pixel via supersampling)
    shifts = torch.round(-cam_v[:, None, :] * t[None, :, None]).long()  # (B, T, 2)
    bgv = torch.empty(batch, 3, T, H, W)
    for b in range(batch):
        for f in range(T):
            rolled = torch.roll(bg[b], shifts=(int(shifts[b, f, 1]), int(shifts[b, f, 0])), dims=(-2, -1))
            bgv[b, :, f] = rolled[:, :H, :W]
    video = torch.where((top > 0)[:, None], fg, bgv)
    video = F.avg_pool3d(video, kernel_size=(1, ss, ss)) if ss > 1 else video
    return video.clamp(-1, 1).contiguous()


# ----------------------------------------------------------------------------------------------------------
# real clips


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found. The real clips ship with the repository under data/clips/; rebuild them with "
            "`python scripts/build_clips.py` (needs pip access once, at build time only)."
        )
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def clip_frames(name: str | None = None) -> dict[str, np.ndarray]:
    """Stored full-length clips as ``uint8`` arrays ``(frame, height, width, 3)``, keyed by clip name.

    Parameters
    ----------
    name : str, optional
        Return only this clip (as a one-entry dict).
    """
    data = {k: v for k, v in _load_npz(CLIPS_DIR / "clips.npz").items() if v.ndim == 4}
    if name is not None:
        if name not in data:
            raise KeyError(f"no clip {name!r}; available: {sorted(data)}")
        return {name: data[name]}
    return data


def load_clips(
    num_frames: int = 8,
    height: int = 16,
    width: int | None = None,
    *,
    frame_stride: int = 1,
    segment_step: int | None = None,
    names: list[str] | None = None,
    as_xarray: bool = False,
):
    """Real video clips cut into segments and resized to a model's resolution.

    Each stored clip (``data/clips/clips.npz``) is center-cropped to the target aspect ratio, resized with area
    averaging to ``height × width`` and cut into segments of ``num_frames`` frames taken every ``frame_stride``
    frames, a new segment starting every ``segment_step`` source frames (default: non-overlapping).

    Parameters
    ----------
    num_frames, height, width : int
        Segment size (``width`` defaults to ``height``).
    frame_stride : int
        Temporal subsampling inside a segment (1 = consecutive frames).
    segment_step : int, optional
        Source frames between segment starts; default ``num_frames * frame_stride``.
    names : list of str, optional
        Clips to use (default: all stored clips, see :func:`clip_frames`).
    as_xarray : bool
        Return a labelled ``DataArray`` with dims ``("clip", "channel", "frame", "height", "width")`` and coords
        ``source`` (clip name) and ``start`` (first source frame) instead of a tensor.

    Returns
    -------
    torch.Tensor or xarray.DataArray
        ``(clip, 3, num_frames, height, width)`` float32 in ``[-1, 1]``.

    Examples
    --------
    >>> x = load_clips(8, 16)
    >>> x.shape[1:]
    torch.Size([3, 8, 16, 16])
    """
    width = height if width is None else width
    num_frames, height, width, frame_stride = (
        require_int(k, v, why=" (segment size and frame stride)") for k, v in
        (("num_frames", num_frames), ("height", height), ("width", width), ("frame_stride", frame_stride)))
    step = num_frames * frame_stride if segment_step is None else require_int(
        "segment_step", segment_step, why=" (source frames between segment starts; leave it out for non-overlapping "
        "segments)")
    if isinstance(names, str):
        raise TypeError(f"names must be a list of clip names; got the string {names!r} (pass [{names!r}])")
    clips = clip_frames()
    names = sorted(clips) if names is None else list(names)
    segs, src, starts = [], [], []
    for n in names:
        if n not in clips:
            raise KeyError(f"no clip {n!r}; available: {sorted(clips)}")
        arr = torch.from_numpy(clips[n]).float().div(127.5).sub(1.0)  # (T, H, W, 3)
        arr = arr.permute(3, 0, 1, 2)  # (3, T, H, W)
        _, T, H0, W0 = arr.shape
        # centre crop to aspect ratio
        target = width / height
        if W0 / H0 > target:
            cw = int(round(H0 * target))
            x0 = (W0 - cw) // 2
            arr = arr[..., x0 : x0 + cw]
        else:
            ch = int(round(W0 / target))
            y0 = (H0 - ch) // 2
            arr = arr[:, :, y0 : y0 + ch]
        arr = F.interpolate(arr, size=(height, width), mode="area")  # treats frames as batch-of-channels
        span = (num_frames - 1) * frame_stride + 1
        for s0 in range(0, T - span + 1, step):
            segs.append(arr[:, s0 : s0 + span : frame_stride])
            src.append(n)
            starts.append(s0)
    if not segs:
        raise ValueError(f"clips too short for num_frames={num_frames}, frame_stride={frame_stride}")
    out = torch.stack(segs).clamp(-1, 1).contiguous()
    if not as_xarray:
        return out
    return to_dataarray(
        out, dim0="clip", coords={"source": ("clip", src), "start": ("clip", starts)},
        attrs={"long_name": "real video clips", "units": "pixel value in [-1, 1]",
               "license": "CC-BY 3.0 (c) Blender Foundation, see data/clips/ATTRIBUTION.md"},
    )


def to_dataarray(video: torch.Tensor, dim0: str = "batch", coords: dict | None = None, attrs: dict | None = None):
    """Wrap a ``(N, C, F, H, W)`` video tensor as an ``xarray.DataArray`` with canonical dims."""
    import xarray as xr

    if video.ndim != 5:
        raise ValueError(f"expected a 5-D (N, C, F, H, W) video tensor, got shape {tuple(video.shape)}")
    da = xr.DataArray(
        video.detach().cpu().numpy(),
        dims=(dim0, "channel", "frame", "height", "width"),
        coords={"channel": ["R", "G", "B"][: video.shape[1]] if video.shape[1] == 3 else np.arange(video.shape[1]),
                **(coords or {})},
        name="video",
        attrs=dict(attrs or {}),
    )
    return da
