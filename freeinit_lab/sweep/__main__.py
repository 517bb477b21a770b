"""``python -m freeinit_lab.sweep SPEC.yaml --store OUT.zarr [--workers N | --scheduler ADDRESS]``.

Runs (or resumes) the sweep a YAML spec describes and prints where its store is. Exit status 0 when every cell is
complete, 2 for a bad spec, store or address (nothing sampled), 1 for a failure during the sweep (finished cells
stay in the store; rerun the same command to complete it). A store whose complete cells were computed under other
code (freeinit_lab's source, torch, diffusers, numpy or Python versions) is resumed only with ``--on-code-change
recompute`` or ``continue`` (see :mod:`freeinit_lab.sweep.store`); without, exit status 2.

Example spec::

    pipeline: default          # or analytic, a folder, a hub id, package.module:function
    study: freeinit            # freeinit, cutoff_map, strategies, evidence, refinement, decomposition
    grid:
      method: [gaussian, butterworth]
      d_s: [0.125, 0.25]
      d_t: [0.25]
    seeds: [0, 1]              # one batch of videos per seed
    videos_per_seed: 4
    sampler: {num_inference_steps: 10}
"""

from __future__ import annotations

import argparse
import sys
import time


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m freeinit_lab.sweep",
        description="Run or resume a freeinit_lab sweep into a zarr store (in-process, on local worker processes, "
                    "or on a dask scheduler).",
    )
    p.add_argument("spec", nargs="?",
                   help="YAML sweep spec (pipeline, study, grid, seeds, videos_per_seed, sampler, options)")
    p.add_argument("--store", help="zarr store directory (created, or resumed when it exists)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="start a LocalCluster of N worker processes (needs dask.distributed)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run on the dask scheduler at ADDRESS, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--threads", type=int, default=1, metavar="T",
                   help="torch threads per cell (default 1: results identical wherever a cell runs)")
    p.add_argument("--on-code-change", choices=("refuse", "recompute", "continue"), default="refuse",
                   help="when the store's complete cells were computed under other code (freeinit_lab's source, "
                        "torch, diffusers, numpy or Python versions) and cells are missing: refuse (default, exit "
                        "2), recompute every cell under this code, or continue (compute only the missing cells; "
                        "the store's code_history records both)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for --scheduler (default 10)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list-studies", action="store_true", help="print the registered studies and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list_studies:
        from .studies import list_studies

        for name, text in list_studies().items():
            print(f"{name:12s} {text}")
        return 0
    if args.spec is None or args.store is None:
        parser.error("give a SPEC.yaml and --store OUT.zarr")
    from .engine import run_sweep
    from .spec import SweepSpec, SweepSpecError
    from .store import SweepStore, SweepStoreError
    from .studies import get_study

    t0 = time.perf_counter()
    client = None
    try:
        spec = SweepSpec.from_yaml(args.spec)
        get_study(spec.study).check(spec)
        opened = SweepStore(args.store, spec).open()
        recompute = args.on_code_change == "recompute" and opened.written_by_other_code()
        before = 0 if recompute else int(opened.done.sum())
        if args.workers is not None and args.workers < 1:
            raise SweepSpecError(f"--workers {args.workers}: give at least 1 worker")
        if args.threads < 1:
            raise SweepSpecError(f"--threads {args.threads}: give at least 1 torch thread per cell")
        if args.scheduler is not None:
            from .cluster import connect

            client = connect(args.scheduler, timeout=args.timeout)
    except (SweepSpecError, SweepStoreError, FileNotFoundError, ConnectionError, ImportError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        ds = run_sweep(spec, args.store, client=client, workers=args.workers, torch_threads=args.threads,
                       progress=not args.no_progress, on_code_change=args.on_code_change)
    except (SweepSpecError, SweepStoreError, ImportError, TypeError) as err:
        if getattr(err, "sweep_cell", None) is not None:  # a cell's failure during the sweep, not bad input
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            client.close()
    done = int(ds["complete"].values.sum())
    total = int(ds["complete"].size)
    where = (f"{args.workers} local workers" if args.workers else f"scheduler {args.scheduler}" if args.scheduler
             else "in-process")
    print(f"{args.store}: {done}/{total} cells complete ({done - before} computed now, {where}, "
          f"{time.perf_counter() - t0:.1f} s); open with xarray.open_zarr({args.store!r})")
    return 0 if done == total else 1


if __name__ == "__main__":
    sys.exit(main())
