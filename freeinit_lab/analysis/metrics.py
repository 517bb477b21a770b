"""Temporal-consistency metrics for generated videos (weight-free by default).

Every metric takes a batch of videos and returns one score per video (a ``(batch,)`` tensor); higher means more
temporally consistent for all of them. Videos are ``(batch, channel, frame, height, width)`` tensors with values
in ``[-1, 1]`` by default — the layout and range of :class:`freeinit_lab.pipelines.TinyVideoPipeline` latents;
pass ``layout=`` / ``value_range=`` for other forms (e.g. a pipeline's ``output_type="np"`` frames are
``layout="bfhwc", value_range=(0, 1)``). Let ``x_f`` be frame ``f`` (of ``F``) rescaled to ``[0, 1]``.

* :func:`frame_cosine_similarity` — ``mean cos(φ(x_g), φ(x_f))`` over consecutive pairs ``(g, f) = (f−1, f)``
  or first-frame pairs ``(0, f)``, with ``φ(x_f)`` the flattened frame minus the video's mean colour (or a
  feature map you pass). A static video scores 1, frames with unrelated content about 0.
* :func:`temporal_flicker` — VBench's temporal-flickering score ``(255 − MAD) / 255`` with
  ``MAD = mean_{f,pixels,channels} |255·x_f − 255·x_{f−1}|`` (1 = static).
* :func:`consecutive_ssim` — mean SSIM (Wang et al. 2004; 7×7 uniform window, ``K1 = 0.01``, ``K2 = 0.03``,
  sample covariances, borders cropped, channels averaged — the defaults of ``skimage.metrics.structural_similarity``,
  against which it is tested) between consecutive frames.
* :func:`dino_consistency` — the paper's metric: ``100 · mean_{f>0} cos(DINO(x_0), DINO(x_f))`` with the CLS
  token of a ViT (DINO ViT-S/16 in the paper) — only with weights you supply (a local folder, a hub id already in
  your cache, or a ``torch.nn.Module``); nothing is downloaded unless you allow it.
* :func:`consistency_report` — all weight-free metrics as an ``xarray.Dataset`` over ``batch``.
* :func:`display_values` — a pipeline's ``output_type="latent"`` videos as the display values these metrics read:
  ``clip(normalizer.decode(z), −1, 1)`` when the pipeline works in a normalised model space, ``clip(z, −1, 1)``
  otherwise.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from freeinit_lab._checks import require_int

__all__ = [
    "as_video",
    "frame_cosine_similarity",
    "temporal_flicker",
    "consecutive_ssim",
    "dino_consistency",
    "consistency_report",
    "display_values",
    "WEIGHT_FREE_METRICS",
]

_LAYOUTS = {"bcfhw": (0, 1, 2, 3, 4), "bfchw": (0, 2, 1, 3, 4), "bfhwc": (0, 4, 1, 2, 3)}


def display_values(latents, pipe=None) -> torch.Tensor:
    """Model-space videos as display values in ``[-1, 1]``: ``clip(D(z), −1, 1)``.

    ``D`` is ``pipe.normalizer.decode`` (``x = shift + scale · z`` per channel, the inverse of the normalisation the
    embedded default is trained in, as ``pipe.decode_latents`` applies it) when ``pipe`` has a ``normalizer``,
    the identity otherwise (a pipeline whose latents are already display values, or ``pipe=None``); NaN or inf
    latents (a diverged sample, which the clip would hide) are refused. Returns a
    float32 CPU tensor of the input's shape ``(batch, channel, frame, height, width)``; the clip is what every
    metric here would apply anyway, done once so that studies compare sources on the same values.
    """
    x = torch.as_tensor(latents).detach().to("cpu", torch.float32)
    _check_finite(x, "latents")  # the clip would turn inf into a saturated pixel and hide a diverged sample
    norm = getattr(pipe, "normalizer", None)
    if norm is not None:
        x = norm.decode(x)
    return x.clamp(-1, 1)


def _check_finite(x: torch.Tensor, name: str) -> None:
    """Refuse NaN or inf: clipped to the value range, inf would read as a saturated pixel, NaN poison the score."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        videos = torch.nonzero(bad.reshape(bad.shape[0], -1).any(1)).flatten().tolist() if x.dim() else [0]
        raise ValueError(
            f"{name} holds {int(bad.sum())} NaN or inf values (videos {videos[:8]}{' ...' if len(videos) > 8 else ''} "
            "along the first axis): a diverged sampler or a float16 overflow; drop those videos or fix the sampling"
        )


def _check_range(x: torch.Tensor, value_range) -> tuple[float, float]:
    """``value_range`` as finite ``lo < hi``; integer frames must lie inside it (they are never clipped)."""
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"value_range must be two numbers (lo, hi); got {value_range!r}") from exc
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(
            f"value_range must be finite with lo < hi (the values that map to 0 and 1); got {value_range!r}"
        )
    if not (x.is_floating_point() or x.is_complex()) and x.numel():
        x_lo, x_hi = float(x.min()), float(x.max())
        if x_lo < lo or x_hi > hi:
            raise ValueError(
                f"integer frames ({x.dtype}) with values in [{x_lo:g}, {x_hi:g}] lie outside "
                f"value_range={value_range}: they would be clipped to it; 8-bit frames need value_range=(0, 255)"
            )
    return lo, hi


def as_video(video, layout: str = "bcfhw", value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Convert a video batch to a float64 ``(batch, channel, frame, height, width)`` tensor in ``[0, 1]``.

    Parameters
    ----------
    video : torch.Tensor, np.ndarray or xarray.DataArray
        A batch of videos. A DataArray is transposed by its dim names (``channel``, ``frame``, ``height``,
        ``width`` plus one leading batch-like dim) and ``layout`` is ignored.
    layout : {"bcfhw", "bfchw", "bfhwc"}
        Axis order of an array input. ``"bfhwc"`` is diffusers' ``output_type="np"``; ``"bfchw"`` is ``"pt"``.
    value_range : (float, float)
        The values that map to 0 and 1 (finite, ``lo < hi``). Float values are clipped to this range; integer
        frames (e.g. ``uint8``) outside it are refused — 8-bit frames need ``value_range=(0, 255)``.

    Raises
    ------
    ValueError
        For NaN or inf values (a diverged sample; clipped, inf would read as a saturated pixel), a wrong rank or
        layout, fewer than 2 frames, or the value ranges above.
    """
    try:
        import xarray as xr

        if isinstance(video, xr.DataArray):
            lead = [d for d in video.dims if d not in ("channel", "frame", "height", "width")]
            if len(lead) != 1:
                raise ValueError(f"DataArray needs exactly one batch-like dim besides channel/frame/height/width; "
                                 f"got dims {video.dims}")
            video = torch.from_numpy(np.asarray(video.transpose(lead[0], "channel", "frame", "height", "width")))
            layout = "bcfhw"
    except ImportError:  # pragma: no cover
        pass
    x = torch.as_tensor(video).detach().to("cpu")
    _check_finite(x, "video")
    lo, hi = _check_range(x, value_range)
    x = x.to(torch.float64)
    if x.ndim == 4:
        raise ValueError(f"got a 4-D array {tuple(x.shape)}; metrics take a batch of videos — add a batch axis "
                         "(e.g. video[None])")
    if x.ndim != 5:
        raise ValueError(f"expected a 5-D batch of videos, got shape {tuple(x.shape)}")
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(_LAYOUTS)}, got {layout!r}")
    x = x.permute(*_LAYOUTS[layout])
    x = ((x - lo) / (hi - lo)).clamp(0, 1)
    if x.shape[2] < 2:
        raise ValueError("temporal metrics need at least 2 frames")
    return x


def _pairs(num_frames: int, reference: str) -> tuple[list[int], list[int]]:
    if reference == "consecutive":
        return list(range(num_frames - 1)), list(range(1, num_frames))
    if reference == "first":
        return [0] * (num_frames - 1), list(range(1, num_frames))
    raise ValueError(f"reference must be 'consecutive' or 'first', got {reference!r}")


def frame_cosine_similarity(
    video,
    *,
    reference: str = "consecutive",
    center: bool = True,
    features: Callable[[torch.Tensor], torch.Tensor] | None = None,
    layout: str = "bcfhw",
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> torch.Tensor:
    """Mean cosine similarity of frame features between frame pairs (weight-free by default).

    ``score = mean_pairs cos(φ(x_g), φ(x_f))`` over pairs ``(f−1, f)`` (``reference="consecutive"``) or ``(0, f)``
    (``"first"``, the paper's pairing for DINO features). By default ``φ(x_f) = flatten(x_f − m)`` with ``m`` the
    video's mean colour (one value per channel, averaged over all frames and pixels, ``center=True``): a static
    video scores 1, frames with unrelated content about 0, and a global brightness flicker lowers the score.
    Without centring, pixel values in ``[0, 1]`` are all positive and the score stays near 1 for almost anything.

    Parameters
    ----------
    video
        Batch of videos (see :func:`as_video`).
    reference : {"consecutive", "first"}
    center : bool
        Subtract the video's mean colour before flattening (pixel features only).
    features : callable, optional
        Maps frames ``(N, C, H, W)`` in ``[0, 1]`` to features ``(N, D)``; then ``center`` must be False.
    layout, value_range
        See :func:`as_video`.

    Returns
    -------
    torch.Tensor
        ``(batch,)`` float64 in ``[-1, 1]``.

    Examples
    --------
    >>> v = torch.zeros(2, 3, 8, 16, 16).uniform_(-1, 1, generator=torch.Generator().manual_seed(0))
    >>> static = v[:, :, :1].expand(-1, -1, 8, -1, -1)
    >>> frame_cosine_similarity(static).tolist()
    [1.0, 1.0]
    """
    x = as_video(video, layout, value_range)
    b, c, f, h, w = x.shape
    src, dst = _pairs(f, reference)  # a misspelt reference is refused before any features are computed
    if features is not None and center:
        raise ValueError("centring applies to pixel features only; pass center=False with features=")
    if center:
        x = x - x.mean(dim=(2, 3, 4), keepdim=True)
    frames = x.transpose(1, 2).reshape(b * f, c, h, w)
    phi = frames.reshape(b * f, -1) if features is None else features(frames).reshape(b * f, -1).double()
    phi = phi.view(b, f, -1)
    cos = F.cosine_similarity(phi[:, src], phi[:, dst], dim=-1, eps=1e-12)
    # two identical flat frames (zero vectors after centring) count as perfectly consistent
    same = (phi[:, src] - phi[:, dst]).abs().amax(-1) < 1e-12
    cos = torch.where(same, torch.ones_like(cos), cos)
    return cos.mean(dim=1)


def temporal_flicker(video, *, layout: str = "bcfhw", value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """VBench temporal-flickering score, ``(255 − MAD) / 255`` per video (1 = no change between frames).

    ``MAD`` is the mean absolute difference of consecutive frames on the 0–255 scale, averaged over frame pairs,
    pixels and channels. (VBench averages per-pair MADs of uint8 frames; we keep floats, no rounding.)

    Returns
    -------
    torch.Tensor
        ``(batch,)`` float64 in ``[0, 1]``.
    """
    x = as_video(video, layout, value_range) * 255.0
    mad = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(dim=(1, 2, 3, 4))
    return (255.0 - mad) / 255.0


def _ssim_maps(a: torch.Tensor, b: torch.Tensor, win: int = 7, data_range: float = 1.0) -> torch.Tensor:
    """SSIM map of images ``(N, C, H, W)`` with skimage's defaults (uniform window, sample covariance)."""
    k1, k2 = 0.01, 0.03
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    n = win * win
    cov_norm = n / (n - 1)

    def filt(z):
        return F.avg_pool2d(z, win, stride=1)  # valid region only (== skimage's map cropped by (win-1)//2)

    ux, uy = filt(a), filt(b)
    uxx, uyy, uxy = filt(a * a), filt(b * b), filt(a * b)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    num = (2 * ux * uy + c1) * (2 * vxy + c2)
    den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return num / den


def consecutive_ssim(video, *, win_size: int = 7, layout: str = "bcfhw",
                     value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Mean SSIM between consecutive frames, per video.

    ``SSIM(x, y) = mean_windows ((2 μx μy + C1)(2 σxy + C2)) / ((μx² + μy² + C1)(σx² + σy² + C2))`` with
    ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²``, ``L = 1`` (frames in ``[0, 1]``), a ``win_size``² uniform window,
    unbiased (sample) variances, windows fully inside the frame, averaged over channels — equal to
    ``skimage.metrics.structural_similarity(x, y, channel_axis=-1, data_range=1)`` — then averaged over the
    ``F − 1`` consecutive pairs. ``win_size`` must be an odd integer ``>= 3``, as skimage requires, and at most
    the frame's height and width.

    Returns
    -------
    torch.Tensor
        ``(batch,)`` float64, 1 for identical frames.
    """
    win_size = require_int("win_size", win_size, low=3, why=" (the odd side of the SSIM window, e.g. 7)")
    if win_size % 2 == 0:
        raise ValueError(f"win_size={win_size} is even; the SSIM window (as skimage's) needs an odd win_size, "
                         f"e.g. {win_size + 1}")
    x = as_video(video, layout, value_range)
    b, c, f, h, w = x.shape
    if min(h, w) < win_size:
        raise ValueError(f"frames of {h}x{w} are smaller than the SSIM window {win_size}; pass a smaller odd "
                         "win_size")
    prev = x[:, :, :-1].transpose(1, 2).reshape(-1, c, h, w)
    nxt = x[:, :, 1:].transpose(1, 2).reshape(-1, c, h, w)
    s = _ssim_maps(prev, nxt, win_size).mean(dim=(1, 2, 3))
    return s.view(b, f - 1).mean(dim=1)


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _load_vit(model: str | Path | torch.nn.Module, local_files_only: bool) -> torch.nn.Module:
    if isinstance(model, torch.nn.Module):
        return model.eval()
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(str(model), local_files_only=local_files_only).eval()
    except OSError as err:  # pragma: no cover - message depends on transformers
        raise OSError(
            f"could not load DINO weights from {model!r} ({err}). Pass a local folder with a transformers ViT / "
            "DINOv2 checkpoint (config.json + weights), or a hub id such as 'facebook/dino-vits16' that is "
            "already in your Hugging Face cache; set local_files_only=False to allow a download."
        ) from err


@torch.no_grad()
def dino_consistency(
    video,
    model: str | Path | torch.nn.Module,
    *,
    reference: str = "first",
    image_size: int | None = None,
    local_files_only: bool = True,
    batch_frames: int = 64,
    layout: str = "bcfhw",
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> torch.Tensor:
    """The paper's temporal consistency: ``100 · mean_{f>0} cos(DINO(x_0), DINO(x_f))`` per video.

    Frames are resized (bicubic) to the ViT's input size, normalised with ImageNet mean/std and embedded by the
    CLS token (``last_hidden_state[:, 0]``) of ``model``. The paper uses DINO ViT-S/16 and first-frame pairs.

    Parameters
    ----------
    video
        Batch of videos (see :func:`as_video`).
    model : str, Path or torch.nn.Module
        A transformers ViT-like model returning ``last_hidden_state``, or where to load one with
        ``transformers.AutoModel.from_pretrained`` (a local folder, or a hub id already cached). No weights ship
        with freeinit_lab.
    reference : {"first", "consecutive"}
        Frame pairs (paper: ``"first"``).
    image_size : int, optional
        Input size; default ``model.config.image_size`` (224 for DINO ViT-S/16).
    local_files_only : bool
        Refuse to download (default). Set False to let transformers fetch a hub id.
    batch_frames : int
        Frames per forward pass.

    Returns
    -------
    torch.Tensor
        ``(batch,)`` float64 in ``[-100, 100]``.
    """
    batch_frames = require_int("batch_frames", batch_frames, why=" (frames per forward pass of the ViT)")
    if image_size is not None:
        image_size = require_int("image_size", image_size, why=" (the ViT's input size; None reads model.config)")
    x = as_video(video, layout, value_range)
    src, dst = _pairs(x.shape[2], reference)  # checked before the model loads and embeds every frame
    if x.shape[1] not in (1, 3):
        raise ValueError(f"dino_consistency embeds RGB (or grey) frames with ImageNet's normalisation; these videos "
                         f"have {x.shape[1]} channels: decode latents to RGB first (e.g. pipe.decode_latents), or pass "
                         "the right layout")
    vit = _load_vit(model, local_files_only)
    size = image_size or getattr(getattr(vit, "config", None), "image_size", 224)
    b, c, f, h, w = x.shape
    frames = x.transpose(1, 2).reshape(b * f, c, h, w).float()
    if c == 1:
        frames = frames.expand(-1, 3, -1, -1)
    mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
    feats = []
    param = next(vit.parameters(), None)
    dev, dt = (param.device, param.dtype) if param is not None else ("cpu", torch.float32)
    for i in range(0, frames.shape[0], batch_frames):
        chunk = F.interpolate(frames[i : i + batch_frames], size=(size, size), mode="bicubic", align_corners=False)
        chunk = ((chunk.clamp(0, 1) - mean) / std).to(dev, dt)
        out = vit(pixel_values=chunk)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        feats.append(hidden[:, 0].double().cpu())
    phi = torch.cat(feats).view(b, f, -1)
    return 100.0 * F.cosine_similarity(phi[:, src], phi[:, dst], dim=-1).mean(dim=1)


#: The weight-free metrics by name (all: higher = more consistent).
WEIGHT_FREE_METRICS: dict[str, Callable] = {
    "frame_cosine": frame_cosine_similarity,
    "frame_cosine_first": lambda v, **k: frame_cosine_similarity(v, reference="first", **k),
    "flicker": temporal_flicker,
    "ssim": consecutive_ssim,
}

_LONG_NAMES = {
    "frame_cosine": "consecutive-frame correlation (centred pixel cosine)",
    "frame_cosine_first": "first-frame correlation (centred pixel cosine)",
    "flicker": "VBench temporal flickering score (255 - MAD) / 255",
    "ssim": "consecutive-frame SSIM",
}


def consistency_report(video, *, layout: str = "bcfhw", value_range: tuple[float, float] = (-1.0, 1.0),
                       metrics: str | list[str] | None = None):
    """All weight-free consistency metrics as an ``xarray.Dataset`` with one variable per metric over ``batch``.

    Parameters
    ----------
    video
        Batch of videos (see :func:`as_video`).
    metrics : str or list of str, optional
        Subset of :data:`WEIGHT_FREE_METRICS` (default: all); a single name, e.g. ``"ssim"``, is one metric.
    """
    import xarray as xr

    names = list(WEIGHT_FREE_METRICS) if metrics is None else [metrics] if isinstance(metrics, str) else metrics
    unknown = [n for n in names if n not in WEIGHT_FREE_METRICS]
    if unknown:  # before any metric runs, not after the ones listed before it
        raise KeyError(f"unknown metric {unknown[0]!r}; choose from {sorted(WEIGHT_FREE_METRICS)}")
    out = {}
    for n in names:
        vals = WEIGHT_FREE_METRICS[n](video, layout=layout, value_range=value_range).numpy()
        out[n] = xr.DataArray(vals, dims=("batch",), name=n,
                              attrs={"long_name": _LONG_NAMES[n], "units": "1", "higher_is": "more consistent"})
    return xr.Dataset(out)
