# %% [markdown]
# # 06 · Initialisation strategies judged against the data
#
# **Question** (issue 8): FreeInit's paper scores temporal consistency as "higher is better" — which also rewards
# a video that barely moves. Its authors name over-smoothed motion as a limitation, and FreqPrior (arXiv
# 2502.03496) blames the variance loss of FreeInit's frequency mix. So we judge every way of starting the sampler
# against **the data the model was trained on**, on three axes at once — temporal consistency, dynamics, band power
# of the initial latent at $t = T$ — each as a distance to the same quantity on training-like clips, with
# **denoiser evaluations as the cost**.
#
# Strategies (`freeinit_lab.strategies`, all from the same white noise $\varepsilon$ per video, so they are paired):
#
# | strategy | pass-0 latent | extra passes |
# |---|---|---|
# | plain | $\varepsilon$ | — |
# | oracle (reference) | $a_T x_0 + b_T\varepsilon$, $x_0$ held-out training data | — |
# | spectrum-matched | low band ($H$) drawn with the training marginal's per-frequency mean and covariance, estimated from clean latents; high band $\varepsilon$ | — |
# | FreeInit same | $\varepsilon$ | re-diffuse with the **same** $\varepsilon$ (both public codes), mix $H$ / $1-H$ |
# | FreeInit fresh | $\varepsilon$ | re-diffuse with **fresh** noise (the paper's text) |
# | FreeInit same VP | $\varepsilon$ | same noise, **variance-preserving** mix (weights whose squares sum to one per frequency) |
#
# Filter: Gaussian, $D_0 = d_s = d_t = 0.25$ (the paper's main table). Metrics on the unclipped sampler output:
# **consistency** = first-frame cosine of mean-removed frames (the paper's pairing, on pixels instead of DINO
# features); **dynamics** = RMS change between consecutive frames; **band power at T** of the latent the last pass
# starts from (minus the marginal's mean field $a_T\mu$), against the training $z_T = a_T x_0 + b_T\varepsilon$
# of the data. **Distance to data** $=\sqrt{(\Delta c/\sigma_c)^2 + (\Delta d/\sigma_d)^2}$ with $\sigma$ the
# data's between-video standard deviations.
#
# **Sampler note.** Both embedded pipelines use DDIM with `set_alpha_to_one=False` (the SD default): the last step
# returns $\sqrt{\bar\alpha_0}\,\hat x_0 + \sqrt{1-\bar\alpha_0}\,\hat\varepsilon$, i.e. the video plus white noise
# of standard deviation 0.029 — invisible in an SD latent, but in these pixel-space models it dominates every
# frame-to-frame statistic (we measured plain sampling 33 data-s.d. away from the data with it). We therefore sample
# with `set_alpha_to_one=True` (the last step returns $\hat x_0$); `FINAL_ALPHA_ONE = False` restores the default.

# %% tags=["parameters"]
NUM_VIDEOS = 64          # seeds per strategy (paired across strategies)
SEED = 0                 # noises, FreeInit's eta, data and oracle draws all derive from it
ANALYTIC_STEPS = 25      # DDIM steps on the analytic Gaussian reference (8x16x16)
ANALYTIC_NUM_ITERS = 2   # passes measured (1 FreeInit iteration); the closed form also gives 2 and 3 iterations
DEFAULT_STEPS = 25       # DDIM steps on the trained default model, as in notebooks 00-04 (5 steps, tried
                         # earlier for speed, gives a far worse sampler: consistency 0.06 vs 0.36 at 25 steps)
DEFAULT_NUM_ITERS = 2
METHOD, CUTOFF = "gaussian", 0.25
FINAL_ALPHA_ONE = True

# %%
import time

import numpy as np
import pandas as pd
import torch
from diffusers import DDIMScheduler

import freeinit_lab as fl
from freeinit_lab import strategies as st
from freeinit_lab.report import record, save_figure

pd.set_option("display.precision", 4)
t_start = time.perf_counter()
filt = dict(method=METHOD, d_s=CUTOFF, d_t=CUTOFF)
COLS = ["evals", "consistency", "consistency_se", "d_consistency", "dynamics", "dynamics_se", "d_dynamics",
        "band_db", "distance", "distance_se", "t_consistency", "t_dynamics"]

# %% [markdown]
# ## 1 · The analytic Gaussian reference: where the answer is known in closed form
# `load_analytic_pipeline()` is the exact MMSE denoiser of a stationary Gaussian prior fitted to the real clips.
# Its training data are draws from that prior (`sample_prior`), so "the data" here is exact. The
# spectrum-matched latent's marginal is estimated from the **real clips** (what a user would have). DDIM with this
# denoiser is linear per frequency, so `analytic_prediction` gives each strategy's expected band powers in closed
# form (consistency and dynamics as ratios of expectations) — the measurement must reproduce it.

# %%
sched_kw = dict(set_alpha_to_one=True) if FINAL_ALPHA_ONE else {}
apipe = fl.load_analytic_pipeline(scheduler=fl.pipelines.default_scheduler(**sched_kw))
clips = fl.load_clips(8, 16, segment_step=1)
a_marginal = st.TerminalMarginal.from_latents(clips, apipe.scheduler)
g = torch.Generator().manual_seed(10**6 + SEED)
a_data = apipe.unet.sample_prior(4 * NUM_VIDEOS, generator=g)
a_oracle = apipe.unet.sample_prior(NUM_VIDEOS, generator=g)
a_strategies = st.default_strategies(num_iters=ANALYTIC_NUM_ITERS, **filt)
a_ds = st.evaluate_strategies(apipe, a_strategies, data=a_data, marginal=a_marginal, oracle_latents=a_oracle,
                              num_videos=NUM_VIDEOS, seed=SEED, num_inference_steps=ANALYTIC_STEPS)
a_table = st.summarize_strategies(a_ds)
a_pred = st.analytic_prediction(apipe, st.default_strategies(num_iters=4, **filt), a_marginal,
                                num_inference_steps=ANALYTIC_STEPS)
pred_table = pd.DataFrame({"consistency": a_pred.consistency.values, "dynamics": a_pred.dynamics.values,
                           "evals": a_pred.evals.values}, index=a_pred.row.values)
for k in range(a_pred.sizes["band"]):
    pred_table[f"band {k} (dB)"] = 10 * np.log10(a_pred.band_power_T.values[:, k])
print(f"analytic model: {NUM_VIDEOS} videos, {ANALYTIC_STEPS} steps, {time.perf_counter() - t_start:.0f} s so far")
display(a_table[COLS])
pred_table

# %%
# (a) the measurement reproduces the closed form, row by row
worst = {}
for row in a_ds.row.values.tolist():
    for var, tol in (("consistency", 0.003), ("dynamics", 0.001)):
        m = a_ds[var].sel(row=row)
        err = abs(float(m.mean()) - pred_table.loc[row, var])
        worst[var] = max(worst.get(var, 0.0), err)
        assert err < 4 * float(m.std()) / np.sqrt(NUM_VIDEOS) + tol, (row, var, err)
    meas_db = 10 * np.log10(a_ds.band_power_T.sel(row=row).mean("video").values)
    pred_db = 10 * np.log10(a_pred.band_power_T.sel(row=row).values)
    worst["band_db"] = max(worst.get("band_db", 0.0), float(np.abs(meas_db - pred_db).mean()))
    assert np.abs(meas_db - pred_db).mean() < 0.5, (row, meas_db, pred_db)
record("analytic_closed_form_max_err_consistency", worst["consistency"], "max |measured - closed form| consistency")
record("analytic_closed_form_max_err_band_db", worst["band_db"], "max mean |measured - closed form| band power at T, dB")
print({k: round(v, 5) for k, v in worst.items()})

# %% [markdown]
# ### What the closed form says
# Per frequency bin, one FreeInit pass turns the initial power into $w_l^2 (a_T G + b_T)^2 + w_h^2$ with the
# **same** noise and $w_l^2(a_T^2 G^2 + b_T^2) + w_h^2$ with **fresh** noise ($G$ = the sampler's gain,
# `analytic_gain`). The same noise adds $2 a_T b_T G w_l^2$: the re-diffused latent is correlated with the noise it
# is mixed back into, which **overshoots** the training marginal in the lowest bins. FreeInit's soft mix
# ($w = H, 1-H$) at the same time **loses** variance where $0 < H < 1$ (about −2.7 dB in band 2). The
# variance-preserving mix removes the loss but keeps the same-noise excess, so it overshoots most. The
# spectrum-matched latent hits the training marginal band for band with no extra pass; so does the oracle.

# %%
p_db = {r: 10 * np.log10(a_pred.band_power_T.sel(row=r).values) for r in a_pred.row.values.tolist()}
data_db = p_db["data"]
assert np.allclose(p_db["oracle"], data_db, atol=1e-9)                    # the oracle IS the training marginal
assert np.abs(p_db["spectrum-matched"] - data_db).mean() < np.abs(p_db["plain"] - data_db).mean() / 3
assert p_db["FreeInit same ×1"][0] > data_db[0] and p_db["FreeInit fresh ×1"][0] < data_db[0]   # same overshoots
assert p_db["FreeInit same VP ×1"][0] > data_db[0] + 0.5 and p_db["FreeInit same VP ×1"][1] > data_db[1] + 0.5
assert p_db["FreeInit same ×1"][2] < data_db[2] - 2 and abs(p_db["FreeInit same VP ×1"][2] - data_db[2]) < 0.5
# ... and the measurement shows the same signs, with the data's own training z_T as the target
m_db = {r: 10 * np.log10(a_ds.band_power_T.sel(row=r).mean("video").values) for r in a_ds.row.values.tolist()}
m_data = 10 * np.log10(a_ds.data_band_power_T.mean("data_video").values)
assert m_db["FreeInit same VP ×1"][0] > m_data[0] + 0.5 and m_db["FreeInit same ×1"][2] < m_data[2] - 2
assert a_table.loc["spectrum-matched", "band_db"] < a_table.loc["plain", "band_db"]
record("analytic_vp_band0_overshoot_db", float(p_db["FreeInit same VP ×1"][0] - data_db[0]),
       "closed form: variance-preserving FreeInit, band 0 power at T above the training marginal (dB)")
record("analytic_freeinit_band2_loss_db", float(p_db["FreeInit same ×1"][2] - data_db[2]),
       "closed form: FreeInit's soft mix, band 2 power at T relative to the training marginal (dB)")

# %% [markdown]
# ### Consistency *and* dynamics
# The paired tests (same noise per video) against plain sampling, and each strategy's distance to the data:

# %%
t = a_table
# FreeInit's mix buys (a little) consistency by freezing motion: dynamics fall, paired, strongly
assert t.loc["FreeInit same ×1", "t_dynamics"] < -5, t.loc["FreeInit same ×1"]
assert t.loc["FreeInit same ×1", "d_dynamics"] < t.loc["plain", "d_dynamics"] < 0
# fresh noise loses consistency; the variance-preserving mix overshoots the data's consistency
assert t.loc["FreeInit fresh ×1", "t_consistency"] < -3
assert t.loc["FreeInit same VP ×1", "consistency"] > t.loc["data", "consistency"] + 2 * t.loc["FreeInit same VP ×1", "consistency_se"]
# distance to the data: the no-extra-pass strategies beat every FreeInit variant here
# (FreeInit's own mix, same or fresh noise, is clearly farther; the variance-preserving mix is close to plain and
# within ~2 s.e. of it on the seeds we ran, so it is only printed)
best_free = t.loc[["plain", "oracle", "spectrum-matched"], "distance"].min()
fi_rows = [r for r in t.index if r.startswith("FreeInit")]
mix_rows = ["FreeInit same ×1", "FreeInit fresh ×1"]
margin = t.loc[mix_rows, "distance"].min() - best_free
assert margin > 3 * t.loc[mix_rows, "distance_se"].max(), (margin, t.loc[:, ["distance", "distance_se"]])
record("analytic_distance_plain", t.loc["plain", "distance"], "analytic: distance to data, plain sampling")
record("analytic_distance_best_freeinit", t.loc[fi_rows, "distance"].min(), "analytic: best FreeInit variant's distance")
print(f"best no-extra-pass distance {best_free:.2f}, best FreeInit {t.loc[fi_rows, 'distance'].min():.2f}")

# %% [markdown]
# ## 2 · The trained default model
# `load_default_pipeline()` (8×16×16 pixels, trained on `dead_leaves_videos`). Its "training clips" are held-out
# dead-leaves videos (seeds from $10^8 + 5\cdot10^5$, training uses seeds from 0): one set is the data, one the
# oracle's $x_0$, one the sample the spectrum-matched marginal is estimated from. `DEFAULT_STEPS` = 25 DDIM steps,
# the sampler of the other notebooks (64 videos × 6 strategies take about 3 minutes on 2 CPU cores).

# %%
base = fl.load_default_pipeline()
dpipe = fl.load_default_pipeline(scheduler=DDIMScheduler.from_config(base.scheduler.config, **sched_kw))
s0 = 10**8 + 500_000 + 10_000 * SEED
d_data = fl.dead_leaves_videos(2 * NUM_VIDEOS, 8, 16, seed=s0)
d_marginal = st.TerminalMarginal.from_latents(fl.dead_leaves_videos(2 * NUM_VIDEOS, 8, 16, seed=s0 + 1), dpipe.scheduler)
d_oracle = fl.dead_leaves_videos(NUM_VIDEOS, 8, 16, seed=s0 + 2)
t0 = time.perf_counter()
d_ds = st.evaluate_strategies(dpipe, st.default_strategies(num_iters=DEFAULT_NUM_ITERS, **filt), data=d_data,
                              marginal=d_marginal, oracle_latents=d_oracle, num_videos=NUM_VIDEOS, seed=SEED,
                              num_inference_steps=DEFAULT_STEPS)
d_table = st.summarize_strategies(d_ds)
print(f"default model: {NUM_VIDEOS} videos, {DEFAULT_STEPS} steps, {time.perf_counter() - t0:.0f} s")
d_table[COLS]

# %%
d = d_table
d_fi = [r for r in d.index if r.startswith("FreeInit")]
from freeinit_lab.evidence import paired_test

# (a) init side, independent of the weights: the spectrum-matched latent is closer to the training z_T than noise
assert d.loc["spectrum-matched", "band_db"] < d.loc["plain", "band_db"], d["band_db"]
# (b) as on the analytic model, FreeInit's soft mix cuts dynamics (paired), the variance-preserving mix does not
assert d.loc["FreeInit same ×1", "t_dynamics"] < -5, d.loc["FreeInit same ×1"]
vp_vs_fi = paired_test(d_ds.dynamics.sel(row="FreeInit same VP ×1").values, d_ds.dynamics.sel(row="FreeInit same ×1").values)
assert vp_vs_fi["t"] > 3, vp_vs_fi
# (c) the variance-preserving mix raises consistency over plain sampling (paired) on the analytic model; on the
# default model its effect is smaller (printed, not asserted: paired t 0.8 on 16 videos, 3.2 on 64 of seed 1)
assert a_table.loc["FreeInit same VP ×1", "t_consistency"] > 2
print(f"default model, VP mix vs plain: consistency paired t = {d.loc['FreeInit same VP ×1', 't_consistency']:.2f}")
# (d) on the learned model FreeInit over-smooths: it overshoots the data's consistency and freezes motion below
# the data's own dynamics, on both FreeInit variants, by many standard errors
for r in ("FreeInit same ×1", "FreeInit fresh ×1"):
    se_c = np.hypot(d.loc[r, "consistency_se"], d.loc["data", "consistency_se"])
    se_d = np.hypot(d.loc[r, "dynamics_se"], d.loc["data", "dynamics_se"])
    assert d.loc[r, "d_consistency"] > 3 * se_c and d.loc[r, "d_dynamics"] < -3 * se_d, d.loc[r]
# (e) on both models FreeInit ends farther from the data than plain sampling, at twice the cost, and farther than
# the oracle initialisation (which bridges the gap exactly, for free)
for name, tab in (("analytic", a_table), ("default", d)):
    for r in ("FreeInit same ×1", "FreeInit fresh ×1"):
        margin = tab.loc[r, "distance"] - tab.loc["plain", "distance"]
        se = np.hypot(tab.loc[r, "distance_se"], tab.loc["plain", "distance_se"])
        print(f"{name}: {r} distance {tab.loc[r, 'distance']:.2f} vs plain {tab.loc['plain', 'distance']:.2f} "
              f"(oracle {tab.loc['oracle', 'distance']:.2f}); margin {margin:+.2f} ± {se:.2f}")
        assert margin > 2 * se and tab.loc[r, "distance"] > tab.loc["oracle", "distance"], (name, r, margin, se)
record("default_distance_plain", d.loc["plain", "distance"], "default model: distance to data, plain sampling")
record("default_distance_freeinit_same", d.loc["FreeInit same ×1", "distance"], "default model: FreeInit same x1")
record("default_freeinit_dynamics_t", d.loc["FreeInit same ×1", "t_dynamics"], "default: paired t, dynamics FreeInit vs plain")

# %% [markdown]
# ## 3 · Distance to the data against cost
# Lower-left is better: closer to the data for fewer denoiser evaluations (error bars: ±1 s.e.). Larger markers
# joined by the dotted line are each model's Pareto frontier.

# %%
fig = fl.viz.figures.pareto_figure({"analytic (closed form known)": a_table, "trained default": d_table},
                       title="initialisation strategies: distance to the data vs denoiser evaluations")
save_figure(fig, "initialisation_strategies_pareto")

# %% [markdown]
# ## 4 · Verdict
# **Analytic reference (closed form known, measurement reproduces it).** Against the data, the strategies without
# an extra pass win: plain, spectrum-matched and oracle are all about 3.8–3.9 data-s.d. from the data (limited by
# DDIM's own smoothing at 25 steps, which leaves every sampler *less* dynamic than the data), at 25 evaluations.
# FreeInit with its own mix (same or fresh noise) is farther (≈ 5.8) for twice the cost: it buys a little
# consistency by removing motion (dynamics fall, paired t < −5), because its soft mix loses ~2.7 dB of variance in
# the mid band. Re-diffusing with the *same* noise overshoots the training marginal in the lowest band (closed form
# $2a_Tb_TGw_l^2$ per bin); with *fresh* noise it undershoots and consistency drops. The variance-preserving mix
# removes the loss but keeps the overshoot and ends up more consistent than the data itself. The spectrum-matched
# latent matches the training $z_T$ band for band (like the oracle) at no extra cost, but its effect on the samples
# is small. **Disagreement with the paper's framing:** "higher consistency" is not "better" — on this model it is
# either bought with motion (FreeInit's mix) or overshoots the data (variance-preserving mix).
#
# **Trained default model (25 DDIM steps, 64 videos; seeds 0 and 1 measured, numbers as seed 0 / seed 1).**
# Plain sampling is already close to the data (consistency 0.36 / 0.35 vs the data's 0.41 / 0.44, dynamics
# 0.148 / 0.153 vs 0.105 / 0.103; distance 1.12 / 1.18). FreeInit does exactly what the paper reports — it
# doubles temporal consistency (0.74 / 0.74, paired t ≈ 17–19) — but that is **over-smoothing**: consistency
# overshoots the data by ~0.3 and motion is frozen to 0.031 / 0.033, a third of the data's dynamics (paired
# t ≈ −15), so FreeInit ends about twice as far from the data (2.31 / 1.95) for twice the denoiser evaluations,
# with the same or with fresh noise. The **oracle** initialisation (the training marginal's $z_T$, i.e. the gap
# bridged exactly) is the closest to the data (0.68 / 0.78) at no extra cost: consistency up to 0.40 / 0.39,
# dynamics down to 0.131 / 0.137, both towards the data. The spectrum-matched noise matches the training $z_T$'s
# band power better than white noise but, drawn from a Gaussian fitted per frequency, moves the samples little
# (distance 1.15 / 1.17). The variance-preserving mix keeps the dynamics (0.16 / 0.14) and its consistency gain is
# small (paired t 1.5 / 3.2); its distance (1.43 / 0.90) straddles plain's, so no ranking is claimed.
#
# **Who wins, and the disagreement with the paper's framing.** On both models the winner against the data is an
# initialisation without an extra pass (oracle, then plain/spectrum-matched); FreeInit with its own mix loses on
# both, by about 2 data-s.d. on the analytic model and 1.2 on the learned one, because the consistency it buys is
# bought with motion. "Higher consistency is better" would rank FreeInit first on the learned model; measured
# against the data it ranks last. The assertions above check these directions on the measured numbers, with
# margins in standard errors; an earlier version of this notebook used 5 DDIM steps on the default model, where
# the sampler itself is far too dynamic and FreeInit's smoothing *looked* like a gain — the conclusion depends on
# the sampler being reasonable, which is why we use the 25 steps of the other notebooks.
#
# The table below: strategy × (consistency, dynamics, distance to data, band-power distance at T, evaluations) for
# both models.

# %%
summary = pd.concat({"analytic": a_table[["consistency", "dynamics", "distance", "band_db", "evals"]],
                     "default": d_table[["consistency", "dynamics", "distance", "band_db", "evals"]]})
print(f"notebook body ran in {time.perf_counter() - t_start:.0f} s")
summary
