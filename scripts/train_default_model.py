#!/usr/bin/env python
"""Train freeinit_lab's embedded default video diffusion model (one command, resumable, for the background).

    nohup python scripts/train_default_model.py --out data/candidate_model --time-budget-min 120 > train.log &
    python scripts/train_default_model.py --max-steps 20 --out /tmp/smoke --ckpt-dir /tmp/smoke_ckpt   # smoke
    kill -TERM <pid>    # stop early: the run finishes its step, then checkpoints and exports before it exits

What it does
------------
* Data: :func:`freeinit_lab.embedded.world.subject_videos` (``--data subjects-v1``: a few persistent, occluding subjects
  over a panned ``1/f`` background; 16 frames × 32 × 32 by default), generated on the fly (on ``--device``).
  Step ``s`` trains on the batch drawn with seed ``data_seed_base + s``, so a resumed run sees the same data and
  training never overlaps the evaluation seeds (>= 900_000_000). ``--data dead-leaves-v1`` reproduces the
  previous default's data (8 × 16 × 16). ``--render device`` (the default off the CPU) has the ``--data-workers``
  processes draw only each batch's random parameters and renders them on ``--device``: the same videos, with the
  expensive part on the GPU.
* Normalisation: a :class:`~freeinit_lab.embedded.pipelines.ChannelNormalizer` (per-channel mean and standard deviation)
  is fitted once on ``--norm-videos`` videos from seeds 800_000_000 + i, stored in the checkpoint and exported
  as ``normalizer/``; the model is trained on ``z_0 = (x − shift) / scale`` (unit variance per channel, as
  Stable Diffusion's scaled VAE latents).
* Objective: ε-prediction with the Stable-Diffusion scaled-linear DDPM schedule (β 0.00085 → 0.012, 1000
  steps), ``t ~ U{0..999}``, ``z_t = sqrt(ᾱ_t) z_0 + sqrt(1 − ᾱ_t) ε``, and the loss weighting
  ``--loss-weighting`` (:func:`loss_weights`): ``epsilon`` is the plain ε-MSE; ``v`` weights each clip's ε-MSE by
  ``w(t) = (1/ᾱ_t) / mean_t(1/ᾱ_t)``, which is the v-prediction MSE ``|v̂ − v|² = |ε̂ − ε|² / ᾱ_t`` (Salimans &
  Ho 2022) rescaled to mean weight 1. Plain ε-MSE under-weights the noisiest steps, where an error in ε̂ is an
  error ``b_t / a_t`` (≈ 15 at t = 999) times larger in the implied ``x̂_0``: the steps that set a sample's
  low-frequency layout. A run keeps the weighting it was started or last resumed with unless the flag is given;
  the logged loss curve is always the plain ε-MSE, so sessions stay comparable. ``--lr`` and ``--batch-size``
  apply to the session they are given in (a resumed run may cool down with a lower ``--lr``); each session's
  values are in ``training_log.json["sessions"]``.
* Model: :class:`freeinit_lab.embedded.models.TinyVideoUNet` with a space-to-depth stem (``--space-to-depth 2``); AdamW,
  linear warm-up over ``--warmup`` steps (again whenever the optimiser starts afresh), gradient clipping; an EMA
  copy of the weights is what gets exported. ``--lr-end`` anneals the learning rate log-linearly from ``--lr`` to
  it over the session's time budget (:func:`session_lr`). The noise and timesteps of step ``s`` are drawn from a
  generator seeded with ``(seed, s)`` on the training device.
* Resuming: from ``--ckpt-dir/checkpoint.pt`` when present (model, EMA, optimiser, step, history) and it is the
  run exported in ``--out`` (:func:`exported_elsewhere`; the default ``--ckpt-dir`` is the same for every
  ``--out``, so a checkpoint of a run exported elsewhere is refused rather than written over ``--out``); otherwise
  from the exported folder ``--out`` when its ``training_log.json`` has the same model and data configuration
  (EMA weights become both the model and the EMA; the optimiser starts afresh), so a new session continues from
  the committed weights. ``--fresh`` ignores both.
* Growing: ``--widen-from FOLDER --temporal-attention 0,1`` (the folder's ``--block-channels``) starts a run from
  the folder's network with self-attention along frames added after every block of those levels
  (:func:`freeinit_lab.embedded.models.add_temporal_attention`, output projections at zero: the same function at
  the start), continuing the folder's run as widening does; ``widened_from["added_temporal_attention"]`` records it.
* Widening: ``--widen-from FOLDER --block-channels <k × the folder's>`` starts a run from the folder's trained
  network made ``k`` times wider (:func:`freeinit_lab.embedded.models.widen_video_unet`: the same function at the
  start, with random weight splits so the copies can grow apart) and continues the folder's step count, seeds,
  normaliser, loss curve and default sampler (:func:`widen_start`); ``training_log.json["widened_from"]`` records
  it.
* Exports every ``--ckpt-every`` seconds and at the end (the UNet's weights in ``--export-dtype``: float16 halves
  the folder; the default keeps the dtype already exported there): ``model_index.json``, ``unet/``, ``scheduler/``,
  ``normalizer/``, ``sampler.json`` (the default sampler) and ``training_log.json`` (data generator and
  configuration, normalisation, architecture, steps, wall time, hardware, loss curve). Prints clips per second.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path

# Let OpenMP threads sleep instead of spin-waiting when the machine is shared. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NORM_SEED_BASE = 800_000_000
DEFAULT_SAMPLER = dict(scheduler="DDIMScheduler", num_inference_steps=25, set_alpha_to_one=True,
                       timestep_spacing="linspace", eta=0.0)
LOSS_WEIGHTINGS = {"epsilon": "epsilon MSE, t ~ U{0..999}",
                   "v": "epsilon MSE weighted by (1/abar_t) / mean_t(1/abar_t) (= v-prediction MSE rescaled), "
                        "t ~ U{0..999}"}


def loss_weights(alphas_cumprod: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-timestep weights ``w(t)`` of the ε-MSE, mean 1 over ``t``: ``1`` for ``epsilon``;
    ``(1/ᾱ_t) / mean_t(1/ᾱ_t)`` for ``v`` (``|ε̂ − ε|² / ᾱ_t = |v̂ − v|²`` with ``v = a_t ε − b_t x_0``)."""
    if kind not in LOSS_WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {kind!r}; choose from {sorted(LOSS_WEIGHTINGS)}")
    ac = alphas_cumprod.double()
    w = torch.ones_like(ac) if kind == "epsilon" else 1.0 / ac
    return (w / w.mean()).float()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "data" / "default_model"), help="exported pipeline folder")
    p.add_argument("--ckpt-dir", default=str(ROOT / "runs" / "train_default_model"), help="resumable checkpoints")
    p.add_argument("--fresh", action="store_true", help="ignore checkpoint and exported weights; start anew")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the weight init and of the noise/timestep draws (default: the resumed run's, else 0)")
    p.add_argument("--data", default="subjects-v1", choices=["subjects-v1", "dead-leaves-v1"])
    p.add_argument("--data-seed-base", type=int, default=None,
                   help="step s trains on data seed base+s (default: the resumed run's, else 0)")
    p.add_argument("--norm-videos", type=int, default=1024, help="videos the normaliser is fitted on")
    p.add_argument("--max-steps", type=int, default=200_000)
    p.add_argument("--time-budget-min", type=float, default=float("inf"),
                   help="stop when the run's training wall time, summed over all its sessions (wall_time_s in "
                   "training_log.json), reaches this many minutes; a resumed run adds to its previous total")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-end", type=float, default=None,
                   help="anneal the learning rate log-linearly from --lr to this over the session's time budget "
                        "(needs --time-budget-min); default: constant --lr")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--ckpt-every", type=float, default=600.0, help="seconds between checkpoints/exports")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-workers", type=int, default=1, help="processes drawing batches ahead (0: in-line)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--render", choices=["worker", "device"], default=None,
                   help="where the training videos are rendered: 'worker' (in the --data-workers processes, on the "
                        "CPU) or 'device' (the workers draw only the random parameters, the main process renders them "
                        "on --device); default: worker on the CPU, device otherwise. Same videos either way")
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"],
                   help="bfloat16 autocast for the forward pass (weights, optimiser and loss stay float32): about "
                        "2x faster on CPUs with AMX/AVX512-BF16, but 30-50x slower on CPUs without them (AVX2 "
                        "only: 67 s against 1.3 s a step of the 2 M network, measured); 'auto' (default) uses it "
                        "on a CUDA device that supports it and on a CPU whose flags list avx512_bf16 or amx_bf16")
    p.add_argument("--export-dtype", choices=sorted(EXPORT_DTYPES), default=None,
                   help="dtype of the exported weights (training stays float32): float16 halves the folder (the "
                        "wide candidate fits a repository's file-size limit); default: the dtype of the weights "
                        "already exported in --out, else float32")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--space-to-depth", type=int, default=2)
    p.add_argument("--block-channels", default="32,64,96")
    p.add_argument("--layers-per-block", type=int, default=1)
    p.add_argument("--temporal-attention", default="",
                   help="comma-separated resolution levels (0 = full resolution) whose blocks are followed by "
                        "self-attention along frames (TinyVideoUNet temporal_attention); with --widen-from, levels "
                        "the folder's network lacks are added to it, starting at zero (add_temporal_attention)")
    p.add_argument("--widen-from", default=None,
                   help="start this run from the exported folder's network made wider (block channels a whole "
                        "multiple of the folder's), computing the same function (widen_video_unet)")
    p.add_argument("--widen-noise", type=float, default=0.1,
                   help="standard deviation of the random weight splits of --widen-from (breaks the copies' symmetry)")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--loss-weighting", choices=sorted(LOSS_WEIGHTINGS), default=None,
                   help="per-timestep weight of the ε-MSE (see the module docstring); default: the resumed run's, "
                        "else epsilon")
    args = p.parse_args(argv)
    if args.render is None:
        args.render = "worker" if args.device == "cpu" else "device"
    if args.render == "device" and args.data != "subjects-v1":
        p.error("--render device needs --data subjects-v1 (its parameters can be drawn apart from the rendering)")
    if args.lr_end is not None and not (0 < args.lr_end and args.time_budget_min < float("inf")):
        p.error("--lr-end needs a positive value and a finite --time-budget-min (the annealing runs over the "
                "session's time budget)")
    return args


def session_lr(lr: float, lr_end: float | None, fraction: float) -> float:
    """Learning rate after ``fraction`` ∈ [0, 1] of the session's time budget: ``lr`` when ``lr_end`` is None,
    else the log-linear anneal ``lr · (lr_end / lr) ** fraction`` (``lr`` at the start, ``lr_end`` at the end)."""
    if lr_end is None:
        return lr
    f = min(max(float(fraction), 0.0), 1.0)
    return lr * (lr_end / lr) ** f


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 autocast computes natively on ``device``: a CUDA device that supports it, or a CPU whose
    flags (``/proc/cpuinfo``) list ``avx512_bf16`` or ``amx_bf16``. Elsewhere torch emulates bfloat16 through
    float32 conversions, which made a training step 30-50x slower than float32 on an AVX2-only CPU."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_amp(requested: str, device: torch.device) -> str:
    """``--amp``'s value for this run: ``auto`` becomes ``bf16`` where :func:`native_bf16` holds, else ``off``."""
    if requested != "auto":
        return requested
    return "bf16" if native_bf16(device) else "off"


def draw_batch(kind: str, batch: int, frames: int, size: int, seed: int, device: str = "cpu") -> torch.Tensor:
    """Display-space training videos of data kind ``kind`` for one step."""
    if kind == "dead-leaves-v1":
        from freeinit_lab.embedded.data import dead_leaves_videos

        return dead_leaves_videos(batch, frames, size, seed=seed).to(device)
    from freeinit_lab.embedded.world import subject_videos

    return subject_videos(batch, frames, size, seed=seed, version=kind, device=device)


class _Batches(torch.utils.data.IterableDataset):
    """Batches for steps ``start, start + 1, …`` (each a function of its step only).

    With ``params_only`` it yields the random parameters of the batch (:func:`subject_parameters`), to be
    rendered by the consumer. Worker ``i`` of ``n`` makes the batches of steps ``start + i, start + i + n, …``; a
    DataLoader hands them out in worker order, so the steps arrive in order."""

    def __init__(self, kind, batch, frames, size, seed_base, start, params_only=False):
        self.args = (kind, batch, frames, size)
        self.seed_base, self.start, self.params_only = seed_base, start, params_only

    def __iter__(self):
        torch.set_num_threads(1)
        info = torch.utils.data.get_worker_info()
        i, n = (0, 1) if info is None else (info.id, info.num_workers)
        from freeinit_lab.embedded.world import subject_parameters

        kind, batch, frames, size = self.args
        step = self.start + i
        while True:
            if self.params_only:
                yield step, subject_parameters(batch, frames, size, seed=self.seed_base + step, version=kind)
            else:
                yield step, draw_batch(*self.args, seed=self.seed_base + step)
            step += n


def batches(args, start: int):
    """Iterator of ``(step, x)`` with ``x`` display-space videos (on the CPU with ``--render worker``, on
    ``--device`` with ``--render device``; the training loop moves them to ``--device``).

    ``--render worker``: videos drawn and rendered ahead in ``--data-workers`` spawned processes (or in line with
    0). ``--render device``: the processes draw only the random parameters and the videos are rendered here on
    ``--device`` (a GPU renders far faster than the CPU workers could)."""
    params_only = args.render == "device"
    ds = _Batches(args.data, args.batch_size, args.frames, args.size, args.data_seed_base, start, params_only)
    if args.data_workers <= 0:
        it = iter(ds)
    else:
        it = iter(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=args.data_workers,
                                              prefetch_factor=4 if args.render == "worker" else 2,
                                              multiprocessing_context="spawn", persistent_workers=False))
    if not params_only:
        return it
    from freeinit_lab.embedded.world import render_subjects

    return ((step, render_subjects(p, device=args.device, chunk_size=args.batch_size)) for step, p in it)


def fit_normalizer(args):
    from freeinit_lab.embedded.pipelines import ChannelNormalizer

    if args.data == "dead-leaves-v1":
        return None
    vids = [draw_batch(args.data, 64, args.frames, args.size, NORM_SEED_BASE + i, args.device).cpu()
            for i in range(max(1, args.norm_videos // 64))]
    return ChannelNormalizer.fit(torch.cat(vids))


def make_scheduler(sampler: dict = DEFAULT_SAMPLER):
    """The scheduler of a sampler description (any the loader accepts, e.g. the UniPC one a model card chose)."""
    from freeinit_lab.embedded.pipelines import sampler_scheduler

    return sampler_scheduler(sampler)


EXPORT_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def exported_dtype(out: Path) -> str | None:
    """The dtype name (``float32``/``float16``) of the UNet weights exported in ``out``, or ``None`` when there are
    none (read from the safetensors header, no tensor loaded)."""
    from safetensors import safe_open

    path = out / "unet" / "diffusion_pytorch_model.safetensors"
    if not path.exists():
        return None
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        if not keys:
            return None
        dtype = f.get_slice(keys[0]).get_dtype()
    return {"F32": "float32", "F16": "float16"}.get(dtype, dtype)


def export(out: Path, ema, normalizer, meta: dict, dtype: str = "float32") -> None:
    """Write the pipeline folder with the UNet's weights in ``dtype`` (``float32`` or ``float16``; the loader
    computes in float32 either way); a sampler already chosen there (scripts/model_card.py) is kept."""
    from freeinit_lab.embedded.pipelines import TinyVideoPipeline, _sampler_defaults

    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"export dtype {dtype!r}: choose one of {sorted(EXPORT_DTYPES)}")
    # nn.Module.to, not diffusers' override: it warns about modules to keep in float32, and this model has none
    ema = torch.nn.Module.to(ema, EXPORT_DTYPES[dtype])
    out.mkdir(parents=True, exist_ok=True)
    sampler = json.loads((out / "sampler.json").read_text()) if (out / "sampler.json").exists() else DEFAULT_SAMPLER
    # model_index.json's default_* from the same description as sampler.json, as store_sampler writes them
    pipe = TinyVideoPipeline(unet=ema, scheduler=make_scheduler(sampler), normalizer=normalizer,
                             **_sampler_defaults(sampler))
    pipe.save_pretrained(out, safe_serialization=True)
    if normalizer is not None:
        normalizer.save_pretrained(out / "normalizer", safe_serialization=True)
    meta = dict(meta, default_sampler=sampler)
    for name, obj in (("sampler.json", sampler), ("training_log.json", meta)):
        tmp = out / (name + ".tmp")
        tmp.write_text(json.dumps(obj, indent=1))
        os.replace(tmp, out / name)


def exported_elsewhere(ck: dict, log: dict) -> str | None:
    """Why checkpoint ``ck`` is not the run whose export ``log`` (``training_log.json``) is, or ``None`` when it is.

    A run checkpoints and then exports, so its export is the checkpoint at some step ``s_export <= s_ckpt``: the
    export's loss curve is the checkpoint's history up to ``s_export`` and its sessions (start step and start
    time) are the checkpoint's first ones. An export ahead of the checkpoint, or with another loss curve or
    sessions, belongs to another run (e.g. one trained into another ``--out`` with the same ``--ckpt-dir``)."""
    steps = int(log.get("steps", 0))
    if steps > int(ck["step"]):
        return f"the folder holds step {steps}, ahead of the checkpoint"
    curve = log.get("loss_curve") or {}
    logged = [(int(s), float(v)) for s, v in zip(curve.get("step", []), curve.get("loss", []))]
    if logged != [(int(s), float(v)) for s, v in ck.get("history", [])[:len(logged)]]:
        return "the folder's loss curve is not the checkpoint's"
    mine = [(x.get("start_step"), x.get("started")) for x in ck.get("sessions", [])]
    theirs = [(x.get("start_step"), x.get("started")) for x in log.get("sessions") or []]
    if mine[:len(theirs)] != theirs:
        return "the folder's training sessions are not the checkpoint's"
    return None


def _inherit_seeds(args, given: dict, stored: dict, where: str) -> None:
    """A resumed run keeps its ``--seed`` and ``--data-seed-base`` (step ``s`` trained on data seed
    ``data_seed_base + s``; the log records one value for all steps). Given ones that differ are refused: the
    log would say every step used the new value. A checkpoint from before these were stored takes the given ones."""
    for name in ("seed", "data_seed_base"):
        if name not in stored:
            continue
        if given[name] is not None and int(given[name]) != int(stored[name]):
            flag = "--" + name.replace("_", "-")
            raise SystemExit(f"{where} was trained with {flag} {stored[name]}, not {given[name]}: its log records one "
                             f"value for every step, so a resumed run keeps it; leave {flag} out, or start another "
                             "run (--fresh, another --out and --ckpt-dir)")
        setattr(args, name, int(stored[name]))


def load_normalizer(folder: Path):
    """The ``normalizer/`` of an exported folder, or None when it has none (``dead-leaves-v1`` runs); rebuilt from
    its numbers, so a later export does not record where it was loaded from."""
    from freeinit_lab.embedded.pipelines import ChannelNormalizer

    if not (folder / "normalizer").exists():
        return None
    loaded = ChannelNormalizer.from_pretrained(folder / "normalizer", local_files_only=True, low_cpu_mem_usage=False)
    return ChannelNormalizer(shift=list(loaded.config.shift), scale=list(loaded.config.scale))


def widen_start(args, given_seeds: dict, model_cfg: dict):
    """The start of a run widened from the exported folder ``--widen-from`` (:func:`widen_video_unet`).

    The folder's network must be this run's but for ``block_channels``, which must be a whole multiple ``k`` of
    its own, on the same data. The run continues the folder's step count, seeds, loss weighting, normaliser,
    loss curve and sessions (step ``s`` trains on data seed ``data_seed_base + s``, so the wide network sees
    batches its narrow one never did); the optimiser starts afresh. Returns ``(step, wall, history, sessions,
    weighting, normalizer, widened)``; ``widened`` says what was widened (and holds the wide ``state`` dict)."""
    from freeinit_lab.embedded.models import TinyVideoUNet, add_temporal_attention, widen_video_unet

    src = Path(args.widen_from)
    if not (src / "training_log.json").exists() or not (src / "unet").exists():
        raise SystemExit(f"--widen-from {src} is not an exported model folder (it needs training_log.json and unet/, "
                         "as this script writes them)")
    log = json.loads((src / "training_log.json").read_text())
    if log.get("data_generator") != args.data or (log.get("frames"), log.get("height")) != (args.frames, args.size):
        raise SystemExit(f"--widen-from {src} was trained on {log.get('data_generator')} at {log.get('frames')} frames "
                         f"x {log.get('height')} px, not {args.data} at {args.frames} x {args.size}: pass its --data, "
                         "--frames and --size")
    narrow, wide = list(log["model_config"]["block_channels"]), list(model_cfg["block_channels"])
    factor = wide[0] // narrow[0] if narrow and narrow[0] else 0
    grown = ("block_channels", "temporal_attention")
    same = {k: v for k, v in log["model_config"].items() if k not in grown} == \
        {k: v for k, v in model_cfg.items() if k not in grown}
    had, wants = (set(cfg.get("temporal_attention") or ()) for cfg in (log["model_config"], model_cfg))
    adds = sorted(wants - had)
    if not same or factor < 1 or len(wide) != len(narrow) or wide != [c * factor for c in narrow] \
            or not had <= wants or (factor == 1 and not adds) or (factor > 1 and had):
        raise SystemExit(f"--widen-from {src} has the model config {log['model_config']}; this run's {model_cfg} must "
                         "equal it but for --block-channels, a whole multiple (>= 2) of its "
                         f"{','.join(map(str, narrow))}, e.g. --block-channels {','.join(str(2 * c) for c in narrow)}, "
                         "and/or --temporal-attention levels it lacks (a network that has temporal attention is not "
                         "widened)")
    if args.data != "dead-leaves-v1" and not (src / "normalizer").exists():
        raise SystemExit(f"--widen-from {src} has no normalizer/: the wide run must train in the same model space")
    _inherit_seeds(args, given_seeds, log, f"{src}/training_log.json")
    unet = TinyVideoUNet.from_pretrained(src / "unet", local_files_only=True, low_cpu_mem_usage=False)
    g = torch.Generator().manual_seed(args.seed)
    if factor > 1:
        unet = widen_video_unet(unet, factor, split_noise=args.widen_noise, generator=g)
    if adds:
        torch.manual_seed(args.seed)  # the new layers' initial weights
        unet = add_temporal_attention(unet, adds)
    state = unet.state_dict()
    normalizer = load_normalizer(src)
    step = int(log["steps"])
    widened = dict(source=str(src), step=step, from_block_channels=narrow, factor=factor,
                   split_noise=args.widen_noise, split_seed=args.seed, state=state)
    if adds:
        widened["added_temporal_attention"] = adds
    history = list(zip(log["loss_curve"]["step"], log["loss_curve"]["loss"]))
    return (step, float(log["wall_time_s"]), history, log.get("sessions", []), log.get("loss_weighting", "epsilon"),
            normalizer, widened)


def main(argv=None) -> None:
    from freeinit_lab.embedded.models import TinyVideoUNet
    from freeinit_lab.embedded.pipelines import ChannelNormalizer

    args = parse_args(argv)
    given_seeds = {"seed": args.seed, "data_seed_base": args.data_seed_base}
    args.seed = 0 if args.seed is None else args.seed
    args.data_seed_base = 0 if args.data_seed_base is None else args.data_seed_base
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    args.amp = resolve_amp(args.amp, dev)
    out, ckdir = Path(args.out), Path(args.ckpt_dir)
    export_dtype = args.export_dtype or exported_dtype(out) or "float32"
    if export_dtype not in EXPORT_DTYPES:
        raise SystemExit(f"{out}/unet holds {export_dtype} weights; pass --export-dtype float32 or float16")
    ckdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = ckdir / "checkpoint.pt"
    from freeinit_lab.embedded.world import SubjectsConfig

    data_cfg = dict(SubjectsConfig()) if args.data.startswith("subjects-") else {}
    model_cfg = dict(
        in_channels=3, out_channels=3,
        block_channels=[int(c) for c in args.block_channels.split(",")],
        layers_per_block=args.layers_per_block, sample_size=args.size, num_frames=args.frames,
        space_to_depth=args.space_to_depth,
    )
    if args.temporal_attention:  # left out when not asked for, so earlier runs' logged configs still match
        model_cfg["temporal_attention"] = sorted({int(v) for v in args.temporal_attention.split(",")})
    torch.manual_seed(args.seed)
    model = TinyVideoUNet(**model_cfg)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    # on the device before the optimiser exists: its load_state_dict puts a resumed state where the parameters are
    model.to(dev)
    ema.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    step, history, wall, normalizer, sessions, weighting, widened = 0, [], 0.0, None, [], None, None
    resumed = "fresh"
    if ckpt_path.exists() and not args.fresh:
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if ck["model_config"] != model_cfg or ck.get("data") != args.data:
            raise SystemExit(f"checkpoint {ckpt_path} has model config {ck['model_config']} on {ck.get('data')}, "
                             f"not {model_cfg} on {args.data}; use another --ckpt-dir, --fresh, or delete it")
        if (out / "training_log.json").exists():
            other = exported_elsewhere(ck, json.loads((out / "training_log.json").read_text()))
            if other:
                raise SystemExit(
                    f"checkpoint {ckpt_path} (step {ck['step']}) is not the run exported in {out}: {other}. Resuming "
                    f"it would overwrite {out} with another run's weights. To continue the weights in {out}, pass a "
                    f"--ckpt-dir of its own (e.g. --ckpt-dir {out}_ckpt; the run then resumes from the export); to "
                    f"continue the checkpoint, pass the --out it was exported to; or delete {ckpt_path}")
        _inherit_seeds(args, given_seeds, ck, f"checkpoint {ckpt_path}")
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        step, history, wall = ck["step"], ck["history"], ck["wall_s"]
        sessions = ck.get("sessions", [])
        weighting = ck.get("loss_weighting", "epsilon")
        widened = ck.get("widened_from")
        normalizer = ChannelNormalizer(**ck["normalizer"]) if ck.get("normalizer") else None
        resumed = f"checkpoint {ckpt_path}"
    elif (out / "training_log.json").exists() and not args.fresh:
        log = json.loads((out / "training_log.json").read_text())
        if log.get("model_config") == model_cfg and log.get("data_generator") == args.data:
            _inherit_seeds(args, given_seeds, log, f"{out}/training_log.json")
            src = TinyVideoUNet.from_pretrained(out / "unet", local_files_only=True, low_cpu_mem_usage=False)
            model.load_state_dict(src.state_dict())
            ema.load_state_dict(src.state_dict())
            step, wall = int(log["steps"]), float(log["wall_time_s"])
            history = list(zip(log["loss_curve"]["step"], log["loss_curve"]["loss"]))
            sessions = log.get("sessions", [])
            weighting = log.get("loss_weighting", "epsilon")
            widened = log.get("widened_from")
            normalizer = load_normalizer(out)
            resumed = f"exported weights in {out} (optimiser restarts)"
        else:
            print(f"{out} holds another model or data configuration; starting fresh", flush=True)
    if args.widen_from:
        if resumed != "fresh":
            raise SystemExit(f"--widen-from starts a run, but this one would resume from {resumed}: leave --widen-from "
                             "out to continue it, or give it another --out and --ckpt-dir (or --fresh)")
        step, wall, history, sessions, weighting, normalizer, widened = widen_start(args, given_seeds, model_cfg)
        source_sampler = Path(args.widen_from) / "sampler.json"
        if source_sampler.exists() and not (out / "sampler.json").exists():  # the default sampler until a card chooses
            out.mkdir(parents=True, exist_ok=True)
            (out / "sampler.json").write_text(source_sampler.read_text())
        model.load_state_dict(widened.pop("state"))
        ema.load_state_dict(model.state_dict())
        grew = ([f"widened {widened['factor']}x ({widened['from_block_channels']} -> {model_cfg['block_channels']})"]
                if widened["factor"] > 1 else []) + \
            ([f"given temporal attention at levels {widened['added_temporal_attention']}"]
             if widened.get("added_temporal_attention") else [])
        resumed = f"{widened['source']} {' and '.join(grew)} at its step {step} (optimiser restarts)"
    if wall >= args.time_budget_min * 60:
        raise SystemExit(f"the run has trained {wall / 60:.1f} min in all (resumed from {resumed}), which already "
                         f"reaches --time-budget-min {args.time_budget_min:g}: the budget is the run's total; pass "
                         f"--time-budget-min {wall / 60 + args.time_budget_min:.1f} to train {args.time_budget_min:g} "
                         "minutes more")
    if normalizer is None and args.data != "dead-leaves-v1":
        t0 = time.time()
        normalizer = fit_normalizer(args)
        print(f"normaliser fitted on {args.norm_videos} videos in {time.time() - t0:.1f} s: shift "
              f"{[round(v, 4) for v in normalizer.config.shift]}, scale {[round(v, 4) for v in normalizer.config.scale]}",
              flush=True)
    if args.loss_weighting is not None and weighting is not None and args.loss_weighting != weighting:
        print(f"loss weighting changes from {weighting} to {args.loss_weighting} at step {step}", flush=True)
    weighting = args.loss_weighting or weighting or "epsilon"
    print(f"start at step {step} ({resumed}); loss weighting {weighting}", flush=True)
    sched = make_scheduler()
    abar = sched.alphas_cumprod.float().to(dev)
    weight = loss_weights(sched.alphas_cumprod, weighting).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"TinyVideoUNet {n_params / 1e6:.3f} M params, config {model_cfg}; bfloat16 autocast {args.amp}",
          flush=True)
    session = dict(start_step=step, started=time.strftime("%Y-%m-%dT%H:%M:%S"), threads=args.threads,
                   device=args.device, machine=f"{platform.machine()}, {os.cpu_count()} logical CPUs",
                   loss_weighting=weighting, lr=args.lr, batch_size=args.batch_size, lr_end=args.lr_end,
                   render=args.render, data_workers=args.data_workers, amp=args.amp)
    if dev.type == "cuda":
        session["machine"] += f", {torch.cuda.get_device_name(dev)}"
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    sessions = sessions + [session]

    def meta():
        return dict(
            seed=args.seed, data_seed_base=args.data_seed_base, data_generator=args.data, data_config=data_cfg,
            frames=args.frames, height=args.size, width=args.size,
            normalization=("identity" if normalizer is None else
                           dict(kind="per-channel shift/scale (mean, std of the training data)",
                                shift=list(normalizer.config.shift), scale=list(normalizer.config.scale),
                                fitted_on=f"{args.norm_videos} videos, seeds {NORM_SEED_BASE}+")),
            model_class="TinyVideoUNet", model_config=model_cfg, num_parameters=n_params, steps=step,
            batch_size=args.batch_size, amp=args.amp, lr=args.lr, warmup=args.warmup, ema_decay=args.ema_decay,
            objective=LOSS_WEIGHTINGS[weighting], loss_weighting=weighting,
            loss_curve_is="plain epsilon MSE (unweighted), mean over the logged steps", scheduler=dict(make_scheduler().config),
            default_sampler=DEFAULT_SAMPLER, wall_time_s=round(wall, 1), torch=torch.__version__,
            sessions=sessions, loss_curve=dict(step=[h[0] for h in history], loss=[h[1] for h in history]),
            command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]), export_dtype=export_dtype,
            **({} if widened is None else {"widened_from": widened}),
        )

    def checkpoint():
        session.update(end_step=step, wall_s_total=round(wall, 1))
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(dict(model=model.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(), step=step,
                        history=history, wall_s=wall, model_config=model_cfg, data=args.data, sessions=sessions,
                        seed=args.seed, data_seed_base=args.data_seed_base,
                        loss_weighting=weighting, widened_from=widened,
                        normalizer=None if normalizer is None else dict(shift=list(normalizer.config.shift),
                                                                        scale=list(normalizer.config.scale))),
                   tmp)
        os.replace(tmp, ckpt_path)
        export(out, copy.deepcopy(ema).cpu(), normalizer, meta(), export_dtype)
        print(f"checkpoint + export at step {step} ({wall / 60:.1f} min)", flush=True)

    norm = normalizer.to(dev) if normalizer is not None else None
    t_start, wall0, last_ck = time.time(), wall, time.time()
    warm_from = 0 if resumed.startswith("checkpoint") else step  # a fresh optimiser warms up again
    run_loss, run_n, t_log, n_log = 0.0, 0, time.time(), 0
    model.train()
    data = batches(args, step)
    stop = []  # SIGTERM / SIGINT end the run after the current step, with a last checkpoint and export

    def request_stop(signum, _frame):
        print(f"signal {signal.Signals(signum).name}: stopping after this step (checkpoint + export)", flush=True)
        stop.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)
    while step < args.max_steps and wall < args.time_budget_min * 60 and not stop:
        s_data, x = next(data)
        assert s_data == step, (s_data, step)
        x0 = norm.encode(x.to(dev)) if norm is not None else x.to(dev)
        # noise and timesteps: a function of (seed, step) on the training device (a CPU draw of a GPU-sized batch
        # would cost more than the step); the same seed gives the same run on the same kind of device
        g = torch.Generator(device=dev).manual_seed(1_000_003 * args.seed + step)
        t = torch.randint(0, len(abar), (args.batch_size,), generator=g, device=dev)
        eps = torch.randn(x0.shape, generator=g, device=dev)
        a = abar[t].sqrt().view(-1, 1, 1, 1, 1)
        b = (1 - abar[t]).sqrt().view(-1, 1, 1, 1, 1)
        zt = a * x0 + b * eps
        lr = session_lr(args.lr, args.lr_end, (wall - wall0) / max(args.time_budget_min * 60 - wall0, 1e-9))
        lr *= min(1.0, (step - warm_from + 1) / args.warmup)
        for pg in opt.param_groups:
            pg["lr"] = lr
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
            pred = model(zt, t).sample
        if weighting == "epsilon":
            loss = eps_mse = torch.nn.functional.mse_loss(pred.float(), eps)
        else:
            per_clip = (pred.float() - eps).pow(2).flatten(1).mean(1)
            eps_mse = per_clip.mean()
            loss = (weight[t] * per_clip).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(args.ema_decay, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - d)
        step += 1
        run_loss += eps_mse.item()
        run_n += 1
        n_log += args.batch_size
        wall = wall0 + time.time() - t_start
        if step % args.log_every == 0:
            history.append((step, run_loss / run_n))
            rate = n_log / max(time.time() - t_log, 1e-9)
            print(f"step {step} loss {run_loss / run_n:.4f} lr {lr:.2e} {rate:.1f} clips/s "
                  f"wall {wall / 60:.1f} min", flush=True)
            run_loss, run_n, t_log, n_log = 0.0, 0, time.time(), 0
        if time.time() - last_ck > args.ckpt_every:
            checkpoint()
            last_ck = time.time()
    del data  # last reference: the data workers shut down now, not noisily at interpreter exit
    checkpoint()
    print("done", flush=True)


if __name__ == "__main__":
    main()
