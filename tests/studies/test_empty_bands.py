"""Studies that measure band power refuse a band grid with an empty band before they sample anything."""

import pytest
import torch

import freeinit_lab as fl
from freeinit_lab.core.spectral import band_counts, default_band_edges
from freeinit_lab.studies import noise_swap as ns
from freeinit_lab.studies.refinement import refinement_study
from freeinit_lab.studies.strategies import InitStrategy, TerminalMarginal, evaluate_strategies

GRID = (3, 6, 9)  # default edges: 6 bands leave band 1 empty, 5 do not


@pytest.fixture(scope="module")
def pipe():
    return fl.load_analytic_pipeline(num_frames=GRID[0], height=GRID[1], width=GRID[2])


def _videos(pipe, n, s=0):
    return torch.randn(n, *pipe.sample_shape, generator=torch.Generator().manual_seed(s)).clamp(-1, 1)


STUDIES = {
    "decompose_freeinit": lambda p: fl.decompose_freeinit(p, num_videos=8, num_bootstrap=200, num_inference_steps=2,
                                                          progress=False, controls=["mask_only"]),
    "evaluate_strategies": lambda p: evaluate_strategies(
        p, [InitStrategy("plain")], data=_videos(p, 4), marginal=TerminalMarginal.from_latents(_videos(p, 4), p.scheduler),
        num_videos=2, num_inference_steps=2),
    "refinement_study": lambda p: refinement_study(p, num_videos=2, num_inference_steps=2, num_iters=2,
                                                   filters=("gaussian",), reference=lambda n, s: _videos(p, n, s)),
    "noise_swap_sweep": lambda p: ns.noise_swap_sweep(p, _videos(p, 1, 1), _videos(p, 1, 2), keep=(0.2,), capture=(),
                                                      num_inference_steps=2),
    "noise_swap_experiment": lambda p: ns.noise_swap_experiment(p, _videos(p, 1, 1), _videos(p, 1, 2),
                                                                capture=("latents",), num_inference_steps=2),
}


def test_the_grid_has_an_empty_default_band():
    assert (band_counts(GRID, default_band_edges(GRID, 6)) == 0).any()
    assert (band_counts(GRID, default_band_edges(GRID, 5)) > 0).all()


@pytest.mark.parametrize("name", list(STUDIES))
def test_an_empty_band_is_refused_before_sampling(pipe, name, refused_before_sampling):
    """On a 3x6x9 latent the default 6 bands leave band 1 empty: the studies used to sample every pass and then
    fail in band_power; they now refuse first, naming the study and the most bands the grid allows."""
    refused_before_sampling(pipe, STUDIES[name], rf"{name}: bands \[1\] of 6 hold no frequency bin.*num_bands=5 or fewer")
