"""Tiny random-weight diffusers video pipelines, built entirely in code.

Every component (denoiser, VAE, text encoder, tokenizer, scheduler) is constructed from a small config with
seeded random weights; nothing is downloaded and no hub id is ever resolved, so these pipelines work with
``HF_HUB_OFFLINE=1`` and in CI. They are meant for tests, smoke-sized notebooks and benchmarks of the machinery
around a pipeline (FreeInit, probes), never for judging visual quality: the weights are random.

Builders
--------
``tiny_animatediff_pipeline``
    :class:`diffusers.AnimateDiffPipeline` (``UNet2DConditionModel`` + ``MotionAdapter``), latent layout
    (batch, channel, frame, height, width), DDIM with AnimateDiff's "linear" betas.
``tiny_text_to_video_pipeline``
    :class:`diffusers.TextToVideoSDPipeline` (ModelScope-style ``UNet3DConditionModel``), layout
    (batch, channel, frame, height, width), DDIM with SD "scaled_linear" betas.
``tiny_cogvideox_pipeline``
    :class:`diffusers.CogVideoXPipeline` (``CogVideoXTransformer3DModel`` + ``AutoencoderKLCogVideoX`` + tiny
    T5), layout (batch, frame, channel, height, width), CogVideoX's zero-terminal-SNR v-prediction DDIM by
    default.
``tiny_wan_pipeline``
    :class:`diffusers.WanPipeline` (``WanTransformer3DModel`` + ``AutoencoderKLWan`` + tiny T5), layout
    (batch, channel, frame, height, width), flow matching (``FlowMatchEulerDiscreteScheduler``).

Each builder returns a pipeline on CPU in float32 with the progress bar disabled, plus sensible tiny call
defaults in :data:`TINY_CALL_KWARGS` (``num_frames``, ``height``, ``width``, ``num_inference_steps``).

Examples
--------
>>> import torch
>>> from freeinit_lab.testing import tiny_animatediff_pipeline, TINY_CALL_KWARGS
>>> pipe = tiny_animatediff_pipeline(seed=0)
>>> out = pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent",
...            **TINY_CALL_KWARGS["AnimateDiffPipeline"])
>>> tuple(out.frames.shape)
(1, 4, 8, 16, 16)
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

import torch

__all__ = [
    "TINY_CALL_KWARGS",
    "tiny_clip_tokenizer",
    "tiny_clip_text_encoder",
    "tiny_t5_tokenizer",
    "tiny_t5_text_encoder",
    "tiny_animatediff_pipeline",
    "tiny_text_to_video_pipeline",
    "tiny_cogvideox_pipeline",
    "tiny_wan_pipeline",
    "tiny_pipeline",
]

#: Small call arguments that fit each tiny pipeline (a few steps, a short low-resolution video).
TINY_CALL_KWARGS: dict[str, dict[str, Any]] = {
    # latent (1, 4, 8, 16, 16): VAE scale factor 2
    "AnimateDiffPipeline": dict(num_frames=8, height=32, width=32, num_inference_steps=4, guidance_scale=1.0),
    # latent (1, 4, 8, 16, 16): VAE scale factor 2
    "TextToVideoSDPipeline": dict(num_frames=8, height=32, width=32, num_inference_steps=4, guidance_scale=1.0),
    # latent (1, 5, 4, 8, 8) in (batch, frame, channel, H, W): spatial factor 2, temporal factor 2
    "CogVideoXPipeline": dict(
        num_frames=9, height=16, width=16, num_inference_steps=4, guidance_scale=1.0, max_sequence_length=16
    ),
    # latent (1, 4, 5, 8, 8): spatial factor 2, temporal factor 2
    "WanPipeline": dict(
        num_frames=9, height=16, width=16, num_inference_steps=4, guidance_scale=1.0, max_sequence_length=16
    ),
}

_CLIP_BOS = "<|startoftext|>"
_CLIP_EOS = "<|endoftext|>"


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's global RNG for model initialisation without leaking the change to the caller."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _bytes_to_unicode() -> list[str]:
    """The 256 printable characters CLIP's byte-level BPE maps bytes onto (GPT-2's table)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def tiny_clip_tokenizer(model_max_length: int = 77, directory: str | os.PathLike | None = None):
    """A character-level :class:`transformers.CLIPTokenizer` from a vocabulary written to disk.

    The vocabulary holds the two special tokens (``<|startoftext|>`` = 0, ``<|endoftext|>`` = 1) and every
    byte-level character with and without the end-of-word marker ``</w>`` (514 entries); ``merges.txt`` is empty,
    so every word is tokenised into characters. Any text can be encoded.

    Parameters
    ----------
    model_max_length : int
        Sequence length prompts are padded/truncated to. Must be set: the tokenizer's default is a huge
        sentinel that overflows when a pipeline pads to it.
    directory : path-like, optional
        Where to write ``vocab.json`` and ``merges.txt`` (left there); by default a temporary directory that is
        removed once the tokenizer is built, so repeated calls leave nothing behind.

    Returns
    -------
    transformers.CLIPTokenizer
    """
    from transformers import CLIPTokenizer

    chars = _bytes_to_unicode()
    vocab = {_CLIP_BOS: 0, _CLIP_EOS: 1}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    if directory is None:  # the tokenizer holds its vocabulary once built, so the files need not outlive it
        with tempfile.TemporaryDirectory(prefix="freeinit_lab_tok_") as tmp:
            return tiny_clip_tokenizer(model_max_length, directory=tmp)
    directory = os.fspath(directory)
    vocab_file = os.path.join(directory, "vocab.json")
    merges_file = os.path.join(directory, "merges.txt")
    with open(vocab_file, "w", encoding="utf-8") as f:
        json.dump(vocab, f)
    with open(merges_file, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
    return CLIPTokenizer(vocab=vocab_file, merges=merges_file, model_max_length=model_max_length)


def tiny_clip_text_encoder(hidden_size: int = 32, vocab_size: int = 514, seed: int = 0):
    """A 2-layer random :class:`transformers.CLIPTextModel` matching :func:`tiny_clip_tokenizer`."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        layer_norm_eps=1e-5,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    with _seeded(seed):
        model = CLIPTextModel(config)
    return model.eval()


def tiny_t5_tokenizer():
    """A character-level :class:`transformers.T5Tokenizer` (Unigram) built from an in-code vocabulary.

    Pieces: ``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2, then lowercase letters, digits, a few punctuation marks
    and the word-boundary marker ``▁``; unknown characters map to ``<unk>``.
    """
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(c, -3.0) for c in "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def tiny_t5_text_encoder(d_model: int = 32, vocab_size: int = 64, seed: int = 0):
    """A 1-layer random :class:`transformers.T5EncoderModel` matching :func:`tiny_t5_tokenizer`."""
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=8,
        d_ff=37,
        num_layers=1,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    with _seeded(seed):
        model = T5EncoderModel(config)
    return model.eval()


def _tiny_vae(seed: int, latent_channels: int = 4):
    from diffusers import AutoencoderKL

    with _seeded(seed):
        return AutoencoderKL(
            block_out_channels=(8, 8),
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            latent_channels=latent_channels,
            layers_per_block=1,
            norm_num_groups=2,
            sample_size=32,
        ).eval()


@contextmanager
def _quiet_empty_fp32_cast() -> Iterator[None]:
    """Drop exactly diffusers' warning about casting a model whose list of float32-only modules is empty."""
    import logging

    logger = logging.getLogger("diffusers.models.modeling_utils")

    def keep(record: logging.LogRecord) -> bool:
        return "that should be kept in float32: []" not in record.getMessage()

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _finish(pipe):
    # components are built on CPU in float32; no .to() needed
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_animatediff_pipeline(seed: int = 0, scheduler: Any | None = None):
    """A random-weight :class:`diffusers.AnimateDiffPipeline` small enough for CPU tests.

    Components: ``UNet2DConditionModel`` (channels 8/16, cross-attention 32) turned into a ``UNetMotionModel``
    by a ``MotionAdapter``; ``AutoencoderKL`` with scale factor 2; tiny CLIP text model and tokenizer; by default
    ``DDIMScheduler`` with AnimateDiff's inference schedule ("linear" β 0.00085 → 0.012, ``clip_sample=False``,
    ``steps_offset=1``).

    Parameters
    ----------
    seed : int
        Seed of the weight initialisation (the caller's global RNG state is left untouched).
    scheduler : diffusers scheduler, optional
        Replaces the default DDIM scheduler.

    Returns
    -------
    diffusers.AnimateDiffPipeline
        On CPU, float32, progress bar disabled. Latents are (batch, channel=4, frame, height/2, width/2).
    """
    from diffusers import AnimateDiffPipeline, DDIMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel

    with _seeded(seed):
        unet = UNet2DConditionModel(
            block_out_channels=(8, 16),
            layers_per_block=1,
            sample_size=16,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=2,
            norm_num_groups=4,
        )
    with _seeded(seed + 1):
        motion_adapter = MotionAdapter(
            block_out_channels=(8, 16),
            motion_layers_per_block=1,
            motion_norm_num_groups=4,
            motion_num_attention_heads=2,
            motion_max_seq_length=32,
        )
    if scheduler is None:
        scheduler = DDIMScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="linear",
            clip_sample=False,
            steps_offset=1,
            set_alpha_to_one=False,
        )
    with _seeded(seed + 2), _quiet_empty_fp32_cast():
        # the conversion AnimateDiffPipeline would do itself, done here so it neither touches the caller's global
        # RNG nor logs diffusers' "modules that should be kept in float32: []" (an empty list: nothing to keep)
        unet = UNetMotionModel.from_unet2d(unet, motion_adapter)
    pipe = AnimateDiffPipeline(
        vae=_tiny_vae(seed + 3),
        text_encoder=tiny_clip_text_encoder(seed=seed + 4),
        tokenizer=tiny_clip_tokenizer(),
        unet=unet,
        motion_adapter=motion_adapter,
        scheduler=scheduler,
        feature_extractor=None,
        image_encoder=None,
    )
    return _finish(pipe)


def tiny_text_to_video_pipeline(seed: int = 0, scheduler: Any | None = None):
    """A random-weight :class:`diffusers.TextToVideoSDPipeline` (ModelScope-style) small enough for CPU tests.

    Components: ``UNet3DConditionModel`` (channels 8/16, cross-attention 32), ``AutoencoderKL`` with scale
    factor 2, tiny CLIP text model and tokenizer; by default ``DDIMScheduler`` with SD's "scaled_linear" β
    0.00085 → 0.012. diffusers lists this pipeline as deprecated; its import warning is silenced here.

    Returns
    -------
    diffusers.TextToVideoSDPipeline
        On CPU, float32, progress bar disabled. Latents are (batch, channel=4, frame, height/2, width/2). Its
        default ``output_type`` is ``"np"``.
    """
    from diffusers import DDIMScheduler, UNet3DConditionModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers import TextToVideoSDPipeline

    with _seeded(seed):
        unet = UNet3DConditionModel(
            block_out_channels=(8, 16),
            layers_per_block=1,
            sample_size=16,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
            up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
            cross_attention_dim=32,
            attention_head_dim=4,
            norm_num_groups=4,
        )
    if scheduler is None:
        scheduler = DDIMScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            clip_sample=False,
            steps_offset=1,
            set_alpha_to_one=False,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = TextToVideoSDPipeline(
            vae=_tiny_vae(seed + 3),
            text_encoder=tiny_clip_text_encoder(seed=seed + 4),
            tokenizer=tiny_clip_tokenizer(),
            unet=unet,
            scheduler=scheduler,
        )
    return _finish(pipe)


def tiny_cogvideox_pipeline(seed: int = 0, scheduler: Any | None = None, zero_terminal_snr: bool = True):
    """A random-weight :class:`diffusers.CogVideoXPipeline`: a (batch, frame, channel, H, W) latent layout.

    Components: ``CogVideoXTransformer3DModel`` (1 layer, 4 heads × 8, patch 2, sin-cos positions),
    ``AutoencoderKLCogVideoX`` with spatial and temporal compression 2 (``num_frames=9`` → 5 latent frames),
    a 1-layer T5 encoder with a character tokenizer, and ``CogVideoXDDIMScheduler``.

    Parameters
    ----------
    seed : int
        Seed of the weight initialisation.
    scheduler : diffusers scheduler, optional
        Replaces the default scheduler.
    zero_terminal_snr : bool
        ``True`` (default) uses CogVideoX's own schedule: zero terminal SNR (``rescale_betas_zero_snr=True``,
        ``snr_shift_scale=3``), v-prediction, "trailing" spacing; its training z_T carries no signal. ``False``
        uses a plain SD "scaled_linear" ε-prediction DDIM (terminal ᾱ > 0), so FreeInit has a gap to close
        and the latent-layout handling is actually exercised.

    Returns
    -------
    diffusers.CogVideoXPipeline
        On CPU, float32, progress bar disabled. Pass ``max_sequence_length=16`` (see
        :data:`TINY_CALL_KWARGS`); the T5 relative positions accept any length but short prompts are faster.
    """
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )

    with _seeded(seed):
        transformer = CogVideoXTransformer3DModel(
            num_attention_heads=4,
            attention_head_dim=8,
            in_channels=4,
            out_channels=4,
            time_embed_dim=8,
            text_embed_dim=32,
            num_layers=1,
            sample_width=8,
            sample_height=8,
            sample_frames=9,
            patch_size=2,
            temporal_compression_ratio=2,
            max_text_seq_length=16,
        )
    with _seeded(seed + 1):
        vae = AutoencoderKLCogVideoX(
            in_channels=3,
            out_channels=3,
            down_block_types=("CogVideoXDownBlock3D", "CogVideoXDownBlock3D"),
            up_block_types=("CogVideoXUpBlock3D", "CogVideoXUpBlock3D"),
            block_out_channels=(8, 8),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=2,
            temporal_compression_ratio=2,
        ).eval()
    if scheduler is None:
        if zero_terminal_snr:
            scheduler = CogVideoXDDIMScheduler(
                beta_schedule="scaled_linear",
                clip_sample=False,
                prediction_type="v_prediction",
                rescale_betas_zero_snr=True,
                set_alpha_to_one=True,
                snr_shift_scale=3.0,
                timestep_spacing="trailing",
                steps_offset=0,
            )
        else:
            scheduler = CogVideoXDDIMScheduler(
                beta_schedule="scaled_linear",
                clip_sample=False,
                prediction_type="epsilon",
                set_alpha_to_one=False,
                snr_shift_scale=1.0,
                steps_offset=1,
            )
    pipe = CogVideoXPipeline(
        tokenizer=tiny_t5_tokenizer(),
        text_encoder=tiny_t5_text_encoder(seed=seed + 2),
        vae=vae,
        transformer=transformer,
        scheduler=scheduler,
    )
    return _finish(pipe)


def tiny_wan_pipeline(seed: int = 0, scheduler: Any | None = None):
    """A random-weight :class:`diffusers.WanPipeline`: a flow-matching (batch, channel, frame, H, W) pipeline.

    Components: ``WanTransformer3DModel`` (1 layer, 2 heads × 8, patch (1, 2, 2)), ``AutoencoderKLWan`` with
    spatial and temporal compression 2 (``num_frames=9`` → 5 latent frames, 16 × 16 → 8 × 8), a 1-layer T5
    encoder with a character tokenizer, and ``FlowMatchEulerDiscreteScheduler(shift=3)`` by default. Its
    training ``z_T`` is pure noise (sigma_max = 1).

    Returns
    -------
    diffusers.WanPipeline
        On CPU, float32, progress bar disabled. Pass ``max_sequence_length=16`` (see :data:`TINY_CALL_KWARGS`).
    """
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

    with _seeded(seed):
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=8,
            in_channels=4,
            out_channels=4,
            text_dim=32,
            freq_dim=32,
            ffn_dim=32,
            num_layers=1,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=32,
        )
    with _seeded(seed + 1):
        vae = AutoencoderKLWan(
            base_dim=3,
            z_dim=4,
            dim_mult=[1, 1],
            num_res_blocks=1,
            temperal_downsample=[True],  # (sic) diffusers' spelling
            latents_mean=[0.0] * 4,
            latents_std=[1.0] * 4,
            scale_factor_spatial=2,
            scale_factor_temporal=2,
        ).eval()
    pipe = WanPipeline(
        tokenizer=tiny_t5_tokenizer(),
        text_encoder=tiny_t5_text_encoder(seed=seed + 2),
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0) if scheduler is None else scheduler,
        transformer=transformer,
    )
    return _finish(pipe)


_BUILDERS = {
    "AnimateDiffPipeline": tiny_animatediff_pipeline,
    "TextToVideoSDPipeline": tiny_text_to_video_pipeline,
    "CogVideoXPipeline": tiny_cogvideox_pipeline,
    "WanPipeline": tiny_wan_pipeline,
}


def tiny_pipeline(name: str, seed: int = 0, **kwargs: Any):
    """Build a tiny pipeline by its diffusers class name (a key of :data:`TINY_CALL_KWARGS`).

    Raises
    ------
    ValueError
        For a name without a tiny builder; the message lists the available ones.
    """
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"No tiny builder for {name!r}; available: {sorted(_BUILDERS)}.") from None
    return builder(seed=seed, **kwargs)
