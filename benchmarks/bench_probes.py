"""Capture overhead of LatentProbe vs plain sampling, measured in one run.

    python benchmarks/bench_probes.py [--repeats N] [--steps N] [--threads N]

Samples the embedded default model (``freeinit_lab.load_default_pipeline()``) when it is importable, the tiny
random-weight AnimateDiff pipeline otherwise, three ways, interleaved (plain, default capture, band powers only)
so that load drift hits each alike, and prints the median wall time of each and the ratio to plain sampling.

It also prints the time spent *inside* the probe's hooks (timed around them) as a share of the plain sampling
time: on a shared machine this share is far steadier than the difference of two noisy wall times, and it is what
the wall-time overhead converges to. Targets (issue 4): default capture adds < 3 %, band powers only < 1 %, on the
default model.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from freeinit_lab.probes import LatentProbe


def _pipeline(steps: int):
    try:
        from freeinit_lab import load_default_pipeline  # type: ignore[attr-defined]
    except ImportError:
        load_default_pipeline = None
    if load_default_pipeline is not None:
        pipe = load_default_pipeline()
        return pipe, "default model", dict(prompt="a cat", num_inference_steps=steps)
    from freeinit_lab.testing import TINY_CALL_KWARGS, tiny_animatediff_pipeline

    pipe = tiny_animatediff_pipeline(seed=0)
    kw = dict(TINY_CALL_KWARGS["AnimateDiffPipeline"], num_inference_steps=steps, prompt="a cat")
    return pipe, "tiny AnimateDiff (default model not importable)", kw


class _HookTimer:
    """Accumulates the wall time spent in a probe's per-step hooks."""

    NAMES = ("_on_step", "_on_callback", "_flush", "_on_set_timesteps", "_on_prepare_latents")

    def __init__(self, probe: LatentProbe) -> None:
        self.seconds = 0.0
        self.depth = 0
        for name in self.NAMES:
            setattr(probe, name, self._wrap(getattr(probe, name)))

    def _wrap(self, fn):
        def timed(*args, **kwargs):
            self.depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.depth -= 1
                if self.depth == 0:
                    self.seconds += time.perf_counter() - start

        return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    pipe, label, kw = _pipeline(args.steps)

    def call():
        return pipe(generator=torch.Generator().manual_seed(0), output_type="latent", **kw)

    modes = {
        "plain": None,
        "default (latents + x0_pred, float32)": dict(),
        "band powers only": dict(mode="band_power"),
    }
    times = {m: [] for m in modes}
    hook = {m: [] for m in modes}
    call()  # warm-up
    for _ in range(args.repeats):
        for name, probe_kw in modes.items():
            if probe_kw is None:
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
                continue
            probe = LatentProbe(pipe, **probe_kw)
            timer = _HookTimer(probe)
            start = time.perf_counter()
            with probe:
                call()
            times[name].append(time.perf_counter() - start)
            hook[name].append(timer.seconds)
    plain = statistics.median(times["plain"])
    print(f"pipeline: {label}; {args.steps} steps; torch threads {torch.get_num_threads()}; "
          f"median of {args.repeats} interleaved runs")
    print(f"{'mode':40s} {'wall s':>9s} {'ratio':>8s} {'in hooks':>10s} {'hooks/plain':>12s}")
    for name in modes:
        t = statistics.median(times[name])
        if name == "plain":
            print(f"{name:40s} {t:9.3f} {1.0:8.3f} {'':>10s} {'':>12s}")
            continue
        h = statistics.median(hook[name])
        print(f"{name:40s} {t:9.3f} {t / plain:8.3f} {h:10.4f} {100 * h / plain:11.2f}%")


if __name__ == "__main__":
    main()
