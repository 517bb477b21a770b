# %% [markdown]
# # 01 · The initialization gap (the paper's first finding)
#
# **Claim** (FreeInit, Wu et al. 2023, §3): during training a video diffusion model sees
# $z_T = a_T z_0 + b_T \varepsilon$ with $a_T > 0$ for the schedules of AnimateDiff, ModelScope and VideoCrafter,
# so the clean video's **low spatio-temporal frequencies leak into $z_T$**; at inference $z_T$ is pure Gaussian
# noise. The model is therefore started from a latent whose low-frequency content it never saw at $t = T$.
#
# Here we measure that leak band by band on **real clips shipped in `data/`** (Big Buck Bunny, CC-BY 3.0), for the
# schedule those models use and for schedules that close the gap by construction.
#
# **Our convention** (the paper's exact band definition is not public): ortho-normalised 3D FFT over
# (frame, height, width), radial bands on the normalised frequency radius (Nyquist = 1), band SNR
# $= a_t^2 \cdot \mathrm{mean}_\text{band}|Z_0|^2 / (b_t^2 \cdot \mathrm{mean}_\text{band} E|\hat\varepsilon|^2)$ in dB.
# **Difference from the paper:** the paper measures VAE latents of UCF-101 videos; the embedded default works in
# pixel space, so we measure pixels of real clips (values in [−1, 1]). Absolute dB values therefore differ; the
# direction of every finding is what we check.

# %% tags=["parameters"]
NUM_FRAMES = 16      # clip length and size analysed (16×64×64 is AnimateDiff's latent size at 512×512)
HEIGHT = 64
NUM_BANDS = 6
SEED = 0             # noise draws of the illustrations
CUTOFF = 0.25        # FreeInit's default d_s = d_t, for the low-pass illustration

# %%
import numpy as np
import pandas as pd
import plotly.express as px
import torch
import diffusers

import freeinit_lab as fl
from freeinit_lab import plots
from freeinit_lab.report import record, save_figure

SD = dict(beta_start=0.00085, beta_end=0.012)
schedulers = {
    "SD scaled-linear (AnimateDiff training, ModelScope, VideoCrafter)": diffusers.DDIMScheduler(beta_schedule="scaled_linear", **SD),
    "linear (AnimateDiff inference config)": diffusers.DDIMScheduler(beta_schedule="linear", **SD),
    "zero-terminal-SNR (rescale_betas_zero_snr, CogVideoX-style)": diffusers.DDIMScheduler(beta_schedule="scaled_linear", rescale_betas_zero_snr=True, **SD),
    "flow matching, shift 3 (Wan / LTX / Hunyuan-style)": diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0),
}
sd_name = next(iter(schedulers))
sd = schedulers[sd_name]

# %% [markdown]
# ## The real clips
# Non-overlapping segments of the shipped clips, centre-cropped and resized to the analysed size.

# %%
clips = fl.load_clips(NUM_FRAMES, HEIGHT, as_xarray=True)
x0 = torch.as_tensor(clips.values)
print(clips.sizes, "| sources:", sorted(set(clips.source.values.tolist())))
plots.video_figure({f"clip {i} ({clips.source.values[i]}, frame {int(clips.start[i])})": x0[i] for i in range(3)},
                   title="three of the analysed segments", scale=4)

# %% [markdown]
# ## Band-wise SNR of the training noisy latent, SNR(t)
# One FFT of the clips gives every band's signal power; $a_t, b_t$ come from the scheduler.

# %%
snr = fl.band_snr(x0, sd, num_bands=NUM_BANDS)
save_figure(plots.band_snr_figure(snr, title=f"band SNR of training z_t on real clips — {sd_name}"), "01_band_snr")

# %%
T = int(snr.timestep[-1])
at_T = snr.sel(timestep=T)
whole_video_db = float(fl.get_schedule(sd).snr_db(T)) + 10 * np.log10(float((x0 ** 2).mean()))
table = pd.DataFrame({"band": snr.band.values, "radius": [f"{lo:.3f}–{hi:.3f}" for lo, hi in zip(snr.band_lo.values, snr.band_hi.values)],
                      "bins": snr.num_bins.values, "SNR at T (dB)": at_T.values.round(2)})
print(f"whole-video SNR at T = {whole_video_db:.1f} dB (schedule SNR {float(fl.get_schedule(sd).snr_db(T)):.2f} dB × clip power)")
table

# %%
low_T = record("band0_snr_at_T_db", float(at_T.isel(band=0)), "lowest band's SNR of the training z_T (real clips, SD schedule)")
high_T = record("top_band_snr_at_T_db", float(at_T.isel(band=-1)), "highest band's SNR of the training z_T")
# the lowest band keeps far more signal at T than the highest and than the video as a whole
assert low_T - high_T > 30, (low_T, high_T)
assert low_T - whole_video_db > 20, (low_T, whole_video_db)
# every band's SNR falls monotonically with t (the schedule), and the order low > high holds at every t
assert bool((snr.diff("timestep") <= 0).all())
assert bool((snr.isel(band=0) > snr.isel(band=-1)).all())

# %% [markdown]
# The paper reports the low-frequency band **above 0 dB at t = T** (on SD-VAE latents). On real pixels at
# AnimateDiff's latent size we find the same sign for the lowest band; how high it is depends on the number of
# voxels, because the DC bin of an ortho-normalised FFT holds $N\mu^2$ for a video of mean $\mu$ over $N$ voxels:

# %%
sizes = [(8, 16), (8, 32), (16, 32), (NUM_FRAMES, HEIGHT)]
rows = []
for f, h in sizes:
    xs = fl.load_clips(f, h)
    gap_s = fl.initialization_gap(xs, sd, NUM_BANDS)
    rows.append({"frames×height×width": f"{f}×{h}×{h}", "voxels": f * h * h,
                 "band 0 SNR at T (dB)": round(float(gap_s.sel(source="training z_T", band=0)), 2),
                 "top band SNR at T (dB)": round(float(gap_s.sel(source="training z_T", band=NUM_BANDS - 1)), 2)})
by_size = pd.DataFrame(rows).drop_duplicates("voxels").sort_values("voxels")
by_size

# %%
band0 = by_size["band 0 SNR at T (dB)"].to_numpy()
# more voxels -> more DC power -> a larger leak in the lowest band (the embedded default, 8×16×16, is the smallest)
assert np.all(np.diff(band0) > 0), band0
record("band0_snr_at_T_db_8x16x16", float(band0[0]), "lowest band's SNR at T at the embedded default's size")
if NUM_FRAMES * HEIGHT * HEIGHT >= 16 * 64 * 64:
    assert low_T > 0, "paper: the low band of the training z_T is above 0 dB at this size"

# %% [markdown]
# ## The gap, schedule by schedule
# Training $z_T$ next to the inference initial latent (pure noise, no signal: $-\infty$ dB). Zero-terminal-SNR
# schedules and flow matching with $\sigma_\max = 1$ train on pure noise at $t = T$: **no gap**, so FreeInit's premise
# does not hold for them.

# %%
gaps = {name: fl.initialization_gap(x0, s, NUM_BANDS) for name, s in schedulers.items()}
gap_table = pd.DataFrame({name: g.sel(source="training z_T").values for name, g in gaps.items()}, index=[f"band {k}" for k in range(NUM_BANDS)])
gap_table["inference z_T"] = next(iter(gaps.values())).sel(source="inference z_T").values
display(gap_table.round(2))
save_figure(plots.gap_figure(gaps), "01_gap_by_schedule")

# %%
names = list(schedulers)
assert np.all(np.isfinite(gap_table[names[0]])) and np.all(np.isfinite(gap_table[names[1]]))
assert np.all(np.isneginf(gap_table[names[2]])) and np.all(np.isneginf(gap_table[names[3]]))
assert np.all(np.isneginf(gap_table["inference z_T"]))
# the linear schedule ends at a smaller alphabar_T (0.00158 vs 0.00466): a gap smaller by the same factor in every band
shift_db = (gap_table[names[0]] - gap_table[names[1]]).to_numpy()
expected = 10 * np.log10((0.004660 / (1 - 0.004660)) / (0.001579 / (1 - 0.001579)))
assert np.allclose(shift_db, expected, atol=0.05), (shift_db, expected)
record("linear_vs_scaled_linear_gap_db", float(shift_db.mean()), "how much smaller the leak is with AnimateDiff's linear inference schedule")

# %% [markdown]
# ## What the leak looks like
# Low-pass (FreeInit's Gaussian filter, $d_s = d_t = $ `CUTOFF`) of a training $z_T$ and of an inference $z_T$: the
# first still shows the clip's layout; the second is structureless.

# %%
schedule = fl.get_schedule(sd)
g = torch.Generator().manual_seed(SEED)
train_zT = schedule.diffuse(x0, schedule.terminal_timestep, torch.randn(x0.shape, generator=g))
infer_zT = torch.randn(x0.shape, generator=g)
H = fl.lowpass_filter(x0.shape, "gaussian", CUTOFF, CUTOFF)
low_clip, low_train, low_infer = (fl.apply_lowpass(v, H) for v in (x0, train_zT, infer_zT))

def _unit(v):  # per-video contrast stretch for display only
    v = v - v.mean(dim=(-3, -2, -1), keepdim=True)
    return v / (3 * v.std(dim=(-3, -2, -1), keepdim=True))

panel = torch.stack([_unit(v[0, :, 0]) for v in (x0, train_zT, low_train, low_infer)])  # (4, C, H, W), frame 0
px.imshow(((panel.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy(), facet_col=0, binary_string=False,
          title="frame 0: clip · training z_T · low-pass(training z_T) · low-pass(inference z_T)").for_each_annotation(
    lambda a: a.update(text=["clip", "training z_T", "low-pass(training z_T)", "low-pass(inference z_T)"][int(a.text.split("=")[-1])]))

# %%
def corr(a, b):
    a = a - a.mean(dim=(-3, -2, -1), keepdim=True)
    b = b - b.mean(dim=(-3, -2, -1), keepdim=True)
    return float(((a * b).sum(dim=(-3, -2, -1)) / ((a * a).sum(dim=(-3, -2, -1)) * (b * b).sum(dim=(-3, -2, -1))).sqrt()).mean())

c_train = record("lowpass_corr_training_zT", corr(low_train, low_clip), "correlation of low-pass(training z_T) with low-pass(clip)")
c_infer = record("lowpass_corr_inference_zT", corr(low_infer, low_clip), "correlation of low-pass(inference z_T) with low-pass(clip)")
print(f"correlation with the clip's low-pass: training z_T {c_train:.3f}, inference z_T {c_infer:.3f}")
assert c_train > 0.1 and abs(c_infer) < 0.05 and c_train > 4 * abs(c_infer)

# %% [markdown]
# ## Spatial-only and temporal-only views
# The SNR of the training $z_T$ along each marginal: mean signal power over all spatial frequencies for each
# temporal frequency, and over all temporal frequencies for each spatial radius. Both fall steeply: the leak is
# low-frequency **in space and in time**. (Averaging over the other axes dilutes the few strong bins, so the
# marginals sit far below the lowest band's SNR.)

# %%
a_T, b_T = (float(v) for v in schedule.coefficients(schedule.terminal_timestep))
ft, p_t = fl.temporal_spectrum(x0)
r, p_s = fl.spatial_spectrum(x0)
snr_t = 10 * np.log10(a_T ** 2 * p_t.mean(dim=tuple(range(p_t.dim() - 1))).numpy() / b_T ** 2)
snr_s = 10 * np.log10(a_T ** 2 * p_s.mean(dim=tuple(range(p_s.dim() - 1))).numpy() / b_T ** 2)
fig = plots.spectra_figure({"temporal-only (x: |f_t|)": (np.abs(ft.numpy()), 10 ** (snr_t / 10)),
                            "spatial-only (x: spatial radius)": (r.numpy(), 10 ** (snr_s / 10))},
                           title="marginal SNR of the training z_T at T (linear, log axis)", xaxis_title="normalised frequency")
fig.update_yaxes(title="SNR (linear)")
fig

# %%
pos = np.abs(ft.numpy())
assert snr_t[0] - snr_t[np.argmax(pos)] > 10, snr_t   # temporal DC vs temporal Nyquist
finite = np.isfinite(snr_s)
assert snr_s[finite][0] - snr_s[finite][-1] > 10, snr_s  # spatial DC ring vs the corner
record("temporal_marginal_drop_db", float(snr_t[0] - snr_t[np.argmax(pos)]), "temporal-only SNR: DC minus Nyquist")
record("spatial_marginal_drop_db", float(snr_s[finite][0] - snr_s[finite][-1]), "spatial-only SNR: lowest minus highest radius")

# %% [markdown]
# ## Summary
# - The training $z_T$ of the SD schedule keeps the clips' lowest spatio-temporal frequencies: the lowest band's SNR
#   at $T$ is tens of dB above the highest band's and above the whole-video SNR; inference never provides it.
# - At AnimateDiff's latent size the lowest band is above 0 dB, as the paper reports; at small sizes it is lower,
#   because the leak lives in the DC bin, whose power grows with the number of voxels.
# - Zero-terminal-SNR and flow-matching schedules have no leak at $T$: no gap, nothing for FreeInit to bridge.
