#include "tools/gemm_yardstick.h"

#include <dlfcn.h>
#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>

#include "engine/cpu/matmul_blis.h"
#include "engine/ops.h"
#include "engine/rng.h"

namespace switchlora {

namespace {

// C (M, N) = op(A) op(B), row-major, as the engine multiplies.
using Gemm = std::function<void(const GemmShape&, const float* A, const float* B, float* C)>;

struct Library {
  std::string name;
  Gemm gemm;
};

// Eigen on row-major maps, the same expression engine/cpu/matmul.cpp builds
// with SWITCHLORA_BLAS=eigen (compiled here whatever the engine links).
void eigen_gemm(const GemmShape& s, const float* A, const float* B, float* C) {
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const RowMat> a(A, s.transA ? s.K : s.M, s.transA ? s.M : s.K);
  const Eigen::Map<const RowMat> b(B, s.transB ? s.N : s.K, s.transB ? s.K : s.N);
  Eigen::Map<RowMat> c(C, s.M, s.N);
  if (!s.transA && !s.transB) c.noalias() = a * b;
  else if (!s.transA) c.noalias() = a * b.transpose();
  else if (!s.transB) c.noalias() = a.transpose() * b;
  else c.noalias() = a.transpose() * b.transpose();
}

// cblas_sgemm's C signature; its enums are ints (CblasRowMajor 101,
// CblasNoTrans 111, CblasTrans 112).
using CblasSgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float,
                            float*, int);

// A library that the engine does not link, loaded privately: RTLD_DEEPBIND
// binds its calls to its own symbols, not to a linked library's of the same
// name (both export sgemm_). The handle is kept for the process's life.
Gemm load_cblas(const std::string& name, const char* path) {
  void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (!h) {
    std::fprintf(stderr, "bench: cannot load %s (%s): %s\n", name.c_str(), path, dlerror());
    return nullptr;
  }
  auto sgemm = (CblasSgemm)dlsym(h, "cblas_sgemm");
  if (!sgemm) return nullptr;
  // BLIS takes its thread count from its own setting, not from OpenMP's.
  if (auto set_threads = (void (*)(long))dlsym(h, "bli_thread_set_num_threads")) set_threads(omp_get_max_threads());
  return [sgemm](const GemmShape& s, const float* A, const float* B, float* C) {
    sgemm(101, s.transA ? 112 : 111, s.transB ? 112 : 111, s.M, s.N, s.K, 1.0f, A, s.transA ? s.M : s.K, B,
          s.transB ? s.K : s.N, 0.0f, C, s.N);
  };
}

std::vector<Library> cpu_libraries() {
#if defined(SWITCHLORA_SPLIT_GEMM)
  // Both libraries linked, each called as the engine calls it, whatever
  // matmul's rule gives a shape. BLIS through its typed API: its CBLAS layer
  // would call OpenBLAS's sgemm_ (and dlopen would hand back the linked copy).
  std::vector<Library> libs = {
      {"blis",
       [](const GemmShape& s, const float* A, const float* B, float* C) {
         cpu::blis_matmul(C, A, B, s.M, s.N, s.K, s.transA, s.transB, 1.0f, 0.0f, s.transA ? s.M : s.K,
                          s.transB ? s.K : s.N, s.N);
       }},
      {"openblas", [](const GemmShape& s, const float* A, const float* B, float* C) {
         cpu::cblas_matmul(C, A, B, s.M, s.N, s.K, s.transA, s.transB, 1.0f, 0.0f);
       }}};
#else
  // The engine's own call site first, on whatever it links.
  std::vector<Library> libs = {{cpu::gemm_library(), [](const GemmShape& s, const float* A, const float* B, float* C) {
                                  cpu::matmul(C, A, B, s.M, s.N, s.K, s.transA, s.transB);
                                }}};
#endif
  if (libs[0].name != "eigen") libs.push_back({"eigen", eigen_gemm});
#if !defined(SWITCHLORA_SANITIZED)  // the sanitizer runtime refuses RTLD_DEEPBIND
  const std::pair<const char*, const char*> others[] = {{"openblas", SWITCHLORA_OPENBLAS_SO},
                                                        {"blis", SWITCHLORA_BLIS_SO}};
  for (const auto& [name, path] : others)
    if (*path && std::none_of(libs.begin(), libs.end(), [&](const Library& l) { return l.name == name; }))
      if (Gemm g = load_cblas(name, path)) libs.push_back({name, g});
#endif
  return libs;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::vector<GemmRate> measure_gemm_rates(Backend& be, const std::vector<GemmShape>& shapes, int rounds) {
  std::vector<Library> libs;
  size_t most = 0;
  for (const GemmShape& s : shapes) most = std::max(most, (size_t)std::max({s.M, s.N, s.K}) * std::max({s.M, s.N, s.K}));
  std::vector<float> host_a(most), host_b(most);
  Rng rng{1, kStreamBench, 1};
  for (size_t i = 0; i < most; i++) host_a[i] = rng.normal(), host_b[i] = rng.normal();
  Buffer<float> a(be, most), b(be, most), c(be, most);
  be.copy_and_wait(a.data(), host_a.data(), most * sizeof(float));
  be.copy_and_wait(b.data(), host_b.data(), most * sizeof(float));
  if (be.device() == Device::kCpu) {
    libs = cpu_libraries();
  } else {
    libs = {{"cublas", [&be](const GemmShape& s, const float* A, const float* B, float* C) {
               be.matmul(C, A, B, s.M, s.N, s.K, s.transA, s.transB);
             }}};
  }
  std::vector<GemmRate> rates;
  for (const Library& l : libs) rates.push_back({l.name, std::vector<double>(shapes.size(), 0.0)});
  for (int round = 0; round < rounds; round++)
    for (size_t j = 0; j < shapes.size(); j++) {
      const GemmShape& s = shapes[j];
      const double flops = s.flops();
      // Enough calls for about 2 GFLOP (CPU) or 200 GFLOP (GPU) a round, or
      // a quarter of a second where a shape is so small that its calls'
      // fixed costs rule (the model's shapes take ~10-20 ms on this kind
      // of CPU; a test's tiny model would take seconds).
      const int calls = std::max(1, (int)((be.device() == Device::kCpu ? 2e9 : 2e11) / flops));
      for (size_t i = 0; i < libs.size(); i++) {
        libs[i].gemm(s, a.data(), b.data(), c.data());  // warm: threads, packing buffers
        be.synchronize();
        const auto t0 = std::chrono::steady_clock::now();
        int done = 0;
        while (done < calls && (done < 3 || seconds_since(t0) < 0.25)) {
          libs[i].gemm(s, a.data(), b.data(), c.data());
          done++;
        }
        be.synchronize();
        rates[i].gflops[j] = std::max(rates[i].gflops[j], flops * done / seconds_since(t0) / 1e9);
      }
    }
  return rates;
}

}  // namespace switchlora
