"""Benchmark: the default model's network with its residual blocks' element-wise steps in place, against the same
blocks out of place, measured in the same run.

    python benchmarks/bench_unet_elementwise.py [--threads 2] [--repeats 7] [--batch 32]

:class:`~freeinit_lab.models.TinyVideoUNet`'s residual blocks apply SiLU, the timestep modulation
``norm2(h) (1 + scale) + shift`` and the two residual sums in place, into the tensors the norms and convolutions
have just made. The baseline swaps in the out-of-place form (the implementation before), which allocates a new
activation for each step. Both compute the same floats (the script checks ``torch.equal`` on the outputs); the
ratio ``in place / out of place`` (median over repeats of ``steps`` network calls on one batch, the two forms
alternated so load changes on a shared machine hit both alike) is the speed-up; below 1.00 it pays.

Run it with ``--threads`` no larger than the free cores (oversubscribed threads slow the convolutions several-fold,
whichever form is timed).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F

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
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=None, help="network calls per timing (default: the stored sampler's)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_default_pipeline()
    steps = args.steps or pipe.default_num_inference_steps
    x = torch.randn(args.batch, *pipe.sample_shape, generator=torch.Generator().manual_seed(0))
    t = torch.tensor(500)

    def network(baseline: bool) -> torch.Tensor:
        with torch.no_grad(), (_baseline() if baseline else contextlib.nullcontext()):
            for _ in range(steps):
                out = pipe.unet(x, t).sample
        return out

    same = torch.equal(network(False), network(True))  # also the warm-up
    new, old = [], []
    for _ in range(args.repeats):
        s = time.perf_counter()
        network(False)
        new.append(time.perf_counter() - s)
        s = time.perf_counter()
        network(True)
        old.append(time.perf_counter() - s)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, {steps} network calls: in place "
          f"median {statistics.median(new):.3f} s (best {min(new):.3f}), out of place median "
          f"{statistics.median(old):.3f} s (best {min(old):.3f}); ratio in place / out of place "
          f"{statistics.median(new) / statistics.median(old):.3f}; outputs identical: {same}")


if __name__ == "__main__":
    main()
