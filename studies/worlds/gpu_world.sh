#!/usr/bin/env bash
# The prepared run for a lent GPU machine (issue 30): record arena play on every core, encode it on the GPU,
# train a world on for a fixed time (by default the bundled world, with teacher forcing; INIT names another
# folder, such as a world in training, and INIT= with CONFIG starts from scratch), and write the exported
# world under $OUT in parts small enough to come back. Evaluate it afterwards here, on the CPU:
#   cat $FILES_AT/world.tar.part* | tar -x -C runs/ && waypoint-gym evaluate-world runs/gpu_world --out runs/eval_gpu
#
# The machine has torch but not gymnasium: fetch its wheels here once (into the ignored .whl/),
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#       gymnasium==1.4.0 farama-notifications==0.0.4
# then run it with the device tool: command `bash studies/worlds/gpu_world.sh`, carry [".whl"], timeout 600.
# On a CPU, for a check of the whole path:
#   PATH=$PWD/.venv/bin:$PATH OUT=/tmp/gpu_out DEVICE=cpu SEGMENTS=64 WORKERS=2 TRAIN_SECONDS=20 BATCH=4 \
#       bash studies/worlds/gpu_world.sh   (2 min; the script calls python3, which must have torch)
# A world in training goes on from its committed weights on its own schedule, without teacher forcing:
#   INIT=studies/worlds/p2_wip TEACHER_FORCING=0 LR=4e-4 bash studies/worlds/gpu_world.sh
# EXTRA adds training options, such as the discriminator that judges the world's own open loop, the lead that
# moved gate 3's detail row most on the CPU but had too few steps there (docs/lab/2026-12-07-judging-the-open-loop.md),
# with still clips and predicted context, without which a discriminator's world fills a still view with grain
# (docs/lab/2026-12-07-a-world-that-stands-still.md):
#   EXTRA="--adversarial-weight 0.3 --adversarial-start 300 --adversarial-dreams 16 --dream-frames 10
#          --adversarial-actions --still-clips 0.25 --predicted-context 0.5" bash studies/worlds/gpu_world.sh
set -euo pipefail
OUT=${OUT:?set OUT to the folder to write}
DEVICE=${DEVICE:-cuda}
SEGMENTS=${SEGMENTS:-12000}       # 48-frame segments to record (the CPU runs used 3,328)
WORKERS=${WORKERS:-16}            # processes recording chunks
TRAIN_SECONDS=${TRAIN_SECONDS:-330}
BATCH=${BATCH:-64}                # clips a step (the CPU runs used 12)
LR=${LR:-2e-4}                    # the CPU fine-tune used 1.5e-4 with 12-clip batches
INIT=${INIT-waypoint_gym/assets/default_world}  # empty: from scratch, on CONFIG
CONFIG=${CONFIG:-${INIT:?set CONFIG when INIT is empty}/config.yaml}
TEACHER_FORCING=${TEACHER_FORCING:-1}  # 0: diffusion forcing with 90% clean-context clips, as a run from scratch
COMPILE=${COMPILE:-1}             # torch.compile the training pass; dropped if the probe fails with it
EXTRA=${EXTRA:-}                  # more training options, split on spaces
WORK=${WORK:-/tmp/gpu_world}
AE=waypoint_gym/assets/default_world/autoencoder

if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
cli() { python3 -m waypoint_gym.cli "$@"; }
stamp() { echo "[$(date +%T)] $*" | tee -a "$OUT/log.txt"; }
mkdir -p "$OUT" "$WORK"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/log.txt"

stamp "collect $SEGMENTS segments with $WORKERS workers"
cli train collect --out "$WORK/data" --segments "$SEGMENTS" --segment-len 48 --envs 32 --idle-prob 0.04 \
    --workers "$WORKERS" > "$WORK/collect.json" 2> "$WORK/collect.err" || { tail -n 20 "$WORK/collect.err"; exit 1; }
stamp "encode"
cli train encode --data "$WORK/data" --autoencoder "$AE" --out "$WORK/latents.npy" --device "$DEVICE" \
    2> "$WORK/encode.err" || { tail -n 20 "$WORK/encode.err"; exit 1; }

# The same options for the probe and the run; the run's cosine schedule is sized to the steps the probe's
# speed fits in TRAIN_SECONDS, so it ends with its learning rate decayed.
OPTS=(--config "$CONFIG" --loss x0 --batch-size "$BATCH" --clip-frames 8 --lr "$LR" --device "$DEVICE"
      --autoencoder "$AE" --reward-head "${INIT:-waypoint_gym/assets/default_world}/reward_head")
[ -n "$INIT" ] && OPTS+=(--init "$INIT")
if [ "$TEACHER_FORCING" = 1 ]; then OPTS+=(--teacher-forcing); else OPTS+=(--clean-context-prob 0.9); fi
read -r -a MORE <<< "$EXTRA"
OPTS+=("${MORE[@]}")
[ "$COMPILE" = 1 ] && OPTS+=(--compile)
train() {
  cli train world-model --data "$WORK/data" --latents "$WORK/latents.npy" "${OPTS[@]}" \
      --default-prompt "a mossy stone dungeon" "$@"
}
stamp "probe the speed of a step: ${OPTS[*]}"
if ! train --steps 75 --run "$WORK/probe" > /dev/null 2> "$WORK/probe.err"; then
  tail -n 20 "$WORK/probe.err" | tee -a "$OUT/log.txt"
  [ "$COMPILE" = 1 ] || exit 1
  stamp "the probe failed; again without --compile"
  unset 'OPTS[${#OPTS[@]}-1]'
  rm -rf "$WORK/probe"
  train --steps 75 --run "$WORK/probe" > /dev/null 2> "$WORK/probe.err" || { tail -n 20 "$WORK/probe.err"; exit 1; }
fi
STEPS=$(python3 - "$WORK/probe/log.jsonl" "$TRAIN_SECONDS" <<'EOF'
import json, sys
log = [json.loads(line) for line in open(sys.argv[1])]
rate = (log[-1]["step"] - log[0]["step"]) / (log[-1]["s"] - log[0]["s"])  # steps/s after the first 25
print(int(rate * float(sys.argv[2])))
EOF
)
stamp "train $STEPS steps of $BATCH clips"
train --steps "$STEPS" --run "$WORK/run" --time-limit $((TRAIN_SECONDS + 60)) --export "$WORK/gpu_world" \
    > "$OUT/train_report.json" 2> "$WORK/train.err" || { tail -n 20 "$WORK/train.err"; exit 1; }
cp "$WORK/run/log.jsonl" "$OUT/train_log.jsonl"
tr '\r' '\n' < "$WORK/train.err" | grep -v '^$' | tail -n 3 >> "$OUT/log.txt" || true

stamp "pack the world"
tar -C "$WORK" -cf "$WORK/world.tar" gpu_world
split -b 15M -d "$WORK/world.tar" "$OUT/world.tar.part"
ls -la "$OUT" | tee -a "$OUT/log.txt"
stamp "done"
