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


import torch
from _alternate import ab_arguments, alternate  # benchmarks/_alternate.py

from freeinit_lab.pipelines import load_default_pipeline


def main() -> None:
    args = ab_arguments(__doc__, batch=32, steps=True)
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
    r = alternate(lambda: network(True), lambda: network(False), args.repeats)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, {steps} network calls: "
          f"channels-last median {r['new_median']:.3f} s (best {r['new_best']:.3f}), contiguous median "
          f"{r['old_median']:.3f} s (best {r['old_best']:.3f}); ratio channels-last / contiguous {r['ratio']:.3f}; "
          f"largest output difference {diff:.1e}")

if __name__ == "__main__":
    main()
