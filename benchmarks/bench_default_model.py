"""Benchmark: sampling speed of the embedded default model, against its bare network measured in the same run.

    python benchmarks/bench_default_model.py [--threads 2] [--repeats 5] [--batches 1,16]

For each batch size: the median and best wall time of one plain sample with the stored default sampler and step
count (``pipe.default_num_inference_steps``, model space, ``output_type="latent"``), seconds per video, and the
ratio to ``steps`` bare UNet evaluations of the same batch timed in the same run (alternating with the pipeline
calls, so load changes on a shared machine hit both alike). The ratio is the pipeline's own cost — scheduler
updates, noise draws, normalisation — on top of the network: 1.00 means none. Two more timings of the same bare
calls, also alternated, are the network's own baselines: one whole-batch pass (``forward_chunk = None``), whose
ratio ``chunked / whole`` is the speed-up of the micro-batching
(:attr:`freeinit_lab.models.TinyVideoUNet.forward_chunk`, 8 videos per pass); and the whole-batch pass with the
factorised convolutions computed as the reshaped per-frame 2-D and per-pixel 1-D convolutions they are defined
as (the implementation before the 3-D forms), whose ratio ``current / reshaped`` is the speed-up of both changes.
Neither changes a video's ε̂ beyond round-off; below 1.00 they pay. Speed lives here rather than in the unit
tests: a busy shared machine must not fail the test suite.

Run it on an otherwise idle machine with ``--threads`` no larger than the free cores: oversubscribed threads slow
the network's convolutions several-fold (measured 3.5× with 2 threads on 1 free core), whichever is compared.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from freeinit_lab.embedded import models
from freeinit_lab.pipelines import load_default_pipeline


def _per_pixel(conv, x):
    """The 1-D conv along every pixel's frames through the ``(B H W, C, F)`` reshape: baseline of ``_temporal``."""
    b, c, f, h, w = x.shape
    y = conv(x.permute(0, 3, 4, 1, 2).reshape(b * h * w, c, f))
    return y.reshape(b, h, w, y.shape[1], f).permute(0, 3, 4, 1, 2)


@contextlib.contextmanager
def _reshaped_convs():
    saved = models._spatial, models._temporal
    models._spatial, models._temporal = models._per_frame, _per_pixel
    try:
        yield
    finally:
        models._spatial, models._temporal = saved


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batches", default="1,16,32", help="comma-separated batch sizes")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pipe = load_default_pipeline()
    pipe.set_progress_bar_config(disable=True)
    load_s = time.perf_counter() - t0
    steps = pipe.default_num_inference_steps
    shape = tuple(pipe.sample_shape)
    print(f"torch {torch.__version__}, {args.threads} threads; pipeline loaded in {load_s:.2f} s; "
          f"{type(pipe.scheduler).__name__} {steps} steps, videos {shape} (channel, frame, height, width)")
    for batch in (int(b) for b in args.batches.split(",")):
        x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))
        t = torch.tensor(500)

        chunk = pipe.unet.forward_chunk

        def network(chunk=chunk, reshaped=False):
            pipe.unet.forward_chunk = chunk
            try:
                with torch.no_grad(), (_reshaped_convs() if reshaped else contextlib.nullcontext()):
                    for _ in range(steps):
                        pipe.unet(x, t)
            finally:
                pipe.unet.forward_chunk = type(pipe.unet).forward_chunk

        def sample(r):
            pipe(batch_size=batch, output_type="latent", generator=torch.Generator().manual_seed(r))

        network()
        network(None)
        network(None, reshaped=True)
        sample(0)  # warm-up
        net, whole, reshaped, full = [], [], [], []
        for r in range(args.repeats):
            s = time.perf_counter()
            network()
            net.append(time.perf_counter() - s)
            s = time.perf_counter()
            network(None)
            whole.append(time.perf_counter() - s)
            s = time.perf_counter()
            network(None, reshaped=True)
            reshaped.append(time.perf_counter() - s)
            s = time.perf_counter()
            sample(r)
            full.append(time.perf_counter() - s)
        med, best, base = statistics.median(full), min(full), statistics.median(net)
        print(f"batch {batch:2d}: sample median {med:.3f} s, best {best:.3f} s ({med / batch:.3f} s per video); "
              f"{steps} bare UNet calls median {base:.3f} s → ratio sample / network {med / base:.3f}; "
              f"network chunked ({chunk} videos per pass) / whole batch {base / statistics.median(whole):.3f}, "
              f"current / reshaped whole batch {base / statistics.median(reshaped):.3f}")


if __name__ == "__main__":
    main()
