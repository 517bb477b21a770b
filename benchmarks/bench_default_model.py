"""Benchmark: sampling speed of the embedded default model against the issue's budget (2 s per 8-frame video).

    python benchmarks/bench_default_model.py [--threads 2] [--repeats 5]

Prints the median and best wall time of one 25-step DDIM sample (8 frames, 16×16, batch 1), the same for a plain
batch of 16, and the ratio to the 2 s budget (below 1 = within budget). Speed lives here rather than in the unit
tests: a busy shared machine must not fail the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from freeinit_lab.pipelines import load_default_pipeline

BUDGET_S = 2.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=25)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pipe = load_default_pipeline()
    load_s = time.perf_counter() - t0
    pipe(num_inference_steps=2, generator=torch.Generator().manual_seed(0))  # warm-up
    print(f"torch {torch.__version__}, {args.threads} threads; pipeline loaded in {load_s:.2f} s")
    for batch in (1, 16):
        times = []
        for r in range(args.repeats):
            t = time.perf_counter()
            pipe(batch_size=batch, num_inference_steps=args.steps, generator=torch.Generator().manual_seed(r))
            times.append(time.perf_counter() - t)
        med, best = statistics.median(times), min(times)
        print(f"batch {batch:2d}, {args.steps} steps: median {med:.3f} s, best {best:.3f} s "
              f"({med / batch:.3f} s per video; budget {BUDGET_S:.1f} s per video → ratio {med / batch / BUDGET_S:.3f})")


if __name__ == "__main__":
    main()
