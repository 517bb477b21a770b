"""Precompute the cutoff explorer's heat map: FreeInit's consistency gain on a (d_s, d_t) grid.

Runs :func:`freeinit_lab.cutoff_map.measure_cutoff_map` on the embedded default model (``data/default_model``) and
writes ``data/cutoff_map.nc``, which ``CutoffExplorer`` (notebooks/04_cutoff_explorer) shows. Rerun it whenever the
default model's weights change: the file records the weights' fingerprint and the notebook checks one cell live.

    python scripts/precompute_cutoff_map.py                       # the shipped map (defaults below)
    python scripts/precompute_cutoff_map.py --out /tmp/map.nc --grid 0.25,0.5 --num-videos 4   # a quick look
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    from freeinit_lab.cutoff_map import DEFAULT_CUTOFF_MAP_PATH, DEFAULT_CUTOFFS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(DEFAULT_CUTOFF_MAP_PATH), help="NetCDF file to write (default: %(default)s)")
    p.add_argument("--grid", type=_floats, default=list(DEFAULT_CUTOFFS),
                   help="comma-separated cut-offs used for both d_s and d_t (default: %(default)s)")
    p.add_argument("--d-s", type=_floats, default=None, help="d_s values (overrides --grid for d_s)")
    p.add_argument("--d-t", type=_floats, default=None, help="d_t values (overrides --grid for d_t)")
    p.add_argument("--method", default="gaussian", help="FreeInit filter (default: %(default)s, the paper's main table)")
    p.add_argument("--order", type=float, default=4.0, help="Butterworth order (default: %(default)s)")
    p.add_argument("--num-iters", type=int, default=3, help="FreeInit passes incl. the plain first (default: %(default)s)")
    p.add_argument("--steps", type=int, default=10, help="DDIM steps per pass (default: %(default)s)")
    p.add_argument("--fast-sampling", action="store_true", help="FreeInit's coarse-to-fine steps per pass")
    p.add_argument("--num-videos", type=int, default=16, help="seeded videos per cell (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="videos per pipeline call (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--model", default=None, help="pipeline folder (default: the embedded data/default_model)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    args = p.parse_args(argv)

    import torch

    from freeinit_lab.cutoff_map import measure_cutoff_map, save_cutoff_map
    from freeinit_lab.pipelines import load_default_pipeline

    if os.path.exists(args.out) and not args.overwrite:
        p.error(f"{args.out} exists; pass --overwrite to replace it")
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pipe = load_default_pipeline(args.model)
    ds = measure_cutoff_map(
        pipe, d_s=args.d_s or args.grid, d_t=args.d_t or args.grid, method=args.method, order=args.order,
        num_iters=args.num_iters, num_inference_steps=args.steps, fast_sampling=args.fast_sampling,
        num_videos=args.num_videos, seed=args.seed, batch_size=args.batch_size, progress=True,
    )
    path = save_cutoff_map(ds, args.out, overwrite=args.overwrite)
    gain = ds.gain.to_pandas()
    print(f"{ds.attrs['pipeline']} (model {ds.attrs['model']}), {args.method}, K={args.num_iters}, {args.steps} steps, "
          f"{args.num_videos} videos: {ds.attrs['num_pipeline_videos']} sampled videos in {ds.attrs['seconds']:.0f} s")
    print("mean consistency gain (rows d_s, columns d_t):")
    print(gain.round(4).to_string())
    print(f"standard errors: {float(ds.gain_se.min()):.4f} .. {float(ds.gain_se.max()):.4f}")
    print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB) in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
