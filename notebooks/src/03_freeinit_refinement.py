# %% [markdown]
# # 03 · FreeInit, iteration by iteration
#
# **Claims** (FreeInit, Wu et al. 2023, §4 and its ablations), each measured on the embedded default
# (`fl.load_default_pipeline()`, its stored sampler) beside the controls that could explain it away:
# 1. Temporal consistency rises with FreeInit iterations, the **biggest jump at the first iteration**.
# 2. It does so because the reinitialised latent carries the **low-frequency signal** of the previous sample
#    (not merely because the mix changes the noise's variance, or rescales its spectrum).
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
# | `legacy_ideal` | the same with the reference codes' ideal filter, chained | the filter |
# | `mask_only` | $\mathrm{lowpass}(b_T\varepsilon) + \mathrm{highpass}(\eta)$: the mix without the signal | variance change |
# | `amplitude_matched` | $\varepsilon$ rescaled band by band to the training $z_T$'s power | spectrum, no signal |
# | `oracle` | $a_T x_0 + b_T\varepsilon$ with held-out training videos $x_0$ | a perfect start |
#
# **Conventions.** Model space (per-channel unit variance). Consistency: first-frame cosine similarity of
# mean-removed frames (1 = static; the paper's pairing, on model-space videos instead of DINO features).
# Intervals: 99 % paired percentile bootstrap over videos (`fl.bootstrap_interval`). Band power: mean power per bin
# of an ortho-normalised 3D FFT over (frame, height, width), unit white noise = 1, radial bands of the normalised
# frequency radius (Nyquist = 1).

# %% tags=["parameters"]
SEED = 0                   # noises, eta draws and held-out reference videos all derive from it
NUM_VIDEOS = 32            # paired videos per arm: with 16, claims with a per-video SD about 0.09 missed their 99 %
                           # intervals at some seeds (the oracle's gain at seed 1, on these weights with DDIM 25)
NUM_ITERS = 5              # passes of the chained arms (1 plain + 4 FreeInit iterations, the paper's main table)
METHOD = "gaussian"        # the paper's main table: Gaussian filter, D0 0.25
D_S = 0.25                 # spatial cut-off (normalised frequency)
D_T = 0.25                 # temporal cut-off
CONTROLS = ("legacy_ideal", "mask_only", "amplitude_matched")
NUM_BANDS = 6
CONFIDENCE = 0.99

# %%
import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

import freeinit_lab as fl
from freeinit_lab.studies.decomposition import decomposition_noises, paired_bootstrap
from freeinit_lab.viz.report import record, save_figure

t_start = time.perf_counter()
if NUM_ITERS < 3:  # the pass-by-pass claims compare the first iteration with later ones: none to compare with
    raise ValueError(f"NUM_ITERS = {NUM_ITERS}: this notebook compares FreeInit's first iteration with later ones "
                     "and the chained passes with the controls; use NUM_ITERS >= 3 (1 plain pass + 2 iterations)")
pipe = fl.load_default_pipeline()
pipe.set_progress_bar_config(disable=True)
reference = fl.default_training_videos(NUM_VIDEOS, seed=900_000_000 + SEED)  # held out: never used in training
ds = fl.decompose_freeinit(pipe, num_videos=NUM_VIDEOS, seed=SEED, num_iters=NUM_ITERS, method=METHOD, d_s=D_S,
                           d_t=D_T, controls=list(CONTROLS), reference=reference, oracle=True, keep_latents=True,
                           confidence=CONFIDENCE, progress=False)  # the tables' intervals: CONFIDENCE, as labelled
video_steps = int(ds.passes.sum() - (ds.passes > 1).sum()) * NUM_VIDEOS * pipe.default_num_inference_steps
print(f"{time.perf_counter() - t_start:.0f} s; {video_steps} video-steps; arms {ds.arm.values.tolist()}")

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
# Mean over videos after every pass of the chained arms (pass 0 = plain sampling, shared), with the one-pass arms
# as horizontal lines and the held-out data's consistency (dotted).

# %%
pc = ds.pass_consistency
fig = go.Figure()
for arm, color in (("freeinit", "#1f77b4"), ("legacy_ideal", "#d62728")):
    v = pc.sel(arm=arm).values                                  # (pass, video)
    m, lo, hi = fl.bootstrap_interval(v, CONFIDENCE, seed=SEED)
    fig.add_trace(go.Scatter(x=ds["pass"].values, y=m, name=arm, mode="lines+markers", line={"color": color},
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
# and FreeInit minus the legacy ideal filter at the same pass, with 99 % intervals.

# %%
def interval_text(x):
    m, lo, hi = fl.bootstrap_interval(x, CONFIDENCE, seed=SEED)
    return f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]"


c = {arm: pc.sel(arm=arm).values for arm in ("freeinit", "legacy_ideal")}   # (pass, video)
gains = np.diff(c["freeinit"], axis=0)                                      # (iteration, video)
pd.DataFrame({
    "FreeInit: pass k − pass k−1": [interval_text(gains[k - 1]) for k in range(1, NUM_ITERS)],
    "FreeInit: pass k − plain": [interval_text(c["freeinit"][k] - c["freeinit"][0]) for k in range(1, NUM_ITERS)],
    "first gain − this gain": ["—"] + [interval_text(gains[0] - gains[k - 1]) for k in range(2, NUM_ITERS)],
    "legacy ideal: pass k − pass k−1": [interval_text(np.diff(c["legacy_ideal"], axis=0)[k - 1])
                                         for k in range(1, NUM_ITERS)],
    "FreeInit − legacy ideal": [interval_text(c["freeinit"][k] - c["legacy_ideal"][k]) for k in range(1, NUM_ITERS)],
}, index=pd.Index([f"pass {k}" for k in range(1, NUM_ITERS)], name="consistency"))

# %%
first = fl.bootstrap_interval(gains[0], CONFIDENCE, seed=SEED)
first_minus_later = fl.bootstrap_interval(gains[0] - gains[1:], CONFIDENCE, seed=SEED)   # (later iteration,)
gauss_minus_legacy = fl.bootstrap_interval(c["freeinit"][1:] - c["legacy_ideal"][1:], CONFIDENCE, seed=SEED)
record("first_iteration_gain", first[0], "consistency gain of FreeInit's first iteration (paired, mean over videos)")
record("first_iteration_gain_low", first[1], f"its {CONFIDENCE:.0%} paired bootstrap low")
record("last_iteration_gain", float(gains[-1].mean()), f"consistency gain of iteration {NUM_ITERS - 1}")
record("freeinit_total_gain", float((c["freeinit"][-1] - c["freeinit"][0]).mean()),
       f"consistency, pass {NUM_ITERS - 1} − plain")
record("gaussian_minus_legacy_ideal_pass1", gauss_minus_legacy[0][0],
       "consistency after one iteration, Gaussian − the reference codes' ideal filter (paired)")
# (1) the first iteration raises consistency ...
assert first[1] > 0, first
# ... and it is the biggest jump: larger than each later iteration's, paired per video
assert np.all(first_minus_later[1] > 0), first_minus_later
# (3) the paper's ideal filter (reference codes' threshold) does worse than the Gaussian, at every pass
assert np.all(gauss_minus_legacy[1] > 0), gauss_minus_legacy

# %% [markdown]
# ## 2 · Beside the controls
# Each arm's effect on consistency and dynamics (RMS change between consecutive frames, model-space units) over
# plain sampling, paired, with 99 % intervals; FreeInit's row is its last pass. The one-pass controls stand for
# one iteration: the second table gives the share of FreeInit's **first** iteration's gain each reproduces, and
# `fl.decomposition_table` (third) the share of its gain after all iterations.

# %%
def effect_text(a, metric):
    return (f"{float(ds.effect.sel(arm=a, metric=metric)):+.3f} [{float(ds.effect_low.sel(arm=a, metric=metric)):+.3f}, "
            f"{float(ds.effect_high.sel(arm=a, metric=metric)):+.3f}]")


arms = ds.arm.values.tolist()[1:]
display(pd.DataFrame({"consistency − plain": [effect_text(a, "consistency") for a in arms],
                      "dynamics − plain": [effect_text(a, "dynamics") for a in arms],
                      "what the arm is": ds.description.sel(arm=arms).values}, index=arms))

plain = c["freeinit"][0]
one_pass = {"FreeInit, first iteration": c["freeinit"][1], "legacy ideal, first iteration": c["legacy_ideal"][1],
            **{a: ds.consistency.sel(arm=a).values for a in ("mask_only", "amplitude_matched", "oracle")}}
boot = paired_bootstrap(np.stack([v - plain for v in one_pass.values()]), seed=SEED)   # (resample, row)
share = boot / boot[:, :1]
q = [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)]
display(pd.DataFrame({"share of the first iteration's gain": [
    f"{np.mean(v - plain) / np.mean(one_pass['FreeInit, first iteration'] - plain):.2f} "
    f"[{np.percentile(share[:, i], q[0]):.2f}, {np.percentile(share[:, i], q[1]):.2f}]"
    for i, v in enumerate(one_pass.values())]}, index=list(one_pass)))
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
    record(name, v[0], f"consistency, paired mean over videos; {CONFIDENCE:.0%} interval [{v[1]:.3f}, {v[2]:.3f}]")
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
# (4) a start from the training marginal: its gain over plain sampling is printed, not claimed (32 videos do not
# resolve it at every seed: seed 31,337 gave +0.058 [-0.013, +0.126] at 99 %, with a per-video SD of about 0.15) ...
print(f"oracle − plain: {oracle_gain[0]:+.3f} [{oracle_gain[1]:+.3f}, {oracle_gain[2]:+.3f}] "
      f"({'resolved' if oracle_gain[1] > 0 else 'not resolved'} at {CONFIDENCE:.0%})")
# ... and the chained iterations go past it: re-diffusing with the same noise keeps adding low-band power
# (section 3), so the last pass is more static than a perfect start
assert last_vs_oracle[1] > 0, last_vs_oracle

# %% [markdown]
# ## 3 · What the reinitialised latent is made of
# The first reinitialised latent $z'_T = \mathrm{lowpass}(a_T x_0 + b_T\varepsilon) + \mathrm{highpass}(\eta)$
# split band by band (`fl.reinit_power_split`): signal $a_T\,\mathrm{lowpass}(x_0)$, re-diffusion noise
# $b_T\,\mathrm{lowpass}(\varepsilon)$, fresh noise, and the **same-noise cross term**
# $2\,\mathrm{Re}(S\bar U)$. FreeInit re-diffuses $x_0$ with the very noise $\varepsilon$ that produced it, so
# $x_0$ and $\varepsilon$ are correlated (notebook 02: the result keeps its noise's low band) and this term does
# not vanish; the training $z_T = a_T x_0 + b_T\varepsilon'$ ($\varepsilon'$ independent) has none on average. The
# same split of the training $z_T$ of held-out videos is the target. Power per bin, channel mean, × unit white
# noise.

# %%
noises = decomposition_noises(NUM_VIDEOS, pipe.sample_shape, SEED, NUM_ITERS)
a_T, b_T = ds.attrs["alpha_T"], ds.attrs["sigma_T"]
x0 = torch.as_tensor(ds.pass_latent.sel(arm="freeinit").isel({"pass": 0}).values)
split = fl.reinit_power_split(x0, noises["eps"], noises["eta"][0], H_gauss, a_T, b_T, num_bands=NUM_BANDS)
train = fl.reinit_power_split(reference, noises["fresh"][0], noises["eta"][0], torch.ones(shape3), a_T, b_T,
                              num_bands=NUM_BANDS)  # all-pass: the training z_T with independent noise
terms = ["signal", "same_noise", "fresh_noise", "cross_same", "cross_fresh", "total"]
split_table = pd.DataFrame({f"FreeInit z'_T: {t}": split[t].mean("video").values for t in terms}
                           | {"training z_T: signal": train.signal.mean("video").values,
                              "training z_T: cross": train.cross_same.mean("video").values,
                              "training z_T: total": train.total.mean("video").values},
                           index=[f"band {k} ({lo:.2f}–{hi:.2f})" for k, lo, hi in
                                  zip(split.band.values, split.band_lo.values, split.band_hi.values)])
split_table.T.round(3)

# %%
cross0 = split.cross_same.isel(band=0).values
share0 = cross0 / split.total.isel(band=0).values
m_cross, lo_cross, hi_cross = fl.bootstrap_interval(cross0, CONFIDENCE, seed=SEED)
m_share, lo_share, hi_share = fl.bootstrap_interval(share0, CONFIDENCE, seed=SEED)
snr_no_cross = 10 * np.log10(split.signal / (split.same_noise + split.fresh_noise)).mean("video").values
record("cross_same_band0", m_cross, "same-noise cross term 2Re(S conj U) in band 0 of the first reinitialised latent "
       "(power per bin x unit white noise)")
record("cross_same_band0_share", m_share, "its share of band 0's total power")
print(f"band 0: same-noise cross term {m_cross:.3f} [{lo_cross:.3f}, {hi_cross:.3f}] per bin = {m_share:.0%} "
      f"[{lo_share:.0%}, {hi_share:.0%}] of the band's power; SNR without it (signal / noise terms): "
      f"{np.round(snr_no_cross, 1)} dB per band")
# the re-diffusion reuses the noise the sample came from: a positive cross term in the lowest band
assert lo_cross > 0, (m_cross, lo_cross, hi_cross)

# %% [markdown]
# The same split for the initial latent of every later pass (each re-diffuses the previous pass's sample with the
# same $\varepsilon$): band 0 and band 1 power of $z'_T$ and its same-noise cross term, next to the training
# $z_T$ (plain sampling starts from power 1 in every band).

# %%
rows = {}
for k in range(1, NUM_ITERS):
    xk = torch.as_tensor(ds.pass_latent.sel(arm="freeinit").isel({"pass": k - 1}).values)
    sk = fl.reinit_power_split(xk, noises["eps"], noises["eta"][k - 1], H_gauss, a_T, b_T, num_bands=NUM_BANDS)
    rows[f"z'_T of pass {k}"] = {"band 0 total": float(sk.total.isel(band=0).mean()),
                                 "band 0 cross term": float(sk.cross_same.isel(band=0).mean()),
                                 "band 1 total": float(sk.total.isel(band=1).mean()),
                                 "band 1 cross term": float(sk.cross_same.isel(band=1).mean())}
rows["training z_T (held-out videos)"] = {"band 0 total": float(train.total.isel(band=0).mean()),
                                          "band 0 cross term": float(train.cross_same.isel(band=0).mean()),
                                          "band 1 total": float(train.total.isel(band=1).mean()),
                                          "band 1 cross term": float(train.cross_same.isel(band=1).mean())}
pd.DataFrame(rows).T.round(2)

# %%
seconds = record("03_seconds", time.perf_counter() - t_start, "wall time of this notebook")
print(f"03 took {seconds:.0f} s for {video_steps} video-steps")

# %% [markdown]
# ## Summary
# Numbers: the tables above at this seed, each a paired mean over videos with its 99 % bootstrap interval.
# - **Per iteration — agrees with the paper.** Consistency rises with every FreeInit iteration and the first jump
#   is the biggest, larger than each later one paired per video (asserted). The increments shrink pass by pass
#   (column "pass k − pass k−1": +0.07, +0.04, +0.02 for the second to fourth iterations at seed 0): small by the
#   fourth, as the paper's "near convergence by the fourth" says, though not zero, and the last passes end
#   above the held-out data's consistency (figure): the chain makes videos more static than the data (see the
#   dynamics column).
# - **Controls — disagrees with the paper's explanation of the first iteration.** The mix's variance change alone
#   (`mask_only`, no signal) raises consistency (asserted) and reproduces most of the first iteration's gain on
#   these weights with the stored UniPC sampler (second table; `freeinit_pass1_minus_mask_only` +0.03 [−0.01, +0.08]
#   at seed 0, printed as resolved or not; with DDIM 25, the sampler before, the lead was about +0.09 and
#   resolved). Rescaling the plain noise band by band to the training $z_T$'s power, with no signal at all
#   (`amplitude_matched`), reproduces about all of it (`freeinit_pass1_minus_amplitude_matched` −0.01 [−0.06,
#   +0.03] at seed 0). The chained iterations go beyond both controls (asserted at the last pass). So FreeInit's
#   first step is the low band's *amplitude* and the mix's variance, not this video's own signal; the signal's
#   share shows in the later iterations.
# - **Filters — agrees with the paper, against the filter it meant.** With the reference codes' ideal filter
#   (`legacy_ideal`, $d^2 \le 2 d_s$, the bin count printed near the top) consistency gains less than with the
#   Gaussian at every pass (asserted), and the dynamics rise instead of falling.
# - **The reinitialised latent is not the training marginal.** Its lowest band holds a positive same-noise cross
#   term $2\,\mathrm{Re}(S\bar U)$ (asserted; its share of the band's power is printed): the sample is correlated
#   with the noise it is re-diffused with. A signal/noise SNR that leaves it out understates the band's power; with
#   every pass the band-0 power grows (last table; compare its last row, the training $z_T$).
# - **Oracle.** FreeInit's last pass goes past a start from the training marginal (asserted), while its first pass
#   is compared with it in the printed interval. The oracle's own gain over plain sampling is printed, not claimed:
#   its mean is positive at the seeds we ran, but 32 videos do not resolve it at every seed (seed 31,337:
#   +0.058 [−0.013, +0.126], 99 %; seed 1 with 16 videos: +0.08 [−0.01, +0.17]); notebook 06 measures the oracle
#   against the data instead.
