"""Temporal-consistency metrics: formulas checked against independent computations and known cases."""

import numpy as np
import pytest
import torch

from freeinit_lab import metrics


def _videos(seed=0, b=3, f=6, h=16, w=16):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, f, h, w, generator=g) * 2 - 1


def test_static_video_is_perfectly_consistent():
    v = _videos()[:, :, :1].expand(-1, -1, 6, -1, -1)
    for name, fn in metrics.WEIGHT_FREE_METRICS.items():
        np.testing.assert_allclose(fn(v).numpy(), 1.0, atol=1e-12, err_msg=name)


def test_unrelated_frames_score_about_zero_and_flicker_lowers_cosine():
    v = _videos(1, b=4, f=8, h=32, w=32)
    assert metrics.frame_cosine_similarity(v).abs().max() < 0.05
    static = v[:, :, :1].expand(-1, -1, 8, -1, -1).clone()
    flick = static.clone()
    flick[:, :, 1::2] = (flick[:, :, 1::2] * 0.3)  # global contrast flicker
    assert (metrics.temporal_flicker(flick) < metrics.temporal_flicker(static)).all()


def test_frame_cosine_matches_numpy():
    v = _videos(2)
    x = (v.double().numpy() + 1) / 2
    x = x - x.mean(axis=(2, 3, 4), keepdims=True)
    ref = []
    for vid in x:
        fr = vid.transpose(1, 0, 2, 3).reshape(vid.shape[1], -1)
        cs = [fr[i] @ fr[i + 1] / np.linalg.norm(fr[i]) / np.linalg.norm(fr[i + 1]) for i in range(len(fr) - 1)]
        ref.append(np.mean(cs))
    np.testing.assert_allclose(metrics.frame_cosine_similarity(v).numpy(), ref, rtol=1e-10)
    first = metrics.frame_cosine_similarity(v, reference="first")
    assert first.shape == (3,)


def test_flicker_formula():
    v = _videos(3)
    x = (v.double() + 1) / 2 * 255
    mad = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(dim=(1, 2, 3, 4))
    np.testing.assert_allclose(metrics.temporal_flicker(v).numpy(), ((255 - mad) / 255).numpy())


def test_ssim_equals_skimage():
    skm = pytest.importorskip("skimage.metrics", reason="needs scikit-image (the dev extra: pip install -e '.[dev]')")
    v = _videos(4, b=2, f=3)
    x = ((v.double().numpy() + 1) / 2).clip(0, 1)
    ref = [np.mean([skm.structural_similarity(x[b, :, f].transpose(1, 2, 0), x[b, :, f + 1].transpose(1, 2, 0),
                                              channel_axis=-1, data_range=1.0) for f in range(2)]) for b in range(2)]
    np.testing.assert_allclose(metrics.consecutive_ssim(v).numpy(), ref, rtol=1e-7)


def test_layouts_and_value_ranges_agree():
    v = _videos(5)
    np_frames = ((v + 1) / 2).permute(0, 2, 3, 4, 1).numpy()  # like output_type="np"
    a = metrics.frame_cosine_similarity(v)
    b = metrics.frame_cosine_similarity(np_frames, layout="bfhwc", value_range=(0, 1))
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


def test_bad_input_names_the_fix():
    with pytest.raises(ValueError, match="add a batch axis"):
        metrics.frame_cosine_similarity(torch.zeros(3, 4, 8, 8))
    with pytest.raises(ValueError, match="layout must be one of"):
        metrics.temporal_flicker(torch.zeros(1, 3, 4, 8, 8), layout="bchw")
    with pytest.raises(ValueError, match="at least 2 frames"):
        metrics.temporal_flicker(torch.zeros(1, 3, 1, 8, 8))
    with pytest.raises(ValueError, match="smaller odd win_size"):
        metrics.consecutive_ssim(torch.zeros(1, 3, 4, 5, 5))
    with pytest.raises(KeyError, match="choose from"):
        metrics.consistency_report(torch.zeros(1, 3, 4, 8, 8), metrics=["lpips"])
    # win_size 1 / True divided by zero, 0 died in torch, 2 ran although skimage (whose value it claims) needs odd
    for win_size in (1, True, 0, -3, 2, 7.0):
        with pytest.raises(ValueError, match=r"win_size=.* must be an integer >= 3"):
            metrics.consecutive_ssim(torch.zeros(1, 3, 4, 8, 8), win_size=win_size)
    for win_size in (4, 6):
        with pytest.raises(ValueError, match="needs an odd win_size"):
            metrics.consecutive_ssim(torch.zeros(1, 3, 4, 8, 8), win_size=win_size)


def test_consistency_report_is_labelled():
    ds = metrics.consistency_report(_videos(6))
    assert set(ds.data_vars) == set(metrics.WEIGHT_FREE_METRICS)
    assert ds.frame_cosine.dims == ("batch",) and ds.frame_cosine.attrs["higher_is"] == "more consistent"


def test_consistency_report_takes_one_metric_name_as_a_string():
    """metrics="ssim" was iterated by character: KeyError "unknown metric 's'"."""
    v = _videos(7)
    one = metrics.consistency_report(v, metrics="ssim")
    assert list(one.data_vars) == ["ssim"]
    np.testing.assert_array_equal(one.ssim.values, metrics.consistency_report(v, metrics=["ssim"]).ssim.values)


@pytest.fixture(scope="module")
def tiny_vit():
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=64)
    return ViTModel(cfg, add_pooling_layer=False).eval()


def test_dino_consistency_with_a_tiny_random_vit(tiny_vit, tmp_path):
    v = _videos(7, b=2, f=4)
    static = v[:, :, :1].expand(-1, -1, 4, -1, -1)
    np.testing.assert_allclose(metrics.dino_consistency(static, tiny_vit).numpy(), 100.0, atol=1e-4)
    moving = metrics.dino_consistency(v, tiny_vit)
    assert moving.shape == (2,) and (moving < 100).all()
    tiny_vit.save_pretrained(tmp_path / "vit")  # a local folder loads offline, same numbers
    np.testing.assert_allclose(metrics.dino_consistency(v, tmp_path / "vit").numpy(), moving.numpy(), rtol=1e-5)


def test_dino_missing_weights_say_what_to_pass(tmp_path):
    with pytest.raises(OSError, match="Pass a local folder"):
        metrics.dino_consistency(_videos(8, b=1, f=2), tmp_path / "nowhere")


def test_dino_refuses_latent_channels_before_loading_a_model(tiny_vit, tmp_path):
    """4-channel latents failed deep inside with a bare broadcast error against ImageNet's 3-channel mean."""
    latents = torch.rand(1, 4, 2, 16, 16) * 2 - 1
    for model in (tiny_vit, tmp_path / "nowhere"):  # refused before any weights are looked for
        with pytest.raises(ValueError, match="4 channels: decode latents to RGB first"):
            metrics.dino_consistency(latents, model)


def test_display_values_decode_through_the_pipelines_normalizer_then_clip():
    """``display_values`` is ``clip(shift + scale·z, −1, 1)`` per channel with a normaliser, ``clip(z, −1, 1)`` without."""
    from types import SimpleNamespace

    from freeinit_lab.embedded.pipelines import ChannelNormalizer

    g = torch.Generator().manual_seed(3)
    z = torch.randn(2, 3, 4, 8, 8, generator=g, dtype=torch.float64) * 2
    norm = ChannelNormalizer(shift=(0.1, -0.2, 0.3), scale=(0.5, 0.25, 0.4))
    shift = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64).view(1, 3, 1, 1, 1)
    scale = torch.tensor([0.5, 0.25, 0.4], dtype=torch.float64).view(1, 3, 1, 1, 1)
    expected = (z * scale + shift).clamp(-1, 1)
    got = metrics.display_values(z, SimpleNamespace(normalizer=norm))
    assert got.dtype == torch.float32 and got.shape == z.shape
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-6)
    assert (expected.abs() == 1).any()  # the clip is exercised
    np.testing.assert_allclose(metrics.display_values(z).numpy(), z.clamp(-1, 1).numpy(), atol=1e-6)
    np.testing.assert_allclose(metrics.display_values(z, SimpleNamespace(normalizer=None)).numpy(),
                               z.clamp(-1, 1).numpy(), atol=1e-6)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_videos_are_refused(bad):
    """inf was clipped to a saturated pixel (a finite score for a diverged sample), NaN gave NaN without a word."""
    v = _videos(9)
    v[1, 0, 2, 3, 3] = bad
    for name, fn in metrics.WEIGHT_FREE_METRICS.items():
        with pytest.raises(ValueError, match=r"NaN or inf values \(videos \[1\]"):
            fn(v)
    with pytest.raises(ValueError, match="NaN or inf"):
        metrics.display_values(v)


def test_value_range_must_be_a_finite_increasing_interval():
    v = _videos(10)
    for bad in [(1.0, 1.0), (1.0, -1.0), (0.0, float("nan")), (-float("inf"), 1.0)]:
        with pytest.raises(ValueError, match="lo < hi"):
            metrics.temporal_flicker(v, value_range=bad)


def test_integer_frames_outside_the_value_range_are_refused():
    """uint8 frames read with the default (-1, 1) were clipped to 1 almost everywhere: flicker 0.99 for noise."""
    frames = (torch.rand(2, 4, 8, 8, 3, generator=torch.Generator().manual_seed(11)) * 255).round().to(torch.uint8)
    with pytest.raises(ValueError, match=r"value_range=\(0, 255\)"):
        metrics.temporal_flicker(frames, layout="bfhwc")
    as_float = frames.double() / 255
    for fn in metrics.WEIGHT_FREE_METRICS.values():
        if fn is metrics.consecutive_ssim:
            continue
        np.testing.assert_allclose(fn(frames, layout="bfhwc", value_range=(0, 255)).numpy(),
                                   fn(as_float, layout="bfhwc", value_range=(0, 1)).numpy(), rtol=1e-12)


def test_bad_reference_and_batch_settings_are_refused_before_any_frame_is_embedded(tiny_vit):
    """A misspelt reference was refused only after the ViT (or a features callable) had embedded every frame;
    batch_frames=0 failed as range()'s 'arg 3 must not be zero' after loading, 2.5 as a slice TypeError, and
    image_size=0 silently meant the model's own size. consistency_report ran the metrics listed before an
    unknown name."""
    calls = []

    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vit = tiny_vit

        def forward(self, pixel_values):
            calls.append(pixel_values.shape[0])
            return self.vit(pixel_values=pixel_values)

    v = _videos(9, b=1, f=3)
    with pytest.raises(ValueError, match="reference must be 'consecutive' or 'first'"):
        metrics.dino_consistency(v, Counting(), reference="frist")
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=rf"batch_frames={bad!r} must be an integer >= 1"):
            metrics.dino_consistency(v, Counting(), batch_frames=bad)
    with pytest.raises(ValueError, match=r"image_size=0 must be an integer >= 1"):
        metrics.dino_consistency(v, Counting(), image_size=0)
    assert calls == []
    feats = []
    with pytest.raises(ValueError, match="reference must be"):
        metrics.frame_cosine_similarity(v, reference="frist", center=False,
                                        features=lambda fr: feats.append(1) or fr.flatten(1))
    assert feats == []
    with pytest.raises(KeyError, match="unknown metric 'flikcer'"):
        metrics.consistency_report(v, metrics=["frame_cosine", "flikcer"])
    np.testing.assert_allclose(metrics.dino_consistency(v, Counting(), batch_frames=2, image_size=32).numpy(),
                               metrics.dino_consistency(v, tiny_vit).numpy(), rtol=1e-5)
