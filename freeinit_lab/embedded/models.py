"""Tiny video denoisers that plug into diffusers: a trained factorised UNet and an exact Gaussian-prior model.

Both are ``diffusers.ModelMixin`` + ``ConfigMixin`` subclasses taking ``(sample, timestep)`` with ``sample`` of
shape ``(batch, channel, frame, height, width)`` and predicting the noise ε (``prediction_type="epsilon"``), so
``save_pretrained`` / ``from_pretrained`` work on a local folder and either can be the ``unet`` of
:class:`freeinit_lab.pipelines.TinyVideoPipeline`.

* :class:`TinyVideoUNet` — a small (2+1)-D UNet: every block is a spatial 3×3 residual block (applied frame by
  frame) followed by a temporal residual convolution (kernel 3 over frames); stride-2 spatial down/up-sampling;
  full 3-D self-attention over all ``frame × h × w`` tokens at the bottleneck. Normalisation is GroupNorm over
  the whole video (channels × frames × pixels), so per-frame brightness differences survive.
* :class:`GaussianVideoDenoiser` — the closed-form MMSE denoiser of a stationary Gaussian video prior with a
  per-frequency power spectrum ``S(k)`` (fitted to real clips by
  :func:`freeinit_lab.pipelines.fit_gaussian_prior`). With ``z_t = a_t x0 + b_t ε`` and an ortho-normalised 3-D
  FFT (white noise stays white), each frequency bin is an independent scalar Gaussian channel, so

  ``E[ε | z_t](k) = b_t / (a_t^2 S(k) + b_t^2) · Z_t(k)``,   ``E[x0 | z_t](k) = a_t S(k) / (a_t^2 S(k) + b_t^2) · Z_t(k)``

  per colour channel after a fixed orthogonal colour decorrelation (the PCA of the clips' colours).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

__all__ = ["TinyVideoUNet", "GaussianVideoDenoiser", "VideoDenoiserOutput", "widen_video_unet",
           "add_temporal_attention"]


@dataclass
class VideoDenoiserOutput(BaseOutput):
    """Output of the tiny video denoisers.

    Attributes
    ----------
    sample : torch.Tensor
        Predicted noise ε, shape ``(batch, channel, frame, height, width)``.
    """

    sample: torch.Tensor


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps ``t`` of shape ``(B,)`` → ``(B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _per_frame(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 2-D conv on every frame of ``(B, C, F, H, W)`` through the ``(B F, C, H, W)`` reshape (its definition)."""
    b, c, f, h, w = x.shape
    y = conv(x.transpose(1, 2).reshape(b * f, c, h, w))
    return y.reshape(b, f, *y.shape[1:]).transpose(1, 2)


def _spatial(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2-D conv to every frame of ``(B, C, F, H, W)``.

    For two or more videos it is computed as a 3-D convolution with kernel ``(1, k, k)`` (the 2-D weight with a
    unit frame axis, stride 1 and no padding along frames): the same sum over the same taps for every frame,
    without the two ``(B, C, F) → (B F, C)`` layout copies. For a single video the frames go through ``conv``
    itself as a batch of ``F`` images, because the CPU back end runs the 3-D form of one video 1.3–1.4× slower
    (measured per video at 1 and 2 threads: 39 against 29 ms at 2 threads; from two videos on the 3-D form is
    the faster, 18 against 19–21 ms). Both equal the frame-by-frame ``conv`` to float round-off
    (``tests/embedded/test_models.py``).
    """
    if x.shape[0] == 1:
        return _per_frame(conv, x)
    return F.conv3d(x, conv.weight.unsqueeze(2), conv.bias, stride=(1, *conv.stride), padding=(0, *conv.padding))


def _temporal(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """Apply a 1-D conv along frames of every pixel of ``(B, C, F, H, W)``.

    Computed as a 3-D convolution with kernel ``(k, 1, 1)`` (the 1-D weight with unit spatial axes), the same
    taps as the pixel-by-pixel ``conv`` without permuting the video into ``(B H W, C, F)`` and back.
    """
    return F.conv3d(x, conv.weight[..., None, None], conv.bias, stride=(conv.stride[0], 1, 1),
                    padding=(conv.padding[0], 0, 0))


class _ResBlock(nn.Module):
    """Spatial residual block with timestep injection, followed by a temporal residual conv."""

    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int, tk: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(min(groups, cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()
        self.norm_t = nn.GroupNorm(min(groups, cout), cout)
        self.conv_t = nn.Conv1d(cout, cout, tk, padding=tk // 2)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        nn.init.zeros_(self.conv_t.weight)
        nn.init.zeros_(self.conv_t.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``x + h``, ``h = conv2(silu(norm2(conv1(silu(norm1(x)))) (1 + scale) + shift))`` per frame, then
        ``x + conv_t(silu(norm_t(x)))`` along frames; ``(scale, shift)`` from the timestep embedding.

        The element-wise steps write into tensors this block has just made (the norms' and convolutions'
        outputs), never into ``x`` or ``emb``: the same operations in the same order as their out-of-place form,
        so the same floats (``x + h`` and ``h + x`` round alike), without allocating a new activation for each.
        """
        h = _spatial(self.conv1, F.silu(self.norm1(x), inplace=True))
        scale, shift = self.emb(emb)[:, :, None, None, None].chunk(2, dim=1)
        h = self.norm2(h).mul_(1 + scale).add_(shift)
        h = _spatial(self.conv2, F.silu(h, inplace=True))
        x = h.add_(self.skip(x))
        return _temporal(self.conv_t, F.silu(self.norm_t(x), inplace=True)).add_(x)


class _Attention3D(nn.Module):
    """Multi-head self-attention over all (frame, height, width) positions."""

    def __init__(self, ch: int, heads: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(min(groups, ch), ch)
        self.qkv = nn.Linear(ch, 3 * ch)
        self.out = nn.Linear(ch, ch)
        self.heads = heads
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        t = self.norm(x).flatten(2).transpose(1, 2)  # (B, N, C)
        q, k, v = self.qkv(t).view(b, -1, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, d)
        y = self.out(y.transpose(1, 2).reshape(b, -1, c))
        return x + y.transpose(1, 2).reshape(b, c, f, h, w)


class _TemporalAttention(_Attention3D):
    """Self-attention along frames at every pixel, as the motion modules of AnimateDiff (Guo et al. 2023) and the
    temporal attention of ModelScope T2V: for each ``(video, y, x)`` the ``F`` frames' features attend to one another,
    ``x + W_o · softmax(Q Kᵀ / sqrt(d)) V`` with ``Q, K, V`` linear in ``GroupNorm(x) + p(f)``, ``p`` a sinusoidal
    encoding of the frame index (so the order of frames is known). A frame can thus draw on every other frame of the
    clip at full resolution, which temporal convolutions of kernel 3 reach only through depth. ``W_o`` starts at
    zero, so a network given these layers computes what it computed without them."""

    def __init__(self, ch: int, heads: int, groups: int):
        if ch % heads:
            raise ValueError(f"temporal attention needs channels divisible by its heads; got {ch} and {heads}")
        super().__init__(ch, heads, groups)  # the same layers (norm, qkv, out at zero), attending along frames

    @staticmethod
    def frame_encoding(frames: int, ch: int, dtype, device) -> torch.Tensor:
        """``(F, C)`` sinusoidal encoding of frame indices (the timestep embedding's form, periods 1 … 10⁴ frames)."""
        return timestep_embedding(torch.arange(frames, device=device), ch + ch % 2)[:, :ch].to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        t = self.norm(x).permute(0, 3, 4, 2, 1).reshape(b * h * w, f, c)  # (B H W, F, C)
        t = t + self.frame_encoding(f, c, t.dtype, t.device)
        q, k, v = self.qkv(t).view(b * h * w, f, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)  # (B H W, heads, F, d)
        y = self.out(y.transpose(1, 2).reshape(b * h * w, f, c))
        return x + y.view(b, h, w, f, c).permute(0, 4, 3, 1, 2)


class TinyVideoUNet(ModelMixin, ConfigMixin):
    """Factorised (2+1)-D video UNet predicting ε, small enough to train and sample on a CPU.

    Parameters
    ----------
    in_channels, out_channels : int
        Video channels (3 for RGB pixel space).
    block_channels : tuple of int
        Channels per resolution level; each level after the first halves height and width.
    layers_per_block : int
        Residual blocks per level on the way down (the way up has one more, as in diffusers' UNets).
    time_embed_dim : int
        Width of the timestep embedding.
    norm_groups : int
        GroupNorm groups.
    temporal_kernel : int
        Kernel size of the temporal convolutions (odd).
    attention_heads : int
        Heads of the bottleneck 3-D self-attention (0 disables it).
    sample_size, num_frames : int
        Training resolution (documentation only; any size divisible by ``space_to_depth * 2**(levels-1)``
        works).
    temporal_attention : tuple of int
        Levels (0 = the first, full-resolution one) whose residual blocks are each followed by self-attention
        along frames at every pixel (:class:`_TemporalAttention`, ``attention_heads`` heads, at least 1); empty
        (the default) for none. :func:`add_temporal_attention` gives a trained network these layers without
        changing its function.
    space_to_depth : int
        Stem factor ``s``: each frame's ``s × s`` pixel blocks are folded into channels before the first layer
        (``(C, H, W) → (C s², H/s, W/s)``, ``torch.nn.functional.pixel_unshuffle``) and unfolded after the last,
        so a ``32 × 32`` video costs about what a ``16 × 16`` one did (1 = no folding).

    Notes
    -----
    Input and output: ``(batch, channel, frame, height, width)``; ``timestep`` a scalar or a ``(batch,)``
    tensor of training timesteps (0..999).
    """

    _supports_gradient_checkpointing = False

    #: Videos per internal pass of the network (``None``: the whole batch at once). Each video's ε̂ depends only
    #: on that video (every layer, GroupNorm and attention included, acts per video), so this changes speed, not
    #: the function: outputs agree with the whole-batch pass to float round-off (at most a few 1e-6 in our
    #: tests; the convolution back end may pick another algorithm for another batch size). On a CPU the
    #: activations of 8 videos stay in cache where those of 32 do not, which made a batch of 32 about 1.3×
    #: faster (``benchmarks/bench_default_model.py`` measures it against ``None`` in the same run). It applies
    #: to CPU tensors only: an accelerator runs the whole batch at once, which is what it is fast at.
    forward_chunk: int | None = 8

    #: Run the network on CPU tensors in the channels-last layout (``torch.channels_last_3d``: channels fastest),
    #: which the CPU convolution back end (oneDNN) reads without reordering each activation to and from its own
    #: layout; the layout propagates through the norms, element-wise steps, concatenations and upsampling, and
    #: the output comes back in the default layout. Same function, other summation order: outputs agree with the
    #: default layout to float round-off (``tests/embedded/test_models.py``). On 2 cores the default model ran
    #: batches of 8, 32 and 64 videos 1.2× faster (time ratio 0.81–0.85) and one video alike (0.97), whose frames
    #: take the per-frame path (``benchmarks/bench_unet_layout.py`` measures it against ``False`` in one run).
    channels_last: bool = True

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        block_channels: tuple[int, ...] = (32, 64, 96),
        layers_per_block: int = 1,
        time_embed_dim: int = 128,
        norm_groups: int = 8,
        temporal_kernel: int = 3,
        attention_heads: int = 4,
        sample_size: int = 16,
        num_frames: int = 8,
        space_to_depth: int = 1,
        temporal_attention: tuple[int, ...] = (),
    ):
        super().__init__()
        if int(space_to_depth) < 1:
            raise ValueError(f"space_to_depth must be >= 1; got {space_to_depth}")
        s2 = int(space_to_depth) ** 2
        ch = list(block_channels)
        t_levels = sorted({int(i) for i in temporal_attention})
        if any(not 0 <= i < len(ch) for i in t_levels):
            raise ValueError(f"temporal_attention levels must be in 0 … {len(ch) - 1} (one per block_channels entry); "
                             f"got {list(temporal_attention)}")
        t_heads = max(1, int(attention_heads))

        def tattn(level: int, c: int) -> nn.Module:
            return _TemporalAttention(c, t_heads, norm_groups) if level in t_levels else nn.Identity()
        self.time_embed = nn.Sequential(
            nn.Linear(time_embed_dim, time_embed_dim), nn.SiLU(), nn.Linear(time_embed_dim, time_embed_dim)
        )
        self.conv_in = nn.Conv3d(in_channels * s2, ch[0], (temporal_kernel, 3, 3),
                                 padding=(temporal_kernel // 2, 1, 1))
        self.down = nn.ModuleList()
        self.down_tattn = nn.ModuleList()  # nn.Identity where a level has none: no parameters, no state-dict keys
        self.downsamplers = nn.ModuleList()
        skip_ch = [ch[0]]
        cur = ch[0]
        for i, c in enumerate(ch):
            blocks = nn.ModuleList()
            for _ in range(layers_per_block):
                blocks.append(_ResBlock(cur, c, time_embed_dim, norm_groups, temporal_kernel))
                cur = c
                skip_ch.append(cur)
            self.down.append(blocks)
            self.down_tattn.append(nn.ModuleList(tattn(i, c) for _ in range(layers_per_block)))
            if i < len(ch) - 1:
                self.downsamplers.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skip_ch.append(cur)
        self.mid1 = _ResBlock(cur, cur, time_embed_dim, norm_groups, temporal_kernel)
        self.mid_attn = _Attention3D(cur, attention_heads, norm_groups) if attention_heads else None
        self.mid2 = _ResBlock(cur, cur, time_embed_dim, norm_groups, temporal_kernel)
        self.up = nn.ModuleList()
        self.up_tattn = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for i, c in reversed(list(enumerate(ch))):
            blocks = nn.ModuleList()
            for _ in range(layers_per_block + 1):
                blocks.append(_ResBlock(cur + skip_ch.pop(), c, time_embed_dim, norm_groups, temporal_kernel))
                cur = c
            self.up.append(blocks)
            self.up_tattn.append(nn.ModuleList(tattn(i, c) for _ in range(layers_per_block + 1)))
            if i > 0:
                self.upsamplers.append(nn.Conv2d(cur, cur, 3, padding=1))
        self.norm_out = nn.GroupNorm(min(norm_groups, cur), cur)
        self.conv_out = nn.Conv3d(cur, out_channels * s2, (1, 3, 3), padding=(0, 1, 1))
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor | float | int, return_dict: bool = True, **kwargs
    ) -> VideoDenoiserOutput | tuple[torch.Tensor]:
        """Predict ε for ``sample`` ``(B, C, F, H, W)`` at ``timestep`` (scalar or ``(B,)``)."""
        if sample.ndim != 5:
            raise ValueError(f"TinyVideoUNet expects (batch, channel, frame, height, width); got {tuple(sample.shape)}")
        levels = len(self.config.block_channels) - 1
        s2d = int(getattr(self.config, "space_to_depth", 1))
        div = s2d * 2**levels
        if sample.shape[-1] % div or sample.shape[-2] % div:
            raise ValueError(f"height and width must be divisible by {div}; got {tuple(sample.shape[-2:])}")
        b = sample.shape[0]
        t = torch.as_tensor(timestep, device=sample.device)
        if t.numel() == 1:
            t = t.reshape(()).expand(b)
        if t.shape != (b,):
            raise ValueError(f"timestep must be a scalar or have shape ({b},) for a batch of {b}; got {tuple(t.shape)}")
        chunk = self.forward_chunk
        if chunk is not None and int(chunk) < 1:
            raise ValueError(f"forward_chunk must be None or >= 1; got {chunk}")
        if chunk is not None and b > int(chunk) and sample.device.type == "cpu":
            parts = zip(sample.split(int(chunk)), t.split(int(chunk)))
            out = torch.cat([self._forward(s, tt, s2d) for s, tt in parts])
        else:
            out = self._forward(sample, t, s2d)
        if not return_dict:
            return (out,)
        return VideoDenoiserOutput(sample=out)

    def _forward(self, sample: torch.Tensor, t: torch.Tensor, s2d: int) -> torch.Tensor:
        """The network on one chunk: ``sample`` ``(b, C, F, H, W)``, ``t`` ``(b,)`` → ε̂ of the same shape."""
        if s2d > 1:
            bb, cc, ff, hh, ww = sample.shape
            folded = F.pixel_unshuffle(sample.transpose(1, 2).reshape(bb * ff, cc, hh, ww), s2d)
            sample = folded.reshape(bb, ff, -1, hh // s2d, ww // s2d).transpose(1, 2)
        if sample.device.type == "cpu" and self.channels_last:
            sample = sample.contiguous(memory_format=torch.channels_last_3d)
        emb = self.time_embed(timestep_embedding(t, self.config.time_embed_dim).to(sample.dtype))
        h = self.conv_in(sample)
        skips = [h]
        for i, blocks in enumerate(self.down):
            for blk, tattn in zip(blocks, self.down_tattn[i]):
                h = tattn(blk(h, emb))
                skips.append(h)
            if i < len(self.downsamplers):
                h = _spatial(self.downsamplers[i], h)
                skips.append(h)
        h = self.mid1(h, emb)
        if self.mid_attn is not None:
            h = self.mid_attn(h)
        h = self.mid2(h, emb)
        for i, blocks in enumerate(self.up):
            for blk, tattn in zip(blocks, self.up_tattn[i]):
                h = tattn(blk(torch.cat([h, skips.pop()], dim=1), emb))
            if i < len(self.upsamplers):
                bb, c, f, hh, ww = h.shape
                h = F.interpolate(h, size=(f, hh * 2, ww * 2), mode="nearest")
                h = _spatial(self.upsamplers[i], h)
        out = self.conv_out(F.silu(self.norm_out(h), inplace=True)).contiguous()
        if s2d > 1:
            bb, cc, ff, hh, ww = out.shape
            out = F.pixel_shuffle(out.transpose(1, 2).reshape(bb * ff, cc, hh, ww), s2d)
            out = out.reshape(bb, ff, -1, hh * s2d, ww * s2d).transpose(1, 2)
        return out


def widen_video_unet(unet: TinyVideoUNet, factor: int = 2, split_noise: float = 0.1,
                     generator: torch.Generator | None = None) -> TinyVideoUNet:
    """A ``factor``-times wider :class:`TinyVideoUNet` that computes the same function as ``unet`` (Net2WiderNet).

    Every channel ``c`` of every level becomes ``factor`` copies ``c·k … c·k + k − 1`` (interleaved), with the
    timestep embedding, the stem's input and the output unchanged. For a layer with weight ``W`` (output ``o``,
    input ``i``) the wide weight is

    ``W'[o', i'] = W[o' // k, i' // k] · r[o', i']``,  ``Σ_{j < k} r[o', (i' // k)·k + j] = 1``,

    and biases, GroupNorm scales and shifts are copied (``b'[o'] = b[o' // k]``). The copies of an input channel
    carry equal values, so any split ``r`` that sums to 1 over them gives the same sums: every activation of
    the wide network is its narrow one's, repeated. GroupNorm stays exact because its groups are contiguous: wide
    group ``g`` holds the ``k`` copies of the channels of narrow group ``g``, with the same mean and variance.
    The bottleneck attention's heads keep their channels; their width grows from ``d`` to ``k d``, so
    ``q'·k' = k q·k`` is divided by ``sqrt(k d)`` instead of ``sqrt(d)``; scaling the query and key rows of
    ``qkv`` by ``k^(-1/4)`` each restores ``q·k / sqrt(d)``.

    ``r = 1/k + δ − mean_copies(δ)``, ``δ ~ N(0, split_noise²)`` drawn per weight element from ``generator``:
    with equal splits (``split_noise=0``) the copies would receive equal gradients and stay copies for ever,
    so the wide network could never use its width; unequal splits give the copies' downstream weights, and
    hence their gradients, different values, while the function at the start is exactly the narrow one's (to
    float round-off: the sums are taken in another order).

    Parameters
    ----------
    unet : TinyVideoUNet
        The trained narrow network (left unchanged).
    factor : int
        Width multiplier ``k`` (>= 2) of every level's channels.
    split_noise : float
        Standard deviation of ``δ`` (>= 0).
    generator : torch.Generator, optional
        CPU generator of ``δ`` (a seeded one gives the same wide network every time).

    Returns
    -------
    TinyVideoUNet
        Config of ``unet`` with ``block_channels`` multiplied by ``factor``, on the CPU in float32.
    """
    if not isinstance(unet, TinyVideoUNet):
        raise TypeError(f"widen_video_unet widens a TinyVideoUNet; got {type(unet).__name__}")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise ValueError(f"factor must be an integer >= 2 (each channel becomes that many copies); got {factor!r}")
    if not float(split_noise) >= 0.0:
        raise ValueError(f"split_noise must be >= 0; got {split_noise!r}")
    cfg = {k: v for k, v in dict(unet.config).items() if not k.startswith("_")}
    if cfg.get("temporal_attention"):
        raise ValueError(f"this network has temporal attention at levels {list(cfg['temporal_attention'])}, whose "
                         "frame encoding is as wide as its channels, so a wider copy would not compute the same "
                         "function: widen the network first, then add_temporal_attention")
    groups = int(cfg["norm_groups"])
    narrow = [int(c) for c in cfg["block_channels"]]
    if any(c < groups for c in narrow):
        raise ValueError(f"block_channels {narrow} has a level narrower than norm_groups={groups}: its GroupNorm has "
                         "one channel per group, which a wider copy would not keep; widen a network whose levels "
                         f"all have at least {groups} channels")
    cfg["block_channels"] = [c * factor for c in narrow]
    wide = TinyVideoUNet(**cfg)
    old = {n: p.detach().to("cpu", torch.float64) for n, p in unet.state_dict().items()}
    state = {}
    for name, target in wide.state_dict().items():
        w = old[name]
        for d in range(w.ndim):
            if target.shape[d] == w.shape[d]:
                continue
            if target.shape[d] != factor * w.shape[d]:  # not reachable for a TinyVideoUNet: every width scales
                raise AssertionError(f"{name}: dim {d} goes from {w.shape[d]} to {target.shape[d]}")
            w = w.repeat_interleave(factor, dim=d)
            if d == 1:  # input channels: split each weight over its copies
                shape = (w.shape[0], w.shape[1] // factor, factor, *w.shape[2:])
                delta = torch.randn(shape, generator=generator, dtype=torch.float64) * float(split_noise)
                split = 1.0 / factor + delta - delta.mean(dim=2, keepdim=True)
                w = (w.reshape(shape) * split).reshape(w.shape)
        if name.startswith("mid_attn.qkv."):
            w = w.clone()
            w[: 2 * w.shape[0] // 3] *= factor ** -0.25  # the query and key rows
        state[name] = w.to(target.dtype)
    wide.load_state_dict(state)
    return wide


def add_temporal_attention(unet: TinyVideoUNet, levels) -> TinyVideoUNet:
    """``unet`` with self-attention along frames after every residual block of ``levels`` (the motion-module
    insertion of AnimateDiff), computing the same function: every weight of ``unet`` is kept and each new layer's
    output projection starts at zero, so ``x + W_o(·) = x`` until training moves ``W_o``.

    Parameters
    ----------
    unet : TinyVideoUNet
        The trained network (left unchanged); levels it already has keep their trained attention.
    levels : iterable of int
        Resolution levels, 0 being the first (full-resolution) one; the result has the union of these and
        ``unet``'s own.

    Returns
    -------
    TinyVideoUNet
        The config of ``unet`` with ``temporal_attention`` set, on the CPU in float32; new layers are initialised
        from the global torch generator (seed it for the same network every time).
    """
    if not isinstance(unet, TinyVideoUNet):
        raise TypeError(f"add_temporal_attention extends a TinyVideoUNet; got {type(unet).__name__}")
    cfg = {k: v for k, v in dict(unet.config).items() if not k.startswith("_")}
    new = sorted({int(i) for i in levels} | {int(i) for i in cfg.get("temporal_attention") or ()})
    if not new:
        raise ValueError("levels is empty: name the resolution levels to give temporal attention, e.g. [0, 1]")
    cfg["temporal_attention"] = new
    grown = TinyVideoUNet(**cfg)  # refuses levels outside the network
    old = {n: p.detach().to("cpu", torch.float32) for n, p in unet.state_dict().items()}
    missing, unexpected = grown.load_state_dict(old, strict=False)
    if unexpected or any("tattn" not in n for n in missing):  # not reachable: only the new layers are new
        raise AssertionError(f"unexpected {unexpected}, missing {missing}")
    return grown


class GaussianVideoDenoiser(ModelMixin, ConfigMixin):
    """Exact ε-prediction (posterior mean) for a stationary Gaussian video prior.

    Prior: ``x0 = μ + U y`` per pixel, ``μ`` a constant colour ``(C,)``, ``U`` an orthogonal colour basis
    ``(C, C)`` and each channel of ``y`` a circular-stationary Gaussian process with power spectrum ``S_c(k)``
    under the ortho-normalised 3-D FFT over (frame, height, width). Forward process
    ``z_t = a_t x0 + b_t ε`` with ``a_t = sqrt(ᾱ_t)``, ``b_t = sqrt(1 - ᾱ_t)``. Because ``U`` and the ortho FFT
    are orthogonal, ``W(k) = FFT(U^T (z_t - a_t μ))(k) = a_t Y(k) + b_t E(k)`` bin by bin and

    ``E[ε | z_t] = U · IFFT( b_t / (a_t^2 S(k) + b_t^2) · W(k) )``,
    ``E[x0 | z_t] = μ + U · IFFT( a_t S(k) / (a_t^2 S(k) + b_t^2) · W(k) )``.

    Set the prior with :meth:`set_prior` (see :func:`freeinit_lab.pipelines.fit_gaussian_prior`). Buffers are
    saved by ``save_pretrained``.

    Parameters
    ----------
    in_channels : int
        Colour channels.
    num_frames, sample_size, width : int
        The fixed video size ``(frame, height, width)`` the spectrum is defined on (``width`` defaults to
        ``sample_size``).
    num_train_timesteps : int
        Length of the ``alphas_cumprod`` table.
    """

    @register_to_config
    def __init__(self, in_channels: int = 3, num_frames: int = 8, sample_size: int = 16, width: int | None = None,
                 num_train_timesteps: int = 1000):
        super().__init__()
        w = sample_size if width is None else width
        self.register_buffer("mean", torch.zeros(in_channels))
        self.register_buffer("color_basis", torch.eye(in_channels))
        self.register_buffer("power", torch.ones(in_channels, num_frames, sample_size, w))
        self.register_buffer("alphas_cumprod", torch.linspace(0.9999, 0.0047, num_train_timesteps))
        # a dummy parameter so diffusers can infer device/dtype
        self._dtype_anchor = nn.Parameter(torch.zeros(()), requires_grad=False)

    def set_prior(self, mean: torch.Tensor, color_basis: torch.Tensor, power: torch.Tensor,
                  alphas_cumprod: torch.Tensor) -> "GaussianVideoDenoiser":
        """Install prior parameters (see class docstring); shapes ``(C,)``, ``(C, C)``, ``(C, F, H, W)``, ``(T,)``."""
        if tuple(power.shape) != tuple(self.power.shape):
            raise ValueError(f"power spectrum shape {tuple(power.shape)} != model size {tuple(self.power.shape)}")
        if tuple(alphas_cumprod.shape) != tuple(self.alphas_cumprod.shape):
            raise ValueError(f"alphas_cumprod has {alphas_cumprod.shape[0]} entries, expected "
                             f"{self.alphas_cumprod.shape[0]} (num_train_timesteps)")
        with torch.no_grad():
            self.mean.copy_(mean)
            self.color_basis.copy_(color_basis)
            self.power.copy_(power)
            self.alphas_cumprod.copy_(alphas_cumprod)
        return self

    def _coeffs(self, timestep, batch: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a_t, b_t)`` as ``(B, 1, 1, 1, 1)`` float64, or ``(1, 1, 1, 1, 1)`` when every video of the batch is at
        the same timestep (a sampler's step): the per-bin gains built from them are then computed once and
        broadcast over the videos, the same floats as one copy per video."""
        t = torch.as_tensor(timestep, device=device)
        if t.ndim == 0:
            t = t.reshape(1)
        t = t.round().long().clamp(0, self.alphas_cumprod.shape[0] - 1)
        if t.numel() > 1 and bool((t == t[0]).all()):
            t = t[:1]
        ab = self.alphas_cumprod.to(device)[t].double().view(-1, 1, 1, 1, 1)
        return ab.sqrt(), (1 - ab).sqrt()

    def _to_white(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        zc = z.double() - a * self.mean.double().view(1, -1, 1, 1, 1)
        return torch.fft.fftn(torch.einsum("cd,ncfhw->ndfhw", self.color_basis.double(), zc), dim=(-3, -2, -1),
                              norm="ortho")

    def _from_white(self, w: torch.Tensor) -> torch.Tensor:
        y = torch.fft.ifftn(w, dim=(-3, -2, -1), norm="ortho").real
        return torch.einsum("cd,ndfhw->ncfhw", self.color_basis.double(), y)

    def _filter(self, z: torch.Tensor, a: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """``U · IFFT(gain(k) · FFT(U^T (z - a μ)))(k)``, real, in float64: what
        ``_from_white(gain * _to_white(z, a))`` computes, through the real FFT.

        A real video's FFT is Hermitian (``W(-k) = conj W(k)``), so the real part of the inverse only sees the
        gain's Hermitian part ``(g(k) + g(-k)) / 2`` (equal to ``g`` for the fitted spectra, which are symmetric),
        and ``irfftn(g_sym · rfftn(y))`` is that real part, with half the transform work and none on the imaginary
        half (agreement to float64 round-off: ``tests/embedded/test_models.py``). The colour basis is applied as
        one ``(C, C) @ (C, F H W)`` product per video.
        """
        n, c, f, h, w = z.shape
        gain = gain.expand(gain.shape[0], c, f, h, w)  # (1 or n, 1 or C, F, H, W): one per video or shared
        mirrored = torch.roll(gain.flip((-3, -2, -1)), shifts=(1, 1, 1), dims=(-3, -2, -1))  # g(-k)
        half = (0.5 * (gain + mirrored))[..., : w // 2 + 1]
        basis = self.color_basis.double()
        zc = (z.double() - a * self.mean.double().view(1, -1, 1, 1, 1)).reshape(n, c, -1)
        y = (basis.T @ zc).reshape(n, c, f, h, w)
        y = torch.fft.irfftn(half * torch.fft.rfftn(y, dim=(-3, -2, -1), norm="ortho"), s=(f, h, w),
                             dim=(-3, -2, -1), norm="ortho")
        return (basis @ y.reshape(n, c, -1)).reshape(n, c, f, h, w)

    def _check(self, sample: torch.Tensor) -> None:
        if tuple(sample.shape[1:]) != tuple(self.power.shape):
            raise ValueError(f"GaussianVideoDenoiser is defined on videos of shape {tuple(self.power.shape)} "
                             f"(channel, frame, height, width), got {tuple(sample.shape[1:])}; build one for "
                             "this size with load_analytic_pipeline(num_frames, height, width)")

    def forward(self, sample: torch.Tensor, timestep, return_dict: bool = True, **kwargs):
        """Exact ``E[ε | z_t = sample]``."""
        self._check(sample)
        a, b = self._coeffs(timestep, sample.shape[0], sample.device)
        S = self.power.double()
        eps = self._filter(sample, a, b / (a * a * S + b * b)).to(sample.dtype)
        if not return_dict:
            return (eps,)
        return VideoDenoiserOutput(sample=eps)

    def predict_x0(self, sample: torch.Tensor, timestep) -> torch.Tensor:
        """Exact ``E[x0 | z_t = sample]`` (the MMSE / Wiener estimate)."""
        self._check(sample)
        a, b = self._coeffs(timestep, sample.shape[0], sample.device)
        S = self.power.double()
        x0 = self._filter(sample, a, a * S / (a * a * S + b * b))
        return (x0 + self.mean.double().view(1, -1, 1, 1, 1)).to(sample.dtype)

    def sample_prior(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Exact draws ``x0 ~ prior``, shape ``(batch, C, F, H, W)``."""
        w = torch.randn((batch, *self.power.shape), generator=generator, dtype=torch.float64)
        spec = torch.fft.fftn(w, dim=(-3, -2, -1), norm="ortho") * self.power.double().sqrt()
        x = self._from_white(spec) + self.mean.double().view(1, -1, 1, 1, 1)
        return x.float()
