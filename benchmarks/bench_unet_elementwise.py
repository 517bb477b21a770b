"""Benchmark: the default model's network with its residual blocks' element-wise steps in place, against the same
blocks out of place, measured in the same run.

    python benchmarks/bench_unet_elementwise.py [--threads 2] [--repeats 7] [--batch 32]

:class:`~freeinit_lab.models.TinyVideoUNet`'s residual blocks apply SiLU, the timestep modulation
``norm2(h) (1 + scale) + shift`` and the two residual sums in place, into the tensors the norms and convolutions
have just made. The baseline swaps in the out-of-place form (the implementation before), which allocates a new
activation for each step. Both apply the same operations in the same order: in the contiguous layout the outputs
are identical; in the channels-last layout (the network's CPU default since) they can differ by float round-off
(1.4e-6 for 2 videos at one thread, identical at two), the back end picking other kernels for a fresh tensor than for
one written in place. The script prints whether they are identical and their largest difference. The
ratio ``in place / out of place`` (median over repeats of ``steps`` network calls on one batch, the two forms
alternated so load changes on a shared machine hit both alike) is the speed-up; below 1.00 it pays.

Run it with ``--threads`` no larger than the free cores (oversubscribed threads slow the convolutions several-fold,
whichever form is timed).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from _alternate import ab_arguments, alternate  # benchmarks/_alternate.py

from freeinit_lab.embedded import models
from freeinit_lab.pipelines import load_default_pipeline


def _out_of_place(self, x, emb):
    """The residual block's forward with every element-wise step out of place (the baseline)."""
    h = models._spatial(self.conv1, F.silu(self.norm1(x)))
    scale, shift = self.emb(emb)[:, :, None, None, None].chunk(2, dim=1)
    h = self.norm2(h) * (1 + scale) + shift
    h = models._spatial(self.conv2, F.silu(h))
    x = self.skip(x) + h
    return x + models._temporal(self.conv_t, F.silu(self.norm_t(x)))


@contextlib.contextmanager
def _baseline():
    saved = models._ResBlock.forward
    models._ResBlock.forward = _out_of_place
    try:
        yield
    finally:
        models._ResBlock.forward = saved


def main() -> None:
    args = ab_arguments(__doc__, batch=32, steps=True)
    pipe = load_default_pipeline()
    steps = args.steps or pipe.default_num_inference_steps
    x = torch.randn(args.batch, *pipe.sample_shape, generator=torch.Generator().manual_seed(0))
    t = torch.tensor(500)

    def network(baseline: bool) -> torch.Tensor:
        with torch.no_grad(), (_baseline() if baseline else contextlib.nullcontext()):
            for _ in range(steps):
                out = pipe.unet(x, t).sample
        return out

    new_out, old_out = network(False), network(True)  # also the warm-up
    same, diff = torch.equal(new_out, old_out), float((new_out - old_out).abs().max())
    r = alternate(lambda: network(False), lambda: network(True), args.repeats)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, {steps} network calls: in place "
          f"median {r['new_median']:.3f} s (best {r['new_best']:.3f}), out of place median "
          f"{r['old_median']:.3f} s (best {r['old_best']:.3f}); ratio in place / out of place "
          f"{r['ratio']:.3f}; outputs identical: {same} (largest difference {diff:.1e})")

if __name__ == "__main__":
    main()
