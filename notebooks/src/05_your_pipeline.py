# %% [markdown]
# # 05 · Your own pipeline: probes, band SNR and FreeInit on any diffusers video pipeline
#
# Everything the other notebooks measure on the embedded default, on **your** diffusers video pipeline
# (AnimateDiff, TextToVideoSD/ModelScope, CogVideoX, Wan, … — anything that takes `latents=` and
# `output_type="latent"`): a `LatentProbe` record of every denoising step, the band-wise SNR of the training
# $z_T$ built from the clean latent your pipeline produces, FreeInit around the unmodified pipeline, and the
# low/high-frequency noise swap.
#
# **How to use it.** Set `PIPELINE` in the parameter cell to a hub id or a local folder (plus `PIPELINE_CLASS` /
# `MOTION_ADAPTER` for AnimateDiff), `DEVICE = "cuda"`, `DTYPE = "float16"`, a prompt, 25 steps and your video size;
# a GPU is recommended. Weights are only read from a local folder or the hub cache while `HF_HUB_OFFLINE=1`; unset it
# to let diffusers download.
#
# **In CI (the default `PIPELINE = None`) this notebook runs on a tiny AnimateDiff pipeline with RANDOM weights**
# built in code by `freeinit_lab.testing` — nothing is downloaded. Random weights produce noise, not videos.
#
# **What this notebook checks, and what it does not.** It makes no claim about the model: with random weights there
# is no model to make one about, and on your weights one video per measurement is no evidence. What it *does* check
# is that the toolkit works on your pipeline, with one library call, `fl.check_pipeline` (section 1): the probe's
# record has the right axes and steps, the probe does not change the output, FreeInit with one pass is the
# pipeline's own run, each FreeInit pass costs one plain run, every pass is finite. Those are properties of the
# toolkit that must hold for *any* weights (unit-tested in `tests/probes/test_pipeline_check.py`, including that the
# check fails on a probe or a pipeline that changes the result); `fl.check_pipeline` raises, naming the failed check
# and its fix, before you measure anything on a pipeline where they do not hold. The numbers shown afterwards (band
# SNR, follow fractions, the decomposition's shares with their paired bootstrap intervals) are **shown, not
# claimed**: on random weights they say nothing about the paper's findings; for those, see notebooks 01–04 on the
# trained default, or run this one on real weights with enough videos (section 6).

# %% tags=["parameters"]
PIPELINE = None            # None: tiny random-weight AnimateDiff (CI); else a hub id or local folder, e.g. "emilianJR/epiCRealism"
PIPELINE_CLASS = None      # diffusers class name, e.g. "AnimateDiffPipeline"; None: DiffusionPipeline picks it
MOTION_ADAPTER = None      # AnimateDiff only: hub id / folder, e.g. "guoyww/animatediff-motion-adapter-v1-5-2"
DEVICE = "cpu"             # "cuda" recommended for real models
DTYPE = "float32"          # "float16" on GPU
PROMPT = "a panda surfing"
NUM_INFERENCE_STEPS = 4    # 25 for a real model
NUM_FRAMES = None          # None: the tiny pipeline's size (8 frames, 32×32) or your pipeline's default
HEIGHT = None
WIDTH = None
GUIDANCE_SCALE = 1.0       # 7.5 for a real text-to-video model
SEED = 0                   # every random draw of this notebook (noises, decomposition, bootstrap)
NUM_ITERS = 3              # FreeInit passes including the plain first one
METHOD, D_S, D_T = "butterworth", 0.25, 0.25
SWAP_KEEP = 0.2            # noise swap: share of FFT bins from noise A
NUM_BANDS = 6
DECOMP_VIDEOS = 8          # paired videos per arm of the FreeInit decomposition (32-64 on a real model)
DECOMP_STEPS = 2           # sampler steps per pass of the decomposition (your model's usual count on a GPU)

# %%
import time

import numpy as np
import pandas as pd
import torch

import freeinit_lab as fl
from freeinit_lab import analysis, plots
from freeinit_lab.report import record, save_figure
from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline

t_start = time.perf_counter()
dtype = getattr(torch, DTYPE)
pipe, RANDOM_WEIGHTS = None, True
if PIPELINE is not None:
    try:
        import diffusers

        cls = getattr(diffusers, PIPELINE_CLASS) if PIPELINE_CLASS else diffusers.DiffusionPipeline
        extra = {"motion_adapter": diffusers.MotionAdapter.from_pretrained(MOTION_ADAPTER, torch_dtype=dtype)} if MOTION_ADAPTER else {}
        pipe = cls.from_pretrained(PIPELINE, torch_dtype=dtype, **extra).to(DEVICE)
        fl.get_layout(pipe)  # raises when freeinit_lab does not know the pipeline's latent layout
        RANDOM_WEIGHTS = False
    except Exception as exc:  # a missing model, dependency or layout: explain, then continue on the tiny pipeline
        print(f"Could not use PIPELINE={PIPELINE!r} ({type(exc).__name__}: {str(exc)[:400]})\n"
              "  - a hub id needs network access (unset HF_HUB_OFFLINE) or a copy in the hub cache; a folder needs "
              "model_index.json (save_pretrained layout)\n"
              "  - AnimateDiff needs PIPELINE_CLASS='AnimateDiffPipeline' and MOTION_ADAPTER; a dependency error "
              "names the package to pip install\n"
              "  - an unknown pipeline class needs freeinit_lab.register_layout(...) for its latent layout\n"
              "FALLING BACK to the tiny random-weight AnimateDiff pipeline.")
        pipe = None
if pipe is None:
    pipe = tiny_animatediff_pipeline(seed=0)
    call = dict(TINY_CALL_KWARGS["AnimateDiffPipeline"], num_inference_steps=NUM_INFERENCE_STEPS)
else:
    call = {"num_inference_steps": NUM_INFERENCE_STEPS, "guidance_scale": GUIDANCE_SCALE}
call.update({k: v for k, v in dict(num_frames=NUM_FRAMES, height=HEIGHT, width=WIDTH).items() if v is not None})
call["guidance_scale"] = GUIDANCE_SCALE
pipe.set_progress_bar_config(disable=True)
layout = fl.get_layout(pipe)
print(("RANDOM WEIGHTS (tiny test pipeline, not a real model) — " if RANDOM_WEIGHTS else "") +
      f"{type(pipe).__name__} on {DEVICE}/{DTYPE}, scheduler {type(pipe.scheduler).__name__}, latent layout {layout.dims}, "
      f"call {call}")

# %% [markdown]
# ## 1. Does the toolkit work on this pipeline?
# `fl.check_pipeline` runs the pipeline once under a `LatentProbe` (the latent after every scheduler step and the
# model's clean prediction $\hat x_0$, as labelled xarray data in the canonical order (batch, channel, frame,
# height, width), whatever the pipeline's own order), FreeInit with one pass, and FreeInit with `NUM_ITERS` passes
# under a probe, all from the same generator (`SEED`), and checks what the toolkit must do on any pipeline. It raises
# `fl.PipelineCheckError`, naming each failed check and its fix, if one fails; otherwise it prints its report and
# hands back the runs it made, which the sections below use (nothing is sampled twice). Tolerances: `1e-5`
# (relative and absolute) in float32, `1e-3` in float16.

# %%
tol = 1e-5 if DTYPE == "float32" else 1e-3
check = fl.check_pipeline(pipe, settings=dict(num_iters=NUM_ITERS, method=METHOD, d_s=D_S, d_t=D_T), seed=SEED,
                          generator_device=DEVICE, rtol=tol, atol=tol, prompt=PROMPT, **call)
print(check)
# the one finding this notebook states about your pipeline: the probe and FreeInit work on it (false for a pipeline
# whose scheduler, latents or callbacks the toolkit reads wrongly; check_pipeline raises before this on a failure)
assert check.passed, check
rec, plain, res, fi_rec = check.record, check.plain_latents, check.freeinit, check.freeinit_record
canon = layout.to_canonical(plain).detach().float().cpu()
record("latent_shape", str(tuple(canon.shape)), "canonical (batch, channel, frame, height, width) latent of the run")
record("pipeline_check_denoiser_evals", check.num_denoiser_evals,
       "denoiser evaluations of fl.check_pipeline (plain run, FreeInit with 1 and with NUM_ITERS passes)")
rec

# %%
plots.band_trajectory_figure(analysis.band_power_trajectory(rec, "x0_pred", num_bands=NUM_BANDS),
                             title="band power of the predicted clean latent x̂0 per step" + (" (RANDOM WEIGHTS)" if RANDOM_WEIGHTS else ""))

# %% [markdown]
# ## 2. The initialization gap of your pipeline's schedule
# The training $z_T = a_T z_0 + b_T\varepsilon$ for the clean latent this run produced (the pipeline's own output,
# `output_type="latent"`), band by band, next to inference's pure-noise $z_T$. With random weights $z_0$ is not a
# video, so the dB values are bookkeeping only; on a real model pass VAE latents of real clips to `fl.band_snr` for
# the paper's measurement (notebook 01). Zero-terminal-SNR and flow-matching schedules show $-\infty$ at $T$: no gap.
# Units: dB of the band's mean signal power per FFT bin ($a_T^2 |\hat z_0|^2$) over the noise's ($b_T^2$), ortho-normalised
# 3-D FFT over (frame, height, width), bands = radial shells of normalised frequency (Nyquist = 1).

# %%
schedule = fl.get_schedule(layout.get_scheduler(pipe))
snr = fl.band_snr(canon, schedule, num_bands=NUM_BANDS)
gap = fl.initialization_gap(canon, schedule, num_bands=NUM_BANDS)
display(pd.DataFrame(gap.values.round(2), index=[f"band {k}" for k in gap.band.values], columns=gap.source.values))
fig = plots.band_snr_figure(snr, title=f"band SNR of the training z_t from this run's clean latent — {schedule.scheduler_class}"
                            + (" (RANDOM WEIGHTS)" if RANDOM_WEIGHTS else ""))
save_figure(fig, "05_band_snr_your_pipeline")

# %%
at_T = gap.sel(source="training z_T")
record("band0_snr_at_T_db", float(at_T.isel(band=0)), "lowest band's SNR of the training z_T from this run's clean latent")
record("terminal_snr_db", float(10 * np.log10(schedule.terminal_snr)) if schedule.terminal_snr > 0 else float("-inf"),
       "whole-signal SNR a_T^2/b_T^2 of the schedule at T")

# %% [markdown]
# ## 3. FreeInit around the unmodified pipeline
# The `NUM_ITERS`-pass FreeInit run of section 1 (its checks passed there): the band SNR of each pass's initial
# latent (dB, the convention of section 2; pass 0 is pure noise, $-\infty$), its denoiser evaluations and the
# share of its wall time spent in FreeInit's own code rather than in the pipeline. Shown, not claimed: one video.

# %%
res_snr = res.band_snr(NUM_BANDS)
display(pd.DataFrame(res_snr.values.round(2), index=[f"pass {i}" for i in res_snr.iteration.values],
                     columns=[f"band {k}" for k in res_snr.band.values]))
print(res)
print(f"{fi_rec.sizes['iteration']} passes in the probe's record, {res.num_denoiser_evals} denoiser evaluations")
record("freeinit_denoiser_evals", res.num_denoiser_evals, f"denoiser evaluations of FreeInit with {NUM_ITERS} passes")
record("freeinit_overhead_share", res.overhead_share, "share of FreeInit's wall time spent outside the pipeline calls")

# %% [markdown]
# ## 4. The noise swap on your pipeline
# Noise $A$, noise $B$ and `mix` = the lowest `SWAP_KEEP` share of $A$'s spectrum + the rest of $B$'s (one call each,
# since a prompt pipeline ties its batch to the prompt). The follow fraction says how much of each band of the mix's
# result is $A$'s (1) or $B$'s (0). By construction the noise itself follows $A$ in the low band and $B$ in the top
# band (a property of the mask, unit-tested); what the **result** does is the paper's second finding — meaningful on
# real weights only, and there with many noise pairs and an interval (notebook 02 measures it as a distance ratio).

# %%
g = torch.Generator().manual_seed(SEED + 1)
noise_a, noise_b = torch.randn(canon.shape, generator=g), torch.randn(canon.shape, generator=g)
swap = analysis.noise_swap_sweep(pipe, noise_a.to(dtype), noise_b.to(dtype), keep=(SWAP_KEEP,), batched=False,
                                 prompt=PROMPT, num_bands=NUM_BANDS, **call)
swap_table = pd.DataFrame({"initial noise": swap.follow_noise.isel(cutoff=0).mean("batch").values,
                           "result": swap.follow_latents.isel(cutoff=0, step=-1).mean("batch").values},
                          index=[f"band {k}" for k in swap.band.values]).T.round(3)
display(swap_table)
print(f"RMS(result(mix) - result(A)) = {float(swap.dist_a.mean()):.4f}, RMS(result(mix) - result(B)) = "
      f"{float(swap.dist_b.mean()):.4f}" + ("   (RANDOM WEIGHTS: no finding)" if RANDOM_WEIGHTS else ""))

# %%
record("swap_result_band0_follow_a", float(swap.follow_latents.isel(cutoff=0, step=-1, band=0).mean()),
       "lowest band of the mix's result following noise A" + (" (random weights)" if RANDOM_WEIGHTS else ""))

# %% [markdown]
# ## 5. When does each band of the prediction lock in?
# Relative band error of $\hat x_0$ against its final value per step, and the first step after which it stays below
# 10 %. On real models the lowest band locks in first (notebook 02); with random weights the numbers carry no meaning.
# (Shown, not asserted: one video at a few steps gives no interval, and the order of lock-in is a property of the
# model, which random weights do not have.)

# %%
err = analysis.band_error_trajectory(rec, "x0_pred", num_bands=NUM_BANDS)
lock = analysis.lock_in_step(err, tol=0.1, band=None)
display(pd.DataFrame({"lock-in step": lock.isel(iteration=0).mean("batch").values}, index=[f"band {k}" for k in lock.band.values]).T)

# %% [markdown]
# ## 6. How much of FreeInit's effect on your model is its low-frequency mechanism?
# FreeInit changes three things at once: it gives the initial latent a data-like low band, this video's *own* low
# band, and — with a soft mask — less power (a bin mixing two unit-variance inputs has variance
# $H^2 + (1-H)^2 < 1$). `fl.decompose_freeinit` runs plain sampling, FreeInit and controls from the same initial
# noises (and the same fresh noise $\eta$ where they mix): `mask_only` is FreeInit's mix with the clean signal left
# out (the variance change alone), `amplitude_matched` plain noise scaled band by band to the training $z_T$'s power,
# `shuffled_low` FreeInit keeping *another* video's low band, plus FreeInit with fresh diffusion noise, the
# variance-preserving mix and the reference codes' ideal filter. For each control and metric,
# `explained` = (control − plain) / (FreeInit − plain) with a paired bootstrap interval over videos: a control near 1
# reproduces FreeInit's effect without FreeInit's mechanism. **With random weights these shares mean nothing**; on a
# real model use 32–64 videos and its usual step count.

# %%
decomp_call = {k: v for k, v in call.items() if k != "num_inference_steps"}
decomp = fl.decompose_freeinit(pipe, num_videos=DECOMP_VIDEOS, seed=SEED, num_iters=2, method=METHOD, d_s=D_S,
                               d_t=D_T, prompt=PROMPT, num_inference_steps=DECOMP_STEPS, progress=False, **decomp_call)
display(fl.decomposition_table(decomp, ["consistency", "dynamics", "contrast", "band_power_0"]))
fig = fl.decomposition_figure(decomp, ["consistency", "dynamics", "contrast", "band_power_0", "band_power_1"],
                              title="share of FreeInit's effect each control reproduces"
                              + (" (RANDOM WEIGHTS)" if RANDOM_WEIGHTS else ""))
save_figure(fig, "05_decomposition_your_pipeline")

# %%
level = f"{decomp.attrs['confidence']:.0%}"
nonfinite = [v for v in ("consistency", "dynamics", "contrast", "band_power") if not bool(np.isfinite(decomp[v]).all())]
print(f"non-finite metrics: {nonfinite or 'none'}")
eff = decomp.effect.sel(arm="freeinit", metric="consistency")
lo, hi = (float(decomp[v].sel(arm="freeinit", metric="consistency")) for v in ("effect_low", "effect_high"))
print(f"FreeInit − plain, consistency (first-frame cosine of mean-removed latent frames, paired mean over "
      f"{decomp.sizes['video']} videos): {float(eff):+.3f}, {level} paired bootstrap [{lo:+.3f}, {hi:+.3f}]"
      + ("   (RANDOM WEIGHTS: no finding)" if RANDOM_WEIGHTS else ""))
for c in decomp.control.values:
    e, l, h = (float(decomp[v].sel(control=c, metric="consistency")) for v in ("explained", "explained_low", "explained_high"))
    print(f"  {c:20s} reproduces {e:+.2f} [{l:+.2f}, {h:+.2f}] of it")
record("decomposition_freeinit_consistency_effect", float(eff),
       f"FreeInit − plain consistency, {level} paired bootstrap [{lo:.3f}, {hi:.3f}]" + (" (random weights)" if RANDOM_WEIGHTS else ""))
record("decomposition_mask_only_explained_consistency", float(decomp.explained.sel(control="mask_only", metric="consistency")),
       "share of FreeInit's consistency change reproduced by the mask alone" + (" (random weights)" if RANDOM_WEIGHTS else ""))

# %%
# sampler steps × videos run here: the check's runs, the swap's three, and the decomposition's passes (an arm of
# several passes reuses the plain pass, shared by every arm)
decomp_steps = DECOMP_VIDEOS * DECOMP_STEPS * int(sum(p - 1 if p > 1 else p for p in decomp.passes.values.tolist()))
video_steps = (1 + 1 + NUM_ITERS) * NUM_INFERENCE_STEPS + 3 * NUM_INFERENCE_STEPS + decomp_steps
record("your_pipeline_video_steps", video_steps, "sampler steps x videos of this notebook")
seconds = record("your_pipeline_seconds", time.perf_counter() - t_start, "wall time of this notebook's work")
print(f"{video_steps} video-steps ({check.num_denoiser_evals} denoiser evaluations in the check), {seconds:.1f} s")

# %% [markdown]
# ## Summary
# - **The toolkit on this pipeline** (checked, section 1): `fl.check_pipeline` passed — the probe's record has the
#   canonical axes and one step per scheduler step, it ends at the pipeline's own output and leaves that output
#   unchanged, FreeInit with one pass reproduces the pipeline's run, each FreeInit pass costs one plain run of
#   denoiser evaluations, and every pass is finite (its report above gives the measured differences). These hold
#   for any weights; they are what lets you trust the records and runs of this notebook on your model.
# - **Measurements** (shown, not claimed): the band SNR of the training $z_T$ from this run's clean latent, the
#   per-pass band SNR of FreeInit's initial latents, the noise swap's follow fractions, the lock-in steps, and
#   `fl.decompose_freeinit`'s FreeInit effect with the share each control reproduces (paired bootstrap intervals
#   over videos, level printed above). A share whose interval covers 1 means that control alone does what FreeInit
#   does; one whose interval covers 0 means it does none of it.
# - With the default `PIPELINE = None` all of this ran on **random weights**: the toolkit's behaviour on the
#   pipeline is checked, the findings are not (what the swap and the decomposition measure here, narrow interval or
#   wide, is a property of random weights, and it changes with `SEED`). Set `PIPELINE` (and a GPU), 32–64 videos and your model's step count to measure them on your model;
#   even then a claim needs an interval over many videos, as notebooks 01–04 make on the trained default.
