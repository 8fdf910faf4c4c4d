#!/bin/bash
# The scale work's checks on a GPU, as one run on a lent GPU machine (the `device` tool), with the
# project's tree as the working directory and the machine's own torch:
#   PYTHONPATH=$PWD bash bench/gpu_check.sh OUT_DIR
# 1. the CPU tests of processes, LoRA and engines on that machine's software;
# 2. sft, rm, dpo and ppo with --device cuda in bfloat16 on the TL;DR world (small budgets): each
#    must finish; seconds per stage;
# 3. PPO on the GPU with and without --lora.r 8: peak GPU memory (torch.cuda.max_memory_allocated,
#    read from the run's log) and seconds;
# 4. vLLM, where it is installed: PPO with --sample.engine vllm (sampler-to-trainer KL, TIS weights).
# Everything lands in OUT_DIR/summary.txt.
set -uo pipefail
OUT=${1:-/tmp/gpu_check}
PY=${PY:-python3}
mkdir -p "$OUT"
S=$OUT/summary.txt
say() { echo "$*" | tee -a "$S"; }
timed() {   # name, command...: its exit code and wall seconds
  local name=$1; shift
  local t0=$(date +%s.%N)
  "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  say "$name rc=$rc seconds=$(echo "$(date +%s.%N) - $t0" | bc)"
  [ $rc = 0 ] || tail -5 "$OUT/$name.log" | tee -a "$S"
}
say "$($PY -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, torch.cuda.get_device_name(0))')"
timed cpu_tests $PY -m pytest -q -p no:cacheprovider tests/test_distributed.py tests/models/test_lora.py tests/engines
tail -1 "$OUT/cpu_tests.log" | tee -a "$S"
D=$OUT/run
timed data $PY -m rlhfkit data tldr --out $D/data
GPU=(--device cuda)
timed sft $PY -m rlhfkit sft "${GPU[@]}" --model models/tldr-base --data $D/data/sft_train.jsonl --out $D/sft \
    --train.dtype bfloat16 --train.epochs 0.5
timed rm $PY -m rlhfkit rm "${GPU[@]}" --model $D/sft/model --data $D/data/comparisons.jsonl --out $D/rm \
    --train.dtype bfloat16 --train.epochs 0.5
timed dpo $PY -m rlhfkit dpo "${GPU[@]}" --model $D/sft/model --data $D/data/comparisons.jsonl --out $D/dpo \
    --train.dtype bfloat16 --train.epochs 0.5
RL=(rl "${GPU[@]}" --policy $D/sft/model --reward_model $D/rm/model --rl.steps 10 --rl.prompts_per_step 64
    --rl.dtype bfloat16 --sample.max_new_tokens 48)
timed ppo $PY -m rlhfkit "${RL[@]}" --out $D/ppo
timed ppo_lora8 $PY -m rlhfkit "${RL[@]}" --out $D/ppo_lora8 --lora.r 8
for run in ppo ppo_lora8; do
  say "$run last iteration: $(tail -1 $D/$run/log.jsonl | $PY -c 'import json,sys; r=json.load(sys.stdin); print({k: r.get(k) for k in ("score","kl","seconds","gpu_peak_gib")})')"
done
if $PY -c 'import vllm' 2>/dev/null; then
  timed ppo_vllm $PY -m rlhfkit "${RL[@]}" --out $D/ppo_vllm --sample.engine vllm
  say "ppo_vllm last iteration: $(tail -1 $D/ppo_vllm/log.jsonl)"
else
  say "vllm: not installed on this machine"
fi
