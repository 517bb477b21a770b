#!/usr/bin/env python
"""Part 1 of the model card's gate with autoguidance: the stored sampler, its ε̂ guided by a weaker network.

    python scripts/autoguidance_gate.py --guide GUIDE_FOLDER --scales 1.0,1.5 --seeds 910000000,911000000

Autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself", arXiv 2406.02507):
every step uses ``ε̃ = ε̂_guide + w (ε̂ − ε̂_guide)``, with a guide network trained on the same data but smaller or
for fewer steps (:class:`freeinit_lab.pipelines.TinyVideoPipeline`'s ``guide`` and ``guidance_scale``). For each
seed and each ``w`` this runs :func:`model_card.training_quality` (samples started on the training marginal of
held-out videos, against ``2 × num-videos`` reference videos, with the gate's verdict) exactly as the card does,
so ``w = 1`` reproduces the card's part 1 at that seed, and prints one table row per (seed, w); with ``--json``
also writes the numbers.

``GUIDE_FOLDER`` holds a ``TinyVideoUNet`` (``config.json`` and its weights) of the model's video size: for the
README's measurement, the first subjects-v1 default (step 1,993), from the repository's history::

    mkdir -p /tmp/guide && for f in config.json diffusion_pytorch_model.safetensors; do
        git show 7724af0:data/default_model/unet/$f > /tmp/guide/$f; done

Evaluation seeds are >= 900,000,000 (never used in training); choose ``w`` on seeds kept for tuning (930,000,000
and up) before judging it on the card's (910,000,000 to 914,000,000).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _model_card():
    spec = importlib.util.spec_from_file_location("model_card", ROOT / "scripts" / "model_card.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _numbers(text: str, kind, name: str) -> list:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"--{name} {text!r}: give comma-separated numbers") from None
    if not values:
        raise SystemExit(f"--{name} is empty")
    return values


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(ROOT / "data" / "default_model"))
    p.add_argument("--guide", required=True, help="folder of the guide network (config.json and weights)")
    p.add_argument("--scales", default="1.0,1.5", help="guidance scales w (1.0: the network alone)")
    p.add_argument("--seeds", default="930000000", help="evaluation seeds (>= 900,000,000)")
    p.add_argument("--guidance-interval", default="",
                   help="T_LOW,T_HIGH: guide only at steps with T_LOW <= t <= T_HIGH (default: every step)")
    p.add_argument("--num-videos", type=int, default=64)
    p.add_argument("--json", default="", help="also write the rows to this JSON file")
    args = p.parse_args(argv)

    from freeinit_lab.embedded.models import TinyVideoUNet
    from freeinit_lab.embedded.pipelines import (
        _check_guidance_interval,
        _check_guidance_scale,
        _check_guide,
        load_default_pipeline,
    )

    scales = [_check_guidance_scale(w, "--scales") for w in _numbers(args.scales, float, "scales")]
    seeds = _numbers(args.seeds, int, "seeds")
    interval = None
    if args.guidance_interval:
        try:
            interval = _check_guidance_interval(_numbers(args.guidance_interval, float, "guidance-interval"),
                                                "--guidance-interval")
        except ValueError as err:
            raise SystemExit(str(err)) from None
    if min(seeds) < 900_000_000:
        raise SystemExit(f"--seeds {min(seeds)}: evaluation seeds are >= 900,000,000 (training used the ones below)")
    if args.num_videos < 16:
        raise SystemExit(f"--num-videos {args.num_videos}: the gate's two-sample test needs at least 16")
    guide_dir = Path(args.guide)
    if not (guide_dir / "config.json").is_file():
        raise SystemExit(f"{guide_dir}/config.json missing: --guide names a folder holding a TinyVideoUNet "
                         "(see this script's docstring for the README's guide)")
    path = Path(args.model)
    pipe = load_default_pipeline(path)
    guide = TinyVideoUNet.from_pretrained(guide_dir, local_files_only=True, low_cpu_mem_usage=False).eval()
    try:
        _check_guide(pipe.unet, guide)
    except (TypeError, ValueError) as err:
        raise SystemExit(f"--guide {guide_dir}: {err}") from None
    pipe.register_modules(guide=guide)

    mc = _model_card()
    log = json.loads((path / "training_log.json").read_text())
    training = mc.training_batches(path, log, args.num_videos)  # as the card: the first training batches
    sampler = json.loads((path / "sampler.json").read_text())
    where = "at every step" if interval is None else f"at {interval[0]:g} <= t <= {interval[1]:g}"
    print(f"model {path}, guide {guide_dir} ({sum(p.numel() for p in guide.parameters()):,} parameters), "
          f"sampler {sampler}, guided {where}; {args.num_videos} samples vs {2 * args.num_videos} reference videos, "
          "model space")
    print("| seed | w | two-sample accuracy (≤ 0.7) | spatial dB (≤ 1.5) | temporal dB (≤ 1.5) | precision (≥ 0.6) "
          "| recall (≥ 0.6) | memorised (≤ 0) | passed | Fréchet distance | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for seed in seeds:
        for w in scales:
            t0 = time.time()
            guided = dict(sampler, guidance_scale=w, **({} if interval is None else
                                                         {"guidance_interval": list(interval)}))
            q = mc.training_quality(pipe, guided, path=path, num_videos=args.num_videos,
                                    seed=seed, training=training, space="model space (per-channel unit variance)")
            cells = mc.gate_row(q).strip("| ").split(" | ")
            print(f"| {cells[0]} | {w:g} | " + " | ".join(cells[1:])
                  + f" | {q['report'].frechet:.2f} | {time.time() - t0:.0f} |", flush=True)
            r = q["report"]
            rows.append(dict(seed=seed, guidance_scale=w, guidance_interval=interval, accuracy=r.accuracy,
                             accuracy_low=r.accuracy_low, accuracy_high=r.accuracy_high, frechet=r.frechet,
                             passed=mc.gate_passes(q["gate"]),
                             gate={k: list(v) for k, v in q["gate"].items() if k != "passed"}))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(model=str(path), guide=str(guide_dir), rows=rows), indent=1,
                                              default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
