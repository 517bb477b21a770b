"""Benchmark: sweep throughput on 2 worker processes vs 1, and the sweep's own cost per cell, in one run.

    python benchmarks/bench_sweep.py [--cells 12] [--cell-seconds 1.0] [--steps 4]

On the embedded default pipeline, with the ``freeinit`` study (plain + FreeInit, K = 2) and cells sized to last
about ``--cell-seconds`` (videos per cell calibrated once), it measures, on the same cells:

1. **direct**: the study function called in a loop in this process (pipeline loaded, 1 torch thread) — the
   baseline;
2. **in-process sweep**: :func:`freeinit_lab.sweep.run_sweep` into a fresh zarr store — its overhead per cell
   (scheduling nothing, writing the store, progress) against (1);
3. **1 worker / 2 workers**: the same sweep on a ``LocalCluster`` of 1 and of 2 worker processes, 1 thread each,
   workers warmed up (pipeline loaded) before timing; throughput ratio 2 vs 1 (goal >= 1.7x), and the
   scheduling + storage overhead per cell of the 1-worker run against (1) (goal < 5 % for ~1 s cells).

Timings on a shared machine move with the load of other processes; the ratio needs two free cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=12, help="cells per timed run (default 12)")
    p.add_argument("--cell-seconds", type=float, default=1.0, help="target duration of one cell (default 1 s)")
    p.add_argument("--steps", type=int, default=4, help="sampler steps per pass (default 4)")
    args = p.parse_args()

    import torch
    from distributed import Client

    import freeinit_lab as fl
    from freeinit_lab.sweep import SweepSpec, run_sweep
    from freeinit_lab.sweep.cluster import SweepWorkerPlugin, local_cluster
    from freeinit_lab.sweep.studies import freeinit_study

    torch.set_num_threads(1)
    pipe = fl.load_default_pipeline()
    settings = dict(num_inference_steps=args.steps, num_iters=2)
    freeinit_study(pipe, seed=0, num_videos=1, **settings)  # warm-up
    t = time.perf_counter()
    freeinit_study(pipe, seed=0, num_videos=1, **settings)
    per_video = time.perf_counter() - t
    vps = max(1, round(args.cell_seconds / per_video))
    d_s = [round(0.05 + 0.9 * i / max(1, args.cells - 1), 4) for i in range(args.cells)]
    spec = SweepSpec(study="freeinit", pipeline="default", grid={"d_s": d_s}, seeds=[0], videos_per_seed=vps,
                     sampler={"num_inference_steps": args.steps}, options={"num_iters": 2})
    shape = tuple(pipe.sample_shape)
    print(f"embedded default {shape}, study freeinit (K=2, {args.steps} steps), {vps} videos per cell, "
          f"{args.cells} cells; torch {torch.__version__}, 1 thread per process; {os.cpu_count()} CPUs (shared)")

    # 1. direct calls
    t = time.perf_counter()
    for cell in spec.cells():
        freeinit_study(pipe, seed=cell.seed, num_videos=vps, **cell.settings)
    direct = time.perf_counter() - t
    cell_s = direct / args.cells

    tmp = tempfile.mkdtemp(prefix="bench_sweep_")
    try:
        # 2. in-process sweep (same pipeline object: no load time counted)
        t = time.perf_counter()
        run_sweep(spec, os.path.join(tmp, "serial.zarr"), pipeline=pipe, progress=False)
        serial = time.perf_counter() - t

        # 3. LocalCluster of 1 and 2 worker processes, warmed up
        walls = {}
        for n in (1, 2):
            with local_cluster(n) as cluster, Client(cluster) as client:
                t = time.perf_counter()
                client.register_plugin(SweepWorkerPlugin(1, spec.pipeline_factory()), name="bench-warm-up")
                warm = time.perf_counter() - t
                t = time.perf_counter()
                run_sweep(spec, os.path.join(tmp, f"w{n}.zarr"), client=client, progress=False)
                walls[n] = time.perf_counter() - t
                print(f"  {n} worker(s): started + pipeline loaded in {warm:.1f} s (not timed), sweep {walls[n]:.2f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def overhead(wall: float) -> str:
        per = (wall - direct) / args.cells
        return f"{per * 1000:+7.1f} ms/cell ({100 * per / cell_s:+5.1f} %)"

    print(f"\n{'run':28s} {'wall':>8s} {'cells/s':>8s}  overhead vs direct")
    print(f"{'direct study calls':28s} {direct:7.2f}s {args.cells / direct:8.3f}  (cell {cell_s:.2f} s)")
    print(f"{'in-process sweep':28s} {serial:7.2f}s {args.cells / serial:8.3f}  {overhead(serial)}")
    for n, wall in walls.items():
        print(f"{f'LocalCluster, {n} worker(s)':28s} {wall:7.2f}s {args.cells / wall:8.3f}  {overhead(wall)}")
    ratio = walls[1] / walls[2]
    print(f"\nthroughput 2 workers / 1 worker: {ratio:.2f}x (goal >= 1.7x); "
          f"overhead per cell, 1 worker: {100 * (walls[1] - direct) / direct:+.1f} % (goal < 5 %)")


if __name__ == "__main__":
    main()
