#!/bin/bash
# The checks that need a GPU, in one go (a few minutes on an H200):
#   1. build the CUDA backend for sm_90 only, into build-gpu/;
#   2. run tests/test_cuda_ops (every CUDA op against the CPU op); here its
#      cases must RUN: a run that skips them counts as a failure;
#   3. the whole-model benchmark on the GPU (130m, bf16) when `switchlora bench`
#      has a --device flag, and PyTorch eager's on the same model;
# then print a short table. Exit status 0 only if the build and the tests pass.
#
#   tools/pack_device_deps.sh        (here, once: header-only deps into .devdeps/)
#   tools/device_check.sh            (there, with .devdeps carried; from the repository root)
set -u -o pipefail
cd "$(dirname "$0")/.."

BUILD=build-gpu
JOBS=$(nproc)
LOG=$BUILD/device_check.log
declare -a ROWS
row() { ROWS+=("$(printf '%-26s %s' "$1" "$2")"); }
finish() {
  echo
  echo "== device check =="
  printf '%s\n' "${ROWS[@]}"
  exit "$1"
}

mkdir -p "$BUILD"
: >"$LOG"
GPU=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)
row "gpu" "${GPU:-none found by nvidia-smi}"

# 1. Build. The GPU machine cannot install packages: tools/pack_device_deps.sh
# (run beforehand, elsewhere) leaves the header-only dependencies in .devdeps/.
t0=$(date +%s)
DEPS=()
if [ -d .devdeps ]; then
  DEPS=(-DEigen3_DIR="$PWD/.devdeps/share/eigen3/cmake"
        -Dnlohmann_json_DIR="$PWD/.devdeps/share/cmake/nlohmann_json"
        -Ddoctest_DIR="$PWD/.devdeps/lib/cmake/doctest")
fi
# Ninja where there is no make (the GPU image has ninja; make is not promised).
GEN=()
if ! command -v make >/dev/null && command -v ninja >/dev/null; then GEN=(-G Ninja); fi
if ! cmake -S . -B "$BUILD" "${GEN[@]}" -DSWITCHLORA_CUDA_ARCHS=90 "${DEPS[@]}" >>"$LOG" 2>&1; then
  row "configure" "FAILED (see $LOG)"
  finish 1
fi
if ! grep -q "switchlora: CUDA found" "$LOG"; then
  row "configure" "FAILED: CMake found no nvcc, so no CUDA backend (see $LOG)"
  finish 1
fi
if ! cmake --build "$BUILD" -j "$JOBS" --target test_cuda_ops switchlora >>"$LOG" 2>&1; then
  row "build" "FAILED (see $LOG)"
  finish 1
fi
row "build (sm_90, -j$JOBS)" "$(($(date +%s) - t0)) s"

# 2. Op parity. doctest's last line: "test cases: N | P passed | F failed | S skipped".
out=$(timeout 300 "$BUILD/test_cuda_ops" 2>&1)
rc=$?
echo "$out" >>"$LOG"
summary=$(echo "$out" | grep "test cases:" | tail -1 | sed 's/.*test cases: *//')
skipped=$(echo "$summary" | sed -n 's/.*| *\([0-9]*\) skipped.*/\1/p')
passed=$(echo "$summary" | sed -n 's/[^|]*| *\([0-9]*\) passed.*/\1/p')
status=0
if [ $rc -ne 0 ]; then
  echo "$out" | tail -40
  row "test_cuda_ops" "FAILED (exit $rc): $summary"
  status=1
elif [ "${skipped:-1}" != "0" ] || [ "${passed:-0}" = "0" ]; then
  row "test_cuda_ops" "FAILED: cases were skipped, no GPU seen: $summary"
  status=1
else
  row "test_cuda_ops" "passed: $summary"
fi

# 3. Whole-model benchmarks on the 130m shape in bf16, where a GPU path
# exists. MFU = model FLOPs/s (6 N_matmul + 12 L T C per token) / 990 TFLOP/s,
# the H200's dense bf16 rate.
BENCH_ARGS=(--model_config configs/llama_130m.json --vocab_size 32100 --batch_size 16 --max_length 1024
            --steps 10 --warmup 3 --dtype bf16)
mfu() { python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print("%.0f tokens/s, MFU %.1f%%" % (j["tokens_per_s"], 100*j["gflops"]*1e9/990e12))' "$1" 2>/dev/null || echo "FAILED: $1"; }
if "$BUILD/switchlora" bench --help 2>/dev/null | grep -q -- "--device"; then
  json=$(timeout 180 "$BUILD/switchlora" bench --device cuda "${BENCH_ARGS[@]}" 2>>"$LOG" | tail -1)
  row "switchlora bench (130m)" "$(mfu "$json")"
else
  row "switchlora bench" "whole-model CUDA path: not wired yet"
fi
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  json=$(timeout 240 python3 bench/torch_llama.py --device cuda "${BENCH_ARGS[@]}" 2>>"$LOG" | tail -1)
  row "pytorch eager (130m)" "$(mfu "$json")"
else
  row "pytorch bench" "skipped: this PyTorch sees no GPU"
fi
finish $status
