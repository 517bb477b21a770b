"""Benchmark: drawing the default model's data and fitting its exact-score Gaussian reference, against the direct way.

    python benchmarks/bench_reference.py [--videos 256] [--threads 2]

Each variant runs in a fresh interpreter (so peak resident memory is its own) and prints its wall time and peak
RSS, with the ratio to its baseline measured in the same run:

* data: ``subject_videos(N, 16, 32)`` rendered in chunks of 32 videos (the default) against all ``N`` at once
  (``chunk_size=N``: what it did before chunking). The videos are bit-identical (``tests/embedded/test_world.py``).
* worker draws: what a training data worker does per batch with ``--render device`` (GPU training),
  :func:`~freeinit_lab.embedded.world.subject_parameters` (the background's white noise only; its filtering runs
  in the rendering on the GPU), against the same draws with the background filtered on the worker's CPU as before
  (two FFTs and a standard deviation per video). Same videos (bit-identical on the CPU,
  ``tests/embedded/test_world.py``).
* fit: :func:`freeinit_lab.pipelines.fit_gaussian_prior` (one periodogram, summed in chunks, averaged over the
  sign patterns of the frequency) against its definition: the periodogram of all 8 mirror images of every video
  (equal to float32 rounding, ``tests/embedded/test_models.py``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads({threads})
from freeinit_lab.embedded.world import subject_videos, subject_parameters, _shape_background
from freeinit_lab.embedded.pipelines import fit_gaussian_prior
n, what = {videos}, "{what}"
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if what.startswith("fit"):
    vids = subject_videos(n, 16, 32, seed=950_000_000)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if what == "data chunked":
    subject_videos(n, 16, 32, seed=950_000_000)
elif what == "data at once":
    subject_videos(n, 16, 32, seed=950_000_000, chunk_size=n)
elif what == "worker draws":
    subject_parameters(n, 16, 32, seed=950_000_000)
elif what == "draws + filter":
    p = subject_parameters(n, 16, 32, seed=950_000_000)
    _shape_background(p["bg_white"], p["sizes"]["background_amp"], p["sizes"]["background_slope"])
elif what == "fit chunked":
    fit_gaussian_prior(vids)
else:  # the definition: every mirror image transformed
    x = vids.double()
    mean = x.mean(dim=(0, 2, 3, 4))
    flat = (x - mean.view(1, -1, 1, 1, 1)).transpose(0, 1).reshape(3, -1)
    basis = torch.linalg.eigh(flat @ flat.T / flat.shape[1])[1].flip(-1)
    y = torch.einsum("cd,ncfhw->ndfhw", basis, x - mean.view(1, -1, 1, 1, 1))
    views = [y.flip(d) if d else y for d in [(), (-1,), (-2,), (-3,), (-1, -2), (-1, -3), (-2, -3), (-1, -2, -3)]]
    torch.stack([torch.fft.fftn(v, dim=(-3, -2, -1), norm="ortho").abs() ** 2 for v in views]).mean(dim=(0, 1))
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(seconds=seconds, extra_gb=(peak - base) / 1e6, peak_gb=peak / 1e6)))
"""


def run(what: str, videos: int, threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD.format(what=what, videos=videos, threads=threads)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    print(f"{args.videos} videos of 16 × 32 × 32, {args.threads} threads (peak RSS above the process's own start)")
    for ours, baseline in (("data chunked", "data at once"), ("worker draws", "draws + filter"),
                           ("fit chunked", "fit 8 mirror images")):
        a, b = run(ours, args.videos, args.threads), run(baseline, args.videos, args.threads)
        print(f"{ours:>14}: {a['seconds']:6.2f} s, +{a['extra_gb']:.2f} GB | {baseline:>19}: {b['seconds']:6.2f} s, "
              f"+{b['extra_gb']:.2f} GB | time ratio {a['seconds'] / b['seconds']:.2f}, "
              f"memory ratio {a['extra_gb'] / max(b['extra_gb'], 1e-9):.2f}")


if __name__ == "__main__":
    main()
