"""Precompute the cutoff explorer's heat map with the sweep engine: FreeInit's consistency gain on a (d_s, d_t) grid.

Runs the sweep ``scripts/cutoff_map_sweep.yaml`` (study ``cutoff_map``: one ``(d_s, d_t)`` cell per sweep cell, the
mask-only control beside FreeInit, the embedded default with its stored sampler) into a resumable zarr store, turns
the store into the map (:func:`freeinit_lab.cutoff_map.cutoff_map_from_sweep`) and writes ``data/cutoff_map.nc``,
which ``CutoffExplorer`` (notebooks/04_cutoff_explorer) shows. Rerun it whenever the default model's weights change:
the file records the weights' fingerprint, a test fails while it differs, and the notebook checks one cell live.

    python scripts/precompute_cutoff_map.py --overwrite            # the shipped map (the spec file's settings)
    python scripts/precompute_cutoff_map.py --out /tmp/map.nc --store /tmp/map.zarr --grid 0.25,0.5 --seeds 1
                                                                   # a quick look (spec values overridden)
    python scripts/precompute_cutoff_map.py --first-seed 3 --out data/cutoff_map_replication.nc --overwrite
                                                                   # the replication: the same sweep, 12 other videos
An interrupted run resumes from its store (the same spec and store path compute only the missing cells); after the
library changed, say how with ``--on-code-change recompute`` (or ``continue``), or give a new ``--store``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "scripts" / "cutoff_map_sweep.yaml"

def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]

def rebuild_command(argv: list[str]) -> str:
    """The command that rebuilds a map, for its ``rebuild`` attr: the arguments given that change the map (every one
    but ``--store`` and ``--overwrite``, which say where its cache lives and whether a file may be replaced)."""
    given, skip = [], False
    for a in argv:
        if skip or a == "--overwrite" or a.startswith("--store="):
            skip = False
            continue
        if a == "--store":
            skip = True
            continue
        given.append(a)
    return "python scripts/precompute_cutoff_map.py --overwrite " + (
        " ".join(given) if given else "(spec scripts/cutoff_map_sweep.yaml)")


def main(argv: list[str] | None = None) -> int:
    from freeinit_lab.cutoff_map import DEFAULT_CUTOFF_MAP_PATH

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default=str(SPEC), help="sweep spec (default: %(default)s)")
    p.add_argument("--store", default=None,
                   help="zarr store of the sweep (default: runs/<out name>.zarr, resumed when it exists)")
    p.add_argument("--out", default=str(DEFAULT_CUTOFF_MAP_PATH), help="NetCDF file to write (default: %(default)s)")
    p.add_argument("--grid", type=_floats, default=None, help="cut-offs for both d_s and d_t (overrides the spec)")
    p.add_argument("--seeds", type=int, default=None, help="number of sweep seeds N (overrides the spec's count)")
    p.add_argument("--first-seed", type=int, default=None,
                   help="first sweep seed K: seeds K .. K+N-1, i.e. other videos than the shipped map's 0 .. N-1, "
                        "to check the notebook's claims on new videos (default: the spec's seeds)")
    p.add_argument("--videos-per-seed", type=int, default=None, help="videos per sweep seed (overrides the spec)")
    p.add_argument("--pipeline", default=None, help="pipeline entry of the spec, e.g. analytic or a folder "
                                                    "(overrides the spec's `default`)")
    p.add_argument("--workers", type=int, default=None, help="local dask worker processes (default: in-process)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per cell (default: %(default)s)")
    p.add_argument("--on-code-change", choices=("refuse", "recompute", "continue"), default="refuse",
                   help="resuming a store whose cells were computed under other code (freeinit_lab's source or "
                        "library versions): refuse (default), recompute every cell, or continue (both on record)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    args = p.parse_args(argv)

    from freeinit_lab.cutoff_map import cutoff_map_from_sweep, save_cutoff_map
    from freeinit_lab.sweep import SweepSpec, SweepSpecError, get_study, run_sweep

    if os.path.exists(args.out) and not args.overwrite:
        p.error(f"{args.out} exists; pass --overwrite to replace it")
    # an override given is applied as given (a 0 or an empty grid is refused, not replaced by the spec's value)
    if args.grid is not None and not args.grid:
        p.error("--grid gives no cut-offs; give them comma-separated, e.g. --grid 0.25,0.5")
    if args.seeds is not None and args.seeds < 1:
        p.error(f"--seeds {args.seeds}: give at least 1 (sweep seeds 0 .. N-1)")
    if args.first_seed is not None and args.first_seed < 0:
        p.error(f"--first-seed {args.first_seed}: give a non-negative seed")
    spec = SweepSpec.from_yaml(args.spec)
    if args.grid is not None:
        spec.grid = {"d_s": list(args.grid), "d_t": list(args.grid)}
    if args.seeds is not None or args.first_seed is not None:
        count = args.seeds if args.seeds is not None else len(spec.seeds)
        first = args.first_seed if args.first_seed is not None else 0
        spec.seeds = list(range(first, first + count))
    if args.videos_per_seed is not None:
        spec.videos_per_seed = args.videos_per_seed
    if args.pipeline is not None:
        spec.pipeline = args.pipeline
    try:
        get_study(spec.study).check(spec)
    except SweepSpecError as err:
        p.error(str(err))
    store = args.store or str(ROOT / "runs" / (Path(args.out).stem + ".zarr"))
    t0 = time.perf_counter()
    sweep = run_sweep(spec, store, workers=args.workers, torch_threads=args.threads, progress=True,
                      on_code_change=args.on_code_change)
    pipe = spec.pipeline_factory()()
    cmap = cutoff_map_from_sweep(sweep.load(), pipe)
    cmap.attrs["rebuild"] = rebuild_command(argv if argv is not None else sys.argv[1:])
    path = save_cutoff_map(cmap, args.out, overwrite=args.overwrite)
    print(f"{cmap.attrs['pipeline']} (model {cmap.attrs['model']}), {cmap.attrs['method']}, K={cmap.attrs['num_iters']}, "
          f"{cmap.attrs['num_inference_steps']} steps, {cmap.sizes['video']} videos; {cmap.attrs['num_pipeline_videos']} "
          f"sampled videos, {cmap.attrs['seconds']:.0f} s of cell time")
    print("mean consistency gain, FreeInit - plain (rows d_s, columns d_t):")
    print(cmap.gain.to_pandas().round(3).to_string())
    print("mean consistency of FreeInit's samples:")
    print(cmap.freeinit.mean("video").to_pandas().round(3).to_string())
    if "control_consistency" in cmap:
        for c in cmap.control.control.values:
            print(f"mean FreeInit - {c} (consistency):")
            print((cmap.freeinit - cmap.control_consistency.sel(control=c)).mean("video").to_pandas().round(3).to_string())
    print(f"standard errors of the gain: {float(cmap.gain_se.min()):.3f} .. {float(cmap.gain_se.max()):.3f}")
    print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB) from {store} in {time.perf_counter() - t0:.0f} s")
    return 0

if __name__ == "__main__":
    sys.exit(main())
