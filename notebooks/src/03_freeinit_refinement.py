# %% [markdown]
# # 03 · FreeInit, iteration by iteration
#
# **Claims** (FreeInit, Wu et al. 2023, §4 and its ablations), each measured on the embedded default
# (`fl.load_default_pipeline()`, its stored sampler) beside the controls that could explain it away:
# 1. Temporal consistency rises with FreeInit iterations, the **biggest jump at the first iteration**.
# 2. It does so because the reinitialised latent carries the **low-frequency signal** of the previous sample
#    (not merely because the mix changes the noise's variance, or rescales its spectrum), and it is the video's
#    **own** signal that matters (not any video's low band of the same power: arm `shuffled_low`).
# 3. The **Gaussian filter beats the ideal** one — here the paper's ideal filter, i.e. the reference codes'
#    threshold $d^2 \le 2 d_s$ (arm `legacy_ideal`), not the corrected $d^2 \le d_s^2$, which keeps almost nothing.
# 4. FreeInit moves samples towards what an **oracle initialisation** gives: $z_T$ from the training marginal
#    (here: its last pass goes past the oracle's consistency; the oracle's own gain is printed).
#
# **One paired experiment** (`fl.decompose_freeinit`): `NUM_VIDEOS` seeded noises $\varepsilon$; every arm starts
# from the same $\varepsilon$ and mixes in the same fresh noises $\eta$:
#
# | arm | initial latent | isolates |
# |---|---|---|
# | `plain` | $\varepsilon$ | baseline (pass 0) |
# | `freeinit` | $\mathrm{lowpass}(a_T x_0 + b_T\varepsilon) + \mathrm{highpass}(\eta)$, Gaussian $D_0 = 0.25$, chained over passes | — |
# | `shuffled_low` | the same, but $x_0$ of **another** video of the batch (a derangement), chained | this video's own content |
# | `legacy_ideal` | the same with the reference codes' ideal filter, chained for `LEGACY_PASSES` passes | the filter |
# | `mask_only` | $\mathrm{lowpass}(b_T\varepsilon) + \mathrm{highpass}(\eta)$: the mix without the signal | variance change |
# | `amplitude_matched` | $\varepsilon$ rescaled band by band to the training $z_T$'s power | spectrum, no signal |
# | `oracle` | $a_T x_0 + b_T\varepsilon$ with held-out training videos $x_0$ | a perfect start |
#
# `legacy_ideal` stops after one iteration by default (`LEGACY_PASSES = 2`, via `control_iters`): the filter claim
# is decided there (section 1), and its three later passes paid for the `shuffled_low` chain. Section 3 also
# samples the **exact-score model** of the same data (`fl.load_default_analytic_pipeline()`, the exact MMSE
# denoiser of a Gaussian fit, same sampler) from the same noises: what a perfect model of a Gaussian version of
# these data would put into FreeInit's reinitialised latent.
#
# **Conventions.** Model space (per-channel unit variance). Consistency: first-frame cosine similarity of
# mean-removed frames (1 = static; the paper's pairing, on model-space videos instead of DINO features).
# Intervals: 99 % paired percentile bootstrap over videos (`fl.bootstrap_interval`). Band power: mean power per bin
# of an ortho-normalised 3D FFT over (frame, height, width), unit white noise = 1, radial bands of the normalised
# frequency radius (Nyquist = 1).

# %% tags=["parameters"]
SEED = 0                   # noises, eta draws and held-out reference videos all derive from it
NUM_VIDEOS = 28            # paired videos per arm: with 16, claims with a per-video SD about 0.09 missed their 99 %
                           # intervals at some seeds (the oracle's gain at seed 1, on these weights with DDIM 25)
NUM_ITERS = 5              # passes of the chained arms (1 plain + 4 FreeInit iterations, the paper's main table)
METHOD = "gaussian"        # the paper's main table: Gaussian filter, D0 0.25
D_S = 0.25                 # spatial cut-off (normalised frequency)
D_T = 0.25                 # temporal cut-off
LEGACY_PASSES = 2          # passes of legacy_ideal (1 plain + 1 iteration): the filter claim is decided after one
                           # iteration; its later passes (NUM_ITERS - 2 chained passes x NUM_VIDEOS) paid for shuffled_low
CONTROLS = ("legacy_ideal", "shuffled_low", "mask_only", "amplitude_matched")
FIT_VIDEOS = 64            # held-out videos the exact-score model of section 3 is fitted to (x 8 flips)
NUM_BANDS = 6
CONFIDENCE = 0.99

# %%
import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

import freeinit_lab as fl
from freeinit_lab.studies.decomposition import decomposition_noises, paired_bootstrap, two_sample_interval
from freeinit_lab.viz.report import record, save_figure

t_start = time.perf_counter()
if NUM_ITERS < 3:  # the pass-by-pass claims compare the first iteration with later ones: none to compare with
    raise ValueError(f"NUM_ITERS = {NUM_ITERS}: this notebook compares FreeInit's first iteration with later ones "
                     "and the chained passes with the controls; use NUM_ITERS >= 3 (1 plain pass + 2 iterations)")
if not 2 <= LEGACY_PASSES <= NUM_ITERS:
    raise ValueError(f"LEGACY_PASSES = {LEGACY_PASSES}: the legacy ideal filter runs 1 plain pass and at least one "
                     f"iteration, at most FreeInit's NUM_ITERS; use 2 .. {NUM_ITERS}")
pipe = fl.load_default_pipeline()
pipe.set_progress_bar_config(disable=True)
reference = fl.default_training_videos(NUM_VIDEOS, seed=900_000_000 + SEED)  # held out: never used in training
ds = fl.decompose_freeinit(pipe, num_videos=NUM_VIDEOS, seed=SEED, num_iters=NUM_ITERS, method=METHOD, d_s=D_S,
                           d_t=D_T, controls=list(CONTROLS), reference=reference, oracle=True, keep_latents=True,
                           # amplitude_matched's target: fitted on other held-out videos than the oracle's and the data's
                           amplitude_reference=fl.default_training_videos(NUM_VIDEOS, seed=910_000_000 + SEED),
                           control_iters={"legacy_ideal": LEGACY_PASSES}, confidence=CONFIDENCE,
                           progress=False)  # the tables' intervals: CONFIDENCE, as labelled
video_steps = int(ds.passes.sum() - (ds.passes > 1).sum()) * NUM_VIDEOS * pipe.default_num_inference_steps
print(f"{time.perf_counter() - t_start:.0f} s; {video_steps} video-steps; arms {ds.arm.values.tolist()}, passes "
      f"{ds.passes.values.tolist()}")

# %%
shape3 = pipe.sample_shape[1:]
H_gauss = fl.lowpass_filter(shape3, METHOD, D_S, D_T)
H_legacy = fl.lowpass_filter(shape3, "ideal", D_S, D_T, legacy_ideal_threshold=True)
H_ideal = fl.lowpass_filter(shape3, "ideal", D_S, D_T)
n_bins = int(np.prod(shape3))
print(f"FFT bins per channel: {n_bins}; sum of H: Gaussian {float(H_gauss.sum()):.0f}, paper's (legacy) ideal "
      f"{float(H_legacy.sum()):.0f}, corrected ideal {float(H_ideal.sum()):.0f}")

# %% [markdown]
# ## 1 · Consistency, pass by pass
# Mean over videos after every pass of the chained arms (pass 0 = plain sampling, shared; `legacy_ideal` up to its
# last pass), with the one-pass arms as horizontal lines and the held-out data's consistency (dotted).

# %%
pc = ds.pass_consistency
fig = go.Figure()
for arm, color in (("freeinit", "#1f77b4"), ("shuffled_low", "#2ca02c"), ("legacy_ideal", "#d62728")):
    n_pass = int(ds.passes.sel(arm=arm))
    v = pc.sel(arm=arm).values[:n_pass]                         # (pass, video): the passes the arm ran
    m, lo, hi = fl.bootstrap_interval(v, CONFIDENCE, seed=SEED)
    fig.add_trace(go.Scatter(x=ds["pass"].values[:n_pass], y=m, name=arm, mode="lines+markers", line={"color": color},
                             error_y={"type": "data", "symmetric": False, "array": hi - m, "arrayminus": m - lo}))
for arm, dash in (("mask_only", "dash"), ("amplitude_matched", "dashdot"), ("oracle", "longdash")):
    fig.add_hline(y=float(ds.consistency.sel(arm=arm).mean()), line_dash=dash, annotation_text=arm)
fig.add_hline(y=float(ds.reference_consistency.mean()), line_dash="dot", annotation_text="held-out data")
fig.update_layout(title=f"consistency after each pass (mean over {NUM_VIDEOS} videos, {CONFIDENCE:.0%} paired "
                        "bootstrap intervals)", xaxis_title="pass (0 = plain sampling)",
                  yaxis_title="first-frame cosine (model space)", template="plotly_white")
save_figure(fig, "03_freeinit_per_iteration")

# %% [markdown]
# **Gains per iteration**, paired per video: pass $k$ minus pass $k-1$, the cumulative gain over plain sampling,
# FreeInit minus `shuffled_low` (its own low band against another video's) and minus the legacy ideal filter at
# the same pass, with 99 % intervals ("—": the legacy arm stopped before that pass).

# %%
def interval_text(x):
    m, lo, hi = fl.bootstrap_interval(x, CONFIDENCE, seed=SEED)
    return f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]"


c = {arm: pc.sel(arm=arm).values for arm in ("freeinit", "shuffled_low", "legacy_ideal")}   # (pass, video)
LEGACY_LAST = LEGACY_PASSES - 1                                             # the legacy arm's last pass
gains = np.diff(c["freeinit"], axis=0)                                      # (iteration, video)
pd.DataFrame({
    "FreeInit: pass k − pass k−1": [interval_text(gains[k - 1]) for k in range(1, NUM_ITERS)],
    "FreeInit: pass k − plain": [interval_text(c["freeinit"][k] - c["freeinit"][0]) for k in range(1, NUM_ITERS)],
    "first gain − this gain": ["—"] + [interval_text(gains[0] - gains[k - 1]) for k in range(2, NUM_ITERS)],
    "FreeInit − shuffled_low": [interval_text(c["freeinit"][k] - c["shuffled_low"][k]) for k in range(1, NUM_ITERS)],
    "legacy ideal: pass k − pass k−1": [interval_text(c["legacy_ideal"][k] - c["legacy_ideal"][k - 1])
                                         if k <= LEGACY_LAST else "—" for k in range(1, NUM_ITERS)],
    "FreeInit − legacy ideal": [interval_text(c["freeinit"][k] - c["legacy_ideal"][k]) if k <= LEGACY_LAST else "—"
                                for k in range(1, NUM_ITERS)],
}, index=pd.Index([f"pass {k}" for k in range(1, NUM_ITERS)], name="consistency"))

# %%
first = fl.bootstrap_interval(gains[0], CONFIDENCE, seed=SEED)
first_minus_later = fl.bootstrap_interval(gains[0] - gains[1:], CONFIDENCE, seed=SEED)   # (later iteration,)
gauss_minus_legacy = fl.bootstrap_interval(c["freeinit"][1:LEGACY_PASSES] - c["legacy_ideal"][1:LEGACY_PASSES],
                                           CONFIDENCE, seed=SEED)                         # (legacy pass,)
record("first_iteration_gain", first[0], "consistency gain of FreeInit's first iteration (paired, mean over videos)",
       low=first[1], high=first[2])
record("last_iteration_gain", float(gains[-1].mean()), f"consistency gain of iteration {NUM_ITERS - 1}")
record("freeinit_total_gain", float((c["freeinit"][-1] - c["freeinit"][0]).mean()),
       f"consistency, pass {NUM_ITERS - 1} − plain")
record("gaussian_minus_legacy_ideal_pass1", gauss_minus_legacy[0][0],
       "consistency after one iteration, Gaussian − the reference codes' ideal filter (paired)")
# (1) the first iteration raises consistency ...
assert first[1] > 0, first
# ... and it is the biggest jump: larger than each later iteration's, paired per video
assert np.all(first_minus_later[1] > 0), first_minus_later
# (3) the paper's ideal filter (reference codes' threshold) does worse than the Gaussian, at every pass it ran
assert np.all(gauss_minus_legacy[1] > 0), gauss_minus_legacy
# (1) the chain overshoots: after the last pass the videos are more consistent (more static) than held-out data
# (two independent sets of videos), so "higher is better" does not hold all the way on this model
last_vs_data = two_sample_interval(c["freeinit"][-1], ds.reference_consistency.values, CONFIDENCE, seed=SEED)
record("freeinit_last_minus_data_consistency", last_vs_data[0], f"consistency, FreeInit's pass {NUM_ITERS - 1} − "
       f"held-out data (two-sample); {CONFIDENCE:.0%} interval [{last_vs_data[1]:.3f}, {last_vs_data[2]:.3f}]")
print(f"FreeInit pass {NUM_ITERS - 1} − held-out data, consistency: {last_vs_data[0]:+.3f} [{last_vs_data[1]:+.3f}, "
      f"{last_vs_data[2]:+.3f}] (two-sample, {CONFIDENCE:.0%})")
assert last_vs_data[1] > 0, last_vs_data

# %% [markdown]
# ## 2 · Beside the controls
# Each arm's effect on consistency and dynamics (RMS change between consecutive frames, model-space units) over
# plain sampling, paired, with 99 % intervals, at the pass the arm reports (column "pass": FreeInit's and
# `shuffled_low`'s last, `legacy_ideal`'s its own last; the one-pass arms have one). The one-pass controls stand
# for one iteration: the second table gives the share of FreeInit's **first** iteration's gain each reproduces, and
# `fl.decomposition_table` (third) each control's share of FreeInit's gain at the pass printed above it
# (`explained_pass`: FreeInit's last pass, or a chained control's own last pass).

# %%
def effect_text(a, metric):
    return (f"{float(ds.effect.sel(arm=a, metric=metric)):+.3f} [{float(ds.effect_low.sel(arm=a, metric=metric)):+.3f}, "
            f"{float(ds.effect_high.sel(arm=a, metric=metric)):+.3f}]")


arms = ds.arm.values.tolist()[1:]
display(pd.DataFrame({"pass": [int(ds.passes.sel(arm=a)) - 1 if int(ds.passes.sel(arm=a)) > 1 else "one pass"
                               for a in arms],
                      "consistency − plain": [effect_text(a, "consistency") for a in arms],
                      "dynamics − plain": [effect_text(a, "dynamics") for a in arms],
                      "what the arm is": ds.description.sel(arm=arms).values}, index=arms))

plain = c["freeinit"][0]
one_pass = {"FreeInit, first iteration": c["freeinit"][1], "shuffled_low, first iteration": c["shuffled_low"][1],
            "legacy ideal, first iteration": c["legacy_ideal"][1],
            **{a: ds.consistency.sel(arm=a).values for a in ("mask_only", "amplitude_matched", "oracle")}}
boot = paired_bootstrap(np.stack([v - plain for v in one_pass.values()]), seed=SEED)   # (resample, row)
share = boot / boot[:, :1]
q = [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)]
display(pd.DataFrame({"share of the first iteration's gain": [
    f"{np.mean(v - plain) / np.mean(one_pass['FreeInit, first iteration'] - plain):.2f} "
    f"[{np.percentile(share[:, i], q[0]):.2f}, {np.percentile(share[:, i], q[1]):.2f}]"
    for i, v in enumerate(one_pass.values())]}, index=list(one_pass)))
print("decomposition_table: each control's share of FreeInit's gain at pass "
      + ", ".join(f"{k} ({int(v)})" for k, v in zip(ds.control.values, ds.explained_pass.values)))
fl.decomposition_table(ds, ["consistency", "dynamics", "band_power_0"])

# %%
fi1 = one_pass["FreeInit, first iteration"]
vs_mask = fl.bootstrap_interval(fi1 - one_pass["mask_only"], CONFIDENCE, seed=SEED)
vs_amp_last = fl.bootstrap_interval(c["freeinit"][-1] - one_pass["amplitude_matched"], CONFIDENCE, seed=SEED)
vs_amp_first = fl.bootstrap_interval(fi1 - one_pass["amplitude_matched"], CONFIDENCE, seed=SEED)
oracle_gain = fl.bootstrap_interval(one_pass["oracle"] - plain, CONFIDENCE, seed=SEED)
fi1_vs_oracle = fl.bootstrap_interval(fi1 - one_pass["oracle"], CONFIDENCE, seed=SEED)
mask_gain = fl.bootstrap_interval(one_pass["mask_only"] - plain, CONFIDENCE, seed=SEED)
last_vs_mask = fl.bootstrap_interval(c["freeinit"][-1] - one_pass["mask_only"], CONFIDENCE, seed=SEED)
last_vs_oracle = fl.bootstrap_interval(c["freeinit"][-1] - one_pass["oracle"], CONFIDENCE, seed=SEED)
for name, v in (("mask_only_minus_plain", mask_gain), ("freeinit_pass1_minus_mask_only", vs_mask),
                ("freeinit_last_minus_mask_only", last_vs_mask), ("freeinit_pass1_minus_amplitude_matched", vs_amp_first),
                ("freeinit_last_minus_amplitude_matched", vs_amp_last), ("oracle_minus_plain", oracle_gain),
                ("freeinit_pass1_minus_oracle", fi1_vs_oracle), ("freeinit_last_minus_oracle", last_vs_oracle)):
    record(name, v[0], f"consistency, paired mean over videos; {CONFIDENCE:.0%} interval [{v[1]:.3f}, {v[2]:.3f}]",
           low=v[1], high=v[2])
    print(f"{name}: {v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]")
record("data_consistency", float(ds.reference_consistency.mean()), "consistency of the held-out training videos")
# (2) the mix's variance change alone (mask_only: the same mix without the signal) raises consistency ...
assert mask_gain[1] > 0, mask_gain
# ... whether the first iteration does more than it is this seed's printed interval (not resolved on these weights
# at every seed); the chained iterations do more than the mask, and more than rescaling the noise's spectrum to the
# training z_T (no signal at all)
print(f"first iteration beyond mask_only: {'resolved' if vs_mask[1] > 0 else 'not resolved'} at {CONFIDENCE:.0%}")
assert last_vs_mask[1] > 0, last_vs_mask
assert vs_amp_last[1] > 0, vs_amp_last
# (4) a start from the training marginal: its gain over plain sampling is printed, not claimed (28 videos do not
# resolve it at every seed; the per-video SD of the oracle's gain is printed) ...
print(f"oracle − plain: {oracle_gain[0]:+.3f} [{oracle_gain[1]:+.3f}, {oracle_gain[2]:+.3f}] "
      f"({'resolved' if oracle_gain[1] > 0 else 'not resolved'} at {CONFIDENCE:.0%}; per-video SD "
      f"{np.std(one_pass['oracle'] - plain, ddof=1):.3f})")
# ... and the chained iterations go past it: re-diffusing with the same noise keeps adding low-band power
# (section 3), so the last pass is more static than a perfect start
assert last_vs_oracle[1] > 0, last_vs_oracle

# %% [markdown]
# ### This video's own low band, or another video's?
# `shuffled_low` runs FreeInit's chain, but every pass re-diffuses **another** video's previous sample (a
# single-cycle derangement: no chain meets its own noise again) with this video's $\varepsilon$, the same filter and
# the same $\eta$. Its low band is as data-like in power as FreeInit's signal term, but foreign to the video and
# uncorrelated with its noise (section 3: it lacks FreeInit's same-noise cross term). If FreeInit's gain came from
# giving the sampler *some* data-like low band, the two arms would agree; FreeInit − `shuffled_low` > 0 says this
# video's **own** low band, aligned with its noise, adds consistency beyond it. Paired per video, 99 % intervals,
# after the first and the last pass, and the change in between.
#
# **Claim** (asserted): the own band's advantage *grows* over the iterations, (FreeInit − `shuffled_low`) at the
# last pass minus the same after the first, paired per video. It would be false if the chain's gain came from the
# low band's power alone (both chains re-diffuse samples of the same model with the same noises, filter and $\eta$),
# or if the own content mattered from the first iteration on as much as later. Whether the own band beats another
# video's after the first pass, and after the last, is printed: 28 videos do not resolve either at every seed.

# %%
own = c["freeinit"] - c["shuffled_low"]                                     # (pass, video): own − another's
own_first = fl.bootstrap_interval(own[1], CONFIDENCE, seed=SEED)
own_last = fl.bootstrap_interval(own[-1], CONFIDENCE, seed=SEED)
own_change = fl.bootstrap_interval(own[-1] - own[1], CONFIDENCE, seed=SEED)
shuffled_first = fl.bootstrap_interval(c["shuffled_low"][1] - plain, CONFIDENCE, seed=SEED)
shuffled_last = fl.bootstrap_interval(c["shuffled_low"][-1] - plain, CONFIDENCE, seed=SEED)
pdyn = ds.pass_dynamics
own_dyn_last = fl.bootstrap_interval(pdyn.sel(arm="freeinit").values[-1] - pdyn.sel(arm="shuffled_low").values[-1],
                                     CONFIDENCE, seed=SEED)
own_rows = {"shuffled_low − plain, pass 1": shuffled_first, f"shuffled_low − plain, pass {NUM_ITERS - 1}": shuffled_last,
            "FreeInit − shuffled_low, pass 1": own_first, f"FreeInit − shuffled_low, pass {NUM_ITERS - 1}": own_last,
            f"(FreeInit − shuffled_low): pass {NUM_ITERS - 1} − pass 1": own_change,
            f"dynamics, FreeInit − shuffled_low, pass {NUM_ITERS - 1}": own_dyn_last}
for name, v in own_rows.items():
    print(f"{name}: {v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}] "
          f"({'excludes 0' if v[1] > 0 or v[2] < 0 else 'includes 0'} at {CONFIDENCE:.0%})")
for name, v, what in (("freeinit_minus_shuffled_low_pass1", own_first, "after one iteration"),
                      ("freeinit_minus_shuffled_low_last", own_last, f"at pass {NUM_ITERS - 1}"),
                      ("freeinit_minus_shuffled_low_growth", own_change, f"at pass {NUM_ITERS - 1} minus after one "
                       "iteration")):
    record(name, v[0], f"consistency, FreeInit − shuffled_low {what} (paired); {CONFIDENCE:.0%} interval "
           f"[{v[1]:.3f}, {v[2]:.3f}]")
# (2) this video's own low band gains on another video's over the iterations
assert own_change[1] > 0, own_change

# %% [markdown]
# ## 3 · What the reinitialised latent is made of
# The first reinitialised latent $z'_T = \mathrm{lowpass}(a_T x_0 + b_T\varepsilon) + \mathrm{highpass}(\eta)$
# split band by band (`fl.reinit_power_split`): signal $a_T\,\mathrm{lowpass}(x_0)$, re-diffusion noise
# $b_T\,\mathrm{lowpass}(\varepsilon)$, fresh noise, and the **same-noise cross term** $2\,\mathrm{Re}(S\bar U)$.
# FreeInit re-diffuses $x_0$ with the very noise $\varepsilon$ that produced it, so this term is positive for
# *any* model whose sample keeps something of its noise's low band (notebook 02); the training
# $z_T = a_T x_0 + b_T\varepsilon'$ ($\varepsilon'$ independent) has none on average, nor has `shuffled_low`'s
# latent (another video's $x_0$). That the term is there is no finding; **how large** it is, against two
# references on the same $\varepsilon$ and $\eta$, is one:
#
# * the **exact-score model** of the same data (`fl.load_default_analytic_pipeline`, fitted to `FIT_VIDEOS`
#   held-out videos): its deterministic sampler maps $\varepsilon$ to $x_0$ linearly, frequency by frequency, so
#   its sample keeps its noise's low band completely (correlation near 1) at the power the exact score gives.
#   **Claim:** the trained model's band-0 cross term is *smaller* (paired per video). It would be larger for a
#   model that carried more of its noise into its low band than the exact score, and equal for a perfect one.
# * the **training $z_T$** of held-out videos (all-pass split): the marginal FreeInit is meant to approach.
#   **Claim:** even with the cross term, the band-0 power of FreeInit's first $z'_T$ falls *short* of it (two
#   independent sets of videos: `two_sample_interval`, dB). It would not for a model whose samples carried the
#   data's low-band power: then signal and cross term together would exceed the training $z_T$'s.
#
# Power per bin, channel mean, × unit white noise.

# %%
noises = decomposition_noises(NUM_VIDEOS, pipe.sample_shape, SEED, NUM_ITERS)
a_T, b_T = ds.attrs["alpha_T"], ds.attrs["sigma_T"]
eps, eta0 = noises["eps"], noises["eta"][0]
x0 = torch.as_tensor(ds.pass_latent.sel(arm="freeinit").isel({"pass": 0}).values)
apipe = fl.load_default_analytic_pipeline(num_videos=FIT_VIDEOS)    # same sampler, step count and model space
x0_exact = apipe(latents=eps.clone(), output_type="latent").frames.float()
perm = torch.as_tensor(ds.permutation.values)
split = fl.reinit_power_split(x0, eps, eta0, H_gauss, a_T, b_T, num_bands=NUM_BANDS)
split_exact = fl.reinit_power_split(x0_exact, eps, eta0, H_gauss, a_T, b_T, num_bands=NUM_BANDS)
split_shuffled = fl.reinit_power_split(x0[perm], eps, eta0, H_gauss, a_T, b_T, num_bands=NUM_BANDS)
train = fl.reinit_power_split(reference, noises["fresh"][0], eta0, torch.ones(shape3), a_T, b_T,
                              num_bands=NUM_BANDS)  # all-pass: the training z_T with independent noise
terms = ["signal", "same_noise", "fresh_noise", "cross_same", "cross_fresh", "total"]
split_table = pd.DataFrame({f"FreeInit z'_T: {t}": split[t].mean("video").values for t in terms}
                           | {f"exact-score model's z'_T: {t}": split_exact[t].mean("video").values
                              for t in ("signal", "cross_same", "total")}
                           | {f"shuffled_low's z'_T: {t}": split_shuffled[t].mean("video").values
                              for t in ("signal", "cross_same", "total")}
                           | {"training z_T: signal": train.signal.mean("video").values,
                              "training z_T: cross": train.cross_same.mean("video").values,
                              "training z_T: total": train.total.mean("video").values},
                           index=[f"band {k} ({lo:.2f}–{hi:.2f})" for k, lo, hi in
                                  zip(split.band.values, split.band_lo.values, split.band_hi.values)])
split_table.T.round(3)

# %%
def band0(ds_split, term):
    return ds_split[term].isel(band=0).values                                # (video,)


def correlation0(ds_split):
    """Band-0 correlation of the re-diffused sample with its noise: 2Re(S conj U) / (2 sqrt(|S|^2 |U|^2))."""
    return band0(ds_split, "cross_same") / (2 * np.sqrt(band0(ds_split, "signal") * band0(ds_split, "same_noise")))


m_cross, lo_cross, hi_cross = fl.bootstrap_interval(band0(split, "cross_same"), CONFIDENCE, seed=SEED)
m_share, lo_share, hi_share = fl.bootstrap_interval(band0(split, "cross_same") / band0(split, "total"), CONFIDENCE,
                                                    seed=SEED)
cross_vs_exact = fl.bootstrap_interval(band0(split, "cross_same") - band0(split_exact, "cross_same"), CONFIDENCE,
                                       seed=SEED)
signal_vs_exact = fl.bootstrap_interval(band0(split, "signal") - band0(split_exact, "signal"), CONFIDENCE, seed=SEED)
corr_trained = fl.bootstrap_interval(correlation0(split), CONFIDENCE, seed=SEED)
corr_exact = fl.bootstrap_interval(correlation0(split_exact), CONFIDENCE, seed=SEED)
vs_train_db = two_sample_interval(band0(split, "total"), band0(train, "total"), CONFIDENCE, seed=SEED, ratio_db=True)
exact_vs_train_db = two_sample_interval(band0(split_exact, "total"), band0(train, "total"), CONFIDENCE, seed=SEED,
                                        ratio_db=True)
snr_no_cross = 10 * np.log10(split.signal / (split.same_noise + split.fresh_noise)).mean("video").values
record("cross_same_band0", m_cross, "same-noise cross term 2Re(S conj U) in band 0 of the first reinitialised latent "
       "(power per bin x unit white noise)")
record("cross_same_band0_share", m_share, "its share of band 0's total power")
record("cross_same_band0_minus_exact_score", cross_vs_exact[0], "band-0 cross term, trained − exact-score model, same "
       f"noises (paired); {CONFIDENCE:.0%} interval [{cross_vs_exact[1]:.3f}, {cross_vs_exact[2]:.3f}]")
record("reinit_band0_vs_training_zT_db", vs_train_db[0], "band-0 power of FreeInit's first z'_T / the training z_T's, "
       f"dB (two-sample); {CONFIDENCE:.0%} interval [{vs_train_db[1]:.2f}, {vs_train_db[2]:.2f}]")
for name, v, fmt in (("band-0 cross term, trained", (m_cross, lo_cross, hi_cross), "{:.3f}"),
                     ("its share of band 0's power", (m_share, lo_share, hi_share), "{:.0%}"),
                     ("band-0 cross term, trained − exact-score", cross_vs_exact, "{:+.3f}"),
                     ("band-0 signal term, trained − exact-score", signal_vs_exact, "{:+.3f}"),
                     ("band-0 correlation of x_0 with its noise, trained", corr_trained, "{:.3f}"),
                     ("band-0 correlation of x_0 with its noise, exact-score", corr_exact, "{:.3f}"),
                     ("band-0 power, FreeInit z'_T vs training z_T (dB)", vs_train_db, "{:+.2f}"),
                     ("band-0 power, exact-score model's z'_T vs training z_T (dB)", exact_vs_train_db, "{:+.2f}")):
    print(f"{name}: {fmt.format(v[0])} [{fmt.format(v[1])}, {fmt.format(v[2])}]")
print(f"SNR without the cross term (signal / noise terms), per band: {np.round(snr_no_cross, 1)} dB")
# (a) the trained model's sample keeps less of its noise's low band than the exact score of its data would
assert cross_vs_exact[2] < 0, cross_vs_exact
# (b) with the cross term, the first reinitialised latent's lowest band still falls short of the training z_T's
assert vs_train_db[2] < 0, vs_train_db

# %% [markdown]
# The same split for the initial latent of every later pass (each re-diffuses the previous pass's sample with the
# same $\varepsilon$): band 0 and band 1 power of $z'_T$ and its same-noise cross term, and the band-0 power against
# the training $z_T$'s in dB (two-sample 99 % interval; plain sampling starts from power 1 in every band).

# %%
rows = {}
band0_db = {}
for k in range(1, NUM_ITERS):
    xk = torch.as_tensor(ds.pass_latent.sel(arm="freeinit").isel({"pass": k - 1}).values)
    sk = split if k == 1 else fl.reinit_power_split(xk, eps, noises["eta"][k - 1], H_gauss, a_T, b_T,
                                                     num_bands=NUM_BANDS)
    band0_db[k] = two_sample_interval(band0(sk, "total"), band0(train, "total"), CONFIDENCE, seed=SEED, ratio_db=True)
    rows[f"z'_T of pass {k}"] = {"band 0 total": f"{float(sk.total.isel(band=0).mean()):.2f}",
                                 "band 0 cross term": f"{float(sk.cross_same.isel(band=0).mean()):.2f}",
                                 "band 1 total": f"{float(sk.total.isel(band=1).mean()):.2f}",
                                 "band 1 cross term": f"{float(sk.cross_same.isel(band=1).mean()):.2f}",
                                 "band 0 vs training z_T (dB)": "{:+.2f} [{:+.2f}, {:+.2f}]".format(*band0_db[k])}
rows["training z_T (held-out videos)"] = {"band 0 total": f"{float(train.total.isel(band=0).mean()):.2f}",
                                          "band 0 cross term": f"{float(train.cross_same.isel(band=0).mean()):.2f}",
                                          "band 1 total": f"{float(train.total.isel(band=1).mean()):.2f}",
                                          "band 1 cross term": f"{float(train.cross_same.isel(band=1).mean()):.2f}",
                                          "band 0 vs training z_T (dB)": "0"}
last_db = band0_db[NUM_ITERS - 1]
print(f"pass {NUM_ITERS - 1}'s z'_T, band 0 vs the training z_T: " + ("short of it" if last_db[2] < 0 else
      "above it" if last_db[1] > 0 else "not resolved from it") + f" at {CONFIDENCE:.0%}")
pd.DataFrame(rows).T

# %%
record("num_videos", NUM_VIDEOS, "paired videos per arm")
seconds = record("03_seconds", time.perf_counter() - t_start, "wall time of this notebook")
print(f"03 took {seconds:.0f} s for {video_steps} video-steps")

# %% [markdown]
# ## This run's key numbers
# Every number the summary below refers to, from this run (seed `SEED`), each a paired mean over videos with its
# 99 % bootstrap interval unless marked two-sample; "asserted" marks the claims this notebook checks.

# %%
def row(v, fmt="{:+.3f}"):
    return f"{fmt.format(v[0])} [{fmt.format(v[1])}, {fmt.format(v[2])}]"


key = {
    "consistency gain of iterations 2.. (pass k − pass k−1)": ", ".join(row(fl.bootstrap_interval(
        gains[k - 1], CONFIDENCE, seed=SEED)) for k in range(2, NUM_ITERS)),
    "first gain − each later gain (asserted > 0)": ", ".join(row(v) for v in zip(*first_minus_later)),
    "last pass − held-out data's consistency (two-sample, asserted > 0)": row(last_vs_data),
    "dynamics, FreeInit last pass − plain": effect_text("freeinit", "dynamics"),
    "mask_only − plain (asserted > 0)": row(mask_gain),
    "FreeInit pass 1 − mask_only": row(vs_mask),
    "FreeInit pass 1 − amplitude_matched": row(vs_amp_first),
    "FreeInit last − mask_only, − amplitude_matched (asserted > 0)": f"{row(last_vs_mask)}, {row(vs_amp_last)}",
    "FreeInit − shuffled_low, pass 1": row(own_first),
    f"FreeInit − shuffled_low, pass {NUM_ITERS - 1}": row(own_last),
    "(FreeInit − shuffled_low), last − first (asserted > 0)": row(own_change),
    f"dynamics, FreeInit − shuffled_low, pass {NUM_ITERS - 1}": row(own_dyn_last),
    "FreeInit − legacy ideal, passes it ran (asserted > 0)": ", ".join(row(v) for v in zip(*gauss_minus_legacy)),
    "dynamics, legacy ideal − plain": effect_text("legacy_ideal", "dynamics"),
    "oracle − plain": row(oracle_gain),
    "FreeInit pass 1 − oracle": row(fi1_vs_oracle),
    "FreeInit last − oracle (asserted > 0)": row(last_vs_oracle),
    "band-0 cross term, trained − exact-score (asserted < 0)": row(cross_vs_exact),
    "band-0 correlation of x_0 with its noise: trained; exact-score": f"{row(corr_trained)}; {row(corr_exact)}",
    "band-0 power, FreeInit's first z'_T vs training z_T, dB (two-sample, asserted < 0)": row(vs_train_db, "{:+.2f}"),
    f"band-0 power, pass {NUM_ITERS - 1}'s z'_T vs training z_T, dB (two-sample)": row(last_db, "{:+.2f}"),
}
with pd.option_context("display.max_colwidth", None):
    display(pd.DataFrame({"value [99 % interval]": key}))

# %% [markdown]
# ## Summary
# Numbers: the key-numbers table just above (this run), each with its 99 % interval.
# - **Per iteration — agrees with the paper.** Consistency rises with every FreeInit iteration and the first jump
#   is the biggest, larger than each later one paired per video (asserted). The later increments shrink pass by
#   pass (first row of the table): small by the fourth iteration, as the paper's "near convergence by the fourth"
#   says, though not zero, and the last pass ends above the held-out data's consistency (asserted, two-sample):
#   the chain makes videos more consistent, i.e. more static, than the data.
# - **Controls — disagrees with the paper's explanation of the first iteration.** The mix's variance change alone
#   (`mask_only`, no signal) raises consistency (asserted) and reproduces most of the first iteration's gain on
#   these weights with the stored sampler (its share in the second table of section 2; whether the first
#   iteration does more is printed, resolved or not). Rescaling the plain noise band by band to the training
#   $z_T$'s power, with no signal at all (`amplitude_matched`), reproduces about as much (FreeInit pass 1 −
#   amplitude_matched, printed). The chained iterations go beyond both controls (asserted at the last pass).
# - **Own low band — claim 2's "its own signal" fails at the first iteration and shows only later.** After the
#   first iteration the video's own low band does not beat another video's (`shuffled_low`: the same filter,
#   noises and signal power, no same-noise cross term): FreeInit − `shuffled_low` after pass 1 is printed, and at
#   the seeds we ran its mean favoured the other video, resolved at some. So FreeInit's first step is the mix's
#   variance and a data-like low band, not this video's content. Over the iterations the own band gains on another
#   video's (asserted: the paired difference grows from the first to the last pass); whether it is ahead at the
#   last pass is printed with its interval (not resolved at every seed). So is the motion at the last pass,
#   FreeInit − `shuffled_low` dynamics, with whether its interval excludes 0 (section 2; positive: the shuffled
#   chain ends with less motion than FreeInit's).
# - **Filters — agrees with the paper, against the filter it meant.** With the reference codes' ideal filter
#   (`legacy_ideal`, $d^2 \le 2 d_s$, the bin count printed near the top) consistency gains less than with the
#   Gaussian (asserted at every pass it ran: by default the first iteration only, `LEGACY_PASSES`, since that
#   decides it and its later passes paid for the `shuffled_low` chain). Its dynamics change against plain sampling
#   is printed, not claimed (positive: the sharp cut-off adds motion), beside FreeInit's own (Gaussian) change.
# - **The reinitialised latent is not the training marginal.** Its lowest band holds a same-noise cross term
#   $2\,\mathrm{Re}(S\bar U)$, as it must for any model whose sample keeps its noise's low band; on this model the
#   term is *smaller* than on the exact-score model of the same data from the same noises (asserted): the trained
#   sample has less band-0 power and is less tied to its noise (both printed). Even with the term, the first
#   $z'_T$'s band 0 falls short of the training $z_T$'s (asserted, two-sample, dB). The exact-score model's is
#   printed beside it: where it falls short too (it did at every seed we ran), the shortfall is the sampler's
#   initialization gap, which one iteration does not close even with a perfect score, not a defect of this model.
#   Every later pass adds band-0 power, and whether the last pass's $z'_T$ is short of, at or above the training
#   $z_T$ is printed (last table).
# - **Oracle.** FreeInit's last pass goes past a start from the training marginal (asserted), while its first pass
#   is compared with it in the printed interval. The oracle's own gain over plain sampling is printed, not claimed:
#   28 videos do not resolve it at every seed (its per-video SD is printed beside it); notebook 06 measures the
#   oracle against the data instead.
