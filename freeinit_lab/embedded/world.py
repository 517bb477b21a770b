"""A procedural video world with subjects: the training distribution of the embedded default model.

Every video is a short shot of a few persistent *subjects* — opaque objects of distinct shape, colour and
texture — that move (translation, a little rotation and scaling) over a textured background while a camera pans,
in front of one another in a fixed depth order (so they partly occlude each other). The background is a Gaussian
field with a ``1/f`` amplitude spectrum (``1/f²`` power, the statistics of natural images); each video has its
own brightness and colour offset. Everything is a deterministic function of the seed, the sizes, the
configuration and :data:`WORLD_VERSION`, drawn in torch and vectorised over videos, frames and pixels, so it runs
on a GPU as well (``device=``).

Geometry (coordinates in output pixels, ``t`` the frame index, object ``k``)::

    centre_k(t) = p0_k + v_k t − c t              (object velocity v_k, camera velocity c)
    u = R(−θ_k − ω_k t) (x − centre_k(t)) / (r_k e^{ρ_k t})      (object-local coordinates)
    α_k(x, t) = clip(½ − sdf_k(u) · r_k e^{ρ_k t} · ss, 0, 1)    (one render pixel of anti-aliasing)
    colour_k(u) = base_k + contrast_k · (2 texture_k(u) − 1) · accent_k + shade_k · u_x

and the frame is composited in painter's order, ``out = out (1 − α_k) + colour_k α_k``, over the panned
background, rendered at ``supersample`` × resolution and average-pooled. Texture and shading live in object
coordinates, so a subject keeps its appearance from frame to frame.

Videos are ``(batch, 3, frame, height, width)`` float32 in ``[-1, 1]`` (display RGB). The model works on a
per-channel normalisation of them (:class:`freeinit_lab.pipelines.ChannelNormalizer`).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from freeinit_lab._checks import require_int, require_seed

__all__ = ["WORLD_VERSION", "WORLD_VERSIONS", "SubjectsConfig", "subject_videos", "subject_parameters",
           "render_subjects", "SHAPES", "TEXTURES"]

#: Version tag of the generator; bump whenever its output for a given seed and configuration changes.
WORLD_VERSION = "subjects-v1"
#: Versions this code can reproduce exactly.
WORLD_VERSIONS = ("subjects-v1",)

#: Object shapes, each with a signed distance in object-local units (negative inside).
SHAPES = ("ellipse", "rectangle", "triangle", "diamond")
#: Object textures, functions of object-local coordinates with values in ``[0, 1]``.
TEXTURES = ("stripes", "checker", "rings", "plain")

_DEFAULTS = dict(
    num_objects_min=2,
    num_objects_max=4,
    size_min=0.18,
    size_max=0.34,
    aspect_max=1.5,
    speed_max=0.9,
    camera_speed_max=0.6,
    rotation_max=0.06,
    scale_rate_max=0.02,
    texture_contrast_min=0.15,
    texture_contrast_max=0.35,
    texture_freq_min=1.0,
    texture_freq_max=2.5,
    background_amp=0.3,
    background_slope=1.25,
    brightness_std=0.15,
    color_offset_std=0.06,
    supersample=2,
)


class SubjectsConfig(dict):
    """Parameters of :func:`subject_videos` (a plain ``dict`` so it serialises to JSON).

    Keys
    ----
    num_objects_min, num_objects_max : int
        Subjects per video, uniform in this range (at most ``len(SHAPES)``: every subject of a video has its own
        shape; colours are spread around the hue circle).
    size_min, size_max : float
        Subject radius as a fraction of the frame's shorter side.
    aspect_max : float
        Largest axis ratio of a subject (log-uniform in ``[1/aspect_max, aspect_max]``).
    speed_max : float
        Largest subject speed in output pixels per frame (start and end points are drawn inside the frame).
    camera_speed_max : float
        Largest camera pan speed, output pixels per frame.
    rotation_max : float
        Largest rotation speed, radians per frame.
    scale_rate_max : float
        Largest growth rate ``|ρ|`` of the subject's scale ``e^{ρ t}``, per frame.
    texture_contrast_min, texture_contrast_max : float
        Amplitude of the texture around the subject's base colour.
    texture_freq_min, texture_freq_max : float
        Texture frequency in cycles per subject radius.
    background_amp : float
        Standard deviation of the background (``[-1, 1]`` units).
    background_slope : float
        Amplitude spectrum exponent of the background, ``|B(f)| ∝ f^-slope`` (1 gives the ``1/f²`` power of
        natural images; a little steeper makes a smoother texture, the subjects' edges adding the rest).
    brightness_std, color_offset_std : float
        Per-video brightness offset and per-channel colour offset (standard deviations).
    supersample : int
        Render at this multiple of the output size, then average-pool.
    """

    def __init__(self, **overrides):
        unknown = set(overrides) - set(_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown SubjectsConfig keys {sorted(unknown)}; valid keys: {sorted(_DEFAULTS)}")
        base = dict(_DEFAULTS)
        base.update(overrides)
        for key in ("num_objects_min", "num_objects_max", "supersample"):
            require_int(key, base[key], why=" (a SubjectsConfig count)")
        bad = {k: v for k, v in base.items() if k not in ("num_objects_min", "num_objects_max", "supersample")
               and (isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= float(v) < math.inf)}
        if bad:
            raise ValueError(f"SubjectsConfig values {bad} must be finite numbers >= 0 (sizes, speeds, rates, "
                             "amplitudes and standard deviations)")
        if base["aspect_max"] < 1:
            raise ValueError(f"aspect_max={base['aspect_max']} must be >= 1: the largest axis ratio of a subject "
                             "(1 = round); its log-uniform range is [1/aspect_max, aspect_max]")
        for lo, hi in (("texture_contrast_min", "texture_contrast_max"), ("texture_freq_min", "texture_freq_max")):
            if base[lo] > base[hi]:
                raise ValueError(f"need {lo} <= {hi}; got {base[lo]}, {base[hi]}")
        if not 1 <= int(base["num_objects_min"]) <= int(base["num_objects_max"]) <= len(SHAPES):
            raise ValueError(
                f"need 1 <= num_objects_min <= num_objects_max <= {len(SHAPES)}; got "
                f"{base['num_objects_min']}, {base['num_objects_max']}"
            )
        if not 0 < base["size_min"] <= base["size_max"] < 1:
            raise ValueError(f"need 0 < size_min <= size_max < 1; got {base['size_min']}, {base['size_max']}")
        if int(base["supersample"]) < 1:
            raise ValueError(f"supersample must be >= 1; got {base['supersample']}")
        super().__init__(base)


def _uniform(g: torch.Generator, shape, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def _hue_colors(hue: torch.Tensor, sat: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
    """RGB in ``[-1, 1]`` from hue (turns), saturation and value in ``[-1, 1]``, shape ``(..., 3)``."""
    k = torch.tensor([0.0, 1.0 / 3.0, 2.0 / 3.0])
    chroma = torch.cos(2 * math.pi * (hue[..., None] - k))  # zero-mean over the three channels
    return (val[..., None] + sat[..., None] * chroma).clamp(-0.95, 0.95)


def _shape_background(white: torch.Tensor, amp: float, slope: float) -> torch.Tensor:
    """Periodic background field ``(batch, 3, size, size)`` from white noise of that shape (drawn by
    :func:`subject_parameters`; computed on the noise's device): filtered to an amplitude spectrum ``f^-slope``,
    colours mixed towards luminance, scaled to per-video standard deviation ``amp``."""
    size = white.shape[-1]
    fy = torch.fft.fftfreq(size, device=white.device).view(-1, 1)
    fx = torch.fft.fftfreq(size, device=white.device).view(1, -1)
    f = torch.sqrt(fx**2 + fy**2)
    spec = torch.where(f > 0, f.clamp_min(1e-12) ** -slope, torch.zeros((), device=white.device))
    field = torch.fft.ifft2(torch.fft.fft2(white) * spec).real
    lum = field.mean(dim=1, keepdim=True)
    field = 0.8 * lum + 0.25 * (field - lum)
    field = field / field.flatten(1).std(dim=1).clamp_min(1e-6).view(-1, 1, 1, 1)
    return amp * field


def _shift_frames(field: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Sub-pixel translation of a periodic field per frame by a Fourier phase ramp.

    ``field`` ``(B, C, N, N)``, ``shift`` ``(B, T, 2)`` in pixels (x, y) → ``(B, C, T, N, N)`` with
    ``out[..., t, y, x] = field[..., y − shift_y, x − shift_x]`` (exact for a band-limited periodic field).
    """
    n = field.shape[-1]
    spec = torch.fft.fft2(field)[:, :, None]  # (B, C, 1, N, N)
    k = torch.fft.fftfreq(n, device=field.device)
    sx = shift[..., 0][:, None, :, None, None]
    sy = shift[..., 1][:, None, :, None, None]
    ramp = torch.exp(-2j * math.pi * (k.view(1, 1, 1, 1, n) * sx + k.view(1, 1, 1, n, 1) * sy))
    return torch.fft.ifft2(spec * ramp).real


def _sdf(shape_id: torch.Tensor, ux: torch.Tensor, uy: torch.Tensor) -> torch.Tensor:
    """Signed distance-like function (object units; < 0 inside) of every shape, selected by ``shape_id``.

    The shapes have similar areas (≈ π for the unit ellipse).
    """
    ellipse = torch.sqrt(ux**2 + uy**2) - 1.0
    rect = torch.maximum(ux.abs(), uy.abs()) - 0.89
    tri = ux.new_full(ux.shape, -1e9)
    for j in range(3):
        a = math.pi / 2 + 2 * math.pi * j / 3
        tri = torch.maximum(tri, ux * math.cos(a) + uy * math.sin(a) - 0.67)
    diamond = (ux.abs() + uy.abs()) / math.sqrt(2) - 0.89
    all_ = torch.stack([ellipse, rect, tri, diamond])  # (4, ...)
    idx = shape_id.expand(ux.shape).unsqueeze(0)
    return torch.gather(all_, 0, idx).squeeze(0)


def _texture(tex_id: torch.Tensor, ux: torch.Tensor, uy: torch.Tensor, freq: torch.Tensor,
             phase: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Texture value in ``[0, 1]`` of every texture kind at object-local ``(ux, uy)``, selected by ``tex_id``."""
    w = 2 * math.pi * freq
    along = ux * torch.cos(direction) + uy * torch.sin(direction)
    stripes = 0.5 + 0.5 * torch.sin(w * along + phase)
    checker = 0.5 + 0.5 * torch.tanh(3.0 * torch.sin(w * ux + phase) * torch.sin(w * uy))
    rings = 0.5 + 0.5 * torch.cos(w * torch.sqrt(ux**2 + uy**2) + phase)
    plain = torch.full_like(ux, 0.5)
    all_ = torch.stack([stripes, checker, rings, plain])
    idx = tex_id.expand(ux.shape).unsqueeze(0)
    return torch.gather(all_, 0, idx).squeeze(0)


def subject_videos(
    batch: int,
    num_frames: int = 16,
    height: int = 32,
    width: int | None = None,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    config: SubjectsConfig | dict | None = None,
    version: str = WORLD_VERSION,
    device: torch.device | str | None = None,
    return_masks: bool = False,
    chunk_size: int = 32,
):
    """Draw videos of a few moving, occluding subjects over a panned natural-statistics background.

    Parameters
    ----------
    batch : int
        Number of videos (> 0).
    num_frames, height, width : int
        Output size; ``width`` defaults to ``height``.
    seed : int, optional
        Seed of a fresh CPU generator, in ``[0, 2**64 - 1]`` (torch would read a negative seed as a large one, so it
        is refused). Exactly one of ``seed`` / ``generator`` must be given. All random
        parameters are drawn on the CPU, so a seed gives the same videos on every device (up to float rounding
        of the rendering).
    generator : torch.Generator, optional
        CPU generator to draw from (consumed in place).
    config : SubjectsConfig or dict, optional
        Generator parameters (see :class:`SubjectsConfig`).
    version : str
        Generator version to reproduce (see :data:`WORLD_VERSIONS`).
    device : torch.device or str, optional
        Where to render (default CPU).
    return_masks : bool
        Also return each subject's coverage ``(batch, K, frame, height, width)`` in ``[0, 1]`` (visible part,
        after occlusion; ``K = num_objects_max``, absent subjects all zero).
    chunk_size : int
        Videos rendered at once (after all parameters are drawn, so it does not change the videos): bounds the
        memory of the supersampled rendering, about 20 MB a video at 16 × 32 × 32.

    Returns
    -------
    torch.Tensor or (torch.Tensor, torch.Tensor)
        ``(batch, 3, num_frames, height, width)`` float32 in ``[-1, 1]`` (and the masks).

    Examples
    --------
    >>> v = subject_videos(2, 16, 32, seed=0)
    >>> tuple(v.shape), bool(v.abs().max() <= 1)
    ((2, 3, 16, 32, 32), True)
    """
    params = subject_parameters(batch, num_frames, height, width, seed=seed, generator=generator, config=config,
                                version=version)
    return render_subjects(params, device=device, return_masks=return_masks, chunk_size=chunk_size)


def subject_parameters(
    batch: int,
    num_frames: int = 16,
    height: int = 32,
    width: int | None = None,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    config: SubjectsConfig | dict | None = None,
    version: str = WORLD_VERSION,
) -> dict:
    """Every random draw of :func:`subject_videos` (on the CPU), without the rendering.

    ``render_subjects(subject_parameters(...), device=d)`` is ``subject_videos(..., device=d)`` exactly: the split
    lets worker processes draw the parameters (cheap, CPU) while a GPU renders them (the expensive part), as
    ``scripts/train_default_model.py`` does. Arguments as :func:`subject_videos`; returns a dict of CPU tensors
    (one row per video) plus the sizes under ``"sizes"``.
    """
    if version not in WORLD_VERSIONS:
        raise ValueError(f"unknown world version {version!r}; this freeinit_lab reproduces {list(WORLD_VERSIONS)}")
    if (seed is None) == (generator is None):
        raise ValueError("pass exactly one of `seed=` (an int) or `generator=` (a torch.Generator)")
    width = height if width is None else width
    batch, num_frames, height, width = (require_int(k, v, why=" (videos to draw, and their size)") for k, v in
                                        (("batch", batch), ("num_frames", num_frames), ("height", height),
                                         ("width", width)))
    cfg = SubjectsConfig(**(config or {}))
    g = generator if generator is not None else torch.Generator().manual_seed(require_seed(seed))
    B, T = int(batch), int(num_frames)
    ss = int(cfg["supersample"])
    H, W = height * ss, width * ss
    side = min(height, width)
    K = int(cfg["num_objects_max"])

    # ---- per-video parameters (all drawn on the CPU, in a fixed order) --------------------------------------
    n_obj = torch.randint(int(cfg["num_objects_min"]), K + 1, (B,), generator=g)
    present = torch.arange(K)[None, :] < n_obj[:, None]  # (B, K)
    shape_id = torch.argsort(torch.rand(B, len(SHAPES), generator=g), dim=1)[:, :K]  # distinct shapes
    tex_id = torch.randint(0, len(TEXTURES), (B, K), generator=g)
    hue0 = torch.rand(B, 1, generator=g)
    hue = (hue0 + torch.arange(K)[None, :] / K + _uniform(g, (B, K), -0.08, 0.08)) % 1.0
    sat = _uniform(g, (B, K), 0.25, 0.6)
    val = _uniform(g, (B, K), -0.5, 0.5)
    base = _hue_colors(hue, sat, val)  # (B, K, 3)
    accent = _hue_colors((hue + 0.5) % 1.0, torch.full_like(sat, 0.5), torch.zeros_like(val))
    accent = accent + _uniform(g, (B, K, 1), -0.5, 0.5)  # texture colour direction, some luminance
    contrast = _uniform(g, (B, K), cfg["texture_contrast_min"], cfg["texture_contrast_max"])
    freq = _uniform(g, (B, K), cfg["texture_freq_min"], cfg["texture_freq_max"])
    tphase = _uniform(g, (B, K), 0.0, 2 * math.pi)
    tdir = _uniform(g, (B, K), 0.0, math.pi)
    shade = _uniform(g, (B, K), -0.15, 0.15)
    radius = _uniform(g, (B, K), cfg["size_min"], cfg["size_max"]) * side  # output px
    aspect = torch.exp(_uniform(g, (B, K), -1.0, 1.0) * math.log(float(cfg["aspect_max"])))
    theta0 = _uniform(g, (B, K), 0.0, 2 * math.pi)
    omega = _uniform(g, (B, K), -1.0, 1.0) * cfg["rotation_max"]
    rho = _uniform(g, (B, K), -1.0, 1.0) * cfg["scale_rate_max"]
    # start and end inside the frame; speed capped at speed_max
    p0 = torch.stack([_uniform(g, (B, K), 0.2, 0.8) * width, _uniform(g, (B, K), 0.2, 0.8) * height], -1)
    p1 = torch.stack([_uniform(g, (B, K), 0.2, 0.8) * width, _uniform(g, (B, K), 0.2, 0.8) * height], -1)
    vel = (p1 - p0) / max(T - 1, 1)
    speed = vel.norm(dim=-1, keepdim=True)
    vel = vel * (float(cfg["speed_max"]) / speed.clamp_min(1e-9)).clamp(max=1.0)
    cam_speed = torch.rand(B, generator=g) * cfg["camera_speed_max"]
    cam_ang = torch.rand(B, generator=g) * 2 * math.pi
    cam_v = torch.stack([cam_speed * torch.cos(cam_ang), cam_speed * torch.sin(cam_ang)], -1)  # (B, 2)
    offset = (torch.randn(B, 1, generator=g) * cfg["brightness_std"]
              + torch.randn(B, 3, generator=g) * cfg["color_offset_std"])  # (B, 3)
    # a periodic field large enough that the camera's travel never shows its period
    travel = math.ceil(float(cfg["camera_speed_max"]) * max(T - 1, 0) * ss)
    n_bg = 16 * math.ceil((max(H, W) + 2 * travel + 16) / 16)
    # the background's white noise is drawn here; its filtering (two FFTs) is left to the rendering, on its device
    bg_white = torch.randn(B, 3, n_bg, n_bg, generator=g)

    return dict(present=present, shape_id=shape_id, tex_id=tex_id, base=base, accent=accent,
                contrast=contrast, freq=freq, tphase=tphase, tdir=tdir, shade=shade, radius=radius,
                aspect=aspect, theta0=theta0, omega=omega, rho=rho, p0=p0, vel=vel, cam_v=cam_v, offset=offset,
                bg_white=bg_white, sizes=dict(batch=B, num_frames=T, height=int(height), width=int(width),
                                               supersample=ss, background_amp=float(cfg["background_amp"]),
                                               background_slope=float(cfg["background_slope"])))


def render_subjects(params: dict, *, device: torch.device | str | None = None, return_masks: bool = False,
                    chunk_size: int = 32):
    """Render the videos whose random draws :func:`subject_parameters` made, on ``device``, ``chunk_size`` at a
    time (see :func:`subject_videos` for the arguments and the result)."""
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    sz = params["sizes"]
    B, T, height, width, ss = sz["batch"], sz["num_frames"], sz["height"], sz["width"], sz["supersample"]
    per_video = {k: v for k, v in params.items() if k != "sizes"}
    bg_shape = (float(sz["background_amp"]), float(sz["background_slope"]))
    # ---- render on the device, chunk by chunk (every random draw is done already) --------------------------
    parts = [_render_subjects({k: v[s:s + int(chunk_size)] for k, v in per_video.items()}, T, height, width, ss,
                              dev, return_masks, bg_shape)
             for s in range(0, B, int(chunk_size))]
    if not return_masks:
        return torch.cat(parts)
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _render_subjects(p: dict, T: int, height: int, width: int, ss: int, dev: torch.device, return_masks: bool,
                     bg_shape: tuple[float, float]):
    """Render the videos whose drawn parameters ``p`` holds (one row per video); see :func:`subject_videos`."""
    B, K = p["present"].shape
    H, W = height * ss, width * ss
    present, shape_id, tex_id, base, accent = p["present"], p["shape_id"], p["tex_id"], p["base"], p["accent"]
    contrast, freq, tphase, tdir, shade = p["contrast"], p["freq"], p["tphase"], p["tdir"], p["shade"]
    radius, aspect, theta0, omega, rho = p["radius"], p["aspect"], p["theta0"], p["omega"], p["rho"]
    p0, vel, cam_v, offset = p["p0"], p["vel"], p["cam_v"], p["offset"]
    bg = _shape_background(p["bg_white"].to(dev), *bg_shape)
    n_bg = bg.shape[-1]
    to = dict(device=dev)
    t = torch.arange(T, dtype=torch.float32, **to)
    cam_shift = -cam_v.to(dev)[:, None, :] * t[None, :, None] * ss  # background moves against the camera
    bgv = _shift_frames(bg, cam_shift)  # (B, 3, T, n_bg, n_bg)
    y0, x0 = (n_bg - H) // 2, (n_bg - W) // 2
    out = bgv[..., y0:y0 + H, x0:x0 + W].contiguous()  # (B, 3, T, H, W)

    xs = (torch.arange(W, dtype=torch.float32, **to) + 0.5) / ss
    ys = (torch.arange(H, dtype=torch.float32, **to) + 0.5) / ss
    masks = []
    for k in range(K):
        def col(a):  # (B,) parameter of object k → (B, 1, 1, 1) for (B, T, H, W) broadcasting
            return a[:, k].to(dev).view(B, 1, 1, 1)

        tt = t.view(1, T, 1, 1)
        cx = col(p0[..., 0]) + (col(vel[..., 0]) - col(cam_v[:, None, 0].expand(B, K))) * tt
        cy = col(p0[..., 1]) + (col(vel[..., 1]) - col(cam_v[:, None, 1].expand(B, K))) * tt
        ang = col(theta0) + col(omega) * tt
        scale = col(radius) * torch.exp(col(rho) * tt)  # (B, T, 1, 1)
        dx = xs.view(1, 1, 1, W) - cx
        dy = ys.view(1, 1, H, 1) - cy
        c, s = torch.cos(ang), torch.sin(ang)
        ux = (dx * c + dy * s) / scale
        uy = (-dx * s + dy * c) / scale
        ar = col(aspect)
        ux, uy = ux / ar, uy * ar
        sdf = _sdf(col(shape_id).long(), ux, uy)
        alpha = (0.5 - sdf * scale * ss).clamp(0.0, 1.0) * col(present.float())  # (B, T, H, W)
        tex = _texture(col(tex_id).long(), ux, uy, col(freq), col(tphase), col(tdir))
        colour = (base[:, k].to(dev).view(B, 3, 1, 1, 1)
                  + (col(contrast) * (2 * tex - 1))[:, None] * accent[:, k].to(dev).view(B, 3, 1, 1, 1)
                  + (col(shade) * ux)[:, None])
        a = alpha[:, None]
        out = out * (1 - a) + colour * a
        if return_masks:
            masks = [m * (1 - a) for m in masks]
            masks.append(a)
    out = out + offset.to(dev).view(B, 3, 1, 1, 1)
    if ss > 1:
        out = F.avg_pool3d(out, kernel_size=(1, ss, ss))
    video = out.clamp(-1, 1).contiguous()
    if not return_masks:
        return video
    m = torch.cat(masks, dim=1)  # (B, K, T, H, W)
    if ss > 1:
        m = F.avg_pool3d(m, kernel_size=(1, ss, ss))
    return video, m.contiguous()
