"""Encode pixel videos into a pipeline's latent space, in the canonical (batch, channel, frame, height, width) order.

The band SNR of the *training* noisy latent needs clean latents of real videos in the model's own latent space:
:func:`encode_videos` runs the pipeline's VAE on them (frame by frame for image VAEs such as AnimateDiff's and
ModelScope's ``AutoencoderKL``, whole clips for video VAEs such as CogVideoX's) and applies the VAE's scaling.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["encode_videos"]


@torch.no_grad()
def encode_videos(pipe: Any, videos: torch.Tensor, *, sample: bool = False, generator: torch.Generator | None = None,
                  batch_size: int = 8) -> torch.Tensor:
    """Clean latents ``z_0`` of pixel videos for ``pipe``.

    Parameters
    ----------
    pipe
        A diffusers video pipeline with a ``vae``; a pixel-space pipeline without one gets the videos in its model
        space: normalised by its ``normalizer`` (the embedded default's per-channel shift and scale,
        :class:`~freeinit_lab.embedded.pipelines.ChannelNormalizer`), else unchanged.
    videos
        ``(batch, 3, frame, height, width)`` in ``[-1, 1]`` at the pipeline's resolution.
    sample
        Draw from the VAE's posterior instead of taking its mean (then pass ``generator``).
    batch_size
        Videos (or, for image VAEs, frames × videos) encoded at once.

    Returns
    -------
    torch.Tensor
        ``(batch, latent_channels, latent_frames, h, w)`` float32 on CPU, scaled like the pipeline's latents
        (``(z - shift_factor) * scaling_factor``).
    """
    if not isinstance(videos, torch.Tensor) or videos.dim() != 5:
        raise ValueError(
            "videos must be a (batch, 3, frame, height, width) tensor in [-1, 1]; got "
            f"{type(videos).__name__} {tuple(getattr(videos, 'shape', ()))}"
        )
    vae = getattr(pipe, "vae", None)
    if vae is None:
        norm = getattr(pipe, "normalizer", None)
        x = videos.float().cpu()
        return norm.encode(x) if norm is not None else x
    import diffusers

    device, dtype = vae.device, vae.dtype
    scale = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
    shift = float(getattr(vae.config, "shift_factor", 0.0) or 0.0)

    def _latent(x: torch.Tensor) -> torch.Tensor:
        dist = vae.encode(x.to(device=device, dtype=dtype)).latent_dist
        z = dist.sample(generator=generator) if sample else dist.mode()
        return ((z.float() - shift) * scale).cpu()

    b, c, f, h, w = videos.shape
    if isinstance(vae, diffusers.AutoencoderKL):  # image VAE: frames are encoded independently
        frames = videos.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        z = torch.cat([_latent(frames[i : i + batch_size]) for i in range(0, b * f, batch_size)])
        return z.reshape(b, f, *z.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()
    return torch.cat([_latent(videos[i : i + batch_size]) for i in range(0, b, batch_size)])  # video VAE
