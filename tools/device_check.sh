#!/bin/bash
# The checks that need a GPU, in one go (a few minutes on an H200):
#   1. build the CUDA backend for sm_90 only, into build-gpu/;
#   2. run the GPU tests, whose cases must RUN here (a skipped case fails):
#        test_cuda_ops    every CUDA op against the CPU op (fp32, tf32, bf16)
#        test_cuda_model  the whole model, and 20 training steps of full-rank,
#                         LoRA and SwitchLoRA, against the CPU backend
#        test_nccl        the one-rank NCCL smoke test;
#   3. `switchlora bench` on the 130m shape in bf16 (full-rank and SwitchLoRA)
#      and PyTorch eager on the same model: tokens/s, MFU, and their ratio;
#   4. the op tests under compute-sanitizer memcheck, when the runtime allows;
# then print a short table. Exit status 0 only if the build and every test pass.
#
#   tools/pack_device_deps.sh        (here, once: header-only deps into .devdeps/)
#   tools/device_check.sh            (there, with .devdeps carried; from the repository root)
set -u -o pipefail
cd "$(dirname "$0")/.."

BUILD=build-gpu
JOBS=$(nproc)
LOG=$BUILD/device_check.log
declare -a ROWS
row() { ROWS+=("$(printf '%-30s %s' "$1" "$2")"); }
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
# NCCL: the GPU image has it only inside PyTorch's pip wheel (nvidia-nccl-cu13),
# which CMake finds through NCCL_HOME.
if [ -z "${NCCL_HOME:-}" ]; then
  NCCL_HOME=$(python3 -c 'import nvidia.nccl, os; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null) && export NCCL_HOME
fi
# Ninja where there is no make (the GPU image has ninja; make is not promised).
GEN=()
if ! command -v make >/dev/null && command -v ninja >/dev/null; then GEN=(-G Ninja); fi
if ! cmake -S . -B "$BUILD" "${GEN[@]}" -DSWITCHLORA_CUDA_ARCHS=90 "${DEPS[@]}" >>"$LOG" 2>&1; then
  tail -30 "$LOG"
  row "configure" "FAILED (see $LOG)"
  finish 1
fi
if ! grep -q "switchlora: CUDA found" "$LOG"; then
  row "configure" "FAILED: CMake found no nvcc, so no CUDA backend (see $LOG)"
  finish 1
fi
# Without NCCL, test_nccl's NCCL cases are compiled out (not skipped), so
# its summary alone would read as a pass: remember, and fail below.
nccl_found=1
if ! grep -q "switchlora: NCCL found" "$LOG"; then
  nccl_found=0
  row "nccl" "FAILED: not found by CMake (NCCL_HOME=${NCCL_HOME:-unset}); test_nccl runs without its NCCL cases"
fi
if [ -n "${NCCL_HOME:-}" ]; then export LD_LIBRARY_PATH="$NCCL_HOME/lib:${LD_LIBRARY_PATH:-}"; fi
if ! cmake --build "$BUILD" -j "$JOBS" --target switchlora test_cuda_ops test_cuda_model test_nccl >>"$LOG" 2>&1; then
  grep -E "error|Error" "$LOG" | head -30
  row "build" "FAILED (see $LOG)"
  finish 1
fi
row "build (sm_90, -j$JOBS)" "$(($(date +%s) - t0)) s"

# 2. GPU tests. doctest's last line: "test cases: N | P passed | F failed | S skipped".
status=0
gpu_test() {
  local name=$1 out rc summary skipped passed t1
  t1=$(date +%s)
  out=$(timeout 240 "$BUILD/$name" 2>&1)
  rc=$?
  echo "$out" >>"$LOG"
  summary=$(echo "$out" | grep "test cases:" | tail -1 | sed 's/.*test cases: *//')
  skipped=$(echo "$summary" | sed -n 's/.*| *\([0-9]*\) skipped.*/\1/p')
  passed=$(echo "$summary" | sed -n 's/[^|]*| *\([0-9]*\) passed.*/\1/p')
  if [ $rc -ne 0 ]; then
    echo "$out" | grep -B2 -A12 "ERROR\|CRASH" | head -80
    row "$name" "FAILED (exit $rc): $summary"
    status=1
  elif [ "${skipped:-1}" != "0" ] || [ "${passed:-0}" = "0" ]; then
    row "$name" "FAILED: cases were skipped (no GPU or no NCCL seen): $summary"
    status=1
  else
    row "$name" "passed: $summary ($(($(date +%s) - t1)) s)"
  fi
}
gpu_test test_cuda_ops
gpu_test test_cuda_model
gpu_test test_nccl
[ "$nccl_found" = 1 ] || status=1

# 3. Benchmarks on the 130m shape in bf16, at the paper's sequence length 256:
# 256 x 256 tokens a step (about 60 GB of activations in our fp32 layout,
# half the card). MFU = model FLOPs/s
# (6 N_matmul + 12 L T C per token, as if full rank) / 990 TFLOP/s, the dense
# bf16 rate of an H100/H200 SXM.
BENCH_ARGS=(--model_config configs/llama_130m.json --vocab_size 32100 --batch_size 256 --max_length 256
            --steps 8 --warmup 2 --dtype bf16)
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2" 2>/dev/null; }
ours_tps=""
bench_ours() {
  local label=$1 json
  shift
  json=$(timeout 200 "$BUILD/switchlora" bench --device cuda "${BENCH_ARGS[@]}" "$@" 2>"$BUILD/bench.err" | tail -1)
  cat "$BUILD/bench.err" >>"$LOG"
  echo "$label: $json" >>"$LOG"
  local tps mfu gemm
  tps=$(field "$json" tokens_per_s) mfu=$(field "$json" mfu) gemm=$(field "$json" fraction_of_gemm)
  if [ -z "$tps" ]; then
    row "$label" "FAILED: $(tail -1 "$BUILD/bench.err") (exit or timeout; see $LOG)"
    status=1
    return
  fi
  row "$label" "$(printf '%.0f tokens/s, MFU %.1f%%, %.0f%% of measured GEMM rate' "$tps" "$(python3 -c "print(100*$mfu)")" "$(python3 -c "print(100*$gemm)")")"
  [ "$label" = "switchlora bench full-rank" ] && ours_tps=$tps
}
bench_ours "switchlora bench full-rank"
# Fixed interval: switching at its early-training rate (r / 40 vectors per
# layer per step) for the whole timed run, the expensive case.
bench_ours "switchlora bench switchlora" --switch_lora --lora_rank 256 --fix_switch_lora_interval
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  json=$(timeout 200 python3 bench/torch_llama.py --device cuda "${BENCH_ARGS[@]}" 2>>"$LOG" | tail -1)
  echo "pytorch: $json" >>"$LOG"
  tps=$(field "$json" tokens_per_s) gflops=$(field "$json" gflops)
  if [ -n "$tps" ]; then
    row "pytorch eager full-rank" "$(printf '%.0f tokens/s, MFU %.1f%%' "$tps" "$(python3 -c "print(100*$gflops*1e9/990e12)")")"
    [ -n "$ours_tps" ] && row "ratio switchlora / pytorch" "$(python3 -c "print('%.2fx' % ($ours_tps / $tps))")"
  else
    row "pytorch eager full-rank" "FAILED: ${json:-no output} (see $LOG)"
  fi
else
  row "pytorch bench" "skipped: this PyTorch sees no GPU"
fi

# 4. Last, and only if time allows: the op tests under compute-sanitizer's
# memcheck (out-of-bounds and misaligned accesses in our kernels). Some GPU
# runtimes refuse the sanitizer; that is reported, not failed.
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
if [ -n "$SAN" ]; then
  out=$(timeout 90 "$SAN" --tool memcheck --error-exitcode 99 "$BUILD/test_cuda_ops" 2>&1)
  rc=$?
  echo "$out" >>"$LOG"
  summary=$(echo "$out" | grep "ERROR SUMMARY" | tail -1)
  if [ $rc -eq 99 ]; then
    echo "$out" | grep -A8 "Invalid\|Error" | head -40
    row "memcheck test_cuda_ops" "FAILED: $summary"
    status=1
  elif [ $rc -eq 124 ]; then
    row "memcheck test_cuda_ops" "timed out after 90 s (not a failure)"
  elif [ $rc -ne 0 ]; then
    row "memcheck test_cuda_ops" "could not run (exit $rc): $(echo "$out" | tail -1)"
  else
    row "memcheck test_cuda_ops" "clean: ${summary:-no errors}"
  fi
else
  row "memcheck" "compute-sanitizer not found"
fi
finish $status
