#!/usr/bin/env bash
# One timed round of training the default model's successor on a GPU machine, then its ε-MSE against the default.
#
#   bash scripts/gpu_round.sh RESULT_DIR [MINUTES] [SOURCE] [BLOCK_CHANNELS]
#
# Starts from SOURCE (default data/candidate_model, the 7.5 M network), gives it self-attention along frames after
# every block of levels 0 and 1 (output projections at zero: the same ε̂ at the start) and, when BLOCK_CHANNELS is
# wider than SOURCE's, widens it too; trains MINUTES (default 8) of batch 64 on `cuda` with the GPU rendering the
# data (12 worker processes draw its parameters), lr 3e-4 annealed to 3e-5, and exports in float16. Then compares
# its ε-MSE with data/default_model's on 256 held-out videos (scripts/compare_denoisers.py, on the CPUs). Leaves in
# RESULT_DIR: model/ (the exported folder), model.tar (the same, one file), train.log and compare.log; the
# checkpoint in RESULT_DIR/ckpt. Back on a CPU machine: copy model/ to data/candidate_model_<date> and run
# scripts/model_card.py on it (see README, "Where it stands").
#
# GUIDE_MINUTES=3 (default 0: skipped) then also trains a small guide network for autoguidance from scratch (0.58 M
# parameters, --block-channels 16,32,48, the default's data, normaliser and v-weighting) for that many minutes into
# RESULT_DIR/guide (and guide.tar), and runs part 1 of the gate with it at the tuning seed 930,000,000 on the CPUs
# (scripts/autoguidance_gate.py --guide RESULT_DIR/guide/unet --scales 1,1.15,1.5; gate.log): whether a guide this
# small, trained longer, guides as well as the step-1,993 network (README, "Autoguidance": trained for 2,743 steps on
# 2 CPU cores it did not, and its best w there was 1.15, not 1.5).
#
# Needs torch with CUDA; diffusers and importlib_metadata are installed from ./.whl when missing (no network:
# `pip download diffusers importlib_metadata -d .whl` beforehand on a machine that has one).
set -euo pipefail
result=${1:?usage: bash scripts/gpu_round.sh RESULT_DIR [MINUTES] [SOURCE] [BLOCK_CHANNELS]}
minutes=${2:-8}
source=${3:-data/candidate_model}
guide_minutes=${GUIDE_MINUTES:-0}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
python - "$minutes" "$source" "$guide_minutes" <<'EOF'
import json, sys
minutes, source, guide_minutes = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    if float(minutes) <= 0:
        raise ValueError
except ValueError:
    sys.exit(f"MINUTES must be a positive number; got {minutes!r}")
try:
    if not float(guide_minutes) >= 0:
        raise ValueError
except ValueError:
    sys.exit(f"GUIDE_MINUTES must be a number >= 0 (0: no guide); got {guide_minutes!r}")
try:
    json.load(open(f"{source}/training_log.json"))
except OSError:
    sys.exit(f"SOURCE {source!r} holds no exported model (no training_log.json); give a model folder such as data/default_model")
EOF
if ! python -c "import diffusers" 2>/dev/null; then
  pip install --quiet --no-index --find-links .whl diffusers importlib_metadata
fi
python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: scripts/gpu_round.sh trains on a GPU; on CPUs use scripts/train_default_model.py')"
read -r wall channels < <(python - "$source" <<'EOF'
import json, sys
log = json.load(open(f"{sys.argv[1]}/training_log.json"))
print(log["wall_time_s"] / 60, ",".join(str(c) for c in log["model_config"]["block_channels"]))
EOF
)
channels=${4:-$channels}
budget=$(python -c "print(round($wall + $minutes, 2))")  # --time-budget-min is the run's total, the source's included
mkdir -p "$result"
python scripts/train_default_model.py --out "$result/model" --ckpt-dir "$result/ckpt" --widen-from "$source" \
  --block-channels "$channels" --temporal-attention 0,1 --device cuda --batch-size 64 --data-workers 12 \
  --lr 3e-4 --lr-end 3e-5 --ckpt-every 120 --export-dtype float16 --time-budget-min "$budget" 2>&1 | tee "$result/train.log"
tar -cf "$result/model.tar" -C "$result" model
python scripts/compare_denoisers.py --model "$result/model" --threads "$(nproc)" 2>&1 | tee "$result/compare.log"
if python -c "import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)" "$guide_minutes"; then
  python scripts/train_default_model.py --out "$result/guide" --ckpt-dir "$result/guide_ckpt" --fresh \
    --block-channels 16,32,48 --loss-weighting v --device cuda --batch-size 64 --data-workers 12 --lr 1e-3 \
    --ckpt-every 120 --export-dtype float16 --time-budget-min "$guide_minutes" 2>&1 | tee "$result/guide_train.log"
  tar -cf "$result/guide.tar" -C "$result" guide
  python scripts/autoguidance_gate.py --guide "$result/guide/unet" --scales 1,1.15,1.5 --seeds 930000000 \
    --json "$result/gate.json" 2>&1 | tee "$result/gate.log"
fi
