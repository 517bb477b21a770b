#!/usr/bin/env python
"""Train freeinit_lab's embedded default video diffusion model (one command, resumable).

    python scripts/train_default_model.py                       # defaults used for data/default_model/
    python scripts/train_default_model.py --max-steps 200 --out /tmp/smoke --ckpt-dir /tmp/smoke_ckpt

What it does
------------
* Data: :func:`freeinit_lab.data.dead_leaves_videos` (procedural dead-leaves videos with a panning camera and
  moving leaves), generated on the fly. Step ``s`` uses the batch drawn with seed ``data_seed_base + s``, so
  training data never overlaps the evidence seeds (>= 900_000_000) and a resumed run sees the same data.
* Objective: ε-prediction MSE with the Stable-Diffusion scaled-linear DDPM schedule (β 0.00085 → 0.012, 1000
  steps), timesteps uniform in 0..999, ``z_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε``.
* Model: :class:`freeinit_lab.models.TinyVideoUNet`; AdamW, linear warm-up, gradient clipping; an EMA copy of
  the weights is what gets exported.
* Checkpoints (model, EMA, optimiser, step, loss history) go to ``--ckpt-dir`` every ``--ckpt-every`` seconds;
  the run resumes from there automatically. Each checkpoint also exports the EMA weights as a diffusers
  pipeline folder (``--out``: ``model_index.json``, ``unet/`` safetensors, ``scheduler/``) plus
  ``training_log.json`` (seed, config, generator version, steps, wall time, loss curve).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

# Let OpenMP threads sleep instead of spin-waiting: on an oversubscribed machine (other jobs on the same cores)
# spinning made 2-thread steps 5-20x slower here. Must be set before torch loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from freeinit_lab.data import GENERATOR_VERSION, DeadLeavesConfig, dead_leaves_videos  # noqa: E402
from freeinit_lab.models import TinyVideoUNet  # noqa: E402


def make_scheduler():
    from freeinit_lab.pipelines import default_scheduler

    return default_scheduler()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "data" / "default_model"), help="exported pipeline folder")
    p.add_argument("--ckpt-dir", default=str(ROOT / "runs" / "train_default_model"), help="resumable checkpoints")
    p.add_argument("--seed", type=int, default=0, help="seed of the weight init and of the noise/timestep draws")
    p.add_argument("--data-seed-base", type=int, default=0, help="step s trains on dead_leaves seed base+s")
    p.add_argument("--max-steps", type=int, default=20000)
    p.add_argument("--time-budget-min", type=float, default=float("inf"), help="stop after this many minutes")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--ckpt-every", type=float, default=240.0, help="seconds between checkpoints/exports")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--block-channels", default="32,64,96")
    p.add_argument("--layers-per-block", type=int, default=1)
    p.add_argument("--log-every", type=int, default=25)
    return p.parse_args(argv)


def export(out: Path, ema: TinyVideoUNet, meta: dict) -> None:
    from freeinit_lab.pipelines import TinyVideoPipeline

    out.mkdir(parents=True, exist_ok=True)
    pipe = TinyVideoPipeline(unet=ema, scheduler=make_scheduler())
    pipe.save_pretrained(out, safe_serialization=True)
    tmp = out / "training_log.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out / "training_log.json")


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out, ckdir = Path(args.out), Path(args.ckpt_dir)
    ckdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = ckdir / "checkpoint.pt"

    model_cfg = dict(
        in_channels=3, out_channels=3,
        block_channels=tuple(int(c) for c in args.block_channels.split(",")),
        layers_per_block=args.layers_per_block, sample_size=args.size, num_frames=args.frames,
    )
    torch.manual_seed(args.seed)
    model = TinyVideoUNet(**model_cfg)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    sched = make_scheduler()
    abar = sched.alphas_cumprod.float()
    data_cfg = DeadLeavesConfig()
    step, history, wall = 0, [], 0.0
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if ck["model_config"] != model_cfg:
            raise SystemExit(f"checkpoint {ckpt_path} has model config {ck['model_config']}, not {model_cfg}; "
                             "use another --ckpt-dir or delete it")
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        step, history, wall = ck["step"], ck["history"], ck["wall_s"]
        print(f"resumed from {ckpt_path} at step {step}", flush=True)

    n_params = sum(p.numel() for p in model.parameters())
    print(f"TinyVideoUNet {n_params / 1e6:.3f} M params, config {model_cfg}", flush=True)

    def meta():
        return dict(
            seed=args.seed, data_seed_base=args.data_seed_base, data_generator=GENERATOR_VERSION,
            data_config=dict(data_cfg), frames=args.frames, height=args.size, width=args.size,
            model_config={k: list(v) if isinstance(v, tuple) else v for k, v in model_cfg.items()},
            num_parameters=n_params, steps=step, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
            ema_decay=args.ema_decay, objective="epsilon MSE, t ~ U{0..999}", scheduler=dict(sched.config),
            wall_time_s=round(wall, 1), threads=args.threads, torch=torch.__version__,
            loss_curve=dict(step=[h[0] for h in history], loss=[h[1] for h in history]),
            command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        )

    def checkpoint():
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(dict(model=model.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(), step=step,
                        history=history, wall_s=wall, model_config=model_cfg), tmp)
        os.replace(tmp, ckpt_path)
        export(out, ema, meta())
        print(f"checkpoint + export at step {step} ({wall / 60:.1f} min)", flush=True)

    t_start = time.time()
    wall0 = wall
    last_ck = time.time()
    run_loss, run_n = 0.0, 0
    model.train()
    while step < args.max_steps and wall < args.time_budget_min * 60:
        g = torch.Generator().manual_seed(1_000_003 * args.seed + step)
        x0 = dead_leaves_videos(args.batch_size, args.frames, args.size, seed=args.data_seed_base + step,
                                config=data_cfg)
        t = torch.randint(0, len(abar), (args.batch_size,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        a = abar[t].sqrt().view(-1, 1, 1, 1, 1)
        b = (1 - abar[t]).sqrt().view(-1, 1, 1, 1, 1)
        zt = a * x0 + b * eps
        lr = args.lr * min(1.0, (step + 1) / args.warmup)
        for pg in opt.param_groups:
            pg["lr"] = lr
        loss = torch.nn.functional.mse_loss(model(zt, t).sample, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(args.ema_decay, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - d)
        step += 1
        run_loss += loss.item()
        run_n += 1
        wall = wall0 + time.time() - t_start
        if step % args.log_every == 0:
            history.append((step, run_loss / run_n))
            print(f"step {step} loss {run_loss / run_n:.4f} lr {lr:.2e} {wall / step if step else 0:.2f}s/step "
                  f"wall {wall / 60:.1f} min", flush=True)
            run_loss, run_n = 0.0, 0
        if time.time() - last_ck > args.ckpt_every:
            checkpoint()
            last_ck = time.time()
    checkpoint()
    print("done", flush=True)


if __name__ == "__main__":
    main()
