"""Benchmark: the default model's network on CPU in the channels-last layout, against the default (contiguous)
layout, measured in the same run.

    python benchmarks/bench_unet_layout.py [--threads 2] [--repeats 7] [--batch 32] [--steps N]

:class:`~freeinit_lab.models.TinyVideoUNet` runs CPU tensors in ``torch.channels_last_3d`` (its
``channels_last`` attribute, on by default): oneDNN's convolutions, most of the network's time, read that layout
without reordering every activation. The baseline sets ``channels_last = False``. The two compute the same
function in another summation order (the script prints the largest difference of the outputs, float round-off);
the ratio ``channels-last / contiguous`` (median over repeats of ``steps`` network calls on one batch, the two
alternated so load changes on a shared machine hit both alike) is the speed-up; below 1.00 it pays.

Run it with ``--threads`` no larger than the free cores (oversubscribed threads slow the convolutions several-fold,
whichever layout is timed).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from freeinit_lab.pipelines import load_default_pipeline


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=None, help="network calls per timing (default: the stored sampler's)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_default_pipeline()
    unet = pipe.unet
    steps = args.steps or pipe.default_num_inference_steps
    x = torch.randn(args.batch, *pipe.sample_shape, generator=torch.Generator().manual_seed(0))
    t = torch.tensor(500)

    def network(channels_last: bool) -> torch.Tensor:
        unet.channels_last = channels_last
        try:
            with torch.no_grad():
                for _ in range(steps):
                    out = unet(x, t).sample
        finally:
            unet.channels_last = True
        return out

    diff = float((network(True) - network(False)).abs().max())  # also the warm-up
    new, old = [], []
    for _ in range(args.repeats):
        s = time.perf_counter()
        network(True)
        new.append(time.perf_counter() - s)
        s = time.perf_counter()
        network(False)
        old.append(time.perf_counter() - s)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, {steps} network calls: "
          f"channels-last median {statistics.median(new):.3f} s (best {min(new):.3f}), contiguous median "
          f"{statistics.median(old):.3f} s (best {min(old):.3f}); ratio channels-last / contiguous "
          f"{statistics.median(new) / statistics.median(old):.3f}; largest output difference {diff:.1e}")


if __name__ == "__main__":
    main()
