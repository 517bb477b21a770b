#!/usr/bin/env python
"""Fidelity report, sampler choice and model card of an exported default-model folder.

    python scripts/model_card.py --model data/candidate_model                     # card with the stored sampler
    python scripts/model_card.py --model data/candidate_model --choose-sampler    # also pick the default sampler

For each sampler it samples ``--num-videos`` videos (seeds never used in training or tuning: ``--seed`` >=
900_000_000) through the pipeline's own FreeInit-free path, with no filtering, and compares them in model space
with ``2 × num-videos`` held-out training-distribution videos (:func:`freeinit_lab.analysis.fidelity.fidelity_report`,
memorisation against real training batches). With ``--choose-sampler`` the sampler with the lowest two-sample
accuracy (ties: fewer steps) becomes the folder's ``sampler.json`` (and ``scheduler/``). Writes
``MODEL_CARD.md``, ``model_card.json`` and ``samples.png`` (training clips beside samples) into the folder.
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

SAMPLERS = {
    "ddim25": dict(scheduler="DDIMScheduler", num_inference_steps=25, set_alpha_to_one=True,
                   timestep_spacing="linspace", eta=0.0),
    "ddim50": dict(scheduler="DDIMScheduler", num_inference_steps=50, set_alpha_to_one=True,
                   timestep_spacing="linspace", eta=0.0),
    "ddim25_no_final_alpha": dict(scheduler="DDIMScheduler", num_inference_steps=25, set_alpha_to_one=False,
                                  timestep_spacing="linspace", eta=0.0),
}


def scheduler_for(sampler: dict):
    from freeinit_lab.embedded.pipelines import default_scheduler

    return default_scheduler(set_alpha_to_one=sampler["set_alpha_to_one"],
                             timestep_spacing=sampler["timestep_spacing"])


def sample(pipe, sampler: dict, n: int, seed: int, batch: int = 32) -> torch.Tensor:
    """``n`` model-space samples; video ``i`` from its own generator seeded ``seed + i``."""
    pipe.scheduler = scheduler_for(sampler)
    out = []
    for i0 in range(0, n, batch):
        gens = [torch.Generator().manual_seed(seed + i) for i in range(i0, min(n, i0 + batch))]
        out.append(pipe(batch_size=len(gens), generator=gens, output_type="latent",
                        num_inference_steps=sampler["num_inference_steps"], eta=sampler["eta"]).frames)
    return torch.cat(out)


def picture(path: Path, train: torch.Tensor, samples: torch.Tensor, normalizer, rows: int = 4, every: int = 3):
    """PNG: ``rows`` training clips (left block) beside ``rows`` samples (right block), every ``every``-th frame."""
    from PIL import Image

    def rgb(z):
        x = normalizer.decode(z) if normalizer is not None else z
        return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 4, 1).numpy()  # (n, f, h, w, 3)

    a, b = rgb(train[:rows]), rgb(samples[:rows])
    gap = np.full((a.shape[2], 4, 3), 255, np.uint8)
    lines = []
    for i in range(rows):
        left = np.concatenate(list(a[i, ::every]), axis=1)
        right = np.concatenate(list(b[i, ::every]), axis=1)
        lines.append(np.concatenate([left, gap, gap, right], axis=1))
        lines.append(np.full((2, lines[-1].shape[1], 3), 255, np.uint8))
    img = np.concatenate(lines[:-1], axis=0)
    Image.fromarray(img).resize((img.shape[1] * 3, img.shape[0] * 3), Image.NEAREST).save(path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "data" / "default_model"))
    p.add_argument("--num-videos", type=int, default=64)
    p.add_argument("--seed", type=int, default=910_000_000)
    p.add_argument("--choose-sampler", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.seed < 900_000_000:
        raise SystemExit("--seed must be >= 900_000_000 (seeds below are training data)")
    torch.set_num_threads(args.threads)
    from freeinit_lab.analysis.fidelity import fidelity_gate, fidelity_report
    from freeinit_lab.embedded.pipelines import default_training_videos, load_default_pipeline

    path = Path(args.model)
    log = json.loads((path / "training_log.json").read_text())
    pipe = load_default_pipeline(path)
    n = args.num_videos
    reference = default_training_videos(2 * n, seed=args.seed + 1, path=path)
    base = int(log.get("data_seed_base", 0))
    bs = int(log.get("batch_size", 16))
    training = torch.cat([default_training_videos(bs, seed=base + s, path=path)
                          for s in range(max(1, n // bs))])  # exactly the first training batches
    stored = json.loads((path / "sampler.json").read_text()) if (path / "sampler.json").exists() else None
    candidates = SAMPLERS if args.choose_sampler else {"stored": stored or SAMPLERS["ddim25"]}
    results = {}
    for name, smp in candidates.items():
        t0 = time.time()
        s = sample(pipe, smp, n, args.seed + 10 * n)
        dt = time.time() - t0
        rep = fidelity_report(s, reference, training=training, space="model space (per-channel unit variance)")
        gate = fidelity_gate(rep)
        results[name] = dict(sampler=smp, report=rep, gate=gate, seconds=dt, samples=s)
        print(f"[{name}] {dt:.0f} s\n{rep.summary()}\n  gate passed: {gate['passed']}", flush=True)
    best = min(results, key=lambda k: (results[k]["report"].accuracy, results[k]["sampler"]["num_inference_steps"]))
    chosen = results[best]
    if args.choose_sampler:
        (path / "sampler.json").write_text(json.dumps(chosen["sampler"], indent=1))
        scheduler_for(chosen["sampler"]).save_pretrained(path / "scheduler")
    picture(path / "samples.png", reference[:4], chosen["samples"], pipe.normalizer)
    rep, gate = chosen["report"], chosen["gate"]
    card = dict(
        model=str(path.name), data_generator=log.get("data_generator"), data_config=log.get("data_config"),
        video=dict(frames=log.get("frames"), height=log.get("height"), width=log.get("width"), channels=3),
        normalization=log.get("normalization"), architecture=dict(cls=log.get("model_class"),
                                                                 config=log.get("model_config"),
                                                                 parameters=log.get("num_parameters")),
        training=dict(steps=log.get("steps"), batch_size=log.get("batch_size"), lr=log.get("lr"),
                      amp=log.get("amp"), wall_time_s=log.get("wall_time_s"), sessions=log.get("sessions"),
                      torch=log.get("torch"),
                      final_loss=(log["loss_curve"]["loss"][-1] if log.get("loss_curve", {}).get("loss") else None)),
        sampler=chosen["sampler"], sampler_candidates={k: dict(sampler=v["sampler"], accuracy=v["report"].accuracy,
                                                               gate_passed=v["gate"]["passed"],
                                                               seconds=round(v["seconds"], 1))
                                                       for k, v in results.items()},
        evaluation=dict(seed=args.seed, num_videos=n, reference_videos=2 * n, space=rep.space),
        fidelity=rep.to_dict(), gate={k: (list(v) if isinstance(v, tuple) else v) for k, v in gate.items()},
    )
    (path / "model_card.json").write_text(json.dumps(card, indent=1, default=float))
    g = gate
    rows = "\n".join(
        f"| {k} | {v[1]:.3f} | {'≤' if k in ('two_sample_accuracy', 'memorisation') or 'db' in k else '≥'} "
        f"{v[2]} | {'pass' if v[0] else 'FAIL'} |" for k, v in g.items() if k != "passed")
    md = f"""# Model card: {path.name}

Embedded video diffusion model of freeinit_lab (generated by `scripts/model_card.py`; numbers also in
`model_card.json`).

- **Data**: `{log.get('data_generator')}` (`freeinit_lab.world.subject_videos`), {log.get('frames')} frames ×
  {log.get('height')} × {log.get('width')} RGB; configuration in `training_log.json`. Training step *s* uses the
  batch of seed `data_seed_base + s`; evaluation seeds are ≥ 900,000,000.
- **Normalisation**: model space = per-channel `(x − shift) / scale`, shift
  {[round(v, 4) for v in (log.get('normalization') or {}).get('shift', [])]}, scale
  {[round(v, 4) for v in (log.get('normalization') or {}).get('scale', [])]} (channel means and standard deviations
  of the training data), stored in `normalizer/` and undone by the pipeline when decoding.
- **Architecture**: {log.get('model_class')} {log.get('model_config')}, {log.get('num_parameters'):,} parameters.
- **Training**: {log.get('steps')} steps of batch {log.get('batch_size')} (ε-MSE, SD scaled-linear schedule,
  t ~ U{{0..999}}, AdamW lr {log.get('lr')}, EMA {log.get('ema_decay')}, autocast {log.get('amp')}),
  {(log.get('wall_time_s') or 0) / 3600:.2f} h wall in {len(log.get('sessions') or [])} session(s) on
  {(log.get('sessions') or [{}])[-1].get('machine', 'CPU')}, torch {log.get('torch')}.
- **Default sampler**: {chosen['sampler']} (chosen: {'lowest two-sample accuracy of ' + ', '.join(results) if args.choose_sampler else 'as stored'}).

## Fidelity (seed {args.seed}, {n} samples vs {n} held-out data videos; baseline = data vs data at the same size)

{rep.summary()}

| gate criterion | value | threshold | result |
|---|---|---|---|
{rows}

**Gate {'passed' if gate['passed'] else 'not passed'}.**

![training clips (left) beside samples (right), every 3rd frame](samples.png)

Left block: held-out training clips; right block: samples of the default sampler (frames 0, 3, 6, …).
"""
    (path / "MODEL_CARD.md").write_text(md)
    print(f"wrote {path / 'MODEL_CARD.md'}; chosen sampler {best}; gate passed: {gate['passed']}")


if __name__ == "__main__":
    main()
