"""Filter construction and noise reinitialisation: freeinit_lab vs diffusers' FreeInitMixin, timed in one run.

    python benchmarks/bench_spectral.py [--repeats N]

Prints the wall time of each and the ratio diffusers / freeinit_lab (> 1 means freeinit_lab is faster). The
filter is timed cold (freeinit_lab's cache cleared before every build) because diffusers rebuilds it on every
FreeInit iteration; the cached lookup is printed too. Targets (issue 2): construction >= 1000x faster on
(1, 4, 16, 64, 64); reinitialisation no slower.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from diffusers.pipelines.free_init_utils import FreeInitMixin

from freeinit_lab import spectral

SHAPES = [(1, 4, 16, 64, 64), (1, 4, 24, 96, 160)]


def _time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: leave torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.repeats} runs (filter: diffusers 1 run on the big shape)")
    print(f"{'shape':<22} {'what':<34} {'diffusers':>12} {'freeinit_lab':>13} {'ratio':>9}")
    for shape in SHAPES:
        for method in ("butterworth", "gaussian"):

            def ours_cold():
                spectral._cached_mask.cache_clear()
                spectral.lowpass_filter(shape, method, 0.25, 0.25, order=4)

            def theirs():
                FreeInitMixin._get_free_init_freq_filter(None, shape, "cpu", method, 4, 0.25, 0.25)

            t_theirs = _time(theirs, 1 if shape[2] > 16 else min(args.repeats, 3))
            t_ours = _time(ours_cold, args.repeats)
            spectral.lowpass_filter(shape, method)
            t_cached = _time(lambda: spectral.lowpass_filter(shape, method), args.repeats)
            print(f"{str(shape):<22} {'filter build (' + method + ')':<34} {t_theirs * 1e3:10.2f}ms {t_ours * 1e3:11.3f}ms {t_theirs / t_ours:8.0f}x")
            print(f"{'':<22} {'  cached lookup':<34} {'':>12} {t_cached * 1e3:11.4f}ms {t_theirs / t_cached:8.0f}x")
        g = torch.Generator().manual_seed(0)
        z, eta = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        their_mask = FreeInitMixin._get_free_init_freq_filter(None, shape, "cpu", "butterworth", 4, 0.25, 0.25)
        our_mask = spectral.lowpass_filter(shape, "butterworth")
        t_mix_theirs = _time(lambda: FreeInitMixin._apply_freq_filter(None, z, eta, their_mask), args.repeats)
        t_mix_ours = _time(lambda: spectral.reinit_noise(z, eta, our_mask), args.repeats)
        diff = (FreeInitMixin._apply_freq_filter(None, z, eta, their_mask) - spectral.reinit_noise(z, eta, our_mask)).abs().max()
        print(f"{'':<22} {'noise reinitialisation':<34} {t_mix_theirs * 1e3:10.2f}ms {t_mix_ours * 1e3:11.3f}ms {t_mix_theirs / t_mix_ours:8.2f}x   (max |diff| {diff:.1e})")


if __name__ == "__main__":
    main()
