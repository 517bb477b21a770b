# %% [markdown]
# # 06 · Initialisation strategies judged against the data
#
# **Question.** FreeInit's paper scores temporal consistency as "higher is better", which also rewards a video that
# barely moves. Here every way of starting the sampler is judged against **held-out videos of the training
# distribution**, with a distance that says where a sample set differs from the data:
#
# * **band power per band, in dB against the data** (`fl.judge_against_data`): spatial power of each radial band
#   (cycles per pixel; band 0 = the DC bin, i.e. each frame's mean) and temporal power at each frequency (cycles
#   per frame; 0 = each pixel's time average), $10\log_{10}(\overline{P}_\text{arm}/\overline{P}_\text{data})$, and
#   their RMS over all bands ("band distance", dB);
# * **consistency** (first-frame cosine of mean-removed frames, the paper's pairing, on model-space videos) and
#   **dynamics** (RMS change between consecutive frames, model-space units), each against the data's value;
# * every number with a **99 % percentile bootstrap** interval: the paired videos (the same initial noise
#   $\varepsilon$ in every arm) are resampled together, the data videos independently, so differences between arms
#   are paired.
#
# All videos are in **model space** (per-channel unit variance, like a VAE-scaled latent). Arms, all from the same
# $\varepsilon$ per video; cost in sampling passes of the stored sampler (DPM-Solver++(2M) on Karras sigmas, the model folder's step count):
#
# | arm | initial latent of the last pass | passes |
# |---|---|---|
# | plain | $\varepsilon$ | 1 |
# | oracle (reference) | $a_T x_0 + b_T\varepsilon$, $x_0$ held-out training videos: the training marginal, gap removed | 1 |
# | spectrum-matched | low band ($H$) drawn from a Gaussian fit of the training marginal per frequency, high band $\varepsilon$ | 1 |
# | FreeInit (`freeinit`) | re-diffuse the plain result with the **same** $\varepsilon$ (both public codes), mix $H$ / $1-H$ with fresh noise | 2 |
# | `freeinit_fresh` | re-diffuse with **fresh** noise (a variant: both public codes reuse ε) | 2 |
# | `variance_preserving` | same noise, mix weights whose squares sum to one per frequency | 2 |
# | `mask_only` (control) | FreeInit's mix with the signal removed: $H b_T\varepsilon + (1-H)\eta$ | 1 |
# | `amplitude_matched` (control) | $\varepsilon$ rescaled per band to the training marginal's band power (fitted on held-out training videos, not on the videos the arms are judged against): the amplitude FreeInit restores, no signal | 1 |
#
# Filter: Gaussian, $D_0 = d_s = d_t = 0.25$ (the paper's main table), one FreeInit iteration (the paper's biggest
# step). The two controls are `fl.decompose_freeinit`'s: what the mask alone does, and what the right low-band
# amplitude alone does — FreeInit's claims below stand beside them.

# %% tags=["parameters"]
SEED = 0                  # noises, FreeInit's draws, data, oracle videos and bootstraps all derive from it
NUM_VIDEOS = 16           # paired videos per arm on the trained model (8 passes x 16 videos x 25 steps = 3,200)
NUM_VIDEOS_ANALYTIC = 64  # paired videos per arm on the exact-score model (nearly free)
NUM_DATA = 128            # held-out training videos the arms are judged against
FIT_VIDEOS = 128          # other held-out videos, for the fits: the exact-score model's Gaussian, the spectrum-matched
                          # marginal and amplitude_matched's band power (never the videos the arms are judged against)
CONFIDENCE = 0.99         # bootstrap intervals of every assertion but the two share claims
SHARE_CONFIDENCE = 0.95   # the decomposition's intervals of a share (control gain / FreeInit gain): the two share
                          # claims; a ratio of two paired means of 16 videos, wider than the other intervals
METHOD, CUTOFF = "gaussian", 0.25

# %%
import time
from statistics import NormalDist

import numpy as np
import pandas as pd
import torch

import freeinit_lab as fl
from freeinit_lab.studies import strategies as st
from freeinit_lab.studies.decomposition import decomposition_noises
from freeinit_lab.report import record, save_figure

pd.set_option("display.precision", 3)
pd.set_option("display.width", 200)
t_start = time.perf_counter()
CONTROLS = ["freeinit_fresh", "variance_preserving", "mask_only", "amplitude_matched"]
pipe = fl.load_default_pipeline()
# held-out training videos (seeds >= 900,000,000; training used others), three disjoint draws of this run:
# s0 the data the arms are judged against, s0 + 1 the oracle's x_0, s0 + 2 the fit videos
s0 = 900_000_000 + 1000 * SEED
fit_videos = fl.default_training_videos(FIT_VIDEOS, seed=s0 + 2)
apipe = fl.load_default_analytic_pipeline(clips=fit_videos)  # the exact-score model: a Gaussian fit of fit_videos
STEPS = pipe.default_num_inference_steps  # the stored sampler's step count (only used to price the runs)
SAMPLER = type(pipe.scheduler).__name__
# the exact-score model's own held-out draws (another generator than its judging data's, below): the
# spectrum-matched latent's low band (the training marginal of the Gaussian fit) and its amplitude_matched target
a_fit = apipe.unet.sample_prior(FIT_VIDEOS, generator=torch.Generator().manual_seed(10**6 + SEED))
marginal = st.TerminalMarginal.from_latents(a_fit, pipe.scheduler)
strategies = [st.InitStrategy("oracle", init="oracle", method=METHOD, d_s=CUTOFF, d_t=CUTOFF),
              st.InitStrategy("spectrum_matched", init="spectrum_matched", method=METHOD, d_s=CUTOFF, d_t=CUTOFF)]


def run_arms(p, n, data, x0, fit):
    """Decomposition arms (plain, FreeInit, its variants and controls) plus oracle and spectrum-matched, paired.

    Judged against ``data``; amplitude_matched's target is fitted on ``fit`` (held-out videos other than ``data``)."""
    ds = fl.decompose_freeinit(p, num_videos=n, seed=SEED, method=METHOD, d_s=CUTOFF, d_t=CUTOFF, controls=CONTROLS,
                               reference=data, amplitude_reference=fit, return_latents=True,
                               confidence=SHARE_CONFIDENCE, progress=False)
    eps = decomposition_noises(n, p.sample_shape, SEED, 2)["eps"]  # the decomposition's eps, shared by every arm
    videos = {a: torch.from_numpy(ds.latents.sel(arm=a).values) for a in ds.arm.values.tolist()}
    for s in strategies:
        videos[s.name] = s.run(p, eps, marginal=marginal, clean=x0).latents.float()
    judged = fl.judge_against_data(videos, data, confidence=CONFIDENCE, seed=SEED)
    return ds.drop_vars("latents"), videos, judged


def ci(j, var, arm, sel=None):
    da = j[var].sel(arm=arm) if sel is None else j[var].sel(arm=arm, **sel)
    lo = j[var + "_low"].sel(arm=arm) if sel is None else j[var + "_low"].sel(arm=arm, **sel)
    hi = j[var + "_high"].sel(arm=arm) if sel is None else j[var + "_high"].sel(arm=arm, **sel)
    return float(da), float(lo), float(hi)


def table(j):
    """Arms x (band distance, consistency, dynamics and their differences), 'value [low, high]'."""
    cols = ["band_distance", "band_distance_vs_baseline", "consistency", "consistency_vs_data",
            "consistency_vs_baseline", "dynamics", "dynamics_vs_data", "dynamics_vs_baseline"]
    return pd.DataFrame({c: [("{:+.3f} [{:+.3f}, {:+.3f}]".format(*ci(j, c, a))) for a in j.arm.values.tolist()]
                         for c in cols}, index=j.arm.values.tolist())


def db_table(j, var="spatial_db"):
    dim = "spatial_band" if var.startswith("spatial") else "temporal_freq"
    lab = ([f"{lo:.3g}-{hi:.3g}" for lo, hi in zip(j.spatial_low_edge.values, j.spatial_high_edge.values)]
           if dim == "spatial_band" else [f"{f:.3g}" for f in j.temporal_freq.values])
    return pd.DataFrame({lab[k]: ["{:+.1f} [{:+.1f}, {:+.1f}]".format(*ci(j, var, a, {dim: v}))
                                  for a in j.arm.values.tolist()] for k, v in enumerate(j[dim].values)},
                        index=j.arm.values.tolist())


print(f"stored sampler: {STEPS} steps of {SAMPLER}; setup {time.perf_counter() - t_start:.0f} s")

# %% [markdown]
# ## 1 · The exact-score model: closed forms, then the same measurements
# `load_default_analytic_pipeline(clips=fit_videos)` is the exact MMSE denoiser of a Gaussian fit of the default
# model's training data (here fitted to the `FIT_VIDEOS` held-out fit videos), with the same sampler. Its data are
# exact draws from that Gaussian (`sample_prior`): the judging data, the oracle's $x_0$ and the fit draws for its
# spectrum-matched marginal and `amplitude_matched` target are three separate draws. The deterministic sampler
# (DPM-Solver++, like DDIM and UniPC, is linear in its inputs) with this denoiser is linear per frequency, so `fl.analytic_controls`
# and `st.analytic_prediction` give every arm's expected band powers (exactly) and consistency and dynamics (as
# ratios of expectations) in closed form.
#
# That the measurement reproduces them is a property of the toolkit (sampler, controls, metrics), unit-tested on a
# small exact-score model (`tests/studies/test_decomposition.py`, `tests/studies/test_strategies.py`: every |z|
# within the Bonferroni limit). Here the same comparison on this run's videos is shown, not asserted:
# `st.closed_form_comparison` gives, per arm, $z = (\text{measured} - \text{closed form}) / \text{s.e.}$ with
# consistency and dynamics measured as **ratios of means** over the videos (`st.pooled_metrics`, the estimators of
# the closed forms' ratios of expectations, delta-method s.e.) and band power (of the final videos, 3-D radial
# bands, model space, unit white noise = 1 per bin) as the mean over videos. `per_video_mean` is the mean of the
# per-video metric that the tables below report; `ratio_bias` its difference from the ratio of means.

# %%
t0 = time.perf_counter()
g = torch.Generator().manual_seed(2 * 10**6 + SEED)
a_data = apipe.unet.sample_prior(NUM_DATA, generator=g)
a_x0 = apipe.unet.sample_prior(NUM_VIDEOS_ANALYTIC, generator=g)
a_ds, a_videos, a_j = run_arms(apipe, NUM_VIDEOS_ANALYTIC, a_data, a_x0, a_fit)
a_cf = fl.analytic_controls(apipe, a_ds.arm.values.tolist(), method=METHOD, d_s=CUTOFF, d_t=CUTOFF,
                            num_inference_steps=STEPS, amplitude_target=a_ds.amplitude_target.values)
a_pred = st.analytic_prediction(apipe, strategies, marginal, num_inference_steps=STEPS)
print(f"exact-score model: {len(a_videos)} arms x {NUM_VIDEOS_ANALYTIC} videos, {time.perf_counter() - t0:.0f} s")

cf_check = st.closed_form_comparison(a_videos, a_cf, a_pred)  # oracle, spectrum-matched: consistency, dynamics only
max_z = record("analytic_closed_form_max_abs_z", float(np.abs(cf_check.z).max()),
               "largest |measured - closed form| / s.e. over arms, consistency, dynamics and band powers, exact-score "
               "model (shown, not asserted: the comparison is unit-tested)")
# for reading: the |z| that all of them stay below with probability 99 % on a correct toolkit (Bonferroni)
z99 = NormalDist().inv_cdf(1 - 0.01 / (2 * len(cf_check)))
print(f"{len(cf_check)} comparisons, largest |z| {max_z:.2f} (all below {z99:.2f} with 99 % probability if the closed "
      f"forms hold); mean-of-ratios bias of the per-video means: consistency "
      f"{cf_check.xs('consistency', level='quantity').ratio_bias.mean():+.4f}, dynamics "
      f"{cf_check.xs('dynamics', level='quantity').ratio_bias.mean():+.5f} (mean over arms)")
display(cf_check.z.unstack("quantity"))  # z per arm: consistency, dynamics, band power per band (NaN: none)
cf_check[cf_check.index.get_level_values("quantity").isin(["consistency", "dynamics"])]

# %% [markdown]
# ### Against the data, on the exact-score model
# Band power in dB against the data (rows: arms; columns: spatial bands in cycles per pixel, DC first), then
# temporal frequencies (cycles per frame), 99 % intervals:

# %%
display(db_table(a_j, "spatial_db"))
display(db_table(a_j, "temporal_db"))
table(a_j)

# %% [markdown]
# **Reading it.** Plain sampling falls short of the data in the lowest bands — the spatial DC band (each frame's
# mean) and the temporal DC (each pixel's time average) by many dB (table above) — while every arm, the oracle
# included, sits slightly below the data in the top bands: that is the sampler's own discretisation at the stored
# step count, common to all arms. The low-band shortfall *is* the initialization gap (the deterministic sampler maps unit
# noise to variance $\lambda/(a_T^2\lambda+b_T^2)$ instead of $\lambda$): the oracle, started on the training
# marginal, removes it. FreeInit raises the low bands only part of the way, and the controls say why. The claims
# below are checked on both models with the same code.

# %%
# judge again with FreeInit as the baseline: paired intervals of every arm against FreeInit
a_jf = fl.judge_against_data(a_videos, a_data, baseline="freeinit", confidence=CONFIDENCE, seed=SEED)
DC, TDC = dict(spatial_band=0), dict(temporal_freq=0.0)


def claims(j, jf, ds):
    """The claims checked on both models: name -> (point, low, high) and the side of zero the interval must lie on."""
    return {
        # the gap: plain falls short of the data in the spatial and temporal DC bands, and in consistency
        "plain spatial DC vs data (dB)": (ci(j, "spatial_db", "plain", DC), "<0"),
        "plain temporal DC vs data (dB)": (ci(j, "temporal_db", "plain", TDC), "<0"),
        "plain consistency vs data": (ci(j, "consistency_vs_data", "plain"), "<0"),
        # the oracle (training marginal) raises the DC band and ends closer to the data
        "oracle - plain, spatial DC (dB)": (ci(j, "spatial_db_vs_baseline", "oracle", DC), ">0"),
        "oracle - plain, band distance (dB)": (ci(j, "band_distance_vs_baseline", "oracle"), "<0"),
        # FreeInit raises the DC band (paired) but stays short of the data there; it raises consistency and
        # lowers dynamics (paired), below the motion a one-pass start on the training marginal keeps with the same
        # sampler and noise (oracle - FreeInit, paired): the sampler's own top-band loss, which already puts plain's
        # dynamics below the data's, is common to both, so this is FreeInit's own loss. FreeInit's dynamics against
        # the data is shown only: with plain already below the data it would hold for any arm that lowers motion.
        "FreeInit - plain, spatial DC (dB)": (ci(j, "spatial_db_vs_baseline", "freeinit", DC), ">0"),
        "FreeInit spatial DC vs data (dB)": (ci(j, "spatial_db", "freeinit", DC), "<0"),
        "FreeInit - plain, consistency": (ci(j, "consistency_vs_baseline", "freeinit"), ">0"),
        "FreeInit - plain, dynamics": (ci(j, "dynamics_vs_baseline", "freeinit"), "<0"),
        "oracle - FreeInit, dynamics": (ci(jf, "dynamics_vs_baseline", "oracle"), ">0"),
        "FreeInit dynamics vs data": (ci(j, "dynamics_vs_data", "freeinit"), "<0"),
        "plain dynamics vs data": (ci(j, "dynamics_vs_data", "plain"), "<0"),
        # its controls: one pass from amplitude-matched noise, or from the spectrum-matched latent, ends closer to
        # the data than FreeInit's two passes; the mask alone (no signal) moves the samples away from the data
        "amplitude_matched - FreeInit, band distance (dB)": (ci(jf, "band_distance_vs_baseline", "amplitude_matched"), "<0"),
        "spectrum_matched - FreeInit, band distance (dB)": (ci(jf, "band_distance_vs_baseline", "spectrum_matched"), "<0"),
        "mask_only - plain, band distance (dB)": (ci(j, "band_distance_vs_baseline", "mask_only"), ">0"),
        # FreeInit's consistency gain is the low-band amplitude's (most of it reproduced by amplitude_matched);
        # its loss of dynamics is the mask's (mask_only reproduces more of it than of the consistency gain)
        "amplitude_matched share of FreeInit's consistency gain - 0.5": (tuple(float(ds[v].sel(
            control="amplitude_matched", metric="consistency")) - 0.5 for v in ("explained", "explained_low",
                                                                                 "explained_high")), ">0"),
        "mask_only share: dynamics low - consistency high": ((float(ds.explained.sel(control="mask_only",
            metric="dynamics") - ds.explained.sel(control="mask_only", metric="consistency")),
            float(ds.explained_low.sel(control="mask_only", metric="dynamics") - ds.explained_high.sel(
                control="mask_only", metric="consistency")), np.nan), ">0"),
    }


def check(c, reported=()):
    """Every claim's interval on its side of zero (asserted), except the ``reported`` ones, which are shown only."""
    rows = []
    for name, ((point, lo, hi), side) in c.items():
        ok = lo > 0 if side == ">0" else hi < 0
        rows.append(dict(claim=name, value=point, low=lo, high=hi, holds="reported" if name in reported else side,
                         ok=ok))
    df = pd.DataFrame(rows).set_index("claim")
    asserted = df[df.holds != "reported"]
    assert asserted.ok.all(), asserted[~asserted.ok]
    return df


# FreeInit's loss of dynamics is the soft Gaussian mask's variance decay: claimed, and asserted, for the Gaussian
# filter only. A sharper filter has little of it (historical run, an earlier version of this notebook: with
# METHOD = "butterworth" (order 4), CUTOFF = 0.25, seed 987,654, FreeInit − plain dynamics was +0.005 [+0.003, +0.008]
# on the exact-score model and +0.012 [+0.002, +0.020] on the trained one, 99 %); under another filter these three
# claims are shown, not asserted.
FILTER_SPECIFIC = () if METHOD == "gaussian" else ("FreeInit - plain, dynamics", "oracle - FreeInit, dynamics",
                                                   "mask_only share: dynamics low - consistency high")
SHOWN = ("FreeInit dynamics vs data", "plain dynamics vs data")  # shown beside the paired claim, not claims
a_claims = check(claims(a_j, a_jf, a_ds), reported=(*SHOWN, *FILTER_SPECIFIC))
record("analytic_plain_spatial_dc_db", a_claims.loc["plain spatial DC vs data (dB)", "value"],
       "exact-score model: plain samples' spatial DC band power vs the data, dB")
record("analytic_plain_temporal_dc_db", a_claims.loc["plain temporal DC vs data (dB)", "value"],
       "exact-score model: plain samples' temporal DC power vs the data, dB")
record("analytic_freeinit_spatial_dc_gain_db", a_claims.loc["FreeInit - plain, spatial DC (dB)", "value"],
       "exact-score model: FreeInit's spatial DC band power minus plain's (paired), dB")
display(a_claims)

# %% [markdown]
# Above: every claim with its 99 % interval (the two share claims use the decomposition's 95 % paired bootstrap);
# `holds` is the side of zero the whole interval must lie on (`reported`: shown, not asserted). Below: the
# decomposition's shares (control − plain) / (FreeInit − plain) with 95 % paired intervals (`distance` there is the decomposition's per-video
# RMS dB over 3-D bands against the data's mean band power).

# %%
fl.decomposition_table(a_ds, ["consistency", "dynamics", "contrast", "distance"])

# %% [markdown]
# **On the exact-score model** (tables above): FreeInit's consistency gain is the low-band amplitude's —
# `amplitude_matched`, plain noise rescaled per band to the training marginal's power, reproduces more than half of
# it from a single pass (the claim asserted; its share, which can exceed one, is in the table above); its loss of
# dynamics is the mask's — `mask_only`, which carries no signal at all, reproduces it (the soft mix keeps per-bin
# variance $H^2+(1-H)^2<1$ where $0<H<1$, the "variance decay" FreqPrior points at) while adding little consistency.
# Same-noise re-diffusion (`freeinit`) raises the DC band more than fresh noise does; the variance-preserving mix
# removes the mid-band loss.

# %% [markdown]
# ## 2 · The trained default model
# `load_default_pipeline()` (the subjects-v1 model, 16 × 32 × 32 RGB, model space). Its data: `NUM_DATA` held-out
# training videos (`fl.default_training_videos`, seed `s0`, ≥ 900,000,000); the oracle's $x_0$: `NUM_VIDEOS` more
# (seed `s0 + 1`); `amplitude_matched`'s band-power target is fitted on the `FIT_VIDEOS` fit videos (seed `s0 + 2`,
# `decompose_freeinit(amplitude_reference=...)`), not on the data it is judged against. The same seeded
# $\varepsilon$ as on the exact-score model: `decomposition_noises` draws $\varepsilon$ first, so the first
# `NUM_VIDEOS` videos of each arm share their noise across the two models too (a unit-tested property).

# %%
t0 = time.perf_counter()
d_data = fl.default_training_videos(NUM_DATA, seed=s0)
d_x0 = fl.default_training_videos(NUM_VIDEOS, seed=s0 + 1)
d_ds, d_videos, d_j = run_arms(pipe, NUM_VIDEOS, d_data, d_x0, fit_videos)
d_jf = fl.judge_against_data(d_videos, d_data, baseline="freeinit", confidence=CONFIDENCE, seed=SEED)
video_steps = NUM_VIDEOS * STEPS * (len(d_videos))
print(f"trained model: {len(d_videos)} arms x {NUM_VIDEOS} videos ({video_steps} video-steps), "
      f"{time.perf_counter() - t0:.0f} s")
display(db_table(d_j, "spatial_db"))
display(db_table(d_j, "temporal_db"))
table(d_j)

# %%
fig = fl.viz.figures.data_comparison_figure({"exact-score model": a_j, "trained default": d_j},
                                            title="initialisation strategies: band power against the data")
save_figure(fig, "initialisation_strategies_band_power", height=700)
fig

# %% [markdown]
# ### The trained model's gap against the exact-score model's
# Paired by noise (the same $\varepsilon$: the first `NUM_VIDEOS` noises are shared by the two models), the trained
# model's plain samples against the exact-score model's (`fl.band_power_gap`, 95 % bootstrap over video pairs). Not
# asserted: on non-Gaussian data even an exact model can fall below the Gaussian one (the model card's part 2). At
# the default seed the spatial DC band agrees within its interval, and in every other band the trained model's plain
# samples have less power than the exact-score model's: they fall further short of the data than the gap's physics
# requires.

# %%
gap_vs_exact = fl.band_power_gap(d_videos["plain"], a_videos["plain"][:NUM_VIDEOS], seed=SEED)
print(gap_vs_exact)

# %%
# the same claims on the trained model; its plain samples' consistency shortfall is reported, not asserted: with the
# stored second-order sampler it is small against 16 videos' interval (it was resolved with DDIM 25, an earlier one)
d_claims = check(claims(d_j, d_jf, d_ds), reported=("plain consistency vs data", *SHOWN, *FILTER_SPECIFIC))
for name, key in (("plain_spatial_dc_db", "plain spatial DC vs data (dB)"),
                  ("plain_temporal_dc_db", "plain temporal DC vs data (dB)"),
                  ("freeinit_spatial_dc_gain_db", "FreeInit - plain, spatial DC (dB)"),
                  ("freeinit_consistency_gain", "FreeInit - plain, consistency"),
                  ("freeinit_dynamics_change", "FreeInit - plain, dynamics"),
                  ("amplitude_matched_minus_freeinit_band_distance_db", "amplitude_matched - FreeInit, band distance (dB)")):
    record(f"default_{name}", d_claims.loc[key, "value"], f"trained model: {key}, 99 % interval "
           f"[{d_claims.loc[key, 'low']:+.3f}, {d_claims.loc[key, 'high']:+.3f}]", low=d_claims.loc[key, "low"],
           high=d_claims.loc[key, "high"])
for arm in ("plain", "freeinit", "amplitude_matched", "spectrum_matched", "oracle"):
    record(f"default_{arm}_band_distance_db", ci(d_j, "band_distance", arm)[0],
           f"trained model: RMS over bands of {arm}'s band power vs the data, dB")
display(d_claims)
fl.decomposition_table(d_ds, ["consistency", "dynamics", "contrast", "distance"])

# %% [markdown]
# ## 3 · Summary
# This run's key numbers, both models, from the claims tables above: value [low, high] at 99 % (the two share
# claims: 95 % paired bootstrap), and `holds`, the side of zero the interval is asserted to lie on (`reported`:
# shown, not asserted). Band distances: RMS over bands of the band power against the data, dB.

# %%
def fmt(c, key):
    v, lo, hi = (float(c.loc[key, k]) for k in ("value", "low", "high"))
    return f"{v:+.3f} [{lo:+.3f}, " + (f"{hi:+.3f}]" if np.isfinite(hi) else "-]")


def fmt_ci(point, lo, hi):
    return f"{point:+.3f} [{lo:+.3f}, {hi:+.3f}]"


summary = pd.DataFrame({"exact-score model": [fmt(a_claims, k) for k in a_claims.index],
                        "exact: holds": a_claims.holds,
                        "trained default": [fmt(d_claims, k) for k in d_claims.index],
                        "trained: holds": d_claims.holds}, index=a_claims.index)
extra = {"FreeInit consistency vs data": lambda j: fmt_ci(*ci(j, "consistency_vs_data", "freeinit")),
         **{f"band distance, {arm} (dB)": (lambda j, arm=arm: fmt_ci(*ci(j, "band_distance", arm)))
            for arm in ("plain", "freeinit", "amplitude_matched", "spectrum_matched", "oracle")}}
for name, f in extra.items():
    summary.loc[name] = [f(a_j), "reported", f(d_j), "reported"]
print(f"exact-score model: closed forms vs measurement, largest |z| {max_z:.2f} over {len(cf_check)} comparisons; "
      f"trained vs exact-score plain samples, paired by noise: see band_power_gap above")
summary

# %% [markdown]
# **What was measured.** Eight ways to start the sampler, all from the same noise per video, judged against held-out
# videos of the training distribution in model space: band power per spatial band and temporal frequency in dB
# against the data, consistency and dynamics against the data's, with 99 % bootstrap intervals (paired between
# arms); first on the exact-score model, whose closed forms the measurement is compared with (z-scores in §1; the
# comparison itself is unit-tested), then on the trained default. The fits (the exact-score model's Gaussian, the
# spectrum-matched marginal, `amplitude_matched`'s band power) use held-out videos other than those the arms are
# judged against. The numbers are this run's, in the table above.
#
# * **The gap.** Plain samples fall short of the data in the spatial and temporal DC bands on both models, and are
#   less consistent than the data on the exact-score model; on the trained default the consistency
#   shortfall is reported, not asserted (its interval is in the table; with UniPC 25, an earlier sampler, 24 videos
#   did not resolve it). In the spatial DC band the trained model's shortfall is the exact-score model's, paired by
#   noise (`band_power_gap` above): that much is the gap's physics. In the other bands its plain samples fall
#   further short than the exact-score model's. Started on the training marginal (oracle) the samples match the
#   data's low bands, and the band distance drops to the floor set by the model's own loss of band power (the model
#   card's part 1).
# * **FreeInit** (same noise, Gaussian $D_0=0.25$, one iteration, twice the cost) raises the DC bands (paired) but
#   ends short of the data there; it raises consistency (`FreeInit consistency vs data` in the table says where it
#   ends against the data's), and lowers dynamics — below the motion the oracle keeps with the same sampler and
#   noise (`oracle - FreeInit, dynamics`), so the loss is FreeInit's, not the sampler's (plain's dynamics is below
#   the data's too, from the sampler's top-band loss; `plain dynamics vs data`). **Its controls explain it:**
#   `amplitude_matched` — plain noise with the training marginal's band power, one pass — reproduces more than half
#   of the consistency gain (its share in the table) and ends closer to the data than FreeInit; `mask_only` —
#   FreeInit's mix without any signal — reproduces the loss of dynamics (the soft mix's variance decay; a sharper
#   Butterworth mask has little of it, and FreeInit with it does not lower the dynamics: those claims are asserted
#   for the Gaussian filter only) and moves the samples away from the data. The spectrum-matched latent (a Gaussian
#   fit of the training marginal's low band, no data needed at sampling time, one pass) ends closer to the data than
#   FreeInit, near the oracle (band distances in the table). Fresh-noise re-diffusion (a variant) raises the DC band
#   less than same-noise re-diffusion (the public codes); the variance-preserving mix keeps the dynamics (both in
#   the tables, not asserted).
# * **Against the paper.** The paper reports FreeInit's consistency gains (DINO first-frame similarity, e.g.
#   AnimateDiff on UCF-101 85.24 → 92.01, the paper's numbers); we see the same direction on pixel consistency on
#   both models. We disagree with "higher consistency is better": measured against the data, FreeInit's gain is what
#   the right low-band amplitude alone gives at half the cost, and its soft mix costs motion below what the sampler
#   keeps from a start on the training marginal — the over-smoothed motion the authors name as a limitation, here
#   traced to the mask by `mask_only`. Judged against the data, one-pass initialisations that put the low band on the
#   training marginal (amplitude-matched, spectrum-matched, oracle) beat FreeInit.
#
# Cost: the trained model's eight arms take `NUM_VIDEOS` × 8 passes × the stored step count denoiser evaluations
# (printed in §2); the exact-score model's are nearly free.

# %%
seconds = record("initialisation_strategies_seconds", time.perf_counter() - t_start, "wall time of this notebook")
print(f"notebook ran in {seconds:.0f} s")
