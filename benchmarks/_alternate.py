"""The timing loop the A/B benchmarks share: two callables alternated, so load changes on a shared machine hit both
alike."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def alternate(new: Callable[[], object], old: Callable[[], object], repeats: int) -> dict[str, float]:
    """Time ``new`` then ``old``, ``repeats`` times each, alternated; return their medians and bests (seconds) and
    ``ratio`` = median(new) / median(old) (below 1: ``new`` is faster). Warm both up before calling."""
    times: dict[str, list[float]] = {"new": [], "old": []}
    for _ in range(repeats):
        for name, fn in (("new", new), ("old", old)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    out = {f"{k}_median": statistics.median(v) for k, v in times.items()}
    out.update({f"{k}_best": min(v) for k, v in times.items()})
    out["ratio"] = out["new_median"] / out["old_median"]
    return out


def ab_arguments(doc: str, *, batch: int, steps: bool, extra: Callable[[object], None] | None = None):
    """Parse the A/B benchmarks' shared options (``--threads``, ``--repeats``, ``--batch`` and, with ``steps``,
    ``--steps``) with ``doc``'s first line as the description, and set torch's thread count. ``extra(parser)`` adds
    a benchmark's own options."""
    import argparse

    import torch

    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--batch", type=int, default=batch)
    if steps:
        p.add_argument("--steps", type=int, default=None,
                       help="network calls per timing (default: the stored sampler's)")
    if extra is not None:
        extra(p)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    return args
