"""Forward diffusion of every supported scheduler family, against diffusers' own add_noise / scale_noise."""

import math

import diffusers
import numpy as np
import pytest
import torch

from freeinit_lab.schedules import NoiseSchedule, get_schedule

SD = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)


def test_sd_scaled_linear_terminal_alphabar_matches_measured_fact():
    s = get_schedule(diffusers.DDIMScheduler(**SD))
    assert s.family == "ddpm" and s.terminal_timestep == 999
    assert s.alpha[-1] ** 2 == pytest.approx(0.004660, abs=2e-6)
    assert float(s.snr_db(999)) == pytest.approx(-23.30, abs=0.01)
    lin = get_schedule(diffusers.DDIMScheduler(beta_schedule="linear", beta_start=0.00085, beta_end=0.012))
    assert lin.alpha[-1] ** 2 == pytest.approx(0.001579, abs=2e-6)
    assert s.has_terminal_signal and lin.has_terminal_signal


@pytest.mark.parametrize(
    "cls", [diffusers.DDPMScheduler, diffusers.DDIMScheduler, diffusers.PNDMScheduler, diffusers.LCMScheduler]
)
def test_diffuse_equals_diffusers_add_noise(cls):
    sched = cls(**SD)
    s = get_schedule(sched)
    g = torch.Generator().manual_seed(0)
    z0, eps = torch.randn(3, 4, 2, 8, 8, generator=g), torch.randn(3, 4, 2, 8, 8, generator=g)
    t = torch.tensor([0, 500, 999])
    torch.testing.assert_close(s.diffuse(z0, t, eps), sched.add_noise(z0, eps, t), rtol=0, atol=2e-6)
    torch.testing.assert_close(s.diffuse(z0, 999, eps), sched.add_noise(z0, eps, torch.tensor(999)), rtol=0, atol=2e-6)


@pytest.mark.parametrize(
    "cls",
    [
        diffusers.EulerDiscreteScheduler,
        diffusers.EulerAncestralDiscreteScheduler,
        diffusers.HeunDiscreteScheduler,
        diffusers.DPMSolverMultistepScheduler,
        diffusers.UniPCMultistepScheduler,
        diffusers.DEISMultistepScheduler,
    ],
)
def test_sigma_parametrised_schedulers_share_the_ddpm_marginal(cls):
    """These step in sigma = sqrt((1 - abar) / abar) but train on the same q(z_t | z_0)."""
    sched = cls(**SD)
    s = get_schedule(sched)
    abar = sched.alphas_cumprod.double().numpy()
    assert np.allclose(s.alpha, np.sqrt(abar)) and np.allclose(s.sigma, np.sqrt(1 - abar))
    sigma_max = float(np.sqrt((1 - abar[-1]) / abar[-1]))
    # the pipeline multiplies `latents=` by init_noise_sigma; for the Euler family that turns the VP latent
    # a_T z0 + b_T eps into z0 + sigma_T eps, exactly what these schedulers expect at t = T
    # (diffusers uses init_noise_sigma = sigma_max rather than sqrt(sigma_max^2 + 1) for "linspace"/"trailing"
    # spacing: a 0.2 % approximation of its own at sigma_max = 14.6)
    if float(sched.init_noise_sigma) != 1.0:
        assert float(sched.init_noise_sigma) == pytest.approx(math.sqrt(sigma_max**2 + 1), rel=3e-3)
        assert float(sched.init_noise_sigma) * s.alpha[-1] == pytest.approx(1.0, rel=3e-3)


def test_zero_terminal_snr_is_minus_inf_and_has_no_signal():
    ddim = get_schedule(diffusers.DDIMScheduler(rescale_betas_zero_snr=True))
    assert ddim.terminal_snr == 0 and float(ddim.snr_db(999)) == -math.inf
    assert not ddim.has_terminal_signal
    euler = get_schedule(diffusers.EulerDiscreteScheduler(rescale_betas_zero_snr=True))
    assert float(euler.snr_db(999)) < -70 and not euler.has_terminal_signal
    cog = get_schedule(diffusers.CogVideoXDDIMScheduler(rescale_betas_zero_snr=True))
    assert not cog.has_terminal_signal


@pytest.mark.parametrize("shift", [1.0, 3.0, 7.0])
def test_flow_matching_matches_scale_noise_and_has_no_terminal_signal(shift):
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    s = get_schedule(sched)
    assert s.family == "flow" and s.terminal_timestep == pytest.approx(1000.0)
    assert s.terminal_snr == 0 and not s.has_terminal_signal
    g = torch.Generator().manual_seed(1)
    z0, eps = torch.randn(2, 4, 2, 8, 8, generator=g), torch.randn(2, 4, 2, 8, 8, generator=g)
    sched.set_timesteps(10)
    t = sched.timesteps[3]
    ref = sched.scale_noise(z0, t[None], eps)
    torch.testing.assert_close(s.diffuse(z0, float(t), eps), ref, rtol=0, atol=1e-5)


def test_flow_dynamic_shift_needs_explicit_shift():
    sched = diffusers.FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True)
    with pytest.raises(ValueError, match="shift=math.exp"):
        get_schedule(sched)
    s = get_schedule(sched, shift=math.exp(0.8))
    assert s.config["shift"] == pytest.approx(math.exp(0.8))


def test_edm_sigma_schedule_vp_normalised():
    sched = diffusers.EDMEulerScheduler(sigma_min=0.002, sigma_max=80.0)
    s = get_schedule(sched)
    assert s.family == "edm" and s.terminal_timestep == pytest.approx(80.0)
    assert float(s.snr(80.0)) == pytest.approx(1 / 80.0**2, rel=1e-9)
    # times init_noise_sigma, the VP-normalised latent is x0 + sigma * eps
    z0, eps = torch.ones(1, 1, 1, 2, 2), torch.full((1, 1, 1, 2, 2), 0.5)
    z = s.diffuse(z0.double(), 80.0, eps.double()) * sched.init_noise_sigma
    assert torch.allclose(z, z0.double() + 80.0 * eps.double())
    assert s.has_terminal_signal  # -38 dB: a (small) leak


def test_config_dicts_and_pipelines_are_accepted():
    sched = diffusers.DDIMScheduler(**SD)
    from_cfg = get_schedule(sched.config)
    assert np.array_equal(from_cfg.alpha, get_schedule(sched).alpha)
    saved = {**sched.config, "_class_name": "DDIMScheduler"}
    assert get_schedule(saved).scheduler_class == "DDIMScheduler"
    assert NoiseSchedule.from_scheduler(from_cfg) is from_cfg


def test_unsupported_scheduler_error_names_it_and_the_options():
    class MyScheduler:
        config = {"foo": 1}

    with pytest.raises(ValueError, match=r"unsupported scheduler MyScheduler: cannot tell its forward process.*freeinit_lab supports .*alphas_cumprod"):
        get_schedule(MyScheduler())
    with pytest.raises(ValueError, match="cannot tell the scheduler family"):
        get_schedule({"foo": 1})


def test_coefficients_validation_and_interpolation():
    s = get_schedule(diffusers.DDIMScheduler(**SD))
    with pytest.raises(ValueError, match="not integer training timesteps"):
        s.coefficients(10.5)
    with pytest.raises(ValueError, match="outside the training range"):
        s.coefficients(1000)
    flow = get_schedule(diffusers.FlowMatchEulerDiscreteScheduler())
    a, b = flow.coefficients(500.5)
    assert a + b == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one per sample"):
        s.diffuse(torch.zeros(2, 3, 4, 4, 4), [1, 2, 3], torch.zeros(2, 3, 4, 4, 4))
    ds = s.to_dataset()
    assert ds.snr_db.attrs["units"] == "dB" and ds.sizes["timestep"] == 1000


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_x0_from_output_inverts_the_forward_process(prediction_type):
    from diffusers import DDIMScheduler

    schedule = NoiseSchedule.from_scheduler(DDIMScheduler(prediction_type=prediction_type))
    g = torch.Generator().manual_seed(0)
    z0, eps = torch.randn(2, 3, 4, generator=g, dtype=torch.float64), torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    t = 500
    a, b = (float(v) for v in schedule.coefficients(t))
    z_t = schedule.diffuse(z0, t, eps)
    output = {"epsilon": eps, "v_prediction": a * eps - b * z0, "sample": z0}[prediction_type]
    torch.testing.assert_close(schedule.x0_from_output(output, z_t, t, prediction_type).double(), z0,
                               atol=1e-5, rtol=1e-5)


def test_step_coefficients_never_raise():
    from diffusers import DDIMScheduler

    schedule = NoiseSchedule.from_scheduler(DDIMScheduler())
    a, b = schedule.step_coefficients(np.array([np.nan, 0.5, 999.0]))
    assert np.isnan(a[:2]).all() and np.isnan(b[:2]).all()
    np.testing.assert_allclose((a[2], b[2]), [float(v) for v in schedule.coefficients(999)])


# ----------------------------------------------------------------------------------------------------------------
# families by capability, not class name
# ----------------------------------------------------------------------------------------------------------------
class MyFlowMatch(diffusers.FlowMatchEulerDiscreteScheduler):
    pass


class MyEDM(diffusers.EDMEulerScheduler):
    pass


class MyUniPC(diffusers.UniPCMultistepScheduler):
    pass


@pytest.mark.parametrize(
    "sched",
    [
        diffusers.UniPCMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0),
        diffusers.DPMSolverMultistepScheduler(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0),
        MyUniPC(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0),
    ],
    ids=["UniPC", "DPMSolver", "subclass"],
)
def test_flow_sigma_multistep_schedulers_are_read_as_flow_with_their_shift(sched):
    # these carry alphas_cumprod from betas they never use: reading them as DDPM gave a -43 dB gap
    s = get_schedule(sched)
    assert s.family == "flow" and s.config["shift"] == 3.0
    assert s.alpha[-1] == 1 - s.sigma[-1] == 0.0 and not s.has_terminal_signal
    # the coefficients at the scheduler's own timesteps are (1 - sigma, sigma) of the sigmas it samples with
    sched.set_timesteps(8)
    a, b = s.coefficients(sched.timesteps.double())
    sig = sched.sigmas[:-1].double().numpy()
    np.testing.assert_allclose(b, sig, atol=2e-3)
    np.testing.assert_allclose(a + b, 1.0, atol=1e-12)


def test_subclasses_of_flow_and_edm_schedulers_are_recognised():
    flow = get_schedule(MyFlowMatch(shift=3.0))
    ref = get_schedule(diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0))
    assert flow.family == "flow" and flow.scheduler_class == "MyFlowMatch"
    np.testing.assert_array_equal(flow.sigma, ref.sigma)
    edm = get_schedule(MyEDM(sigma_min=0.002, sigma_max=80.0))
    assert edm.family == "edm" and edm.terminal_timestep == pytest.approx(80.0)
    np.testing.assert_array_equal(edm.alpha, get_schedule(diffusers.EDMEulerScheduler()).alpha)


def test_saved_configs_of_user_classes_are_read_by_their_keys():
    unipc = {**MyUniPC(use_flow_sigmas=True, flow_shift=5.0).config, "_class_name": "MyUniPC"}
    assert get_schedule(unipc).family == "flow" and get_schedule(unipc).config["shift"] == 5.0
    ddim = {**diffusers.DDIMScheduler(**SD).config, "_class_name": "MyDDIM"}
    s = get_schedule(ddim)
    assert s.family == "ddpm" and s.scheduler_class == "MyDDIM"
    np.testing.assert_array_equal(s.alpha, get_schedule(diffusers.DDIMScheduler(**SD)).alpha)
    edm = {**MyEDM().config, "_class_name": "MyEDM"}
    assert get_schedule(edm).family == "edm"


def test_flow_sigmas_with_dynamic_shifting_needs_explicit_shift():
    sched = diffusers.UniPCMultistepScheduler(use_flow_sigmas=True, use_dynamic_shifting=True)
    with pytest.raises(ValueError, match="shift=math.exp"):
        get_schedule(sched)
    assert get_schedule(sched, shift=2.0).config["shift"] == 2.0


def test_unknown_forward_processes_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="TrigFlow"):
        get_schedule(diffusers.SCMScheduler())
    with pytest.raises(ValueError, match="no `alphas_cumprod`.*scale_noise.*sigma_data"):
        get_schedule(diffusers.IPNDMScheduler())


def test_diffuse_refuses_integer_latents_instead_of_truncating_the_coefficients():
    """The coefficients are cast to z0's dtype: for an integer z0, a_T = 0.068 and b_T = 0.998 became 0 and 0 and
    the 'noisy latent' was silently all zeros."""
    sched = get_schedule(diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012))
    with pytest.raises(TypeError, match="floating"):
        sched.diffuse(torch.ones(2, 3, dtype=torch.int64), 999, torch.zeros(2, 3))
    with pytest.raises(TypeError, match="floating"):
        sched.diffuse(torch.ones(2, 3, dtype=torch.bool), 999, torch.zeros(2, 3))
    # floating latents as before, in their own dtype
    out = sched.diffuse(torch.ones(2, 3, dtype=torch.float16), 999, torch.zeros(2, 3))
    assert out.dtype == torch.float16 and float(out[0, 0]) > 0


@pytest.mark.parametrize("shift", [float("inf"), float("nan"), -1.0, 0.0])
def test_flow_shift_must_be_positive_and_finite(shift):
    """shift=inf gave a schedule of NaN coefficients (inf / inf) without a word."""
    with pytest.raises(ValueError, match="shift"):
        get_schedule(diffusers.FlowMatchEulerDiscreteScheduler(), shift=shift)


@pytest.mark.parametrize("t", [float("nan"), float("inf"), [500.0, float("nan")], torch.tensor([float("nan")])])
@pytest.mark.parametrize("sched", [diffusers.DDIMScheduler(**SD), diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0),
                                   diffusers.EDMEulerScheduler()], ids=["ddpm", "flow", "edm"])
def test_coefficients_refuse_non_finite_timesteps_for_every_family(sched, t):
    """A NaN timestep passed the flow/EDM range check (NaN < lo is False) and interpolated to NaN coefficients."""
    with pytest.raises(ValueError, match="not finite"):
        get_schedule(sched).coefficients(t)


def test_a_schedule_built_by_hand_is_checked_when_built():
    """The docs suggest NoiseSchedule(family, timesteps, alpha, sigma) for other forward processes. A grid in a
    sampler's order (decreasing) made T = 0 and failed later as 'outside the training range [999, 0]'; a short
    alpha raised IndexError at the first lookup, lists an AttributeError, and family 'vp' was interpolated
    between integer timesteps as a continuous family. Each is refused when built; lists are read as arrays."""
    s = get_schedule(diffusers.DDIMScheduler(**SD))
    t, a, b = s.timesteps, s.alpha, s.sigma
    with pytest.raises(ValueError, match="strictly increase.*reverse"):
        NoiseSchedule("ddpm", t[::-1], a[::-1], b[::-1])
    with pytest.raises(ValueError, match="one entry per timestep"):
        NoiseSchedule("ddpm", t, a[:-1], b)
    with pytest.raises(ValueError, match="family='vp'"):
        NoiseSchedule("vp", t, a, b)
    with pytest.raises(ValueError, match="NaN or inf"):
        NoiseSchedule("ddpm", t, np.where(t == 5, np.nan, a), b)
    with pytest.raises(ValueError, match=">= 0"):
        NoiseSchedule("ddpm", t, -a, b)
    with pytest.raises(ValueError, match="1-D"):
        NoiseSchedule("ddpm", t[None], a[None], b[None])
    listed = NoiseSchedule("ddpm", t.tolist(), a.tolist(), torch.from_numpy(b))
    assert listed.terminal_snr == s.terminal_snr and isinstance(listed.alpha, np.ndarray)
