"""Tests for freeinit_lab.models: the tiny UNet and the exact Gaussian-prior denoiser."""

from __future__ import annotations

import pytest
import torch

from freeinit_lab.models import GaussianVideoDenoiser, TinyVideoUNet
from freeinit_lab.pipelines import default_scheduler, fit_gaussian_prior


def test_unet_shapes_and_timesteps():
    torch.manual_seed(0)
    m = TinyVideoUNet(block_channels=(8, 16), norm_groups=4, time_embed_dim=16, attention_heads=2)
    x = torch.randn(2, 3, 4, 8, 8)
    assert torch.equal(m(x, 10).sample, torch.zeros_like(x))  # zero-initialised output conv
    for p in m.parameters():  # perturb everything so the checks below are informative
        torch.nn.init.normal_(p, std=0.2)
    y = m(x, torch.tensor([10, 500])).sample
    assert y.shape == x.shape
    y1 = m(x[:1], 10).sample
    assert torch.allclose(y[:1], y1, atol=1e-5)
    assert not torch.allclose(m(x, 10).sample, m(x, 900).sample)
    (out,) = m(x, 3, return_dict=False)
    assert out.shape == x.shape


def test_unet_errors_name_the_fix():
    m = TinyVideoUNet(block_channels=(8, 16, 16), norm_groups=4, time_embed_dim=16, attention_heads=2)
    with pytest.raises(ValueError, match="divisible by 4"):
        m(torch.randn(1, 3, 4, 6, 6), 1)
    with pytest.raises(ValueError, match="batch, channel, frame"):
        m(torch.randn(3, 4, 8, 8), 1)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("stride", [1, 2])
def test_spatial_and_temporal_convs_are_the_per_frame_and_per_pixel_convs(stride, batch):
    """The 3-D forms of the factorised convolutions compute what their definitions say: a 2-D conv on every frame
    (reshaped to ``(B F, C, H, W)``) and a 1-D conv along the frames of every pixel (``(B H W, C, F)``)."""
    from freeinit_lab.embedded.models import _spatial, _temporal

    torch.manual_seed(0)
    x = torch.randn(batch, 5, 6, 8, 10)
    b, c, f, h, w = x.shape
    conv2 = torch.nn.Conv2d(c, 7, 3, stride=stride, padding=1)
    ref = conv2(x.transpose(1, 2).reshape(b * f, c, h, w))
    ref = ref.reshape(b, f, 7, *ref.shape[-2:]).transpose(1, 2)
    torch.testing.assert_close(_spatial(conv2, x), ref, rtol=1e-5, atol=1e-5)
    conv1 = torch.nn.Conv1d(c, 7, 3, padding=1)
    ref = conv1(x.permute(0, 3, 4, 1, 2).reshape(b * h * w, c, f)).reshape(b, h, w, 7, f).permute(0, 3, 4, 1, 2)
    torch.testing.assert_close(_temporal(conv1, x), ref, rtol=1e-5, atol=1e-5)


def test_unet_forward_chunk_changes_speed_not_the_function():
    """Chunked passes (uneven last chunk, a different timestep per video) give each video the ε̂ of the
    whole-batch pass, to round-off; only CPU batches are chunked; bad chunk sizes and timestep shapes are
    refused."""
    torch.manual_seed(0)
    m = TinyVideoUNet(block_channels=(8, 16), norm_groups=4, time_embed_dim=16, attention_heads=2).eval()
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(5, 3, 4, 8, 8)
    t = torch.tensor([3, 100, 500, 800, 999])
    with torch.no_grad():
        m.forward_chunk = None
        whole = m(x, t).sample
        m.forward_chunk = 2
        chunked = m(x, t).sample
        one_t = m(x, torch.tensor([500])).sample
        m.forward_chunk = None
        one_t_whole = m(x, 500).sample
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(one_t, one_t_whole, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(chunked[1], m(x[1:2], 500).sample[0], atol=1e-3)  # each video keeps its own t
    calls = []
    inner = m._forward
    m._forward = lambda s, tt, s2d: calls.append(s.shape[0]) or inner(s, tt, s2d)
    m.forward_chunk = 2
    m(x, t)
    assert calls == [2, 2, 1]
    m.forward_chunk = 0
    with pytest.raises(ValueError, match="forward_chunk must be None or >= 1"):
        m(x, t)
    m.forward_chunk = 2
    with pytest.raises(ValueError, match=r"timestep must be a scalar or have shape \(5,\)"):
        m(x, torch.tensor([1, 2]))
    calls.clear()
    m.to("meta")(x.to("meta"), t.to("meta"))  # off the CPU (shapes only here): the whole batch in one pass
    assert calls == [5]


def _res_block_out_of_place(blk, x, emb):
    """The residual block by its definition, every element-wise step on a new tensor."""
    from freeinit_lab.embedded.models import _spatial, _temporal

    h = _spatial(blk.conv1, torch.nn.functional.silu(blk.norm1(x)))
    scale, shift = blk.emb(emb)[:, :, None, None, None].chunk(2, dim=1)
    h = blk.norm2(h) * (1 + scale) + shift
    h = _spatial(blk.conv2, torch.nn.functional.silu(h))
    x = blk.skip(x) + h
    return x + _temporal(blk.conv_t, torch.nn.functional.silu(blk.norm_t(x)))


@pytest.mark.parametrize("cin", [8, 16])  # with a 1x1x1 skip conv, and with the identity skip
def test_res_block_in_place_steps_are_its_out_of_place_definition_exactly(cin):
    """The block's in-place element-wise steps give the very floats (and gradients) of the out-of-place form, and
    leave its inputs untouched (they are the UNet's skip connections)."""
    from freeinit_lab.embedded.models import _ResBlock

    torch.manual_seed(0)
    blk = _ResBlock(cin, 16, 32, 4, 3)
    for prm in blk.parameters():  # the zero-initialised convs would hide the residual branches
        torch.nn.init.normal_(prm, std=0.3)
    x = torch.randn(3, cin, 4, 8, 8, requires_grad=True)
    emb = torch.randn(3, 32, requires_grad=True)
    x_before, emb_before = x.detach().clone(), emb.detach().clone()
    with torch.no_grad():
        got = blk(x, emb)
    assert torch.equal(x.detach(), x_before) and torch.equal(emb.detach(), emb_before)
    with torch.no_grad():
        assert torch.equal(got, _res_block_out_of_place(blk, x, emb))

    def grads(forward):
        blk.zero_grad()
        x.grad = emb.grad = None
        (forward(x, emb) ** 2).sum().backward()
        return [x.grad, emb.grad, *[prm.grad.clone() for prm in blk.parameters()]]

    for a, b in zip(grads(blk), grads(lambda x_, e_: _res_block_out_of_place(blk, x_, e_))):
        assert torch.equal(a, b)


def test_unet_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    m = TinyVideoUNet(block_channels=(8, 16), norm_groups=4, time_embed_dim=16, attention_heads=2)
    torch.nn.init.normal_(m.conv_out.weight, std=0.1)
    m.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    m2 = TinyVideoUNet.from_pretrained(tmp_path, local_files_only=True)
    x = torch.randn(1, 3, 4, 8, 8)
    assert torch.equal(m(x, 7).sample, m2(x, 7).sample)
    assert m2.config.block_channels == [8, 16] or tuple(m2.config.block_channels) == (8, 16)


def test_unet_frames_interact():
    """The temporal convolutions and attention really mix frames: changing frame 0 changes the output at
    frame 3 (receptive field spans the clip)."""
    torch.manual_seed(0)
    m = TinyVideoUNet(block_channels=(8, 16), norm_groups=4, time_embed_dim=16, attention_heads=2)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(1, 3, 8, 8, 8)
    x2 = x.clone()
    x2[:, :, 0] += 1.0
    assert not torch.allclose(m(x, 5).sample[:, :, 3], m(x2, 5).sample[:, :, 3])


@pytest.fixture(scope="module")
def gauss():
    g = torch.Generator().manual_seed(0)
    # a smooth random-field "dataset" with a strongly coloured spectrum and a mean colour
    white = torch.randn(64, 3, 4, 8, 8, generator=g)
    kt = torch.fft.fftfreq(4).view(-1, 1, 1)
    ky = torch.fft.fftfreq(8).view(1, -1, 1)
    kx = torch.fft.fftfreq(8).view(1, 1, -1)
    filt = 1 / (0.05 + 4 * kt**2 + ky**2 + kx**2)
    vids = torch.fft.ifftn(torch.fft.fftn(white, dim=(-3, -2, -1)) * filt, dim=(-3, -2, -1)).real
    vids = 0.3 * vids / vids.std() + torch.tensor([0.2, -0.1, 0.0]).view(1, 3, 1, 1, 1)
    prior = fit_gaussian_prior(vids)
    sched = default_scheduler()
    m = GaussianVideoDenoiser(num_frames=4, sample_size=8)
    m.set_prior(prior["mean"], prior["color_basis"], prior["power"], sched.alphas_cumprod)
    return m, sched


@pytest.mark.parametrize("shape", [(6, 3, 4, 8, 8), (5, 3, 5, 6, 9)])
def test_symmetrized_prior_is_the_periodogram_of_all_eight_mirror_images(shape):
    """The fit's symmetrised power equals the periodogram averaged over the videos' 8 mirror images (flips of
    width, height and time), computed here directly; chunking the videos changes nothing."""
    g = torch.Generator().manual_seed(1)
    vids = torch.rand(shape, generator=g) * 2 - 1
    prior = fit_gaussian_prior(vids, chunk_size=2)
    x = vids.double() - prior["mean"].double().view(1, 3, 1, 1, 1)
    y = torch.einsum("cd,ncfhw->ndfhw", prior["color_basis"].double(), x)
    mirrors = [y.flip(d) if d else y for d in [(), (-1,), (-2,), (-3,), (-1, -2), (-1, -3), (-2, -3), (-1, -2, -3)]]
    expected = torch.stack([torch.fft.fftn(v, dim=(-3, -2, -1), norm="ortho").abs() ** 2 for v in mirrors]).mean((0, 1))
    torch.testing.assert_close(prior["power"].double(), expected, rtol=1e-5, atol=1e-7)
    plain = torch.fft.fftn(y, dim=(-3, -2, -1), norm="ortho").abs().pow(2).mean(0)
    torch.testing.assert_close(fit_gaussian_prior(vids, symmetrize=False, chunk_size=4)["power"].double(), plain,
                               rtol=1e-5, atol=1e-7)
    assert not torch.allclose(plain, expected, rtol=1e-3)  # the mirror images do change the estimate
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        fit_gaussian_prior(vids, chunk_size=0)


def test_gaussian_prior_fit_is_orthogonal(gauss):
    m, _ = gauss
    u = m.color_basis
    assert torch.allclose(u @ u.T, torch.eye(3), atol=1e-5)
    assert (m.power > 0).all()


@pytest.mark.parametrize("t", [50, 500, 999])
def test_gaussian_denoiser_is_the_posterior_mean(gauss, t):
    """Monte-Carlo check of the closed form: for x0 ~ prior and z_t = a x0 + b eps, the MMSE prediction is
    unbiased, its error is orthogonal to the prediction, and its mean squared error equals the closed form
    mean_k b^2 a^2 S / (a^2 S + b^2) / b^2 ... = mean_k a^2 S / (a^2 S + b^2)."""
    m, sched = gauss
    g = torch.Generator().manual_seed(1)
    x0 = m.sample_prior(4000, generator=g).double()
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    ab = sched.alphas_cumprod[t].double()
    a, b = ab.sqrt(), (1 - ab).sqrt()
    z = a * x0 + b * eps
    eps_hat = m(z, t).sample
    err = eps - eps_hat
    assert abs(err.mean()) < 0.01
    # orthogonality principle E[(eps - E[eps|z]) * f(z)] = 0 for f = eps_hat
    assert abs((err * eps_hat).mean()) < 0.01
    S = m.power.double()
    closed = (a * a * S / (a * a * S + b * b)).mean()
    mse = (err**2).mean()
    assert torch.isclose(mse, closed, rtol=0.03), (float(mse), float(closed))
    # x0 prediction consistent with eps prediction: z = a x0_hat + b eps_hat
    x0_hat = m.predict_x0(z, t).double()
    assert torch.allclose(a * x0_hat + b * eps_hat, z, atol=1e-4)


def test_gaussian_prior_samples_match_spectrum(gauss):
    m, _ = gauss
    x = m.sample_prior(3000, generator=torch.Generator().manual_seed(2)).double()
    assert torch.allclose(x.mean(dim=(0, 2, 3, 4)), m.mean.double(), atol=0.02)
    y = torch.einsum("cd,ncfhw->ndfhw", m.color_basis.double(), x - m.mean.double().view(1, -1, 1, 1, 1))
    p = (torch.fft.fftn(y, dim=(-3, -2, -1), norm="ortho").abs() ** 2).mean(0)
    assert torch.allclose(p.sum(), m.power.double().sum(), rtol=0.05)


def test_gaussian_denoiser_shape_error(gauss):
    m, _ = gauss
    with pytest.raises(ValueError, match="load_analytic_pipeline"):
        m(torch.randn(1, 3, 8, 8, 8), 10)


def test_gaussian_denoiser_batch_is_each_video_at_its_own_timestep(gauss):
    """A batch at one timestep (its per-bin gain computed once) and a batch at mixed timesteps give each video
    exactly what that video alone at its timestep gives: the shared-timestep shortcut never hands a video another
    video's noise level."""
    m, _ = gauss
    z = torch.randn(5, 3, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    ts = torch.tensor([10, 400, 400, 999, 10])
    alone = torch.cat([m(z[i : i + 1], int(ts[i])).sample for i in range(5)])
    assert torch.equal(m(z, ts).sample, alone)
    x0_alone = torch.cat([m.predict_x0(z[i : i + 1], int(ts[i])) for i in range(5)])
    assert torch.equal(m.predict_x0(z, ts), x0_alone)
    for t in (400, torch.tensor(400), torch.full((5,), 400)):  # a scalar, a 0-d tensor, one timestep per video
        assert torch.equal(m(z, t).sample, torch.cat([m(z[i : i + 1], 400).sample for i in range(5)]))
    assert not torch.equal(m(z, ts).sample, m(z, 400).sample)


@pytest.mark.parametrize("shape", [(3, 3, 4, 8, 8), (2, 3, 5, 6, 9), (2, 3, 3, 7, 5)])
def test_gaussian_denoiser_real_fft_path_is_the_complex_one(shape):
    """The denoiser filters through rfftn/irfftn with the gain's Hermitian part: the same as the real part of
    ifftn(gain · fftn(.)) to float64 round-off, for a fitted (symmetric) spectrum and for an arbitrary one (whose
    gain is not symmetric), at one timestep for the batch and at one per video, odd sizes included."""
    g = torch.Generator().manual_seed(3)
    vids = torch.rand(shape, generator=g)
    prior = fit_gaussian_prior(vids)
    m = GaussianVideoDenoiser(num_frames=shape[2], sample_size=shape[3], width=shape[4])
    m.set_prior(prior["mean"], prior["color_basis"], prior["power"], default_scheduler().alphas_cumprod)
    z = torch.randn(shape, generator=g, dtype=torch.float64)

    def complex_path(t, x0=False):
        a, b = m._coeffs(t, shape[0], "cpu")
        S = m.power.double()
        gain = a * S / (a * a * S + b * b) if x0 else b / (a * a * S + b * b)
        return m._from_white(gain * m._to_white(z, a)), m._filter(z, a, gain)

    for power in (None, torch.rand(m.power.shape, generator=g) + 0.05):  # fitted, then asymmetric
        if power is not None:
            m.power.copy_(power)
        for t in (torch.tensor(17), torch.randint(0, 1000, (shape[0],), generator=g)):
            for x0 in (False, True):
                full, real = complex_path(t, x0)
                torch.testing.assert_close(real, full, rtol=0, atol=1e-12)
    # and the public outputs go through it: eps and x0 predictions from the real path
    a, b = m._coeffs(torch.tensor(400), shape[0], "cpu")
    S = m.power.double()
    torch.testing.assert_close(m(z.float(), 400).sample.double(),
                               m._from_white(b / (a * a * S + b * b) * m._to_white(z.float(), a)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
def test_unet_channels_last_layout_is_the_same_function(batch):
    """The CPU channels-last layout changes the convolutions' summation order only: outputs agree with the
    contiguous layout to float round-off, come back in the same layout (strides), and the input is left as it
    was."""
    torch.manual_seed(0)
    m = TinyVideoUNet(block_channels=(8, 16), norm_groups=4, time_embed_dim=16, attention_heads=2, space_to_depth=2)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(batch, 3, 4, 8, 8)
    before = x.clone()
    m.forward_chunk = 2
    assert m.channels_last  # the default
    fast = m(x, torch.arange(batch) * 300).sample
    m.channels_last = False
    plain = m(x, torch.arange(batch) * 300).sample
    assert fast.stride() == plain.stride()
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    assert not torch.equal(plain, torch.zeros_like(plain))
    assert torch.equal(x, before)


def _random_unet(seed: int, **cfg) -> TinyVideoUNet:
    """A TinyVideoUNet with every parameter random (the zero-initialised output layers too, so they matter)."""
    torch.manual_seed(seed)
    m = TinyVideoUNet(**cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.2)
    return m


@pytest.mark.parametrize("factor", [2, 3])
@pytest.mark.parametrize("channels_last", [True, False])
def test_widened_unet_computes_the_narrow_function(factor, channels_last):
    """widen_video_unet: every level k times wider, the same ε̂ at every timestep (GroupNorm groups and attention
    heads kept), for any random split of the weights; the narrow network is left as it was."""
    from freeinit_lab.models import widen_video_unet

    m = _random_unet(0, block_channels=(8, 16, 24), norm_groups=4, time_embed_dim=16, attention_heads=2,
                     space_to_depth=2)
    with torch.no_grad():
        m.mid_attn.qkv.weight.mul_(5)                              # sharp attention, so its temperature matters
    before = {n: p.clone() for n, p in m.state_dict().items()}
    w = widen_video_unet(m, factor, split_noise=0.3, generator=torch.Generator().manual_seed(1))
    assert list(w.config.block_channels) == [8 * factor, 16 * factor, 24 * factor]
    assert w.config.norm_groups == 4 and w.config.attention_heads == 2 and w.config.time_embed_dim == 16
    x, t = torch.randn(3, 3, 4, 16, 16), torch.tensor([3, 400, 999])
    m.channels_last = w.channels_last = channels_last
    with torch.no_grad():
        a, b = m(x, t).sample, w(x, t).sample
    assert a.abs().max() > 0.5                                     # a non-trivial function
    torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-5)
    assert all(torch.equal(p, before[n]) for n, p in m.state_dict().items())
    with torch.no_grad():                                          # undo the query/key scaling: no longer exact
        qkv = w.mid_attn.qkv
        qkv.weight[: 2 * qkv.weight.shape[0] // 3] *= factor ** 0.25
        qkv.bias[: 2 * qkv.bias.shape[0] // 3] *= factor ** 0.25
        assert (w(x, t).sample - a).abs().max() > 5e-3             # 0.016 (factor 2) and 0.047 (3) here


def test_widened_copies_grow_apart_under_training():
    """With random splits the copies of a channel get different gradients, so training makes them differ; with
    equal splits (split_noise=0) they get equal gradients and stay copies, the reason for the noise."""
    from freeinit_lab.models import widen_video_unet

    m = _random_unet(0, block_channels=(8, 16), norm_groups=4, time_embed_dim=16, attention_heads=2)
    x, t = torch.randn(2, 3, 4, 8, 8), torch.tensor([100, 700])
    spread = {}
    for noise in (0.0, 0.2):
        w = widen_video_unet(m, 2, split_noise=noise, generator=torch.Generator().manual_seed(0))
        w(x, t).sample.pow(2).mean().backward()
        g = w.down[0][0].conv1.weight.grad                          # (16, 16, 3, 3): output copies 2o, 2o + 1
        spread[noise] = ((g[0::2] - g[1::2]).abs().max() / g.abs().max()).item()
    assert spread[0.0] < 1e-5 and spread[0.2] > 0.05, spread


def test_widening_refuses_what_it_cannot_keep_exact():
    from freeinit_lab.models import widen_video_unet

    m = TinyVideoUNet(block_channels=(8, 16), norm_groups=4, time_embed_dim=16, attention_heads=2)
    for factor in (1, 1.5, True):
        with pytest.raises(ValueError, match="integer >= 2"):
            widen_video_unet(m, factor)
    with pytest.raises(ValueError, match="split_noise must be >= 0"):
        widen_video_unet(m, 2, split_noise=-0.1)
    with pytest.raises(ValueError, match="narrower than norm_groups=8"):
        widen_video_unet(TinyVideoUNet(block_channels=(4,), norm_groups=8, time_embed_dim=16, attention_heads=2))
    with pytest.raises(TypeError, match="widens a TinyVideoUNet"):
        widen_video_unet(torch.nn.Linear(2, 2))


def test_temporal_attention_added_to_a_trained_unet_keeps_its_function_and_can_learn():
    """add_temporal_attention: self-attention along frames after every block of the named levels; the network
    computes exactly what it computed (each new output projection starts at zero), keeps every old weight, and
    the new layers get gradients, so training can use them; old weights load into a config without them."""
    from freeinit_lab.models import add_temporal_attention

    m = _random_unet(0, block_channels=(8, 16), norm_groups=4, time_embed_dim=16, attention_heads=2, space_to_depth=2)
    before = {n: p.clone() for n, p in m.state_dict().items()}
    g = add_temporal_attention(m, [0, 1])
    assert list(g.config.temporal_attention) == [0, 1]
    new = [n for n in g.state_dict() if n not in before]
    assert new and all("tattn" in n for n in new)
    assert len([n for n in new if n.endswith("qkv.weight")]) == 2 * 1 + 2 * 2  # one per down block, two per up
    x, t = torch.randn(2, 3, 5, 16, 16), torch.tensor([30, 800])  # 5 frames: any frame count
    with torch.no_grad():
        torch.testing.assert_close(g(x, t).sample, m(x, t).sample, atol=0, rtol=0)
    assert all(torch.equal(p, before[n]) for n, p in m.state_dict().items())
    g(x, t).sample.pow(2).mean().backward()
    assert g.down_tattn[0][0].out.weight.grad.abs().max() > 0
    # once trained (output weights not zero), the frames' order matters to it: the frame encoding
    with torch.no_grad():
        for mod in g.modules():
            if type(mod).__name__ == "_TemporalAttention":
                torch.nn.init.normal_(mod.out.weight, std=0.5)
                torch.nn.init.normal_(mod.qkv.weight, std=0.5)
        rev = g(x.flip(2), t).sample.flip(2)
        assert (rev - g(x, t).sample).abs().max() > 1e-3
    # a config without temporal attention has no keys for it: the shipped weights load strictly as before
    plain = TinyVideoUNet(**{k: v for k, v in dict(m.config).items() if not k.startswith("_")})
    plain.load_state_dict(m.state_dict(), strict=True)
    assert add_temporal_attention(g, [1]).config.temporal_attention == [0, 1]  # levels it has are kept


def test_temporal_attention_refuses_what_it_cannot_do():
    from freeinit_lab.models import add_temporal_attention, widen_video_unet

    m = TinyVideoUNet(block_channels=(8, 16), norm_groups=4, time_embed_dim=16, attention_heads=2)
    with pytest.raises(ValueError, match=r"levels must be in 0 … 1"):
        add_temporal_attention(m, [2])
    with pytest.raises(ValueError, match="levels is empty"):
        add_temporal_attention(m, [])
    with pytest.raises(TypeError, match="extends a TinyVideoUNet"):
        add_temporal_attention(torch.nn.Linear(2, 2), [0])
    with pytest.raises(ValueError, match="widen the network first"):
        widen_video_unet(add_temporal_attention(m, [0]), 2)
    with pytest.raises(ValueError, match="divisible by its heads"):
        TinyVideoUNet(block_channels=(9, 18), norm_groups=3, attention_heads=2, temporal_attention=(0,))
