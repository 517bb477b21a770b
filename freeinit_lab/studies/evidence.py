"""The paper's findings measured on a model, with statistics: the evidence behind the embedded default.

:func:`measure_evidence` runs four experiments on one pipeline, all on the same ``N`` seeded initial noises, and
returns every per-video number as an :class:`xarray.Dataset` plus a :func:`summarize_evidence` table:

(a) **Low-frequency dominance** (finding 2). Noises ``A`` and ``B``; ``mix`` keeps the low frequencies of ``A``
    and the high frequencies of ``B`` (:func:`freeinit_lab.spectral.reinit_noise` with an ideal mask keeping the
    ``swap_keep`` share of FFT bins of lowest isotropic radius: 0.2 by default, the paper's "80 % of the high
    frequencies replaced"). Sampling all three, the result of ``mix`` is compared with the results of ``A`` and
    ``B`` by RMS distance (``dist_a``, ``dist_b``).
(b) **Baseline consistency vs the data.** Temporal consistency of the plain samples (from ``A``) against the
    same metric on clean reference videos (by default held-out draws of the model's training distribution).
(c) **FreeInit** (``num_iters`` passes; by default the filter of the paper's main table, Gaussian with
    ``D0 = d_s = d_t = 0.25``) from the same noises ``A``: paired per-video gain in consistency over the baseline,
    with a paired t-test. (The Butterworth n = 4 filter of the public code's default keeps only the ~15 lowest
    of the 2048 bins of an 8×16×16 video — 0.73 % — and barely acts at this size; pass ``method="butterworth"``
    to measure it.)
(d) **Oracle initialisation**: ``z_T`` drawn from the *training* marginal of held-out clean videos,
    ``z_T = a_T x_0 + b_T A`` with ``T`` the first inference timestep and ``A`` the baseline's own noise, then
    sampled like the baseline: the oracle differs from the baseline only by the signal ``a_T x_0`` (and the scale
    ``b_T``), so *oracle − baseline* is paired (common random numbers) as *FreeInit − baseline* is. Its
    consistency is what a perfect initialisation reaches; ``gap_closed = (FreeInit - baseline) / (oracle -
    baseline)`` says how much of that FreeInit recovers (above 1: it overshoots the oracle).

Consistency is :func:`freeinit_lab.metrics.frame_cosine_similarity` (consecutive frames, colour-centred pixels) by
default; the same cosine in the paper's pairing (frame 0 with every later frame, ``consistency_first``: identity
kept over the clip rather than smoothness from frame to frame), :func:`freeinit_lab.metrics.temporal_flicker` and
:func:`freeinit_lab.metrics.consecutive_ssim` are recorded as well. They are computed on display videos:
``output_type="latent"`` samples (and the reference, which is in the same latent space) decoded by the pipeline's
``normalizer`` when it has one (the embedded default's model space is per-channel unit variance), else taken as
they are, then clipped to ``[-1, 1]`` as decoding would (:func:`freeinit_lab.cutoff_map.map_consistency` does the
same).

``python -m freeinit_lab.studies.evidence`` prints the table for the embedded default model.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any, Callable, Mapping

import numpy as np
import torch
import xarray as xr

from freeinit_lab.analysis import metrics
from freeinit_lab.core.reinit import FreeInitSettings, settings_keywords
from freeinit_lab.core.schedules import get_schedule
from freeinit_lab.core.spectral import _check_video, frequency_radius, reinit_noise
from freeinit_lab.engine.checks import resolve_num_inference_steps
from freeinit_lab.engine.loop import freeinit
from freeinit_lab.hooks.layouts import get_layout
from freeinit_lab.hooks.outputs import read_pipeline_output
from freeinit_lab._checks import require_frames, require_int, require_seed

__all__ = ["measure_evidence", "summarize_evidence", "paired_test", "equivalence_test"]


def paired_test(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Paired comparison of ``x`` and ``y`` (same units, same videos): mean and standard error of ``x - y``.

    Returns ``mean``, ``se`` (sample std / sqrt(n)), ``t`` and the two-sided ``p`` of Student's paired t-test
    (:func:`scipy.stats.ttest_rel`), and ``n``.
    """
    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"paired_test needs two 1-D arrays of the same length >= 2, got {x.shape} and {y.shape}")
    d = x - y
    se = float(d.std(ddof=1) / math.sqrt(d.size))
    res = stats.ttest_rel(x, y)
    return {"mean": float(d.mean()), "se": se, "t": float(res.statistic), "p": float(res.pvalue), "n": int(d.size)}


def _welch(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    se = math.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
    res = stats.ttest_ind(x, y, equal_var=False)
    return {"mean": float(x.mean() - y.mean()), "se": se, "t": float(res.statistic), "p": float(res.pvalue),
            "n": int(min(x.size, y.size))}


def equivalence_test(x: np.ndarray, y: np.ndarray, margin: float, *, lower_only: bool = False,
                     paired: bool = False) -> dict[str, float]:
    r"""Two one-sided t-tests (TOST) that two samples' means differ by less than ``margin``.

    Independent samples (Welch): ``d = mean(x) − mean(y)``, ``s = sqrt(var(x)/n_x + var(y)/n_y)`` and the
    Welch–Satterthwaite ``ν``; ``paired`` (same videos): ``d = mean(x − y)``, ``s = sd(x − y)/sqrt(n)``,
    ``ν = n − 1``. Then

    .. math::  p_- = 1 - F_ν\left(\frac{d + m}{s}\right), \qquad p_+ = F_ν\left(\frac{d - m}{s}\right),
               \qquad p = \max(p_-, p_+)

    ``p < α`` rejects "``|μ_x − μ_y| ≥ m``" at level α, i.e. the ``1 − 2α`` interval of ``d`` lies inside
    ``(−m, m)``: equivalence is *shown*, where a two-sided test that does not reject only fails to show a
    difference (and passes more easily the noisier the data). With ``lower_only`` it is the one-sided
    non-inferiority test ``μ_x − μ_y > −m`` (``p = p_−``). Returns ``mean``, ``se``, ``df``, ``margin``, ``p``.
    """
    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or y.ndim != 1 or x.size < 2 or y.size < 2 or (paired and x.shape != y.shape):
        raise ValueError(f"equivalence_test needs two 1-D samples of at least 2 values (of one length when paired), "
                         f"got {x.shape} and {y.shape}")
    if not float(margin) > 0:
        raise ValueError(f"margin must be > 0 (the largest difference that counts as equivalent), got {margin}")
    if paired:
        diff = x - y
        se, df = float(diff.std(ddof=1) / math.sqrt(diff.size)), float(diff.size - 1)
    else:
        vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
        se = math.sqrt(vx + vy)
        df = (vx + vy) ** 2 / (vx ** 2 / (x.size - 1) + vy ** 2 / (y.size - 1))
    d = float(x.mean() - y.mean())
    p_low = float(stats.t.sf((d + margin) / se, df))
    p_high = float(stats.t.cdf((d - margin) / se, df))
    return {"mean": d, "se": se, "df": float(df), "margin": float(margin),
            "p": p_low if lower_only else max(p_low, p_high)}


def _metrics(video: torch.Tensor, pipe: Any = None) -> dict[str, np.ndarray]:
    """Consistency, flicker and SSIM of latent videos, on display values: decoded by ``pipe.normalizer`` when the
    pipeline has one, clipped to ``[-1, 1]``."""
    v = metrics.display_values(video, pipe)
    return {
        "consistency": metrics.frame_cosine_similarity(v).double().numpy(),
        "consistency_first": metrics.frame_cosine_similarity(v, reference="first").double().numpy(),
        "flicker": metrics.temporal_flicker(v).double().numpy(),
        "ssim": metrics.consecutive_ssim(v).double().numpy(),
    }


def measure_evidence(
    pipe: Any,
    *,
    num_videos: int = 32,
    seed: int = 0,
    num_inference_steps: int | None = None,
    num_iters: int = 3,
    method: str = "gaussian",
    d_s: float = 0.25,
    d_t: float = 0.25,
    order: float = 4,
    swap_keep: float = 0.2,
    reference: torch.Tensor | Callable[[int, int], torch.Tensor] | None = None,
    batch_size: int = 32,
    progress: bool = True,
    settings: FreeInitSettings | Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Measure findings (a)-(d) (see the module docstring) on ``pipe`` with ``num_videos`` seeded noises.

    Parameters
    ----------
    pipe
        A video pipeline in canonical ``(batch, channel, frame, height, width)`` layout whose
        ``output_type="latent"`` output decodes to display values in ``[-1, 1]`` through its ``normalizer`` (the
        embedded default model) or is in ``[-1, 1]`` already (the analytic reference); other pipelines: compare
        decoded frames instead.
    num_videos
        Number of videos per experiment (>= 2; use >= 32 for the statistics to mean something).
    seed
        Seeds the noises ``A`` (also the oracle's) and ``B``, ``eta`` draws of FreeInit, the default reference and
        one generator per video for the sampler's own draws (a stochastic sampler, e.g. DDIM with ``eta > 0``;
        the same for every source). Every random draw derives from it, so the result is deterministic for a
        fixed seed.
    num_inference_steps, num_iters, method, d_s, d_t, order
        Sampling steps (default: the pipeline's ``default_num_inference_steps``, its stored sampler, else 25) and
        the FreeInit settings of experiment (c).
    swap_keep
        Experiment (a): share of the FFT bins (lowest isotropic frequency radius first) taken from noise ``A``, in
        (0, 1).
    reference
        Clean videos ``(N, C, F, H, W)`` in the pipeline's latent space (at least ``2 * num_videos``: one half is
        the data the baseline is compared with, the other the oracle's ``x_0``), or a callable
        ``(n, seed) -> videos``. Default: held-out videos of the model's own training distribution,
        :func:`freeinit_lab.held_out_videos` with seed ``930_000_000 + seed`` (the embedded default and its
        retrained candidates: their data generator, training seeds being ``0 .. steps``; an exact-score model:
        draws from its prior); any other pipeline must pass ``reference``.
    batch_size
        Videos per pipeline call (memory knob; results do not depend on it).
    progress
        Show a tqdm bar over the experiments.
    settings
        FreeInit's settings as one :class:`~freeinit_lab.core.reinit.FreeInitSettings` (or a dict of its fields)
        instead of ``num_iters``, ``method``, ``d_s``, ``d_t``, ``order``; passing both raises, and so does an
        object whose other fields (``mix``, ``renoise``, ``fast_sampling``, ``legacy_ideal_threshold``) are not
        their defaults (this study does not apply them).

    Returns
    -------
    xarray.Dataset
        dims ``video`` and ``source`` (``baseline``, ``freeinit``, ``oracle``, ``data``); variables
        ``consistency``, ``consistency_first``, ``flicker``, ``ssim`` (source, video), ``dist_a``, ``dist_b``
        (video), and attrs with the settings and the number of denoiser passes. :func:`summarize_evidence` turns it
        into the statistics.
    """
    num_iters, method, d_s, d_t, order = settings_keywords(
        measure_evidence, settings, num_iters=num_iters, method=method, d_s=d_s, d_t=d_t, order=order
    )

    from tqdm.auto import tqdm


    num_inference_steps = resolve_num_inference_steps(pipe, num_inference_steps, fallback=25)
    if not 0 < swap_keep < 1:
        raise ValueError(f"swap_keep={swap_keep} must be in (0, 1): the share of FFT bins taken from noise A")
    num_videos = require_int("num_videos", num_videos, low=2, why=": a standard error needs at least 2 videos (use >= 32)")
    # experiment (c)'s settings, checked with the settings' own messages before experiments (a) and (b) sample
    FreeInitSettings(num_iters=num_iters, method=method, d_s=d_s, d_t=d_t, order=order)
    batch_size = require_int("batch_size", batch_size, why=" (videos per pipeline call)")
    layout = get_layout(pipe)
    if not layout.is_canonical:
        raise ValueError(
            f"{type(pipe).__name__} is not in (batch, channel, frame, height, width) layout; measure_evidence "
            "compares output latents directly. Use the default or analytic pipeline, or decode and compare frames."
        )
    shape = (num_videos, *pipe.sample_shape) if hasattr(pipe, "sample_shape") else None
    if shape is None:
        raise ValueError(f"{type(pipe).__name__} has no sample_shape; pass a TinyVideoPipeline-like pipeline")
    require_frames("measure_evidence", shape)

    gen = torch.Generator().manual_seed(require_seed(seed))
    noise_a = torch.randn(shape, generator=gen)
    noise_b = torch.randn(shape, generator=gen)
    eta_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    # seeds video v's sampler in every plain sampling call (a stochastic sampler, e.g. DDIM with eta > 0; the same
    # draws for A, B, mix and the oracle); drawn after the others, so those keep their values
    sampler_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    ref_seed = 10**8 + int(seed) * 1000  # a callable reference's seed

    if reference is None:
        from freeinit_lab.embedded.pipelines import held_out_videos

        try:
            ref = held_out_videos(pipe, 2 * num_videos, 930_000_000 + int(seed))
        except ValueError as err:
            raise ValueError(f"{err} (measure_evidence(..., reference=videos or a callable (n, seed) -> videos))") from None
    elif callable(reference):
        ref = reference(2 * num_videos, ref_seed)
    else:
        ref = reference
    ref = torch.as_tensor(ref).float()
    if ref.ndim != 5 or tuple(ref.shape[1:]) != tuple(shape[1:]) or ref.shape[0] < 2 * num_videos:
        raise ValueError(
            f"reference has shape {tuple(ref.shape)}; expected (>= {2 * num_videos}, {', '.join(map(str, shape[1:]))})"
            " clean videos in the pipeline's latent space"
        )
    _check_video(ref, "reference")  # NaN/inf: refused now, not after the sampling that would start from it
    data, oracle_x0 = ref[:num_videos], ref[num_videos:2 * num_videos]

    sched = layout.get_scheduler(pipe)
    sched.set_timesteps(num_inference_steps)
    t_first = int(sched.timesteps[0])
    schedule = get_schedule(sched)
    oracle_init = schedule.diffuse(oracle_x0, t_first, noise_a)  # the baseline's noise: oracle − baseline is paired

    def sample(latents: torch.Tensor) -> torch.Tensor:
        outs = []
        for s in range(0, latents.shape[0], batch_size):
            chunk = latents[s:s + batch_size]
            gens = [torch.Generator().manual_seed(sampler_seed + v) for v in range(s, s + chunk.shape[0])]
            out = pipe(latents=chunk.clone(), num_inference_steps=num_inference_steps, output_type="latent",
                       generator=gens)
            outs.append(read_pipeline_output(out).detach().float())
        return torch.cat(outs)

    radius = frequency_radius(shape)
    cut = torch.quantile(radius.flatten(), swap_keep)
    mask = (radius <= cut).float()  # symmetric under f -> -f, so the mix stays real
    mix = reinit_noise(noise_a, noise_b, mask)
    steps = ["baseline (noise A)", "noise B", "mix (low A + high B)", "FreeInit", "oracle"]
    bar = tqdm(steps, desc="evidence", disable=not progress, leave=False)
    results: dict[str, torch.Tensor] = {}
    t0 = time.perf_counter()
    for name in bar:
        bar.set_postfix_str(name)
        if name.startswith("baseline"):
            results["baseline"] = sample(noise_a)
        elif name == "noise B":
            results["b"] = sample(noise_b)
        elif name.startswith("mix"):
            results["mix"] = sample(mix)
        elif name == "FreeInit":
            outs = []
            for s in range(0, num_videos, batch_size):
                res = freeinit(
                    pipe, num_iters=num_iters, method=method, d_s=d_s, d_t=d_t, order=order,
                    latents=noise_a[s:s + batch_size].clone(), num_inference_steps=num_inference_steps,
                    # one generator per video: video v's eta is the same whatever batch it is sampled in
                    generator=[torch.Generator().manual_seed(eta_seed + v)
                               for v in range(s, min(s + batch_size, num_videos))],
                    output_type="latent", progress=False,
                )
                outs.append(res.latents.detach().float())
            results["freeinit"] = torch.cat(outs)
        else:
            results["oracle"] = sample(oracle_init)
    seconds = time.perf_counter() - t0

    def rms(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        return (x - y).pow(2).flatten(1).mean(1).sqrt().double().numpy()

    sources = ["baseline", "freeinit", "oracle", "data"]
    per = {s: _metrics(results[s] if s != "data" else data, pipe) for s in sources}
    ds = xr.Dataset(
        {
            name: (("source", "video"), np.stack([per[s][name] for s in sources]))
            for name in ("consistency", "consistency_first", "flicker", "ssim")
        },
        coords={"source": sources, "video": np.arange(num_videos)},
    )
    ds["consistency"].attrs = {"long_name": "consecutive-frame cosine similarity (colour-centred pixels)", "units": "1"}
    ds["consistency_first"].attrs = {"long_name": "first-frame cosine similarity (colour-centred pixels; the paper's "
                                              "pairing of frame 0 with every later frame)", "units": "1"}
    ds["flicker"].attrs = {"long_name": "temporal flickering score (1 - mean |frame difference| / range)", "units": "1"}
    ds["ssim"].attrs = {"long_name": "consecutive-frame SSIM", "units": "1"}
    ds["dist_a"] = ("video", rms(results["mix"], results["baseline"]), {"long_name": "RMS(result(mix) - result(A))"})
    ds["dist_b"] = ("video", rms(results["mix"], results["b"]), {"long_name": "RMS(result(mix) - result(B))"})
    ds["dist_ab"] = ("video", rms(results["baseline"], results["b"]), {"long_name": "RMS(result(A) - result(B))"})
    ds.attrs.update(
        seed=int(seed), num_inference_steps=int(num_inference_steps), num_iters=int(num_iters), method=method,
        d_s=float(d_s), d_t=float(d_t), order=float(order), oracle_timestep=t_first,
        swap_keep=float(swap_keep), swap_kept_share=float(mask.mean()), swap_radius=float(cut), seconds=round(seconds, 2),
        pipeline=type(pipe).__name__,
    )
    return ds


def summarize_evidence(ds: xr.Dataset, metric: str = "consistency") -> dict[str, Any]:
    """Statistics of a :func:`measure_evidence` dataset.

    Returns a dict with
    ``a_ratio`` (mean ``dist_a / dist_b``), ``a_closer_to_a`` (share of videos whose mix result is closer to
    ``A``'s), ``b`` (Welch comparison *data − baseline* of ``metric``), ``c`` (paired test *FreeInit − baseline*),
    ``d_oracle`` (paired *oracle − baseline*), ``gap_closed`` ((FreeInit − baseline) / (oracle − baseline)
    means), ``overshoot`` (Welch *FreeInit − data*: above 0, FreeInit goes past the data), ``oracle_vs_data``
    (Welch *oracle − data*: a faithful model started on its training marginal gives 0), ``beyond_oracle`` (paired
    *FreeInit − oracle*), and ``means``/``ses`` of ``metric`` per source.
    """
    if metric not in ds or "source" not in ds[metric].dims:
        known = [v for v in ds.data_vars if "source" in ds[v].dims]
        raise ValueError(f"metric {metric!r} is not in this evidence dataset; it has {known} (a dataset saved "
                         "before a metric was added lacks it: measure again with measure_evidence)")
    m = ds[metric]
    x = {s: m.sel(source=s).values for s in m.source.values.tolist()}
    ratio = ds["dist_a"].values / ds["dist_b"].values
    c = paired_test(x["freeinit"], x["baseline"])
    d = paired_test(x["oracle"], x["baseline"])
    return {
        "metric": metric,
        "a_ratio": float(ratio.mean()),
        "a_ratio_se": float(ratio.std(ddof=1) / math.sqrt(ratio.size)),
        "a_closer_to_a": float((ds["dist_a"].values < ds["dist_b"].values).mean()),
        "b": _welch(x["data"], x["baseline"]),
        "c": c,
        "d_oracle": d,
        "gap_closed": c["mean"] / d["mean"] if d["mean"] != 0 else float("nan"),
        "overshoot": _welch(x["freeinit"], x["data"]),
        "oracle_vs_data": _welch(x["oracle"], x["data"]),
        "beyond_oracle": paired_test(x["freeinit"], x["oracle"]),
        "means": {s: float(v.mean()) for s, v in x.items()},
        "ses": {s: float(v.std(ddof=1) / math.sqrt(v.size)) for s, v in x.items()},
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A human-readable multi-line report of :func:`summarize_evidence`."""
    s = summary
    lines = [
        f"metric: {s['metric']}  (mean ± s.e.)",
        "  " + "  ".join(f"{k} {s['means'][k]:.4f}±{s['ses'][k]:.4f}" for k in s["means"]),
        f"(a) RMS(mix−A)/RMS(mix−B) = {s['a_ratio']:.3f} ± {s['a_ratio_se']:.3f}; "
        f"closer to A in {100 * s['a_closer_to_a']:.0f}% of videos",
        f"(b) data − baseline = {s['b']['mean']:+.4f} ± {s['b']['se']:.4f} (Welch t = {s['b']['t']:.1f}, "
        f"p = {s['b']['p']:.2g})",
        f"(c) FreeInit − baseline = {s['c']['mean']:+.4f} ± {s['c']['se']:.4f} (paired t = {s['c']['t']:.1f}, "
        f"p = {s['c']['p']:.2g}, n = {s['c']['n']})",
        f"(d) oracle − baseline = {s['d_oracle']['mean']:+.4f} ± {s['d_oracle']['se']:.4f} "
        f"(paired t = {s['d_oracle']['t']:.1f}); FreeInit closes {100 * s['gap_closed']:.0f}% of the gap",
        f"    FreeInit − data = {s['overshoot']['mean']:+.4f} ± {s['overshoot']['se']:.4f} (Welch t = "
        f"{s['overshoot']['t']:.1f}); oracle − data = {s['oracle_vs_data']['mean']:+.4f} ± "
        f"{s['oracle_vs_data']['se']:.4f} (Welch t = {s['oracle_vs_data']['t']:.1f}); FreeInit − oracle = "
        f"{s['beyond_oracle']['mean']:+.4f} ± {s['beyond_oracle']['se']:.4f} "
        f"(paired t = {s['beyond_oracle']['t']:.1f})",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Measure findings (a)-(d) on the embedded default model.")
    p.add_argument("--num-videos", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's stored sampler)")
    p.add_argument("--analytic", action="store_true", help="use the analytic Gaussian reference instead")
    args = p.parse_args(argv)
    from freeinit_lab.embedded.pipelines import load_analytic_pipeline, load_default_pipeline

    # the data are each model's own training distribution, as independent draws: for the analytic reference its
    # Gaussian prior (overlapping segments of the one film it is fitted to would be correlated data videos, and the
    # data side's standard error would come out too small)
    pipe = load_analytic_pipeline() if args.analytic else load_default_pipeline()
    ds = measure_evidence(pipe, num_videos=args.num_videos, seed=args.seed, num_inference_steps=args.steps)
    print(f"{ds.attrs['pipeline']}: {args.num_videos} videos, seed {args.seed}, {ds.attrs['seconds']} s")
    for metric in ("consistency", "flicker", "ssim"):
        print(format_summary(summarize_evidence(ds, metric)))


if __name__ == "__main__":
    main()
