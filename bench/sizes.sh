#!/usr/bin/env bash
# The table of docs/PERFORMANCE.md: full-rank and LoRA r = C/16 training
# steps on the 9m, 20m, 35m and 60m shapes (vocab 8192, batch 8 x 256,
# THREADS threads), ROUNDS interleaved rounds, best of each, as tokens/s and
# (the fastest step's rate) as a fraction of the fastest GEMM library
# measured in the same run.
#
#   bench/sizes.sh [BIN]    env: SIZES, STEPS, ROUNDS, THREADS
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/switchlora}
SIZES=${SIZES:-"9m 20m 35m 60m"}
STEPS=${STEPS:-3}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
for r in $(seq "$ROUNDS"); do
  for s in $SIZES; do
    c=configs/llama_$s.json
    rank=$(python3 -c "import json; print(json.load(open('$c'))['hidden_size'] // 16)")
    for m in full lora; do
      flags=""
      [ "$m" = lora ] && flags="--use_lora --lora_rank $rank"
      # shellcheck disable=SC2086
      echo "$s $m $rank $(OMP_NUM_THREADS=$THREADS "$BIN" bench --device cpu --model_config "$c" --vocab_size 8192 \
        --batch_size 8 --max_length 256 --steps "$STEPS" --warmup 1 $flags | tail -1)" >>"$lines"
    done
  done
done
python3 - "$lines" <<'EOF'
import json, sys
best, gemm, fastest = {}, {}, {}
for line in open(sys.argv[1]):
    size, method, rank, js = line.split(" ", 3)
    j = json.loads(js)
    key = (size, method, rank)
    if key not in best or j["tokens_per_s"] > best[key]["tokens_per_s"]:
        best[key] = j
    fastest[key] = max(fastest.get(key, 0.0), j["best_gflops"])
    for lib, rate in j["gemm_rates"].items():
        gemm[lib] = max(gemm.get(lib, 0), rate)
top = max(gemm, key=gemm.get)
print(f"yardstick: {top} {gemm[top]:.1f} GFLOP/s at 2048^3 (" +
      ", ".join(f"{k} {v:.1f}" for k, v in sorted(gemm.items(), key=lambda kv: -kv[1])) + ")")
print("| shape | full-rank tokens/s | GFLOP/s (fastest step) | of best GEMM | LoRA r | LoRA tokens/s | LoRA / full |")
print("|---|---|---|---|---|---|---|")
for size in dict.fromkeys(k[0] for k in best):
    fk, f = next((k, v) for k, v in best.items() if k[0] == size and k[1] == "full")
    rank, l = next((k[2], v) for k, v in best.items() if k[0] == size and k[1] == "lora")
    print(f"| {size} | {f['tokens_per_s']:.0f} | {fastest[fk]:.1f} | {100 * fastest[fk] / gemm[top]:.1f}% | "
          f"{rank} | {l['tokens_per_s']:.0f} | {l['tokens_per_s'] / f['tokens_per_s']:.3f}x |")
EOF
