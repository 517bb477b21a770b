"""The tiny in-code pipelines: build offline, run, are deterministic and leave the global RNG alone."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
import torch

from freeinit_lab.testing import (
    TINY_CALL_KWARGS,
    tiny_clip_tokenizer,
    tiny_pipeline,
    tiny_t5_tokenizer,
)

EXPECTED_LATENT_SHAPE = {
    "AnimateDiffPipeline": (1, 4, 8, 16, 16),
    "TextToVideoSDPipeline": (1, 4, 8, 16, 16),
    "CogVideoXPipeline": (1, 5, 4, 8, 8),  # (batch, frame, channel, H, W)
    "WanPipeline": (1, 4, 5, 8, 8),
}


@pytest.fixture(scope="module", params=sorted(TINY_CALL_KWARGS))
def named_pipe(request):
    return request.param, tiny_pipeline(request.param, seed=0)


def _run(pipe, name, seed=0, **kw):
    kwargs = {**TINY_CALL_KWARGS[name], **kw}
    return pipe("a cat walking", generator=torch.Generator().manual_seed(seed), **kwargs).frames


def test_clip_tokenizer_pads_to_77():
    tok = tiny_clip_tokenizer()
    ids = tok(["a cat, walking!", "ü"], padding="max_length", max_length=tok.model_max_length, truncation=True,
              return_tensors="pt").input_ids
    assert ids.shape == (2, 77)
    assert ids[0, 0] == 0 and (ids[0] == 1).any()  # bos, eos/pad
    assert len(tok) == 514


def test_t5_tokenizer_encodes_any_text():
    tok = tiny_t5_tokenizer()
    ids = tok(["a cat walking", "Ünïcode?"], padding="max_length", max_length=16, truncation=True,
              return_tensors="pt").input_ids
    assert ids.shape == (2, 16)
    assert int(ids.max()) < 64  # fits tiny_t5_text_encoder's vocabulary


def test_latent_shape_and_determinism(named_pipe):
    name, pipe = named_pipe
    a = _run(pipe, name, output_type="latent")
    b = _run(pipe, name, output_type="latent")
    c = _run(pipe, name, seed=1, output_type="latent")
    assert tuple(a.shape) == EXPECTED_LATENT_SHAPE[name]
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_decodes_to_frames(named_pipe):
    name, pipe = named_pipe
    frames = _run(pipe, name, output_type="np")
    assert isinstance(frames, np.ndarray) and frames.ndim == 5 and frames.shape[-1] == 3
    assert np.isfinite(frames).all()


def test_build_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    p1 = tiny_pipeline("CogVideoXPipeline", seed=0)
    assert torch.equal(torch.get_rng_state(), before)
    p2 = tiny_pipeline("CogVideoXPipeline", seed=0)
    p3 = tiny_pipeline("CogVideoXPipeline", seed=1)
    w1, w2, w3 = (next(p.transformer.parameters()) for p in (p1, p2, p3))
    assert torch.equal(w1, w2) and not torch.equal(w1, w3)


def test_unknown_builder_names_the_options():
    with pytest.raises(ValueError, match="AnimateDiffPipeline"):
        tiny_pipeline("NoSuchPipeline")


def test_tiny_animatediff_builds_without_the_empty_float32_warning(capfd):
    from freeinit_lab.testing import tiny_animatediff_pipeline

    pipe = tiny_animatediff_pipeline(seed=0)
    assert type(pipe.unet).__name__ == "UNetMotionModel"
    assert "should be kept in float32" not in capfd.readouterr().err


def test_clip_tokenizer_leaves_no_files_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))      # where tempfile creates its folders
    tok = tiny_clip_tokenizer()
    assert list(tmp_path.iterdir()) == []
    assert tok("a cat").input_ids[0] == 0                          # built before its files went
    kept = tmp_path / "kept"
    kept.mkdir()
    tiny_clip_tokenizer(directory=kept)
    assert sorted(p.name for p in kept.iterdir()) == ["merges.txt", "vocab.json"]
