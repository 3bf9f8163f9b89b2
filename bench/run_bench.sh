#!/usr/bin/env bash
# make bench: our training step against PyTorch's on the same model and
# batch, both on the CPU (tools/device_check.sh does the GPU), in one run: the
# machine is shared and noisy, so only ratios measured together mean anything.
#   ours:   full rank, LoRA r and SwitchLoRA r (fixed interval: steps really switch)
#   theirs: PyTorch full rank and LoRA r (bench/torch_llama.py)
# Every configuration runs once per round, the rounds interleaved, and the
# best round of each is kept. Each of our runs also measures every GEMM
# library at 2048^3; the fastest rate seen in the whole run is the yardstick
# (DESIGN §9), and the fastest step seen of each configuration is what is
# measured against it (best against best). A JSON summary goes to $OUT when set.
#
#   bench/run_bench.sh [BIN]    env: CONFIG, VOCAB, B, T, RANK, STEPS, ROUNDS, THREADS, OUT
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/switchlora}
CONFIG=${CONFIG:-configs/llama_20m.json}
VOCAB=${VOCAB:-8192}
B=${B:-8}
T=${T:-256}
RANK=${RANK:-16}
STEPS=${STEPS:-5}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
shape="--model_config $CONFIG --vocab_size $VOCAB --batch_size $B --max_length $T --steps $STEPS --warmup 1"
declare -A ours=(
  [full]=""
  [lora]="--use_lora --lora_rank $RANK"
  [switchlora]="--switch_lora --lora_rank $RANK --fix_switch_lora_interval --switch_lora_interval 40"
)
declare -A theirs=([full]="" [lora]="--lora_rank $RANK")
lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
for r in $(seq "$ROUNDS"); do
  echo "round $r of $ROUNDS" >&2
  for m in full lora switchlora; do
    # shellcheck disable=SC2086
    echo "ours $m $(OMP_NUM_THREADS=$THREADS "$BIN" bench --device cpu $shape ${ours[$m]} | tail -1)" >>"$lines"
  done
  for m in full lora; do
    # shellcheck disable=SC2086
    echo "pytorch $m $(/usr/bin/python3 bench/torch_llama.py $shape ${theirs[$m]} --threads "$THREADS" 2>/dev/null | tail -1)" >>"$lines"
  done
done
/usr/bin/python3 - "$lines" "$CONFIG" "$VOCAB" "$B" "$T" "$RANK" "$THREADS" "$ROUNDS" "$STEPS" "${OUT:-}" <<'EOF'
import json, sys
path, config, vocab, B, T, rank, threads, rounds, steps, out = sys.argv[1:]
best, gemm, fastest = {}, {}, {}
for line in open(path):
    who, method, js = line.split(" ", 2)
    j = json.loads(js)
    key = (who, method)
    if key not in best or j["tokens_per_s"] > best[key]["tokens_per_s"]:
        best[key] = j
    if "best_gflops" in j:  # ours: the fastest step of every round
        fastest[method] = max(fastest.get(method, 0.0), j["best_gflops"])
    for lib, rate in j.get("gemm_rates", {}).items():
        gemm[lib] = max(gemm.get(lib, 0.0), rate)
top = max(gemm, key=gemm.get)
print(f"model {config}, vocab {vocab}, batch {B} x {T}, {threads} threads, LoRA rank {rank}; "
      f"best of {rounds} interleaved rounds x {steps} steps")
print("GEMM yardstick, 2048^3, best of every run: " +
      ", ".join(f"{lib} {rate:.1f}" for lib, rate in sorted(gemm.items(), key=lambda kv: -kv[1])) +
      f" GFLOP/s; the engine multiplies with {best[('ours', 'full')]['engine_gemm']}"
      f" (the weight gradients: {best[('ours', 'full')]['weight_gradient_gemm']})")
names = {"full": "full rank", "lora": f"LoRA r{rank}", "switchlora": f"SwitchLoRA r{rank}"}
print("tokens/s: the best round's mean over its steps; GFLOP/s and its share of the best GEMM: the fastest step")
print(f"{'':16} {'tokens/s':>10} {'PyTorch':>10} {'ratio':>7} {'GFLOP/s':>8} {'of best GEMM':>13}")
summary = {"config": config, "vocab": int(vocab), "batch": int(B), "seq": int(T), "rank": int(rank),
           "threads": int(threads), "gemm_gflops": gemm, "gemm_best": top, "methods": {}}
for m in ("full", "lora", "switchlora"):
    o = best[("ours", m)]
    t = best.get(("pytorch", m))
    ratio = o["tokens_per_s"] / t["tokens_per_s"] if t else None
    frac = fastest[m] / gemm[top]
    print(f"{names[m]:16} {o['tokens_per_s']:10.0f} " + (f"{t['tokens_per_s']:10.0f} {ratio:6.2f}x" if t else f"{'':10} {'':7}") +
          f" {fastest[m]:8.1f} {100 * frac:12.1f}%")
    summary["methods"][m] = {"tokens_per_s": o["tokens_per_s"], "gflops": o["gflops"], "best_step_gflops": fastest[m],
                             "fraction_of_best_gemm": frac,
                             "pytorch_tokens_per_s": t["tokens_per_s"] if t else None, "vs_pytorch": ratio}
tps = {m: best[("ours", m)]["tokens_per_s"] for m in ("full", "lora", "switchlora")}
print(f"LoRA / full rank {tps['lora'] / tps['full']:.3f}x; SwitchLoRA / LoRA {tps['switchlora'] / tps['lora']:.3f}x")
# The same ratios from each method's fastest step (its FLOPs are counted as
# full rank's, so GFLOP/s compare as tokens/s do): a minimum is what noise
# on a shared machine moves least.
print(f"fastest steps: LoRA / full rank {fastest['lora'] / fastest['full']:.3f}x; "
      f"SwitchLoRA / LoRA {fastest['switchlora'] / fastest['lora']:.3f}x")
summary["ratios"] = {"lora_over_full": tps["lora"] / tps["full"], "switchlora_over_lora": tps["switchlora"] / tps["lora"],
                     "fastest_lora_over_full": fastest["lora"] / fastest["full"],
                     "fastest_switchlora_over_lora": fastest["switchlora"] / fastest["lora"]}
if out:
    with open(out + ".tmp", "w") as f:
        json.dump(summary, f, indent=1)
    import os
    os.replace(out + ".tmp", out)
EOF
