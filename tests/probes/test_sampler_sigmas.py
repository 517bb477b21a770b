"""With Karras-sigma multistep solvers the probe's alpha, sigma and x0_pred use the sigma the solver used."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freeinit_lab.core.schedules import NoiseSchedule
from freeinit_lab.probes.probe import LatentProbe
from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline


@pytest.mark.parametrize("name", ["DPMSolverMultistepScheduler", "UniPCMultistepScheduler"])
def test_karras_sigmas_give_the_solvers_own_coefficients(name):
    import diffusers

    pipe = tiny_animatediff_pipeline(seed=0)
    pipe.scheduler = getattr(diffusers, name).from_config(pipe.scheduler.config, use_karras_sigmas=True)
    kw = {**TINY_CALL_KWARGS["AnimateDiffPipeline"], "num_inference_steps": 4}
    with LatentProbe(pipe, capture=("latents_in", "model_output", "x0_pred")) as probe:
        pipe("a cat", generator=torch.Generator().manual_seed(0), output_type="latent", **kw)
    ds = probe.to_xarray().isel(iteration=0)
    karras = pipe.scheduler.sigmas[:4].double().numpy()
    a_true, b_true = 1 / np.sqrt(1 + karras**2), karras / np.sqrt(1 + karras**2)
    np.testing.assert_allclose(ds.alpha.values, a_true, rtol=1e-6)
    np.testing.assert_allclose(ds.sigma.values, b_true, rtol=1e-6)
    grid_a, grid_b = NoiseSchedule.from_scheduler(pipe.scheduler).step_coefficients(ds.timestep.values)
    assert np.abs(grid_b / b_true - 1).max() > 1e-4  # the rounded timestep's training level is not the solver's
    z, m = ds.latents_in.values.astype(np.float64), ds.model_output.values.astype(np.float64)
    shape = (-1,) + (1,) * (z.ndim - 1)
    expected = (z - b_true.reshape(shape) * m) / a_true.reshape(shape)
    np.testing.assert_allclose(ds.x0_pred.values, expected, rtol=1e-4, atol=1e-4)
    assert np.isclose(ds.alpha_bar.values, a_true**2, rtol=1e-6).all()
