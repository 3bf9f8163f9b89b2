// The yardstick `switchlora bench` reports model FLOPs against (DESIGN §9):
// the fastest single-precision GEMM this machine has, measured in the same
// run. On the CPU that is every GEMM library the build knows of (Eigen,
// compiled in; OpenBLAS and BLIS, Debian's OpenMP builds, loaded by path),
// each on the same operands; on a GPU, the backend's own cuBLAS.
#pragma once
#include <string>
#include <vector>

#include "engine/backend.h"

namespace switchlora {

struct GemmShape {
  std::string what;  // "q,k,v,o forward", ...
  int M, N, K;
  bool transA, transB;
  int per_step = 0;  // how many a full-rank training step multiplies (bench's ceiling)
  double flops() const { return 2.0 * M * N * K; }
};

struct GemmRate {
  std::string library;         // "eigen", "openblas", "blis", "cublas"
  std::vector<double> gflops;  // one per shape asked for
};

// Each library's GFLOP/s on each shape: `rounds` interleaved rounds (every
// library, then again), the best round of each kept, so a noisy moment on a
// shared machine slows a round and never moves the result. On the GPU only
// the backend's GEMM is measured.
std::vector<GemmRate> measure_gemm_rates(Backend& be, const std::vector<GemmShape>& shapes, int rounds);

}  // namespace switchlora
