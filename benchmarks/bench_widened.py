"""Benchmark: what a wider default network would cost the notebooks, against the shipped default in the same run.

    python benchmarks/bench_widened.py [--threads 2] [--repeats 7] [--batch 8] [--factor 2] [--bf16]

The wide network is the shipped default made ``--factor`` times wider by
:func:`freeinit_lab.embedded.models.widen_video_unet` (the candidate of ``data/candidate_model`` for factor 2: its
cost does not depend on the weights, so no folder is needed). Both networks evaluate the same ``--batch`` videos at
one timestep, alternated (``benchmarks/_alternate.py``), in the layout the pipeline uses (channels-last, micro-
batched by ``forward_chunk``); the ratio ``wide / default`` is the factor by which every notebook's sampling would
grow if the wide network became the default. ``--bf16`` adds the same pair under bfloat16 autocast, with each
network's ``bf16 / float32`` ratio: what autocast inference would buy back (it changes ε̂ by more than round-off,
so a card would have to measure that function, not this one).

Run it on an otherwise idle machine with ``--threads`` no larger than the free cores.
"""

from __future__ import annotations

import contextlib

import torch

from _alternate import ab_arguments, alternate
from freeinit_lab.embedded.models import widen_video_unet
from freeinit_lab.pipelines import load_default_pipeline


def _options(p) -> None:
    p.add_argument("--factor", type=int, default=2, help="width multiplier (whole, >= 2)")
    p.add_argument("--bf16", action="store_true", help="also time both networks under bfloat16 autocast")


def main() -> None:
    args = ab_arguments(__doc__, batch=8, steps=False, extra=_options)
    if args.factor < 2:
        raise SystemExit(f"--factor {args.factor}: the wide network needs a whole factor >= 2")
    factor = args.factor
    pipe = load_default_pipeline()
    narrow = pipe.unet.eval()
    wide = widen_video_unet(narrow, factor, generator=torch.Generator().manual_seed(0)).eval()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    x = torch.randn(args.batch, *pipe.sample_shape, generator=torch.Generator().manual_seed(0))
    t = torch.tensor(500)

    def call(net, autocast=False):
        def run():
            ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
            with torch.no_grad(), ctx:
                net(x, t)
        return run

    print(f"torch {torch.__version__}, {args.threads} threads; default {count(narrow) / 1e6:.2f} M parameters, "
          f"widened ×{factor} {count(wide) / 1e6:.2f} M; {args.batch} videos {tuple(pipe.sample_shape)} per call")
    with torch.no_grad():
        err = (wide(x, t).sample - narrow(x, t).sample).abs().max().item()
    print(f"the widened network computes the default's ε̂ to {err:.1e} (max |difference|)")
    pairs = [("float32", False)] + ([("bf16 autocast", True)] if args.bf16 else [])
    for name, autocast in pairs:
        for fn in (call(wide, autocast), call(narrow, autocast)):
            fn()  # warm-up
        r = alternate(call(wide, autocast), call(narrow, autocast), args.repeats)
        print(f"{name}: wide median {r['new_median']:.3f} s, default {r['old_median']:.3f} s per call → "
              f"ratio wide / default {r['ratio']:.2f}")
    if args.bf16:
        for label, net in (("default", narrow), ("wide", wide)):
            r = alternate(call(net, True), call(net, False), args.repeats)
            print(f"{label}: bf16 autocast / float32 {r['ratio']:.2f} (median {r['new_median']:.3f} against "
                  f"{r['old_median']:.3f} s)")


if __name__ == "__main__":
    main()
