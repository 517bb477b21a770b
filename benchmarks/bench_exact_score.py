"""Benchmark: the exact-score reference's denoiser step through the real FFT, against the complex FFT it replaced,
measured in the same run.

    python benchmarks/bench_exact_score.py [--threads 2] [--repeats 7] [--batch 64]

:class:`~freeinit_lab.models.GaussianVideoDenoiser` computes ``E[ε | z_t] = U · IFFT(g(k) · FFT(U^T (z_t − a_t μ)))``
with ``rfftn``/``irfftn`` and the gain's Hermitian part (its ``_filter``); the baseline is the complex path
``_from_white(g · _to_white(z, a))`` (full ``fftn``, ``ifftn(...).real``, the colour basis by ``einsum``), which it
equals to float64 round-off (the largest difference is printed). The ratio ``real / complex`` (median over
repeats, the two alternated) is the speed-up; below 1.00 it pays. The default model's size, one timestep for the
batch (a sampler's step).
"""

from __future__ import annotations


import torch
from _alternate import ab_arguments, alternate  # benchmarks/_alternate.py

from freeinit_lab.pipelines import load_default_analytic_pipeline


def main() -> None:
    args = ab_arguments(__doc__, batch=64, steps=False)
    m = load_default_analytic_pipeline(num_videos=16).unet  # the spectrum's values do not change the cost
    z = torch.randn(args.batch, *m.power.shape, generator=torch.Generator().manual_seed(0))
    a, b = m._coeffs(torch.tensor(500), args.batch, z.device)
    S = m.power.double()
    gain = b / (a * a * S + b * b)

    def real():
        return m._filter(z, a, gain)

    def complex_path():
        return m._from_white(gain * m._to_white(z, a))

    diff = float((real() - complex_path()).abs().max())  # also the warm-up
    r = alternate(real, complex_path, args.repeats)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.batch} videos of {tuple(m.power.shape)}: real FFT "
          f"median {1e3 * r['new_median']:.1f} ms (best {1e3 * r['new_best']:.1f}), complex FFT median "
          f"{1e3 * r['old_median']:.1f} ms (best {1e3 * r['old_best']:.1f}); ratio real / complex {r['ratio']:.3f}; "
          f"largest difference {diff:.1e}")

if __name__ == "__main__":
    main()
