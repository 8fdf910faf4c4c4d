#!/bin/bash
# PPO on SmolLM2-135M (issue: scale): time and peak memory of full fine-tuning against LoRA r = 8,
# and of 1 process against `torchrun --nproc_per_node 2` on the same global batch.
#   bash bench/scale.sh [STEPS]         (needs: pip install -e '.[smollm2]' torch==2.13.0)
# Prints one line per run: name, wall seconds, peak RSS of the largest process (MiB).
set -euo pipefail
STEPS=${1:-4}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/scale}
[ -f models/smollm2/config.json ] || $PY -m rlhfkit model import smollm2 --out models/smollm2
[ -f $OUT/data/prompts_train.jsonl ] || $PY -m rlhfkit data vader --out $OUT/data
COMMON=(rl --policy models/smollm2 --reward bench/sentiment_reward.py:positive
        --prompts $OUT/data/prompts_train.jsonl --rl.steps $STEPS --rl.prompts_per_step 32
        --rl.minibatch_size 16 --rl.epochs 1 --rl.lr 1e-5 --rl.beta 0.05 --rl.dtype bfloat16
        --sample.max_new_tokens 24 --sample.batch_size 32 --rl.checkpoint_every 0 --resume false)
run() {   # name, command...
  local name=$1; shift
  /usr/bin/time -v "$@" > $OUT/$name.log 2>&1
  local wall rss
  wall=$(grep -E '^\s+Elapsed \(wall clock\)' $OUT/$name.log | awk '{print $NF}')
  rss=$(grep -E '^\s+Maximum resident set size' $OUT/$name.log | awk '{print int($NF / 1024)}')
  echo "$name wall=$wall peak_rss_mib=$rss"
}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
run full   $PY -m rlhfkit "${COMMON[@]}" --out $OUT/full
run lora8  $PY -m rlhfkit "${COMMON[@]}" --out $OUT/lora8 --lora.r 8 --lora.alpha 16
OMP_NUM_THREADS=1 run ddp2 $PY -m torch.distributed.run --standalone --nproc_per_node 2 -m rlhfkit \
    "${COMMON[@]}" --out $OUT/ddp2
OMP_NUM_THREADS=1 run ddp2_lora8 $PY -m torch.distributed.run --standalone --nproc_per_node 2 -m rlhfkit \
    "${COMMON[@]}" --out $OUT/ddp2_lora8 --lora.r 8 --lora.alpha 16
