"""How close are generated videos to reference videos? Band powers, two-sample tests, precision/recall.

:func:`fidelity_report` compares ``samples`` with ``reference`` videos, both ``(video, channel, frame, height,
width)`` in the same space (model space, or display RGB — the report says which it was given), and reports every
measure beside its **reference-vs-reference baseline at the same sample size**: the reference is split into two
disjoint sets, ``A`` (``N`` videos, compared with the ``N`` samples) and ``B`` (``N`` videos, compared with
``A``), so a number is only meaningful next to what two draws of the data give.

Measures
--------
* **Band power** (dB difference per band): spatial power ``P_s(b) = mean |FFT2(x)|² / (H W)`` over the
  radial spatial-frequency band ``b`` (cycles per pixel, octaves below Nyquist; DC on its own), all frames,
  channels and videos; temporal power ``P_t(k) = mean |FFT_t(x)|² / F`` at each temporal frequency ``k`` (cycles
  per frame, ``0 … ½``); reported as ``10 log10(P_samples / P_A)``.
* **Video features** (:data:`FEATURE_NAMES`, one vector per video): per-channel mean and standard deviation,
  log power in the spatial and temporal bands, consecutive-frame and first–last-frame cosine similarity of the
  mean-removed frames, RMS frame difference, mean spatial gradient magnitude, and colourfulness. Standardised
  with ``A``'s mean and standard deviation.
* **Classifier two-sample test**: a ridge-regularised logistic regression on the features, ``k``-fold
  cross-validated, repeated ``r`` times with fresh fold assignments; the accuracy is the mean over the ``r k``
  folds (0.5 means indistinguishable). Interval: the corrected resampled t interval of repeated cross-validation
  (Nadeau & Bengio 2003, *Machine Learning* 52: 239–281; Bouckaert & Frank 2004): with ``s²`` the variance of the
  ``r k`` fold accuracies, ``mean ± t_{0.975, rk−1} sqrt((1 / (r k) + n_test / n_train) s²)``, clipped to
  [0, 1]. The ``n_test / n_train`` term accounts for the folds' shared training videos; a Wilson binomial interval
  treats the ``2N`` cross-validated predictions as independent, which they are not, and covered 0.5 in 88 % of
  200 pairs of same-distribution sets at ``N = 16`` (this interval: 98.5 %).
* **Feature shifts and spreads** (what the classifier sees): per feature, ``(mean_samples − mean_A) / sd_A`` and
  ``sd_samples / sd_A``, beside ``B``'s; the summary names the largest shifts and the narrowest spreads.
* **Fréchet distance** of the features: ``|μ₁ − μ₂|² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2})``.
* **k-NN precision and recall** (Kynkäänniemi et al. 2019): precision is the share of samples inside the
  reference manifold (the union of balls reaching each reference video's ``k``-th nearest reference
  neighbour), recall the share of reference videos inside the samples' manifold.
* **Memorisation** (only with ``training=``): each sample's nearest training video (pixel L2 distance, as
  given) against each held-out reference video's nearest training video; a sample is flagged when it is closer
  to its nearest training video than the 1st percentile of the reference's nearest distances, scaled by 0.5.
  ``memorised_fraction`` is the flagged share; the reference's own fraction is the baseline.

:func:`fidelity_gate` checks a report against thresholds (the embedded default's gate by default).

Gap-aware evaluation of a diffusion model
-----------------------------------------
A model sampled from pure noise ``N(0, I)`` is started *off* its training marginal ``z_T = a_T x_0 + b_T eps``
(the initialization gap), and even an exact-score model then under-produces the data's lowest frequencies: for a
Gaussian with per-bin variance ``λ(k)`` the deterministic sampler maps unit-variance noise to variance
``λ(k) / (a_T² λ(k) + b_T²)`` instead of ``λ(k)``, a deficit of ``10 log10(a_T² λ(k) + b_T²)`` dB — about 13 dB in
the DC band of the embedded default's data. A band-power gate against the data therefore cannot hold for *any*
faithful model on plain noise. Training quality and the gap are judged separately:

* :func:`training_marginal_latents` draws initial latents *on* the training marginal (held-out clean videos,
  diffused to the sampler's first timestep); samples started there should match the data in every measure.
* :func:`band_power_gap` compares the plain-noise samples of a model, band by band, with those of a reference
  model (e.g. the exact-score Gaussian model, same noise seeds): paired dB differences with bootstrap intervals.
* :func:`denoising_error` compares the ε-prediction error of a model with a reference's on the same noised
  videos, per noise level: against the exact-score Gaussian model it says where the network has learned less
  than the data's power spectrum (often the noisiest steps, which set a sample's low-frequency layout).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from freeinit_lab._checks import require_int, require_seed

__all__ = ["FEATURE_NAMES", "FidelityReport", "fidelity_report", "fidelity_gate", "video_features",
           "spatial_band_power", "temporal_band_power", "min_videos", "training_marginal_latents",
           "band_power_gap", "BandPowerGap", "judge_against_data", "denoising_error", "DenoisingError"]

#: Fewest videos per set for the cross-validated classifier and the k-NN manifolds.
MIN_VIDEOS = 16


def min_videos() -> int:
    """Fewest samples :func:`fidelity_report` accepts (it then needs twice as many reference videos)."""
    return MIN_VIDEOS


def _check_videos(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    if x.ndim != 5:
        raise ValueError(f"{name} must be (video, channel, frame, height, width); got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf values ({int((~torch.isfinite(x)).sum())} of {x.numel()}); "
                         "pass finite videos")
    return x.detach().to("cpu", torch.float64)


def _spatial_edges(h: int, w: int) -> np.ndarray:
    """Band edges in cycles per pixel: DC, then octaves up to the corner frequency."""
    top = math.hypot(0.5, 0.5) + 1e-9
    lo = 1.0 / max(h, w)
    edges = [0.0, 0.5 * lo]
    f = 2 * lo
    while f < 0.5:
        edges.append(f)
        f *= 2
    edges.append(top)
    return np.asarray(edges)


def _spatial_radius(h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
    """``(H, W)`` radius ``sqrt(f_x² + f_y²)`` of every 2-D FFT bin, in cycles per pixel."""
    fy = torch.fft.fftfreq(h, dtype=dtype).view(-1, 1)
    fx = torch.fft.fftfreq(w, dtype=dtype).view(1, -1)
    return torch.sqrt(fx**2 + fy**2)


def spatial_band_power(x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """Per-video spatial band power ``(video, band)`` and the band edges (cycles per pixel).

    ``P(b) = mean_{bins in b, frames, channels} |FFT2(x)|² / (H W)``; band 0 is the DC bin alone.
    """
    n, c, f, h, w = x.shape
    spec = torch.fft.fft2(x, dim=(-2, -1)).abs() ** 2 / (h * w)
    r = _spatial_radius(h, w, x.dtype)
    edges = _spatial_edges(h, w)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (r >= lo) & (r < hi)
        out.append(spec[..., m].mean(dim=(1, 2, 3)) if m.any() else torch.full((n,), float("nan"), dtype=x.dtype))
    return torch.stack(out, dim=1), edges


def temporal_band_power(x: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """Per-video temporal power ``(video, k)`` at each frequency ``k/F`` (cycles per frame, ``0 … ½``)."""
    n, c, f, h, w = x.shape
    spec = torch.fft.rfft(x, dim=2).abs() ** 2 / f
    return spec.mean(dim=(1, 3, 4)), np.fft.rfftfreq(f)


def _frame_cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(dim=(1, 2, 3), keepdim=True)
    b = b - b.mean(dim=(1, 2, 3), keepdim=True)
    num = (a * b).sum(dim=(1, 2, 3))
    return num / (a.flatten(1).norm(dim=1) * b.flatten(1).norm(dim=1)).clamp_min(1e-12)


def video_features(x: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    """One feature vector per video (see the module docstring) and the feature names."""
    x = _check_videos("videos", x)
    n, c, f, h, w = x.shape
    feats, names = [], []
    mean = x.mean(dim=(2, 3, 4))
    std = x.std(dim=(2, 3, 4))
    feats += [mean, std]
    names += [f"mean_c{i}" for i in range(c)] + [f"std_c{i}" for i in range(c)]
    ps, _ = spatial_band_power(x)
    feats.append(10 * torch.log10(ps.clamp_min(1e-20)))
    names += [f"spatial_power_db_b{i}" for i in range(ps.shape[1])]
    pt, _ = temporal_band_power(x)
    feats.append(10 * torch.log10(pt.clamp_min(1e-20)))
    names += [f"temporal_power_db_k{i}" for i in range(pt.shape[1])]
    frames = x.transpose(1, 2)  # (n, f, c, h, w)
    if f > 1:
        cons = torch.stack([_frame_cos(frames[:, i], frames[:, i + 1]) for i in range(f - 1)], 1).mean(1)
        ends = _frame_cos(frames[:, 0], frames[:, -1])
        diff = (frames[:, 1:] - frames[:, :-1]).pow(2).mean(dim=(1, 2, 3, 4)).sqrt()
    else:
        cons = ends = diff = torch.zeros(n, dtype=x.dtype)
    zero = torch.zeros(n, dtype=x.dtype)  # no gradient across an axis of one pixel (the mean of nothing is NaN)
    gy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(1, 2, 3, 4)) if h > 1 else zero
    gx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3, 4)) if w > 1 else zero
    if c >= 3:
        rg = x[:, 0] - x[:, 1]
        yb = 0.5 * (x[:, 0] + x[:, 1]) - x[:, 2]
        colorful = (rg.std(dim=(1, 2, 3)) ** 2 + yb.std(dim=(1, 2, 3)) ** 2).sqrt()
    else:
        colorful = torch.zeros(n, dtype=x.dtype)
    feats.append(torch.stack([cons, ends, diff, gx + gy, colorful], dim=1))
    names += ["consecutive_cosine", "first_last_cosine", "rms_frame_difference", "mean_gradient", "colourfulness"]
    return torch.cat(feats, dim=1), names


#: Names of :func:`video_features` for RGB videos of 16 frames (band counts depend on the size).
FEATURE_NAMES = ("mean_c*", "std_c*", "spatial_power_db_b*", "temporal_power_db_k*", "consecutive_cosine",
                 "first_last_cosine", "rms_frame_difference", "mean_gradient", "colourfulness")


def _corrected_t_interval(fold_accuracy: np.ndarray, folds: int, confidence: float = 0.95) -> tuple[float, float]:
    """Corrected resampled t interval of repeated ``folds``-fold cross-validation (Nadeau & Bengio 2003):
    ``mean ± t_{(1+c)/2, J−1} sqrt((1/J + n_test/n_train) s²)`` over the ``J`` fold accuracies, with
    ``n_test / n_train = 1 / (folds − 1)``; clipped to [0, 1]."""
    from scipy import stats

    a = np.asarray(fold_accuracy, dtype=np.float64)
    j = a.size
    m = float(a.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2, j - 1)) * math.sqrt((1 / j + 1 / (folds - 1)) * a.var(ddof=1))
    return max(0.0, m - half), min(1.0, m + half)


def _logistic_cv_accuracy(fa: torch.Tensor, fb: torch.Tensor, folds: int, ridge: float, seed: int,
                          repeats: int = 1) -> np.ndarray:
    """Accuracy of each fold of ``repeats`` × ``folds``-fold cross-validated ridge logistic regression (a vs b);
    repeat ``i`` assigns the folds with ``torch.Generator().manual_seed(seed + i)``."""
    out = []
    for i in range(repeats):
        out += _cv_folds(fa, fb, folds, ridge, seed + i)
    return np.asarray(out)


def _cv_folds(fa: torch.Tensor, fb: torch.Tensor, folds: int, ridge: float, seed: int) -> list[float]:
    x = torch.cat([fa, fb]).double()
    y = torch.cat([torch.zeros(len(fa)), torch.ones(len(fb))]).double()
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    accuracy = []
    for k in range(folds):
        test = perm[k::folds]
        train = torch.ones(len(x), dtype=torch.bool)
        train[test] = False
        xt, yt = x[train], y[train]
        mu, sd = xt.mean(0), xt.std(0).clamp_min(1e-9)
        xt = (xt - mu) / sd
        xs = (x[test] - mu) / sd
        wts = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([wts], max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            logits = xt @ wts[:-1] + wts[-1]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, yt) + ridge * (wts[:-1] ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            pred = ((xs @ wts[:-1] + wts[-1]) > 0).double()
        accuracy.append(float((pred == y[test]).double().mean()))
    return accuracy


def _frechet(fa: np.ndarray, fb: np.ndarray) -> float:
    """``|μ_a − μ_b|² + Tr Σ_a + Tr Σ_b − 2 Tr (Σ_a Σ_b)^{1/2}``, with ``Tr (Σ_a Σ_b)^{1/2} = Σ_i sqrt(λ_i)`` over the
    eigenvalues of the symmetric PSD matrix ``Σ_a^{1/2} Σ_b Σ_a^{1/2}`` (similar to ``Σ_a Σ_b``): exact also where a
    covariance is singular (a feature constant over the videos, e.g. colourfulness of grey videos), where a general
    matrix square root (``scipy.linalg.sqrtm``) is ill-posed and warns."""
    mu = fa.mean(0) - fb.mean(0)
    ca, cb = np.atleast_2d(np.cov(fa, rowvar=False)), np.atleast_2d(np.cov(fb, rowvar=False))
    w, v = np.linalg.eigh(ca)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    lam = np.linalg.eigvalsh(root_a @ cb @ root_a)
    return float(mu @ mu + np.trace(ca) + np.trace(cb) - 2.0 * np.sqrt(np.clip(lam, 0.0, None)).sum())


def _knn_radii(f: torch.Tensor, k: int) -> torch.Tensor:
    d = torch.cdist(f, f)
    return d.kthvalue(k + 1, dim=1).values  # k-th neighbour other than itself


def _precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int) -> tuple[float, float]:
    rr, rf = _knn_radii(real, k), _knn_radii(fake, k)
    d = torch.cdist(fake, real)  # (n_fake, n_real)
    precision = (d <= rr[None, :]).any(dim=1).double().mean().item()
    recall = (d.T <= rf[None, :]).any(dim=1).double().mean().item()
    return precision, recall


@dataclass
class FidelityReport:
    """Result of :func:`fidelity_report`: each measure for samples vs reference ``A`` and for ``B`` vs ``A``.

    Attributes
    ----------
    num_videos : int
        Videos per compared set (``N``).
    space : str
        What the videos were (as the caller described them), e.g. ``"model space (unit-variance)"``.
    spatial_db, spatial_db_baseline : numpy.ndarray
        ``10 log10(P_samples / P_A)`` and ``10 log10(P_B / P_A)`` per spatial band (dB); ``spatial_edges`` in
        cycles per pixel (band 0 = DC).
    temporal_db, temporal_db_baseline : numpy.ndarray
        The same per temporal frequency; ``temporal_freqs`` in cycles per frame.
    accuracy, accuracy_low, accuracy_high, accuracy_baseline : float
        Two-sample classifier accuracy, mean over ``repeats`` × ``folds`` cross-validation folds, with its 95 %
        corrected resampled t interval (module docstring); the baseline is ``B`` vs ``A`` at the same size, by
        the same procedure.
    frechet, frechet_baseline : float
        Fréchet distance of the standardised features.
    precision, recall, precision_baseline, recall_baseline : float
        k-NN precision and recall.
    memorised_fraction, memorised_fraction_baseline : float or None
        Share of samples (of ``B``) flagged as near-copies of a training video; ``None`` without ``training``.
    nn_distance_ratio : float or None
        Median nearest-training distance of the samples over that of ``B``.
    feature_names : list of str
        The :func:`video_features` compared.
    feature_shift, feature_shift_baseline : numpy.ndarray
        What the classifier sees, per feature: ``(mean_samples − mean_A) / sd_A`` and ``(mean_B − mean_A) / sd_A``
        (standardised mean difference, in reference standard deviations).
    feature_spread, feature_spread_baseline : numpy.ndarray
        ``sd_samples / sd_A`` and ``sd_B / sd_A`` per feature: below 1, the samples vary less than the data.
    feature_tail_low, feature_tail_high, feature_tail_low_baseline, feature_tail_high_baseline : numpy.ndarray
        Which data the samples lack, per feature: the share of the samples (of ``B``) below ``A``'s
        ``TAIL_QUANTILE`` quantile and above its ``1 − TAIL_QUANTILE`` quantile, ``#{f_s < q_lo(A)} / N`` and
        ``#{f_s > q_hi(A)} / N``. Data like ``A`` put about ``TAIL_QUANTILE`` (0.1) in each; a share near 0 says
        that end of the data (e.g. the fastest-moving tenth of the videos) is missing from the samples.
    """

    num_videos: int
    space: str
    spatial_edges: np.ndarray
    spatial_db: np.ndarray
    spatial_db_baseline: np.ndarray
    temporal_freqs: np.ndarray
    temporal_db: np.ndarray
    temporal_db_baseline: np.ndarray
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    accuracy_baseline: float
    frechet: float
    frechet_baseline: float
    precision: float
    recall: float
    precision_baseline: float
    recall_baseline: float
    knn_k: int
    memorised_fraction: float | None = None
    memorised_fraction_baseline: float | None = None
    nn_distance_ratio: float | None = None
    feature_names: list[str] = field(default_factory=list)
    feature_shift: np.ndarray = field(default_factory=lambda: np.zeros(0))
    feature_shift_baseline: np.ndarray = field(default_factory=lambda: np.zeros(0))
    feature_spread: np.ndarray = field(default_factory=lambda: np.ones(0))
    feature_spread_baseline: np.ndarray = field(default_factory=lambda: np.ones(0))
    feature_tail_low: np.ndarray = field(default_factory=lambda: np.zeros(0))
    feature_tail_high: np.ndarray = field(default_factory=lambda: np.zeros(0))
    feature_tail_low_baseline: np.ndarray = field(default_factory=lambda: np.zeros(0))
    feature_tail_high_baseline: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def largest_feature_shifts(self, k: int = 3) -> list[tuple[str, float, float]]:
        """The ``k`` features whose standardised mean differs most between samples and reference, as ``(name,
        shift, baseline shift)``, largest ``|shift|`` first: what separates the samples from the data."""
        order = np.argsort(-np.abs(self.feature_shift), kind="stable")[:k]
        return [(self.feature_names[i], float(self.feature_shift[i]), float(self.feature_shift_baseline[i]))
                for i in order]

    def narrowest_feature_spreads(self, k: int = 3) -> list[tuple[str, float, float]]:
        """The ``k`` features whose spread across videos is smallest relative to the reference's, as ``(name,
        spread ratio, baseline ratio)``, smallest first: where the samples lack the data's variety."""
        order = np.argsort(self.feature_spread, kind="stable")[:k]
        return [(self.feature_names[i], float(self.feature_spread[i]), float(self.feature_spread_baseline[i]))
                for i in order]

    def thinnest_feature_tails(self, k: int = 3) -> list[tuple[str, str, float, float]]:
        """The ``k`` ends of the data the samples reach least, as ``(name, "low" or "high", share of the samples
        beyond the reference's quantile, the same share for reference set B)``, thinnest first: e.g.
        ``("rms_frame_difference", "high", 0.0, 0.09)`` says no sample moves as much as the data's fastest tenth.
        Ends the samples reach equally often (several empty ones, typically) come in the order of reference set
        B's share, largest first: an end that B fills and the samples leave empty is the clearer sign of a missing
        part of the data; remaining ties keep the feature order."""
        ends = [(n, end, float(v), float(bl)) for end, vals, base in
                (("low", self.feature_tail_low, self.feature_tail_low_baseline),
                 ("high", self.feature_tail_high, self.feature_tail_high_baseline))
                for n, v, bl in zip(self.feature_names, vals, base)]
        return sorted(ends, key=lambda e: (e[2], -e[3]))[:k]

    def empty_feature_tails(self) -> tuple[int, int]:
        """How many of the ``2 × features`` ends hold none of the samples, and none of reference set B (the count
        data like the reference leave empty at this sample size by chance): ``(samples, baseline)``."""
        samples = int((self.feature_tail_low == 0).sum() + (self.feature_tail_high == 0).sum())
        baseline = int((self.feature_tail_low_baseline == 0).sum() + (self.feature_tail_high_baseline == 0).sum())
        return samples, baseline

    def to_dict(self) -> dict:
        """Plain JSON-ready values."""
        out = {}
        for k, v in self.__dict__.items():
            out[k] = v.tolist() if isinstance(v, np.ndarray) else v
        return out

    def summary(self) -> str:
        """A few lines a reader can check against the gate."""
        lines = [
            f"fidelity of {self.num_videos} samples vs {self.num_videos} reference videos ({self.space}); "
            "baseline = reference vs reference at the same size",
            f"  two-sample accuracy {self.accuracy:.3f} [{self.accuracy_low:.3f}, {self.accuracy_high:.3f}] "
            f"(baseline {self.accuracy_baseline:.3f})",
            f"  Fréchet distance {self.frechet:.3f} (baseline {self.frechet_baseline:.3f})",
            f"  k-NN precision {self.precision:.3f} / recall {self.recall:.3f} "
            f"(baseline {self.precision_baseline:.3f} / {self.recall_baseline:.3f}, k={self.knn_k})",
            "  spatial band power, dB vs reference: " + " ".join(f"{v:+.2f}" for v in self.spatial_db)
            + "  (baseline " + " ".join(f"{v:+.2f}" for v in self.spatial_db_baseline) + ")",
            "  temporal band power, dB vs reference: " + " ".join(f"{v:+.2f}" for v in self.temporal_db)
            + "  (baseline " + " ".join(f"{v:+.2f}" for v in self.temporal_db_baseline) + ")",
        ]
        if len(self.feature_shift):
            lines.append("  largest feature shifts, (mean − reference mean) / reference SD: " + ", ".join(
                f"{n} {v:+.2f} ({b:+.2f})" for n, v, b in self.largest_feature_shifts()) + "  (baseline in brackets)")
            lines.append("  narrowest feature spreads, SD / reference SD: " + ", ".join(
                f"{n} {v:.2f} ({b:.2f})" for n, v, b in self.narrowest_feature_spreads()) + "  (baseline in brackets)")
        if len(self.feature_tail_low):
            empty, empty_b = self.empty_feature_tails()
            lines.append(f"  thinnest feature tails, share of samples beyond the reference's {TAIL_QUANTILE:.0%} / "
                         f"{1 - TAIL_QUANTILE:.0%} quantile (about {TAIL_QUANTILE:.2f} for data): " + ", ".join(
                             f"{n} {end} {v:.2f} ({b:.2f})" for n, end, v, b in self.thinnest_feature_tails())
                         + f"  (baseline in brackets); {empty} of {2 * len(self.feature_tail_low)} ends empty "
                         f"(baseline {empty_b})")
        if self.memorised_fraction is not None:
            lines.append(f"  memorised fraction {self.memorised_fraction:.3f} (baseline "
                         f"{self.memorised_fraction_baseline:.3f}); nearest-training distance ratio "
                         f"{self.nn_distance_ratio:.3f}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


#: Tail quantile of :attr:`FidelityReport.feature_tail_low` / ``feature_tail_high``: the reference's outer tenths.
TAIL_QUANTILE = 0.1


def fidelity_report(samples, reference, *, training=None, space: str = "as given", knn_k: int = 3,
                    folds: int = 5, repeats: int = 5, ridge: float = 1e-2, seed: int = 0) -> FidelityReport:
    """Compare generated videos with reference videos; every measure beside its reference-vs-reference baseline.

    Parameters
    ----------
    samples : torch.Tensor or array
        ``(N, channel, frame, height, width)`` generated videos, ``N >= 16``.
    reference : torch.Tensor or array
        ``(M, channel, frame, height, width)`` reference videos of the same channel/frame/height/width in the
        same space, ``M >= 2 N``: the first ``N`` form ``A`` (compared with the samples), the next ``N`` form
        ``B`` (the baseline, compared with ``A``).
    training : torch.Tensor or array, optional
        Videos the model was trained on, for the memorisation check (any number ``>= 1``).
    space : str
        Description of the space the videos are in, written into the report (e.g. ``"model space"``).
    knn_k : int
        Neighbourhood size of the k-NN manifolds: an integer in ``[1, N − 2]``.
    folds : int
        Cross-validation folds of the classifier.
    repeats : int
        Repetitions of the cross-validation, each with its own random fold assignment (seeds ``seed … seed +
        repeats − 1``); more repeats steady the accuracy, the interval stays calibrated.
    ridge : float
        L2 penalty of the logistic regression (on standardised features): a finite number ``>= 0`` (0: none).
    seed : int
        Seed of the first fold assignment.

    Returns
    -------
    FidelityReport
    """
    s = _check_videos("samples", samples)
    r = _check_videos("reference", reference)
    if s.shape[1:] != r.shape[1:]:
        raise ValueError(f"samples {tuple(s.shape[1:])} and reference {tuple(r.shape[1:])} differ in "
                         "(channel, frame, height, width); compare videos of one size in one space")
    if s.shape[-2] * s.shape[-1] < 2:
        raise ValueError(f"frames of {s.shape[-2]} × {s.shape[-1]} pixels have no spatial frequency but DC; "
                         "fidelity_report needs frames of at least 2 pixels")
    n = s.shape[0]
    if n < MIN_VIDEOS:
        raise ValueError(f"fidelity_report needs at least {MIN_VIDEOS} samples for its cross-validated "
                         f"classifier and k-NN manifolds; got {n}")
    if r.shape[0] < 2 * n:
        raise ValueError(f"fidelity_report needs at least 2 × {n} = {2 * n} reference videos (two disjoint sets "
                         f"of {n}: one compared with the samples, one for the baseline); got {r.shape[0]}")
    folds = require_int("folds", folds, low=2, high=2 * n,
                        why=f" (cross-validation folds of the classifier on {2 * n} videos)")
    repeats = require_int("repeats", repeats, why=" (repetitions of the classifier's cross-validation)")
    knn_k = require_int("knn_k", knn_k, low=1, high=n - 2,
                        why=f" (neighbours of the k-NN manifolds of {n} samples)")
    if isinstance(ridge, (bool, np.bool_)) or not isinstance(ridge, (int, float, np.integer, np.floating)) \
            or not math.isfinite(ridge) or ridge < 0:
        raise ValueError(f"ridge must be a finite number >= 0 (the classifier's L2 penalty, e.g. 1e-2); got {ridge!r}")
    if training is not None:
        tr = _check_videos("training", training)
        if tr.shape[1:] != s.shape[1:]:
            raise ValueError(f"training videos {tuple(tr.shape[1:])} differ in size from samples "
                             f"{tuple(s.shape[1:])}")
    a, b = r[:n], r[n:2 * n]

    ps, edges = spatial_band_power(s)
    pa, _ = spatial_band_power(a)
    pb, _ = spatial_band_power(b)
    ts, freqs = temporal_band_power(s)
    ta, _ = temporal_band_power(a)
    tb, _ = temporal_band_power(b)

    def db(p, q):
        return (10 * torch.log10(p.mean(0) / q.mean(0))).numpy()

    fs, names = video_features(s)
    fa, _ = video_features(a)
    fb, _ = video_features(b)
    mu, sd = fa.mean(0), fa.std(0).clamp_min(1e-9)
    zs, za, zb = (fs - mu) / sd, (fa - mu) / sd, (fb - mu) / sd
    acc = _logistic_cv_accuracy(zs, za, folds, ridge, seed, repeats)
    acc_b = _logistic_cv_accuracy(zb, za, folds, ridge, seed, repeats)
    lo, hi = _corrected_t_interval(acc, folds)
    prec, rec = _precision_recall(za, zs, knn_k)
    prec_b, rec_b = _precision_recall(za, zb, knn_k)
    mem = mem_b = ratio = None
    if training is not None:
        ds = torch.cdist(s.flatten(1), tr.flatten(1)).min(dim=1).values
        dbb = torch.cdist(b.flatten(1), tr.flatten(1)).min(dim=1).values
        thr = 0.5 * torch.quantile(dbb, 0.01)
        mem = float((ds < thr).double().mean())
        mem_b = float((dbb < thr).double().mean())
        ratio = float(ds.median() / dbb.median().clamp_min(1e-12))
    return FidelityReport(
        num_videos=n, space=space, spatial_edges=edges, spatial_db=db(ps, pa), spatial_db_baseline=db(pb, pa),
        temporal_freqs=freqs, temporal_db=db(ts, ta), temporal_db_baseline=db(tb, ta),
        accuracy=float(acc.mean()), accuracy_low=lo, accuracy_high=hi, accuracy_baseline=float(acc_b.mean()),
        frechet=_frechet(zs.numpy(), za.numpy()), frechet_baseline=_frechet(zb.numpy(), za.numpy()),
        precision=prec, recall=rec, precision_baseline=prec_b, recall_baseline=rec_b, knn_k=knn_k,
        memorised_fraction=mem, memorised_fraction_baseline=mem_b, nn_distance_ratio=ratio,
        feature_names=names, feature_shift=zs.mean(0).numpy(), feature_shift_baseline=zb.mean(0).numpy(),
        feature_spread=zs.std(0).numpy(), feature_spread_baseline=zb.std(0).numpy(),
        **_tails(fs, fa, fb),
    )


def _tails(fs: torch.Tensor, fa: torch.Tensor, fb: torch.Tensor) -> dict[str, np.ndarray]:
    """Shares of the samples ``fs`` (and of ``fb``) beyond reference ``fa``'s lower and upper tail quantiles."""
    q = torch.tensor([TAIL_QUANTILE, 1 - TAIL_QUANTILE], dtype=fa.dtype)
    lo, hi = torch.quantile(fa, q, dim=0)
    share = lambda mask: mask.double().mean(0).numpy()  # noqa: E731
    return dict(feature_tail_low=share(fs < lo), feature_tail_high=share(fs > hi),
                feature_tail_low_baseline=share(fb < lo), feature_tail_high_baseline=share(fb > hi))


def fidelity_gate(report: FidelityReport, *, max_accuracy: float = 0.70, max_abs_db: float = 1.5,
                  min_precision: float = 0.6, min_recall: float = 0.6, max_memorised: float = 0.0) -> dict:
    """Check a report against thresholds (defaults: the embedded default model's gate).

    Returns a dict ``{criterion: (passed, value, threshold)}`` plus ``"passed"`` (all of them). The memorisation
    criterion is only checked when the report has one.
    """
    spatial = float(np.nanmax(np.abs(report.spatial_db)))
    temporal = float(np.nanmax(np.abs(report.temporal_db)))
    out = {
        "two_sample_accuracy": (report.accuracy <= max_accuracy, report.accuracy, max_accuracy),
        "spatial_band_power_db": (spatial <= max_abs_db, spatial, max_abs_db),
        "temporal_band_power_db": (temporal <= max_abs_db, temporal, max_abs_db),
        "precision": (report.precision >= min_precision, report.precision, min_precision),
        "recall": (report.recall >= min_recall, report.recall, min_recall),
    }
    if report.memorised_fraction is not None:
        out["memorisation"] = (report.memorised_fraction <= max_memorised, report.memorised_fraction,
                               max_memorised)
    out["passed"] = all(v[0] for v in out.values())
    return out


def training_marginal_latents(clean: torch.Tensor, scheduler, num_inference_steps: int, *,
                              generator: torch.Generator | None = None, start_step: int = 0) -> torch.Tensor:
    """Initial latents drawn *on* the training marginal: ``z = a_t x_0 + b_t eps`` at the sampler's first timestep.

    ``a_t = sqrt(ᾱ_t)``, ``b_t = sqrt(1 - ᾱ_t)`` with ``t = scheduler.timesteps[start_step]`` (the first, by
    default; a later one starts a partial schedule, as image-to-image pipelines do) after
    ``scheduler.set_timesteps(num_inference_steps)`` (on a copy; the caller's scheduler is untouched). For
    variance-preserving schedulers whose ``init_noise_sigma`` is 1 (DDIM, DDPM, PNDM, DPM-Solver); others are
    refused. ``clean`` must be held-out
    videos of the training distribution in the model's space, ``(video, channel, frame, height, width)``.
    Sampling from these latents removes the initialization gap, so what remains is the model's own error.
    """
    import copy

    if not isinstance(clean, torch.Tensor):
        clean = torch.as_tensor(np.asarray(clean))
    x = _check_videos("clean", clean)
    if not hasattr(scheduler, "alphas_cumprod"):
        raise TypeError(f"{type(scheduler).__name__} has no alphas_cumprod; training_marginal_latents needs a "
                        "DDPM-family (variance-preserving) scheduler such as DDIMScheduler")
    if float(getattr(scheduler, "init_noise_sigma", 1.0)) != 1.0:
        raise ValueError(f"{type(scheduler).__name__} scales its initial noise by init_noise_sigma="
                         f"{float(scheduler.init_noise_sigma)}; use a variance-preserving scheduler (e.g. DDIM)")
    sch = copy.deepcopy(scheduler)
    sch.set_timesteps(int(num_inference_steps))
    n = len(sch.timesteps)
    k = require_int("start_step", start_step, low=0, high=n - 1, why=f": outside the sampler's {n} steps")
    t = int(sch.timesteps[k])
    ac = float(sch.alphas_cumprod[t])
    dtype = clean.dtype if clean.is_floating_point() else torch.float32
    eps = torch.randn(x.shape, generator=generator, dtype=dtype)
    return math.sqrt(ac) * x.to(dtype) + math.sqrt(1.0 - ac) * eps


@dataclass
class BandPowerGap:
    """Paired band-power differences ``10 log10(P_samples / P_reference)`` (dB) with percentile-bootstrap intervals.

    ``spatial_*`` per spatial band (edges ``spatial_edges`` in cycles per pixel, band 0 = DC), ``temporal_*`` per
    temporal frequency (``temporal_freqs`` in cycles per frame). The bootstrap resamples video *pairs*.
    """

    num_videos: int
    spatial_edges: np.ndarray
    spatial_db: np.ndarray
    spatial_low: np.ndarray
    spatial_high: np.ndarray
    temporal_freqs: np.ndarray
    temporal_db: np.ndarray
    temporal_low: np.ndarray
    temporal_high: np.ndarray
    confidence: float

    @property
    def max_abs_db(self) -> float:
        """Largest ``|dB|`` over all spatial and temporal bands."""
        return float(max(np.nanmax(np.abs(self.spatial_db)), np.nanmax(np.abs(self.temporal_db))))

    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}

    def summary(self) -> str:
        def row(v, lo, hi):
            return " ".join(f"{a:+.2f} [{b:+.2f}, {c:+.2f}]" for a, b, c in zip(v, lo, hi))

        return (f"band power of {self.num_videos} paired videos, dB vs reference "
                f"({100 * self.confidence:.0f} % bootstrap intervals)\n"
                f"  spatial (DC first): {row(self.spatial_db, self.spatial_low, self.spatial_high)}\n"
                f"  temporal (0 … ½ cycles/frame): {row(self.temporal_db, self.temporal_low, self.temporal_high)}")

    def __repr__(self) -> str:
        return self.summary()


def band_power_gap(samples, reference, *, num_bootstrap: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> BandPowerGap:
    r"""Paired per-band power of ``samples`` against ``reference`` videos drawn with the same noise, in dB.

    .. math::  \Delta(b) = 10 \log_{10} \frac{\sum_i P_b(s_i)}{\sum_i P_b(r_i)}

    with ``P_b`` the per-video band power of :func:`spatial_band_power` / :func:`temporal_band_power`; the
    interval resamples the index ``i`` (pairs), so the shared noise cancels. Use it to compare a trained model's
    plain-noise samples with an exact-score reference model's (same seeds): a faithful model shows the *same*
    initialization-gap deficit, not none.

    Needs at least 2 video pairs (one pair has no spread to resample); ``num_bootstrap`` is an integer ``>= 1`` and
    ``seed`` an integer in ``[0, 2**64 − 1]``.
    """
    s = _check_videos("samples", samples)
    r = _check_videos("reference", reference)
    if s.shape != r.shape:
        raise ValueError(f"band_power_gap compares paired videos: samples {tuple(s.shape)} and reference "
                         f"{tuple(r.shape)} must have the same shape (draw both with the same noise seeds)")
    if s.shape[0] < 2:
        raise ValueError(f"need at least 2 paired videos for intervals; got {s.shape[0]} (every resample of one pair "
                         "is that pair: a zero-width interval)")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    num_bootstrap = require_int("num_bootstrap", num_bootstrap, why=" (bootstrap resamples of the video pairs)")
    seed = require_seed(seed)
    s, r = s.double(), r.double()
    ps, edges = spatial_band_power(s)
    pr, _ = spatial_band_power(r)
    ts, freqs = temporal_band_power(s)
    tr, _ = temporal_band_power(r)
    n = s.shape[0]
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (num_bootstrap, n), generator=g)

    def stats(a, b):
        point = 10 * torch.log10(a.sum(0) / b.sum(0))
        boot = 10 * torch.log10(a[idx].sum(1) / b[idx].sum(1))
        q = torch.tensor([(1 - confidence) / 2, (1 + confidence) / 2], dtype=boot.dtype)
        lo, hi = torch.nanquantile(boot, q, dim=0)
        return point.numpy(), lo.numpy(), hi.numpy()

    sd, sl, sh = stats(ps, pr)
    td, tl, th = stats(ts, tr)
    return BandPowerGap(num_videos=n, spatial_edges=edges, spatial_db=sd, spatial_low=sl, spatial_high=sh,
                        temporal_freqs=freqs, temporal_db=td, temporal_low=tl, temporal_high=th,
                        confidence=confidence)


def judge_against_data(videos, data, *, baseline: str | None = "plain", num_bootstrap: int = 2000,
                       confidence: float = 0.99, seed: int = 0):
    r"""Several ways of sampling, each judged against the data: band power per band in dB, consistency, dynamics.

    ``videos`` maps an arm name to ``(N, channel, frame, height, width)`` videos; all arms hold the *same* ``N``
    paired videos (video ``i`` of every arm started from the same noise), ``data`` ``(M, ...)`` held-out videos of
    the training distribution in the same space. Per arm:

    * ``spatial_db`` (arm, spatial_band) ``= 10 log10(mean_i P_b(x_i) / mean_j P_b(d_j))`` with ``P_b`` of
      :func:`spatial_band_power` (band 0 = the spatial DC bin, i.e. each frame's mean; edges in cycles per pixel),
      and ``temporal_db`` (arm, temporal_freq) the same with :func:`temporal_band_power` (cycles per frame,
      0 = the time average of each pixel);
    * ``band_distance`` (arm): the RMS of all those dB values (spatial bands and temporal frequencies), dB;
    * ``consistency`` (first-frame cosine of mean-removed frames, the paper's pairing) and ``dynamics`` (RMS change
      between consecutive frames, in the videos' units): per-arm means, ``*_vs_data`` = arm mean − data mean;
    * ``*_vs_baseline``: the paired difference arm − ``baseline`` (dB for band powers, i.e. ``10 log10`` of the
      ratio of the two arms' mean band powers; arm − baseline for ``band_distance``, consistency and dynamics).

    Every value has ``_low`` / ``_high``: a percentile bootstrap (``num_bootstrap`` resamples, ``confidence``)
    that resamples the ``N`` video indices — the same indices for every arm, so paired differences keep their
    pairing — and, independently, the ``M`` data videos.

    Returns
    -------
    xarray.Dataset
        Coordinates ``arm``, ``spatial_band`` (with ``spatial_low_edge`` / ``spatial_high_edge``),
        ``temporal_freq``; attributes ``num_videos``, ``num_data``, ``confidence``, ``bootstrap``.
    """
    import xarray as xr

    from freeinit_lab.studies.strategies import _consistency, _dynamics

    if not hasattr(videos, "items") or not videos:
        raise TypeError("videos must be a non-empty mapping {arm name: (N, channel, frame, height, width) videos}")
    arms = list(videos)
    vids = {a: _check_videos(f"videos[{a!r}]", v) for a, v in videos.items()}
    d = _check_videos("data", data)
    n = vids[arms[0]].shape[0]
    for a, v in vids.items():
        if v.shape[0] != n or v.shape[1:] != d.shape[1:]:
            raise ValueError(f"videos[{a!r}] has shape {tuple(v.shape)}; every arm must hold the same {n} paired "
                             f"videos of the data's size {tuple(d.shape[1:])}")
    if n < 2 or d.shape[0] < 2:
        raise ValueError(f"need at least 2 videos per arm and 2 data videos for intervals; got {n} and {d.shape[0]}")
    if baseline is not None and baseline not in arms:
        raise ValueError(f"baseline={baseline!r} is not one of the arms {arms}; pass baseline=None to leave the "
                         "paired differences out")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    num_bootstrap = require_int("num_bootstrap", num_bootstrap, why=" (bootstrap resamples of the videos)")
    seed = require_seed(seed)

    def per_video(x):
        ps, edges = spatial_band_power(x)
        pt, freqs = temporal_band_power(x)
        return dict(spatial=ps.numpy(), temporal=pt.numpy(), consistency=_consistency(x).astype(np.float64),
                    dynamics=_dynamics(x).astype(np.float64)), edges, freqs

    per = {}
    for a in arms:
        per[a], edges, freqs = per_video(vids[a])
    dat, _, _ = per_video(d)
    rng = np.random.default_rng(seed)
    iv = rng.integers(0, n, size=(int(num_bootstrap), n))
    idd = rng.integers(0, d.shape[0], size=(int(num_bootstrap), d.shape[0]))
    q = [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2]

    def stats(a):
        """point and bootstrap draws of every quantity of arm a (dB vs data, means)."""
        out = {}
        for key in ("spatial", "temporal"):
            pa, pd_ = per[a][key], dat[key]
            out[key] = (10 * np.log10(pa.mean(0) / pd_.mean(0)),
                        10 * np.log10(pa[iv].mean(1) / pd_[idd].mean(1)))
        both = np.concatenate([out["spatial"][0], out["temporal"][0]])
        both_b = np.concatenate([out["spatial"][1], out["temporal"][1]], axis=1)
        out["band_distance"] = (np.sqrt(np.nanmean(both**2)), np.sqrt(np.nanmean(both_b**2, axis=1)))
        for key in ("consistency", "dynamics"):
            out[key] = (per[a][key].mean(), per[a][key][iv].mean(1))
            out[key + "_vs_data"] = (per[a][key].mean() - dat[key].mean(),
                                     per[a][key][iv].mean(1) - dat[key][idd].mean(1))
        return out

    with np.errstate(divide="ignore", invalid="ignore"):  # a band with no power (a frozen video) is -inf dB
        st = {a: stats(a) for a in arms}
    data_vars: dict = {}

    def put(name, dims, point, boot, attrs):
        data_vars[name] = (("arm", *dims), np.stack(point), attrs)
        with np.errstate(invalid="ignore"):
            lo, hi = np.nanpercentile(np.stack(boot, axis=1), q, axis=0)
        data_vars[name + "_low"] = (("arm", *dims), lo)
        data_vars[name + "_high"] = (("arm", *dims), hi)

    units = {"spatial": ("spatial band power vs the data, 10 log10(P_arm / P_data)", "dB", ("spatial_band",)),
             "temporal": ("temporal band power vs the data, 10 log10(P_arm / P_data)", "dB", ("temporal_freq",)),
             "band_distance": ("RMS over spatial bands and temporal frequencies of the dB vs the data", "dB", ()),
             "consistency": ("first-frame cosine of mean-removed frames", "1", ()),
             "dynamics": ("RMS change between consecutive frames", "video units", ()),
             "consistency_vs_data": ("consistency minus the data's", "1", ()),
             "dynamics_vs_data": ("dynamics minus the data's", "video units", ())}
    names = {"spatial": "spatial_db", "temporal": "temporal_db"}
    for key, (long, unit, dims) in units.items():
        put(names.get(key, key), dims, [st[a][key][0] for a in arms], [st[a][key][1] for a in arms],
            dict(long_name=long, units=unit))
        if baseline is not None and key in ("spatial", "temporal", "band_distance", "consistency", "dynamics"):
            b = st[baseline][key]
            put(names.get(key, key) + "_vs_baseline", dims, [st[a][key][0] - b[0] for a in arms],
                [st[a][key][1] - b[1] for a in arms],
                dict(long_name=f"{long}: arm minus {baseline} (paired)", units=unit))
    data_vars["data_consistency"] = ((), float(dat["consistency"].mean()))
    data_vars["data_dynamics"] = ((), float(dat["dynamics"].mean()))
    coords = {"arm": arms, "spatial_band": np.arange(len(edges) - 1),
              "spatial_low_edge": ("spatial_band", edges[:-1]), "spatial_high_edge": ("spatial_band", edges[1:]),
              "temporal_freq": np.asarray(freqs)}
    return xr.Dataset(data_vars, coords=coords, attrs=dict(
        num_videos=int(n), num_data=int(d.shape[0]), confidence=float(confidence), baseline=str(baseline),
        bootstrap=(f"percentile bootstrap, {num_bootstrap} resamples: the {n} paired video indices (shared by every "
                   f"arm) and the {d.shape[0]} data videos resampled independently (numpy default_rng({seed}))")))


@dataclass
class DenoisingError:
    """ε-prediction error of a model and a reference denoiser on the same noised videos, per noise level.

    ``model_mse[j]`` / ``reference_mse[j]``: mean over videos of ``mean((ε̂ − ε)²)`` at ``timesteps[j]``; ``db[j]``
    ``= 10 log10(model_mse / reference_mse)`` with a percentile-bootstrap interval over videos (pairs: both
    denoisers see the same ``z_t``). ``alphas_cumprod[j]`` is ``ᾱ_t``; ``snr_db[j] = 10 log10(ᾱ_t / (1 − ᾱ_t))``.

    The same errors split by frequency: ``model_band_mse[j, s, k]`` / ``reference_band_mse[j, s, k]`` is the error
    power in spatial band ``s`` (edges ``spatial_edges``, cycles per pixel, band 0 the DC bin alone) at temporal
    frequency ``k / F`` cycles per frame (``k = 0 … F/2``, ``±k`` together), ``Σ_{bins} |FFT3(ε̂ − ε)|² /
    (C F H W)`` with the ortho-normalised FFT over (frame, height, width), so by Parseval the table sums to
    ``model_mse[j]``. ``spatial_db`` ``(timestep, band)`` and ``temporal_db`` ``(timestep, k)`` are its margins
    as ``10 log10(model / reference)``, with intervals from the same bootstrap resamples as ``db``.
    """

    num_videos: int
    timesteps: np.ndarray
    alphas_cumprod: np.ndarray
    model_mse: np.ndarray
    reference_mse: np.ndarray
    db: np.ndarray
    db_low: np.ndarray
    db_high: np.ndarray
    confidence: float
    spatial_edges: np.ndarray = field(default_factory=lambda: np.zeros(0))
    model_band_mse: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    reference_band_mse: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    spatial_db: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    spatial_db_low: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    spatial_db_high: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    temporal_db: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    temporal_db_low: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    temporal_db_high: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def snr_db(self) -> np.ndarray:
        return 10 * np.log10(self.alphas_cumprod / (1 - self.alphas_cumprod))

    def to_dict(self) -> dict:
        out = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}
        out["snr_db"] = self.snr_db.tolist()
        return out

    def summary(self) -> str:
        lines = [f"ε-MSE of {self.num_videos} paired videos per timestep: model, reference, "
                 f"10 log10(model/reference) dB [{100 * self.confidence:.0f} % bootstrap]"]
        for t, s, m, r, d, lo, hi in zip(self.timesteps, self.snr_db, self.model_mse, self.reference_mse, self.db,
                                         self.db_low, self.db_high):
            lines.append(f"  t={int(t):4d} (SNR {s:+6.1f} dB): {m:.4f} {r:.4f} {d:+.2f} [{lo:+.2f}, {hi:+.2f}]")
        if self.spatial_db.size:
            lines.append("the same, split by frequency: 10 log10(model/reference) dB per spatial band (DC first) | per "
                         "temporal frequency (0 … ½ cycles/frame), and the model's error share per spatial band")
            share = self.model_band_mse.sum(axis=2) / self.model_band_mse.sum(axis=(1, 2))[:, None]
            for j, t in enumerate(self.timesteps):
                lines.append(f"  bands at t={int(t):4d}: " + " ".join(f"{v:+.2f}" for v in self.spatial_db[j]) + " | "
                             + " ".join(f"{v:+.2f}" for v in self.temporal_db[j]) + " | share "
                             + " ".join(f"{v:.2f}" for v in share[j]))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


def denoising_error(model, reference, videos, alphas_cumprod, timesteps, *, generator: torch.Generator | None = None,
                    batch_size: int = 32, num_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0,
                    model_kwargs: dict | None = None) -> DenoisingError:
    r"""ε-prediction MSE of ``model`` and ``reference`` on the same noised held-out videos, per timestep.

    For each ``t`` in ``timesteps`` and each video ``x_0`` (model space, ``(video, channel, frame, height,
    width)``), one draw ``ε ~ N(0, I)`` gives ``z_t = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε`` and

    .. math::  \mathrm{MSE}_f(t) = \frac1N \sum_i \overline{(f(z_{t,i}, t) - ε_i)^2},
               \qquad \Delta(t) = 10 \log_{10} \frac{\mathrm{MSE}_{model}(t)}{\mathrm{MSE}_{reference}(t)}

    (the bar averages over voxels), and the same error split over frequency bins (:class:`DenoisingError`: spatial
    bands × temporal frequencies, an additive split by Parseval's theorem),

    .. math::  \mathrm{MSE}_f(t; s, k) = \frac1N \sum_i \frac{1}{CFHW} \sum_{\text{bins in } (s, k)}
               |\mathcal F_3(f(z_{t,i}, t) - ε_i)|^2

    (ortho-normalised FFT over frame, height, width), which says at which spatial and temporal frequencies a
    model beats the reference. The interval resamples videos, so the shared ``(x_0, ε)`` cancels. With the
    exact-score Gaussian model of the data as ``reference`` (:func:`~freeinit_lab.embedded.pipelines.load_default_analytic_pipeline`),
    whose error depends only on the data's second moments (it is the best *linear* denoiser of any stationary data
    with that spectrum), ``Δ(t) < 0`` means the model has learned structure beyond the power spectrum at that noise level, and
    ``Δ(t) > 0`` means it has not yet matched even the spectrum there. ``model`` and ``reference`` are called as
    ``f(z_t, t_batch, **model_kwargs).sample`` (``reference`` without ``model_kwargs``), ``z_t`` in the dtype of
    ``f``'s parameters (errors are accumulated in float64); both must predict ε.

    ``alphas_cumprod`` must be finite and in ``[0, 1]`` (``ᾱ_t = 0``: a zero-terminal-SNR schedule's last step);
    ``timesteps`` integers (not bools or floats) of ``0 … len(alphas_cumprod) − 1``; ``num_bootstrap`` an integer
    ``>= 1``; ``seed`` an integer in ``[0, 2**64 − 1]``.
    """
    x = _check_videos("videos", videos)
    ac = torch.as_tensor(alphas_cumprod, dtype=torch.float64).flatten()
    if not bool(torch.isfinite(ac).all()) or bool(((ac < 0) | (ac > 1)).any()):
        raise ValueError("alphas_cumprod must be finite and in [0, 1] (the schedule's ᾱ_t, e.g. "
                         "scheduler.alphas_cumprod); it holds NaN, inf or values outside [0, 1]")
    raw = timesteps.tolist() if isinstance(timesteps, (torch.Tensor, np.ndarray)) else timesteps
    raw = list(raw) if isinstance(raw, (list, tuple, range)) else [raw]
    not_int = [t for t in raw if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer))]
    if not_int:
        raise ValueError(f"timesteps {not_int} are not integers; pass integer training timesteps, e.g. "
                         "range(99, 1000, 100) (bools and floats are refused, not truncated)")
    ts = [int(t) for t in raw]
    if not ts:
        raise ValueError("timesteps is empty; pass e.g. range(99, 1000, 100)")
    bad = [t for t in ts if not 0 <= t < ac.numel()]
    if bad:
        raise ValueError(f"timesteps {bad} are outside the schedule's 0 … {ac.numel() - 1}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    batch_size = require_int("batch_size", batch_size, why=" (videos per model call)")
    num_bootstrap = require_int("num_bootstrap", num_bootstrap, why=" (bootstrap resamples of the videos)")
    seed = require_seed(seed)
    kw = dict(model_kwargs or {})
    n = x.shape[0]

    def dtype_of(f):
        d = getattr(f, "dtype", None)
        if isinstance(d, torch.dtype):
            return d
        p = next(iter(f.parameters()), None) if hasattr(f, "parameters") else None
        return p.dtype if p is not None and p.is_floating_point() else torch.float32

    _, c, nf, h, w = x.shape
    s_band, t_index, s_edges = _band_table_index(nf, h, w)
    n_s, n_t = len(s_edges) - 1, nf // 2 + 1
    per_video = torch.zeros(2, len(ts), n, dtype=torch.float64)
    per_band = torch.zeros(2, len(ts), n, n_s * n_t, dtype=torch.float64)  # (spatial band, temporal k) flattened
    cell = (s_band * n_t + t_index).flatten()
    with torch.no_grad():
        for j, t in enumerate(ts):
            a, b = float(ac[t].sqrt()), float((1 - ac[t]).sqrt())
            eps = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            for i0 in range(0, n, batch_size):
                sl = slice(i0, i0 + batch_size)
                z = a * x[sl] + b * eps[sl]
                tb = torch.full((z.shape[0],), t, dtype=torch.long)
                for k, (f, extra) in enumerate(((model, kw), (reference, {}))):
                    pred = f(z.to(dtype_of(f)), tb, **extra).sample
                    err = pred.double() - eps[sl].double()
                    per_video[k, j, sl] = (err ** 2).flatten(1).mean(1)
                    power = torch.fft.fftn(err, dim=(2, 3, 4), norm="ortho").abs().square().sum(1).flatten(1)
                    table = torch.zeros(power.shape[0], n_s * n_t, dtype=torch.float64)
                    per_band[k, j, sl] = table.index_add_(1, cell, power) / (c * nf * h * w)
    m, r = per_video[0], per_video[1]
    idx = torch.randint(0, n, (num_bootstrap, n), generator=torch.Generator().manual_seed(seed))
    boot = 10 * torch.log10(m[:, idx].mean(-1) / r[:, idx].mean(-1))  # (timestep, bootstrap)
    q = torch.tensor([(1 - confidence) / 2, (1 + confidence) / 2], dtype=boot.dtype)
    lo, hi = torch.quantile(boot, q, dim=1)
    bands = per_band.view(2, len(ts), n, n_s, n_t)
    margins = {}
    for name, v in (("spatial", bands.sum(-1)), ("temporal", bands.sum(-2))):  # (2, timestep, video, band)
        point = 10 * torch.log10(v[0].mean(1) / v[1].mean(1))
        bb = 10 * torch.log10(v[0][:, idx].mean(2) / v[1][:, idx].mean(2))  # (timestep, bootstrap, band)
        blo, bhi = torch.quantile(bb, q, dim=1)
        margins.update({f"{name}_db": point.numpy(), f"{name}_db_low": blo.numpy(), f"{name}_db_high": bhi.numpy()})
    return DenoisingError(num_videos=n, timesteps=np.asarray(ts), alphas_cumprod=ac[ts].numpy(),
                          model_mse=m.mean(1).numpy(), reference_mse=r.mean(1).numpy(),
                          db=(10 * torch.log10(m.mean(1) / r.mean(1))).numpy(), db_low=lo.numpy(),
                          db_high=hi.numpy(), confidence=confidence, spatial_edges=s_edges,
                          model_band_mse=bands[0].mean(1).numpy(), reference_band_mse=bands[1].mean(1).numpy(),
                          **margins)


def _band_table_index(nf: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """For every bin of an ``(F, H, W)`` FFT: its spatial band (edges of :func:`_spatial_edges`, as
    :func:`spatial_band_power` uses them) and its temporal index ``|k|`` (``0 … F/2``), each ``(F, H, W)`` long."""
    edges = _spatial_edges(h, w)
    r = _spatial_radius(h, w, torch.float64)
    s_band = torch.bucketize(r, torch.as_tensor(edges[1:-1], dtype=torch.float64), right=True)  # lo <= r < hi
    t_index = (torch.fft.fftfreq(nf, dtype=torch.float64).abs() * nf).round().long()
    return s_band.expand(nf, h, w), t_index.view(-1, 1, 1).expand(nf, h, w), edges
