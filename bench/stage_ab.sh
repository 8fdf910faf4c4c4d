#!/bin/bash
# The reward-model, DPO and best-of-n stages of a finished demo seed, retrained from its own SFT
# policy and labels by an older checkout and by this one, one after the other; seconds per stage.
#
#   git worktree add --detach ../old REV
#   bench/stage_ab.sh ../old runs/demo/seed0 runs/ab
#
# The older side runs with and without length-grouped batches (the default before c619ef0 was
# grouped); this side runs with the defaults. Run it alone on the machine.
set -euo pipefail
old=$(cd "$1" && pwd); seed=$2; out=$3
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
RM="rm --model $seed/sft --data $seed/labels/rankings.jsonl --valid_data $seed/labels/valid.jsonl --train.lr 3e-4 --train.batch_size 16 --train.epochs 2 --train.warmup_steps 10 --train.dtype bfloat16"
DPO="dpo --model $seed/sft --data $seed/labels/rankings.jsonl --valid_data $seed/labels/valid.jsonl --beta 0.1 --train.lr 1e-4 --train.batch_size 16 --train.epochs 1 --train.warmup_steps 10 --train.dtype bfloat16"
BON="bon --policy $seed/sft --reward_model $seed/rm --n 8 --n_prompts 500 --sample.temperature 0.7 --sample.max_new_tokens 64 --sample.seed 20000"
run() {  # name source-tree args...
  local name=$1 tree=$2; shift 2
  rm -rf "$out/$name"
  local start end
  start=$(date +%s.%N)
  # a console script's sys.path starts at its own directory, so PYTHONPATH picks the checkout
  PYTHONPATH=$tree "$here/.venv/bin/rlhfkit" "$@" --out "$out/$name" > "$out/$name.log" 2>&1
  end=$(date +%s.%N)
  echo "$name $(echo "$end - $start" | bc) s" | tee -a "$out/times.txt"
}
for stage in RM DPO; do
  run "old-grouped-$stage" "$old" ${!stage} --train.group_by_length true
  run "old-$stage" "$old" ${!stage} --train.group_by_length false
  run "new-$stage" "$here" ${!stage}
done
run old-BON "$old" $BON
run new-BON "$here" $BON
