#!/bin/bash
# PPO on SmolLM2-135M: time and peak memory of full fine-tuning against LoRA r = 8, and of 1 process
# against `torchrun --nproc_per_node 2` on the same global batch (DDP, FSDP2, DDP with LoRA).
#   bash bench/scale.sh [STEPS]         (needs: pip install -e '.[smollm2]' torch==2.13.0)
# Prints one line per run: name, wall time, peak RSS of the largest process (MiB), mean seconds of
# the iterations after the first (from the run's log.jsonl).
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
  local iter
  iter=$($PY -c "import json; r = [json.loads(l) for l in open('$OUT/$name/log.jsonl')][1:]
print(round(sum(x['seconds'] for x in r) / len(r), 1))")
  echo "$name wall=$wall peak_rss_mib=$rss seconds_per_iteration_after_the_first=$iter"
}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
run full   $PY -m rlhfkit "${COMMON[@]}" --out $OUT/full
run lora8  $PY -m rlhfkit "${COMMON[@]}" --out $OUT/lora8 --lora.r 8 --lora.alpha 16
OMP_NUM_THREADS=1 run ddp2 $PY -m torch.distributed.run --standalone --nproc_per_node 2 -m rlhfkit \
    "${COMMON[@]}" --out $OUT/ddp2
OMP_NUM_THREADS=1 run fsdp2 $PY -m torch.distributed.run --standalone --nproc_per_node 2 -m rlhfkit \
    "${COMMON[@]}" --fsdp --out $OUT/fsdp2
OMP_NUM_THREADS=1 run ddp2_lora8 $PY -m torch.distributed.run --standalone --nproc_per_node 2 -m rlhfkit \
    "${COMMON[@]}" --out $OUT/ddp2_lora8 --lora.r 8 --lora.alpha 16
