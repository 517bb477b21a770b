"""Measure what FreeInit's controls explain on the embedded default model (the README's decomposition table).

Runs :func:`freeinit_lab.decompose_freeinit` on ``load_default_pipeline()`` with its own latent size, held-out
videos of its training distribution (:func:`freeinit_lab.default_training_videos`, model space) as the reference
(``amplitude_matched``'s target band power fitted on other held-out videos), saves the dataset as NetCDF and prints
the effects and explained shares with their paired bootstrap intervals.

Usage::

    python scripts/measure_decomposition.py --num-videos 64 --seed 4242 --out decomposition.nc
    python scripts/measure_decomposition.py --steps 50    # 50 steps of the stored sampler instead of its default count
    python scripts/measure_decomposition.py --scheduler ddim    # DDIM (η = 0) with the stored step count
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import freeinit_lab as fl


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-videos", type=int, default=64)
    p.add_argument("--seed", type=int, default=4242)
    p.add_argument("--steps", type=int, default=0, help="steps of the stored sampler per pass; 0 = its default count")
    p.add_argument("--scheduler", choices=("stored", "ddim"), default="stored",
                   help="the model folder's stored sampler, or DDIM (set_alpha_to_one=True, η = 0) with its step count")
    p.add_argument("--num-iters", type=int, default=2)
    p.add_argument("--method", default="gaussian")
    p.add_argument("--d-s", type=float, default=0.25)
    p.add_argument("--d-t", type=float, default=0.25)
    p.add_argument("--num-reference", type=int, default=128)
    p.add_argument("--out", default="decomposition.nc")
    args = p.parse_args()

    t0 = time.perf_counter()
    pipe = fl.load_default_pipeline(scheduler=fl.default_scheduler(set_alpha_to_one=True)
                                    if args.scheduler == "ddim" else None)
    ref = fl.default_training_videos(args.num_reference, seed=970_000_000 + args.seed)  # held out (>= 9e8)
    # amplitude_matched's target band power: other held-out videos than the ones the arms are judged against
    fit = fl.default_training_videos(args.num_reference, seed=980_000_000 + args.seed)
    extra = {"num_inference_steps": args.steps} if args.steps > 0 else {}
    ds = fl.decompose_freeinit(pipe, num_videos=args.num_videos, seed=args.seed, num_iters=args.num_iters,
                               method=args.method, d_s=args.d_s, d_t=args.d_t, reference=ref,
                               amplitude_reference=fit, **extra)
    ds.attrs["wall_total"] = time.perf_counter() - t0
    ds.to_netcdf(args.out)
    print(f"{ds.attrs['pipeline_class']} latents {ds.attrs['latent_shape']}, {args.num_videos} paired videos, "
          f"seed {args.seed}, {ds.attrs['call_kwargs']}, {ds.attrs['wall_total']:.0f} s -> {args.out}")
    print(fl.decomposition_table(ds, ["consistency", "dynamics", "contrast", "distance"]).to_string())
    bp = ds.band_power_init.mean("video")
    print("\ninitial latent band power, dB relative to plain")
    print((10 * np.log10(bp / bp.sel(arm="plain"))).to_pandas().round(2).to_string())


if __name__ == "__main__":
    main()
