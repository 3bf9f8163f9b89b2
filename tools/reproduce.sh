#!/usr/bin/env bash
# A small version of the paper's perplexity table: the same model trained
# full-rank, with LoRA and with SwitchLoRA on the same data, steps and seed,
# at the paper's learning rates (350M: 1e-3, 1e-2, 2e-2), then one table of
# final validation perplexities.
#
#   tools/reproduce.sh [BIN]    env: CONFIG STEPS RANK B T DATA OUT LR_FULL LR_LORA LR_SWITCH
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/switchlora}
CONFIG=${CONFIG:-configs/llama_9m.json}
STEPS=${STEPS:-600}
RANK=${RANK:-32}
B=${B:-16}
T=${T:-128}
DATA=${DATA:-data/brown}
OUT=${OUT:-runs/reproduce}
LR_FULL=${LR_FULL:-1e-3}
LR_LORA=${LR_LORA:-1e-2}
LR_SWITCH=${LR_SWITCH:-2e-2}

common="--model_config $CONFIG --data $DATA --batch_size $B --max_length $T --num_training_steps $STEPS
        --warmup_steps $((STEPS / 10)) --scheduler cosine_with_min_lr --eval_every 0 --seed 0"
run() {  # name, flags
  echo "== $1: $2"
  "$BIN" train $common $2 --save_dir "$OUT/$1" | grep -E "^(model|method|final)|step +[0-9]+/[0-9]+ .*" |
    awk -v n="$STEPS" '/^step/ { split($2, s, "/"); if (s[1] % 100 == 0 || s[1] == n) print; next } { print }'
}
run full      "--lr $LR_FULL"
run lora      "--use_lora --lora_rank $RANK --lr $LR_LORA"
run switchlora "--switch_lora --lora_rank $RANK --lr $LR_SWITCH"

python3 - "$OUT" "$CONFIG" "$STEPS" "$RANK" <<'PY'
import json, sys
out, config, steps, rank = sys.argv[1:]
print(f"\n{config}, {steps} steps, rank {rank}: final validation perplexity")
print("| method | val loss | val ppl | mean tokens/s |")
print("|---|---|---|---|")
for name in ("full", "lora", "switchlora"):
    lines = [json.loads(l) for l in open(f"{out}/{name}/metrics.jsonl")]
    final = [l for l in lines if l.get("final")][-1]
    tps = [l["tokens_per_s"] for l in lines if "tokens_per_s" in l]
    print(f"| {name} | {final['val_loss']:.4f} | {final['val_ppl']:.2f} | {sum(tps) / len(tps):.0f} |")
PY
