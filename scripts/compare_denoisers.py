#!/usr/bin/env python
"""Two model folders' denoising error on the same noised held-out videos, paired (e.g. a candidate vs the default).

    python scripts/compare_denoisers.py --model data/candidate_model --reference data/default_model

For each timestep in ``--timesteps`` every held-out video ``x_0`` (``--num-videos`` of the reference folder's
training distribution, seed ``--seed`` >= 900,000,000, never used in training) is noised once,
``z_t = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε``, and both networks predict ε from the same ``z_t``
(:func:`freeinit_lab.analysis.fidelity.denoising_error`): per timestep the two mean squared errors per voxel
(model space) and ``10 log10(MSE_model / MSE_reference)`` dB with a 95 % bootstrap interval over videos. Below
0 dB the model denoises better at that noise level. The last line is the mean of the per-timestep errors (equal
weights), the plain ε-MSE the training logs track. Both folders must share the data generator, video size and
normaliser (the same model space); otherwise their errors are not comparable and the script stops.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TIMESTEPS = "19,99,199,299,399,499,599,699,799,899,999"


def comparable(model: Path, reference: Path) -> str | None:
    """Why the two folders' ε-MSEs are not comparable, or None when they are (same data, size and normaliser)."""
    logs = []
    for folder in (model, reference):
        if not (folder / "training_log.json").exists():
            return f"{folder} has no training_log.json (pass folders exported by scripts/train_default_model.py)"
        logs.append(json.loads((folder / "training_log.json").read_text()))
    for key in ("data_generator", "frames", "height", "width", "normalization"):
        a, b = (log.get(key) for log in logs)
        if key == "normalization" and isinstance(a, dict) and isinstance(b, dict):
            a, b = (a.get("shift"), a.get("scale")), (b.get("shift"), b.get("scale"))
        if a != b:
            return f"{key} differs: {a} in {model}, {b} in {reference}"
    return None


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--reference", default=str(ROOT / "data" / "default_model"))
    p.add_argument("--num-videos", type=int, default=256)
    p.add_argument("--seed", type=int, default=950_000_000)
    p.add_argument("--timesteps", default=TIMESTEPS)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.seed < 900_000_000:
        p.error(f"--seed {args.seed} may be a training seed; evaluation seeds are >= 900,000,000")
    if args.num_videos < 2:
        p.error("--num-videos must be at least 2 (the interval resamples videos)")
    timesteps = [int(t) for t in args.timesteps.split(",")]
    model, reference = Path(args.model), Path(args.reference)
    why = comparable(model, reference)
    if why:
        raise SystemExit(f"not comparable: {why}")
    torch.set_num_threads(args.threads)
    from freeinit_lab.analysis.fidelity import denoising_error
    from freeinit_lab.embedded.pipelines import held_out_videos, load_default_pipeline

    a, b = load_default_pipeline(model), load_default_pipeline(reference)
    videos = held_out_videos(b, args.num_videos, args.seed)
    t0 = time.time()
    res = denoising_error(a.unet, b.unet, videos, b.scheduler.alphas_cumprod, timesteps,
                          generator=torch.Generator().manual_seed(args.seed + 1))
    params = [sum(q.numel() for q in m.unet.parameters()) for m in (a, b)]
    print(f"model {model} ({params[0]:,} parameters) vs reference {reference} ({params[1]:,}); "
          f"{args.num_videos} held-out videos, seed {args.seed}; {time.time() - t0:.0f} s")
    print(res.summary())
    print(f"mean over these timesteps: model {np.mean(res.model_mse):.5f}, reference {np.mean(res.reference_mse):.5f} "
          f"({10 * np.log10(np.mean(res.model_mse) / np.mean(res.reference_mse)):+.2f} dB)")


if __name__ == "__main__":
    main()
