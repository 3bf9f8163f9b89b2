#!/usr/bin/env bash
# make bench: our training step against PyTorch's on the same model and
# batch, both on the CPU (tools/device_check.sh does the GPU), in one run (the machine is shared and noisy, so only the ratio
# means anything). Each side runs ROUNDS times, interleaved; the best of
# each is compared.
#
#   bench/run_bench.sh [BIN]    env: CONFIG, VOCAB, B, T, STEPS, ROUNDS, THREADS
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/switchlora}
CONFIG=${CONFIG:-configs/llama_20m.json}
VOCAB=${VOCAB:-8192}
B=${B:-8}
T=${T:-256}
STEPS=${STEPS:-5}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
shape="--model_config $CONFIG --vocab_size $VOCAB --batch_size $B --max_length $T --steps $STEPS --warmup 1"

best() { python3 -c 'import json,sys; print(max(json.loads(l)["tokens_per_s"] for l in sys.stdin if l.startswith("{")))'; }
ours=""; theirs=""
for r in $(seq "$ROUNDS"); do
  ours+=$(OMP_NUM_THREADS=$THREADS "$BIN" bench --device cpu $shape | tail -1)$'\n'
  theirs+=$(/usr/bin/python3 bench/torch_llama.py $shape --threads "$THREADS" 2>/dev/null | tail -1)$'\n'
done
o=$(printf "%s" "$ours" | best)
t=$(printf "%s" "$theirs" | best)
echo "model $CONFIG, vocab $VOCAB, batch $B x $T, $THREADS threads, best of $ROUNDS x $STEPS steps"
echo "$ours" | tail -2 | head -1
printf "switchlora %10.0f tokens/s\npytorch    %10.0f tokens/s\nratio      %10.2f x\n" "$o" "$t" \
  "$(python3 -c "print($o / $t)")"
