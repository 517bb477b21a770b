# %% [markdown]
# # 04 · Cutoff explorer
#
# Drag the controls to see FreeInit's low-pass filter $H$ change: three slices through the zero frequency of the
# 3D mask (normalised frequency, Nyquist = 1, DC in the centre), where each frequency band of the reinitialised latent
# $z'_T = H \cdot (a_T z_0 + b_T\varepsilon) + (1 - H) \cdot \eta$ gets its power from, and how much variance the mix
# loses between pass and stop band. **run FreeInit** samples the embedded default model (16 frames × 32 × 32 RGB,
# its stored sampler: DPM-Solver++(2M) on Karras sigmas, 25 steps) with plain sampling and with FreeInit under the current settings (same seed)
# and shows both with their temporal consistency. The heat map below them is the **precomputed consistency gain of
# FreeInit over plain sampling on a $(d_s, d_t)$ grid** (`data/cutoff_map.nc`); its marker follows the sliders.
#
# **Consistency** everywhere here is the consecutive-frame cosine similarity of colour-centred pixels
# (`freeinit_lab.cutoff_map.map_consistency`: model space decoded to display RGB in $[-1, 1]$, each video's mean colour
# removed): 1 = a static video, 0 = unrelated consecutive frames, **negative = consecutive frames anti-correlated, a
# flicker of period 2 frames**. Gains are differences of it (unitless), paired per video.
#
# All the interactive logic lives in `freeinit_lab.widgets.CutoffExplorer`; the map's numbers in
# `freeinit_lab.cutoff_map`; this notebook builds, displays, and checks what the text says.

# %% tags=["parameters"]
SEED = 0                  # picks the explorer's sample and which stored videos are recomputed live
NUM_BANDS = 6             # radial frequency bands of the mix-variance table
RUN_IN_NOTEBOOK = True    # press "run FreeInit" programmatically once, so a headless run shows a result
CUTOFF_MAP = None         # NetCDF file of the heat map; None = the shipped data/cutoff_map.nc
REPLICATION_MAP = None    # the same sweep on other videos; None = data/cutoff_map_replication.nc, "" = none
LIVE_VIDEOS = 4           # stored videos of one heat-map cell recomputed live (0 = skip; else 2-12)
LIVE_CELL = (0.8, 0.8)    # (d_s, d_t) of that cell: the widest, where the previous map flickered
CONFIDENCE = 0.99         # two-sided level of the paired t-intervals

# %%
import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from scipy import stats

import freeinit_lab as fl
from freeinit_lab import cutoff_map as cm
from freeinit_lab.report import record, save_figure
from freeinit_lab.studies.decomposition import paired_bootstrap
from freeinit_lab.widgets import CutoffExplorer

t_start = time.perf_counter()
cmap = cm.load_cutoff_map(CUTOFF_MAP or cm.DEFAULT_CUTOFF_MAP_PATH)
K, METHOD = int(cmap.attrs["num_iters"]), str(cmap.attrs["method"])
if LIVE_VIDEOS and not 2 <= LIVE_VIDEOS <= cmap.sizes["video"]:  # measure_cutoff_map needs 2 for its standard errors
    raise ValueError(f"LIVE_VIDEOS={LIVE_VIDEOS}: 0 (skip the live check) or 2 to {cmap.sizes['video']} (the map's "
                     "videos per cell)")
if LIVE_VIDEOS and not (LIVE_CELL[0] in cmap.d_s.values and LIVE_CELL[1] in cmap.d_t.values):
    raise ValueError(f"LIVE_CELL={LIVE_CELL} is not a cell of the map: d_s in {cmap.d_s.values.tolist()}, d_t in "
                     f"{cmap.d_t.values.tolist()}")
explorer = CutoffExplorer(seed=SEED, cutoff_map=cmap)
explorer.widget

# %% [markdown]
# ## What the mask does to the initial latent's power
# Each FFT bin of $z'_T$ mixes two unit-variance inputs with weights $H$ and $1 - H$, so its variance is
# $H^2 + (1 - H)^2$ (plus the clean signal's share in the pass band): 1 where $H$ is 0 or 1, down to 0.5 where
# $H = 0.5$, so the loss sits in the bands around the cut-off: the middle bands for the paper's $d_s = d_t = 0.25$,
# the top bands for a wide filter (which keeps the low bands almost entirely). The table gives the band mean of
# $H^2 + (1-H)^2$ (variance per bin relative to unit white noise; bands are radial shells of normalised frequency) for
# the paper's cut-offs and for the widest cell of the map. This is the variance the `mask_only` control below isolates.

# %%
rows = {}
for cell in [(0.25, 0.25), tuple(LIVE_CELL)]:
    H = fl.lowpass_filter(explorer.shape, METHOD, *cell)
    rows[f"d_s={cell[0]}, d_t={cell[1]}"] = fl.reinit_band_composition(H, NUM_BANDS)["mix_variance"].values
display(pd.DataFrame(rows, index=[f"band {k}" for k in range(NUM_BANDS)]).T.round(3))

# %% [markdown]
# ## One run on the default model
# The same as pressing **run FreeInit** with the map's filter and passes ($K$): plain sampling and FreeInit from the
# same initial noise, scored like the map. The explorer then goes back to its own default filter (Butterworth); the
# heat map's title says when the sliders show another filter than the map was measured with.

# %%
if RUN_IN_NOTEBOOK:
    default_method = explorer.method.value
    explorer.method.value, explorer.num_iters.value = METHOD, K
    result = explorer.run()
    explorer.method.value = default_method
    print({name: round(value, 4) for name, value in result["scores"].items()})
    display(result["figure"])

# %% [markdown]
# ## Where FreeInit helps: the $(d_s, d_t)$ map, with its controls
# `python scripts/precompute_cutoff_map.py --overwrite` runs the sweep `scripts/cutoff_map_sweep.yaml` with the sweep
# engine (`freeinit_lab.sweep`, study `cutoff_map`: one grid cell per sweep cell, resumable) on the embedded default with
# its stored sampler and converts the store into `data/cutoff_map.nc`. In every cell, plain sampling, FreeInit
# ($K = 2$: one reinitialisation, Gaussian filter) and the **mask-only control** start from the same seeded noises
# $\varepsilon$ (and the same fresh $\eta$): `mask_only` samples $H \cdot b_T\varepsilon + (1 - H)\cdot\eta$, FreeInit's
# mix *without* the clean signal — what the soft mask's change of the initial latent's power does on its own. So per
# cell and video:
#
# - **FreeInit − plain**: FreeInit's gain (the heat map of the explorer above);
# - **mask_only − plain**: what the variance change alone gives;
# - **FreeInit − mask_only**: what the re-diffused low band of the video's own sample adds on top of it.
#
# Each with its paired Student-t interval over the map's videos (`cutoff_map.cutoff_map_contrasts`). A test
# (`tests/studies/test_cutoff_map.py::test_shipped_map_is_fresh`) fails when the model's weights, sampler or the sweep
# spec no longer match the stored file.

# %%
con = cm.cutoff_map_contrasts(cmap, confidence=CONFIDENCE)
n_videos = cmap.sizes["video"]
print(f"{cmap.attrs['pipeline']} (weights {cmap.attrs['model']}), {METHOD}, K={K}, "
      f"{cmap.attrs['num_inference_steps']} steps of {cmap.attrs['scheduler_class']} (stored sampler), "
      f"{n_videos} videos per cell, "
      f"{cmap.attrs['num_pipeline_videos']} sampled videos; {CONFIDENCE:.0%} paired t-intervals")


def table(name: str) -> pd.DataFrame:
    c = con.sel(contrast=name)
    text = np.vectorize(lambda m, lo, hi: f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]")(c["mean"].values, c["low"].values, c["high"].values)
    return pd.DataFrame(text, index=[f"d_s={v}" for v in con.d_s.values], columns=[f"d_t={v}" for v in con.d_t.values])


for name in ["plain", "freeinit", "freeinit - plain", "mask_only - plain", "freeinit - mask_only"]:
    print(f"\n{name} (consistency{' difference' if ' - ' in name else ''}, mean [{CONFIDENCE:.0%} interval])")
    display(table(name))

# %%
panels = ["freeinit - plain", "mask_only - plain", "freeinit - mask_only"]
fig = make_subplots(rows=1, cols=3, subplot_titles=[p.replace(" - ", " − ") for p in panels], horizontal_spacing=0.08)
zmax = float(abs(con["mean"].sel(contrast=panels)).max())
for i, name in enumerate(panels):
    c = con.sel(contrast=name)
    fig.add_trace(go.Heatmap(z=c["mean"].values, x=[str(v) for v in con.d_t.values], y=[str(v) for v in con.d_s.values],
                             zmin=-zmax, zmax=zmax, colorscale="RdBu", texttemplate="%{z:+.3f}", showscale=i == 2,
                             customdata=np.stack([c["low"].values, c["high"].values], -1),
                             hovertemplate="d_s=%{y}, d_t=%{x}<br>%{z:+.4f} [%{customdata[0]:+.4f}, %{customdata[1]:+.4f}]<extra></extra>"),
                  row=1, col=i + 1)
    fig.update_xaxes(title_text="temporal cut-off d_t", row=1, col=i + 1)
fig.update_yaxes(title_text="spatial cut-off d_s", row=1, col=1)
fig.update_layout(height=380, width=1100, title=f"consistency differences per cell, paired over {n_videos} videos "
                  f"(embedded default, {METHOD}, K={K}, stored sampler)")
save_figure(fig, "cutoff_map", width=1100, height=380)

# %% [markdown]
# ### What the map shows, checked
# 1. **No cell flickers.** The map shipped before this one (previous weights, DDIM 10 steps without the final
#    $\bar\alpha = 1$ step, 8 × 16 × 16 videos) had FreeInit consistencies of −0.41 to −0.63 at wide temporal and
#    spatial cut-offs: consecutive frames anti-correlated, a period-2 flicker. Here every cell's FreeInit consistency
#    has a lower interval bound above 0 (table "freeinit").
# 2. **FreeInit raises consistency at the paper's cut-offs** ($d_s = d_t = 0.25$; interval of FreeInit − plain above 0),
#    and **more the wider the spatial cut-off**: at every $d_t$ of the grid the per-video gain at the widest $d_s$
#    exceeds the one at the narrowest (paired interval of the difference above 0). The temporal cut-off's effect
#    is printed, not claimed (on the weights it was first measured on, a wider $d_t$ did not raise the gain).
# 3. **At wide cut-offs the gain is mostly the variance loss.** At the widest cell `mask_only` (no clean signal at
#    all) already raises consistency (interval of mask_only − plain above 0), and it gives more than half of
#    FreeInit's gain there (bootstrap interval of the share above 0.5): bins whose variance drops towards 0.5 start
#    the sampler with less high-frequency power, the samples come out smoother, and consecutive frames agree more —
#    the same direction as the "too smooth, too alike" fidelity finding of this model. That part is not FreeInit's
#    low-frequency mechanism. With a narrow spatial cut-off ($d_s = 0.1$) the mask alone changes little (table
#    "mask_only − plain": intervals around 0 there; the first default's weights were slightly *worse* than plain).
# 4. **At the paper's cut-offs the clean signal matters**: FreeInit − mask_only has its interval above 0 at
#    $d_s = d_t = 0.25$ (and in most cells, shrinking towards the widest, where the mask gives nearly all of the
#    gain), and the mask's share there is well below 1, so FreeInit's gain is not only its variance change.
#
Each claim is checked on **two maps of different videos**: the shipped map (`data/cutoff_map.nc`, sweep seeds
# 0–2) and a **replication** (`data/cutoff_map_replication.nc`, sweep seeds 3–5: the same sweep on 12 other videos,
# `python scripts/precompute_cutoff_map.py --first-seed 3 --out data/cutoff_map_replication.nc --overwrite`). Both
# are fixed measurements, precomputed because the grid is too heavy to sample live (48 cells × 12 videos): `SEED`
# does not change them (it picks the explorer's sample and the live check's videos), so a claim that held on one
# map's 12 videos by chance is caught by the other's. The table below gives every claim on each map, with its
# interval; every claim is asserted on both maps. Rows marked (shown) are printed, not claimed.

# %%
def map_claims(cmap, name: str) -> dict[str, tuple[float, float, float]]:
    """Every claim of the list above on one map: {claim: (estimate, low, high)}, each asserted on its interval's side.

    Paired over the map's videos: Student-t intervals of per-video differences (`cutoff_map_contrasts`), the mask's
    share with a paired percentile bootstrap (the same resampled videos in numerator and denominator)."""
    con = cm.cutoff_map_contrasts(cmap, confidence=CONFIDENCE)
    narrow = (float(con.d_s.min()), float(con.d_t.min()))
    wide = (float(con.d_s.max()), float(con.d_t.max()))
    out = {}

    def bounds(contrast: str, d_s: float, d_t: float) -> tuple[float, float, float]:
        c = con.sel(contrast=contrast, d_s=d_s, d_t=d_t)
        return float(c["mean"]), float(c["low"]), float(c["high"])

    def paired_difference(cell_a, cell_b) -> tuple[float, float, float]:
        """Mean per-video gain at ``cell_a`` minus at ``cell_b`` (the same videos), with its paired t-interval."""
        d = (cmap.gain_per_video.sel(d_s=cell_a[0], d_t=cell_a[1])
             - cmap.gain_per_video.sel(d_s=cell_b[0], d_t=cell_b[1])).values
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
        return float(d.mean()), float(d.mean() - half), float(d.mean() + half)

    def mask_share(d_s: float, d_t: float) -> tuple[float, float, float]:
        """(mask_only − plain) / (FreeInit − plain) in one cell, with a paired percentile bootstrap over videos."""
        c = cmap.sel(d_s=d_s, d_t=d_t)
        num = (c.control_consistency.sel(control="mask_only") - cmap.baseline).values
        den = c.gain_per_video.values
        boot = paired_bootstrap(np.stack([num, den]), num_bootstrap=4000, seed=SEED)
        q = np.percentile(boot[:, 0] / boot[:, 1], [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)])
        return float(num.mean() / den.mean()), float(q[0]), float(q[1])

    # 1. no cell flickers: the lowest FreeInit consistency's lower bound, over all cells
    fi = con.sel(contrast="freeinit")
    k = np.unravel_index(int(np.argmin(fi["low"].values)), fi["low"].shape)
    out["1. lowest FreeInit consistency (any cell)"] = (float(fi["mean"].values[k]), float(fi["low"].values[k]),
                                                        float(fi["high"].values[k]))
    # 2. a gain at the paper's cut-offs, larger at the widest spatial cut-off than at the narrowest, at every d_t
    out["2. FreeInit − plain at d_s = d_t = 0.25"] = bounds("freeinit - plain", 0.25, 0.25)
    for dt in con.d_t.values.tolist():
        out[f"2. gain at d_s={wide[0]} − at d_s={narrow[0]}, d_t={dt}"] = paired_difference((wide[0], dt),
                                                                                            (narrow[0], dt))
    # 3. at the widest cell the mask alone raises consistency and gives more than half of FreeInit's gain
    out[f"3. mask_only − plain at d_s={wide[0]}, d_t={wide[1]}"] = bounds("mask_only - plain", *wide)
    out[f"3. mask share of the gain at d_s={wide[0]}, d_t={wide[1]} (> 0.5)"] = mask_share(*wide)
    # 4. at the paper's cut-offs the clean signal adds to the mask
    out["4. FreeInit − mask_only at d_s = d_t = 0.25"] = bounds("freeinit - mask_only", 0.25, 0.25)
    # printed, not claimed: the temporal cut-off, and the mask's share at the paper's cut-offs
    for ds_ in con.d_s.values.tolist():
        out[f"(shown) gain at d_t={wide[1]} − at d_t={narrow[1]}, d_s={ds_}"] = paired_difference((ds_, wide[1]),
                                                                                                 (ds_, narrow[1]))
    out["(shown) mask share of the gain at d_s = d_t = 0.25"] = mask_share(0.25, 0.25)
    return out


def holds(claim: str, low: float) -> bool | None:
    """A claim holds when its whole interval is on the claimed side (above 0; above 0.5 for the share)."""
    return None if claim.startswith("(shown)") else low > (0.5 if "(> 0.5)" in claim else 0.0)


maps = {"shipped": cmap}
replication = cm.load_cutoff_map(REPLICATION_MAP or cm.DEFAULT_REPLICATION_MAP_PATH) if REPLICATION_MAP != "" else None
if replication is not None:
    maps["replication"] = replication
    if set(replication.seed.values.tolist()) & set(cmap.seed.values.tolist()):
        raise ValueError("the replication map shares videos with the shipped map: rebuild it with other sweep seeds "
                         "(python scripts/precompute_cutoff_map.py --first-seed 3 --out data/cutoff_map_replication.nc)")
claims = {name: map_claims(m, name) for name, m in maps.items()}
claim_table = pd.DataFrame({
    f"{name} map (videos of seeds {m.seed.values.min()}–{m.seed.values.max()})":
        [f"{e:+.4f} [{lo:+.4f}, {hi:+.4f}]" + {True: "", False: "  FAILS", None: ""}[holds(c, lo)]
         for c, (e, lo, hi) in claims[name].items()]
    for name, m in maps.items()}, index=list(claims["shipped"]))
print(f"consistency (consecutive-frame cosine of decoded, colour-centred pixels; claim 1) and its differences, paired over each map's "
      f"videos, {CONFIDENCE:.0%} intervals (t; bootstrap for the shares)")
display(claim_table)

shipped = claims["shipped"]
for key, claim in (("cutoff_map_min_freeinit_consistency", "1. lowest FreeInit consistency (any cell)"),
                   ("cutoff_map_gain_at_default", "2. FreeInit − plain at d_s = d_t = 0.25"),
                   ("cutoff_map_mask_only_gain_wide", next(c for c in shipped if c.startswith("3. mask_only"))),
                   ("cutoff_map_mask_share_wide", next(c for c in shipped if c.startswith("3. mask share"))),
                   ("cutoff_map_mask_share_default", "(shown) mask share of the gain at d_s = d_t = 0.25"),
                   ("cutoff_map_signal_share_at_default", "4. FreeInit − mask_only at d_s = d_t = 0.25")):
    e, lo, hi = shipped[claim]
    record(key, e, f"{claim}, shipped map ({cmap.sizes['video']} videos), {CONFIDENCE:.0%} interval "
           f"[{lo:.4f}, {hi:.4f}]", low=lo, high=hi)
spatial = {c: v for c, v in shipped.items() if c.startswith("2. gain at")}
worst = min(spatial.values(), key=lambda v: v[1])
record("cutoff_map_gain_wide_minus_narrow_ds", worst[0], "FreeInit's gain at the widest minus the narrowest d_s, the "
       f"d_t where it is least sure, shipped map, {CONFIDENCE:.0%} t-interval [{worst[1]:.4f}, {worst[2]:.4f}]",
       low=worst[1], high=worst[2])
# every claim, on every map: its interval on the claimed side
failed = [(name, c, v) for name, cl in claims.items() for c, v in cl.items() if holds(c, v[1]) is False]
assert not failed, failed

# %% [markdown]
# ### Why the previous map flickered, and this one does not
# Measured once on the previous weights (the `data/default_model` of commit `5f37c20`, 8 seeded videos, FreeInit
# Gaussian at $d_s = d_t = 0.8$): with DDIM 10 steps FreeInit's consecutive-frame consistency was −0.55 ($K = 2$)
# against +0.38 for plain sampling, and with $K = 3$ 40 % of the samples' temporal power sat at the temporal Nyquist
# frequency (0.5 cycles/frame; 7 % for plain samples). The mask-only control lost consistency too (first-frame cosine
# −0.01 vs +0.19 for plain sampling), the variance-preserving mix (same signal, unit variance per bin) did not flicker
# (+0.44, $K = 3$), and fresh instead of reused diffusion noise did not help (−0.58):
# the flicker came from the soft mask's **variance loss**, not from the clean signal or the reused noise. And it
# needed the **coarse sampler**: the same weights at 25 steps gave +0.74 (FreeInit) vs +0.68 (plain), i.e. FreeInit
# *raised* consistency, as it does everywhere on this map. The most likely reading: the first DDIM step divides the
# residual $z - b_T\hat\varepsilon$ by $a_T \approx 0.07$, so where the input has half the variance the network
# expects, its noise estimate overshoots and the error is amplified about 15-fold; ten steps were too few to undo it
# in the highest temporal band. The current weights at 10 steps do not flicker either (checked once: +0.98 at
# $d_s = d_t = 0.8$), and the map uses the stored 25-step sampler.
#
# Below, the widest cell is recomputed live on a few of the stored videos (which ones depends on `SEED`) with the
# public `fl.freeinit` and `measure_cutoff_map`: the per-video numbers must match the store (float rounding of
# other batch sizes aside), so the map is this model's, and the live FreeInit samples show where their temporal power
# sits compared with plain sampling.

# %%
if LIVE_VIDEOS:
    pipe = fl.load_default_pipeline()
    assert cmap.attrs["model"] == cm.model_fingerprint(pipe), (
        "data/cutoff_map.nc was computed for other weights than data/default_model: rerun "
        "`python scripts/precompute_cutoff_map.py --overwrite`")
    cell = cmap.sel(d_s=LIVE_CELL[0], d_t=LIVE_CELL[1])
    start = int(np.random.default_rng(SEED).integers(0, n_videos - LIVE_VIDEOS + 1))
    seeds = [int(s) for s in cmap.seed.values[start:start + LIVE_VIDEOS]]
    res = fl.freeinit(pipe, num_iters=K, method=METHOD, d_s=float(cell.d_s), d_t=float(cell.d_t),
                      order=float(cmap.attrs["order"]), renoise=str(cmap.attrs["renoise"]), batch_size=len(seeds),
                      generator=[torch.Generator().manual_seed(s) for s in seeds], output_type="latent", progress=False)
    plain = res.iterations[0].clean_latent  # pass 0 is plain sampling from the same noises
    live = cm.measure_cutoff_map(pipe, d_s=[float(cell.d_s)], d_t=[float(cell.d_t)], method=METHOD, num_iters=K,
                                 order=float(cmap.attrs["order"]), renoise=str(cmap.attrs["renoise"]),
                                 num_videos=len(seeds), seed=seeds[0], controls=["mask_only"], plain=plain,
                                 progress=False).isel(d_s=0, d_t=0)
    live_gain = cm.map_consistency(pipe, res.latents) - cm.map_consistency(pipe, plain)
    sel = dict(video=slice(start, start + LIVE_VIDEOS))
    compare = pd.DataFrame({
        "seed": seeds,
        "gain, fl.freeinit": live_gain, "gain, measure_cutoff_map": live.gain_per_video.values,
        "gain, stored": cell.gain_per_video.isel(**sel).values,
        "mask_only, live": live.control_consistency.sel(control="mask_only").values,
        "mask_only, stored": cell.control_consistency.sel(control="mask_only").isel(**sel).values,
    })
    display(compare.round(5))
    # the same videos through two code paths and the store; 1e-3 allows float rounding of other batch sizes
    assert np.allclose(live_gain, cell.gain_per_video.isel(**sel).values, atol=1e-3), compare
    assert np.allclose(live.control_consistency.sel(control="mask_only").values,
                       cell.control_consistency.sel(control="mask_only").isel(**sel).values, atol=1e-3), compare

# %%
if LIVE_VIDEOS:
    def temporal_share(latents: torch.Tensor) -> np.ndarray:
        """Share of each temporal frequency in the power of colour-centred decoded videos (cycles per frame)."""
        x = pipe.normalizer.decode(latents.float()).clamp(-1, 1)
        x = x - x.mean(dim=(2, 3, 4), keepdim=True)
        p = torch.fft.rfft(x.double(), dim=2).abs().pow(2).mean(dim=(0, 1, 3, 4)).numpy()
        return p / p.sum()

    freqs = np.fft.rfftfreq(plain.shape[2])
    shares = pd.DataFrame({"plain": temporal_share(plain), "FreeInit": temporal_share(res.latents)},
                          index=[f"{f:.3f}" for f in freqs]).T
    print(f"share of temporal power per frequency (cycles/frame), {LIVE_VIDEOS} videos at d_s={LIVE_CELL[0]}, "
          f"d_t={LIVE_CELL[1]} (period-2 flicker would sit at 0.500):")
    display(shares.round(4))
    record("cutoff_map_live_nyquist_share_freeinit", float(shares.loc["FreeInit"].iloc[-1]),
           f"share of FreeInit's temporal power at 0.5 cycles/frame, widest cell, {LIVE_VIDEOS} live videos")

# %%
seconds = record("cutoff_explorer_seconds", time.perf_counter() - t_start, "wall time of this notebook's work")
print(f"notebook ran in {seconds:.1f} s")

# %% [markdown]
# ## Summary
# - The map of FreeInit's consistency gain on the embedded default (Gaussian filter, $K = 2$, stored 25-step sampler)
#   was recomputed with the sweep engine, with the mask-only control in every cell; its numbers and $99\,\%$ paired
#   t-intervals are in the tables above, and a test fails when the weights change and the stored map goes stale.
# - **No cell flickers**; the previous map's negative consistencies (−0.41 to −0.63) came from the soft mask's variance
#   loss meeting a 10-step sampler on the previous weights, and do not recur with these weights and their sampler.
# - FreeInit **raises** consistency at the paper's cut-offs and more at wider spatial ones (intervals above 0; the
#   temporal cut-off's effect is printed, not claimed); at the widest cut-offs most of the gain is reproduced by the
#   **mask-only control** (variance loss alone: smoother samples; the share and its bootstrap interval are in the
#   claims table), while at $d_s = d_t = 0.25$ the clean signal adds a gain beyond it (FreeInit − mask_only above 0).
#   Each of these holds on the shipped map and on its replication with 12 other videos (claims table, both columns);
#   they are statements about this model's map at 12 + 12 videos, and `SEED` does not change them. This is a measurement of this small model with consistency of pixels,
#   not the paper's DINO-feature consistency on its models; the paper reports no mask-only control, so it cannot say
#   how much of its gain is the variance change.
# - One cell recomputed live (`fl.freeinit` and `measure_cutoff_map`) reproduces the stored per-video numbers.
