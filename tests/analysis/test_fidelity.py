"""fidelity_report: baselines, sensitivity to the differences it claims to measure, and bad input."""

import pytest
import torch

from freeinit_lab.analysis.fidelity import fidelity_gate, fidelity_report, spatial_band_power, temporal_band_power
from freeinit_lab.embedded.world import subject_videos


@pytest.fixture(scope="module")
def ref():
    return subject_videos(96, 8, 16, seed=900_000_123)


@pytest.fixture(scope="module")
def same(ref):
    return subject_videos(32, 8, 16, seed=900_000_456)


def test_same_distribution_passes(ref, same):
    rep = fidelity_report(same, ref, training=subject_videos(32, 8, 16, seed=1))
    assert rep.accuracy_low < 0.6 and rep.accuracy < 0.7
    assert rep.precision > 0.6 and rep.recall > 0.6
    assert abs(rep.spatial_db).max() < 1.5 and abs(rep.temporal_db).max() < 1.5
    assert rep.memorised_fraction == 0.0
    assert fidelity_gate(rep)["passed"]


def test_detects_white_noise_and_frame_shuffling(ref, same):
    noisy = fidelity_report(same + 0.3 * torch.randn(same.shape, generator=torch.Generator().manual_seed(0)), ref)
    assert noisy.accuracy_low > 0.8 and noisy.spatial_db[-1] > 3 and not fidelity_gate(noisy)["passed"]
    shuffled = fidelity_report(same[:, :, torch.randperm(8, generator=torch.Generator().manual_seed(0))], ref)
    # frame order only changes temporal statistics: spatial power is untouched, temporal power is not
    assert abs(shuffled.spatial_db - fidelity_report(same, ref).spatial_db).max() < 1e-9
    assert abs(shuffled.temporal_db).max() > 1.5
    assert shuffled.accuracy_low > 0.7


def test_detects_copies_of_training_videos(ref):
    train = subject_videos(32, 8, 16, seed=5)
    rep = fidelity_report(train.clone(), ref, training=train)
    assert rep.memorised_fraction == 1.0 and rep.memorised_fraction_baseline == 0.0
    assert not fidelity_gate(rep)["passed"]


def test_band_powers_follow_parseval():
    x = torch.randn(4, 3, 8, 16, 16, dtype=torch.float64)
    ps, edges = spatial_band_power(x)
    pt, freqs = temporal_band_power(x)
    # white unit noise: every band has power 1 per bin
    assert torch.allclose(ps[:, 1:].mean(0), torch.ones(ps.shape[1] - 1, dtype=torch.float64), atol=0.25)
    assert len(freqs) == 5 and edges[0] == 0


def test_bad_input(ref, same):
    with pytest.raises(ValueError, match="at least 16 samples"):
        fidelity_report(same[:8], ref)
    with pytest.raises(ValueError, match=r"at least 2 × 32 = 64 reference"):
        fidelity_report(same, ref[:40])
    with pytest.raises(ValueError, match="differ in"):
        fidelity_report(same, subject_videos(64, 8, 8, seed=0))
    bad = same.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        fidelity_report(bad, ref)
    with pytest.raises(ValueError, match=r"\(video, channel"):
        fidelity_report(same[0], ref)
