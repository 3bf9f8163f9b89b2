#include "engine/cpu/backend.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "engine/ops.h"

namespace switchlora {

CpuBackend::Open::Open(CpuBackend& backend, std::initializer_list<const void*> arrays) : b(backend) {
  if (!b.protect_) return;
  // On the GPU a host pointer handed to a kernel is an illegal address; here
  // it is an error naming the op's caller's mistake.
  for (const void* p : arrays)
    if (p && !b.owns(p)) throw Error("strict backend: an op was given a pointer outside backend memory");
  if (b.open_depth_++ == 0) b.set_access(true);
}

bool CpuBackend::owns(const void* p) const {
  for (const Region& r : regions_)
    if ((const char*)p >= (const char*)r.p && (const char*)p < (const char*)r.p + r.bytes) return true;
  return false;
}

CpuBackend::Open::~Open() {
  if (b.protect_ && --b.open_depth_ == 0) b.set_access(false);
}

void CpuBackend::set_access(bool readable) {
  for (const Region& r : regions_)
    SL_CHECK(mprotect(r.p, r.bytes, readable ? PROT_READ | PROT_WRITE : PROT_NONE) == 0,
             "mprotect of backend memory failed");
}

CpuBackend::~CpuBackend() {
  for (const Region& r : regions_) munmap(r.p, r.bytes);
}

// Protected memory is mapped whole pages at a time (mprotect works on pages);
// fresh anonymous pages are zero, as alloc() promises.
void* CpuBackend::alloc(size_t bytes) {
  // Refuse what the machine cannot hold, up front (see host_memory_bytes).
  const double ram = host_memory_bytes();
  if ((double)bytes > ram)
    throw Error("out of host memory: asked for " + std::to_string(bytes / (1u << 20)) + " MiB, this machine has " +
                std::to_string((size_t)(ram / (1u << 20))) + " MiB");
  if (!protect_) {
    void* p = std::calloc(1, bytes);
    if (!p) throw Error("out of host memory allocating " + std::to_string(bytes) + " bytes");
    return p;
  }
  void* p = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw Error("mmap of " + std::to_string(bytes) + " bytes failed");
  regions_.push_back({p, bytes});
  if (open_depth_ > 0) mprotect(p, bytes, PROT_READ | PROT_WRITE);
  return p;
}

void CpuBackend::release(void* p) {
  if (!protect_) return std::free(p);
  for (size_t i = 0; i < regions_.size(); i++) {
    if (regions_[i].p != p) continue;
    munmap(p, regions_[i].bytes);
    regions_.erase(regions_.begin() + (long)i);
    return;
  }
}

void* CpuBackend::alloc_host(size_t bytes) {
  void* p = std::calloc(1, bytes);
  if (!p) throw Error("out of host memory allocating " + std::to_string(bytes) + " bytes");
  return p;
}

void CpuBackend::release_host(void* p) { std::free(p); }

void CpuBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;  // an empty vector's data() may be null
  Open o(*this);
  std::memcpy(dst, src, bytes);
}

void CpuBackend::copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                         size_t width, size_t rows) {
  Open o(*this);
  for (size_t i = 0; i < rows; i++)
    std::memcpy((char*)dst + i * dst_pitch, (const char*)src + i * src_pitch, width);
}

void CpuBackend::copy_side(void* dst, const void* src, size_t bytes) {
  if (protect_) side_copies_.push_back({dst, src, bytes});
  else copy(dst, src, bytes);
}

void CpuBackend::run_side_copies() {
  for (const Copy& c : side_copies_) copy(c.dst, c.src, c.bytes);
  side_copies_.clear();
}

void CpuBackend::zero(void* p, size_t bytes) {
  Open o(*this, {p});
  // The backward zeroes its (N, C) and (N, I) gradient buffers, 2-6 MB each,
  // out of cache by then: one thread's memset does not fill the memory bus.
  constexpr size_t kChunk = 256 << 10;
  const int64_t chunks = (int64_t)((bytes + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static) if (chunks > 4)
  for (int64_t c = 0; c < chunks; c++) {
    const size_t begin = (size_t)c * kChunk;
    std::memset((char*)p + begin, 0, std::min(kChunk, bytes - begin));
  }
}

void CpuBackend::zero_2d(void* p, size_t pitch, size_t width, size_t rows) {
  Open o(*this, {p});
  for (size_t i = 0; i < rows; i++) std::memset((char*)p + i * pitch, 0, width);
}

// The CPU multiplies in fp32 only.
static void check_precision(Precision p) {
  if (p != Precision::kFp32)
    throw Error("--dtype bf16 and --tf32 need --device cuda: the CPU backend multiplies in fp32");
}

void CpuBackend::apply_precision(Precision p) { check_precision(p); }

// Every op: check (strict) that its arrays are backend memory, open the
// protected memory, run the engine/ops.h twin.
void CpuBackend::gemm(float* C, const float* A, const float* B, int M, int N, int K, bool transA,
                      bool transB, float alpha, float beta, Precision p) {
  check_precision(p);
  Open o(*this, {C, A, B});
  cpu::matmul(C, A, B, M, N, K, transA, transB, alpha, beta);
}
void CpuBackend::embedding_forward(float* out, const int32_t* tokens, const float* wte, int N,
                                   int C) {
  Open o(*this, {out, tokens, wte});
  cpu::embedding_forward(out, tokens, wte, N, C);
}
void CpuBackend::embedding_backward(float* dwte, const float* dout, const int32_t* tokens,
                                    int N, int C) {
  Open o(*this, {dwte, dout, tokens});
  cpu::embedding_backward(dwte, dout, tokens, N, C);
}
void CpuBackend::rmsnorm_forward(float* y, float* rstd, const float* x, const float* g, int N,
                                 int C, float eps) {
  Open o(*this, {y, rstd, x, g});
  cpu::rmsnorm_forward(y, rstd, x, g, N, C, eps);
}
void CpuBackend::rmsnorm_backward(float* dx, float* dg, const float* dy, const float* x,
                                  const float* g, const float* rstd, int N, int C) {
  Open o(*this, {dx, dg, dy, x, g, rstd});
  cpu::rmsnorm_backward(dx, dg, dy, x, g, rstd, N, C);
}
void CpuBackend::rope_forward(float* out, const float* x, int B, int T, int NH, int HS,
                              float theta) {
  Open o(*this, {out, x});
  cpu::rope_forward(out, x, B, T, NH, HS, theta);
}
void CpuBackend::rope_backward(float* dx, const float* dout, int B, int T, int NH, int HS,
                               float theta) {
  Open o(*this, {dx, dout});
  cpu::rope_backward(dx, dout, B, T, NH, HS, theta);
}
void CpuBackend::attention_forward(float* out, float* lse, const float* q, const float* k,
                                   const float* v, int B, int T, int NH, int HS) {
  Open o(*this, {out, lse, q, k, v});
  cpu::attention_forward(out, lse, q, k, v, B, T, NH, HS);
}
void CpuBackend::attention_backward(float* dq, float* dk, float* dv, const float* dout,
                                    const float* q, const float* k, const float* v,
                                    const float* out, const float* lse, int B, int T, int NH,
                                    int HS) {
  Open o(*this, {dq, dk, dv, dout, q, k, v, out, lse});
  cpu::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, HS);
}
void CpuBackend::dropout_forward(float* out, const float* x, int64_t N, float p, uint64_t seed, uint64_t stream) {
  Open o(*this, {out, x});
  cpu::dropout_forward(out, x, N, p, seed, stream);
}
void CpuBackend::dropout_backward(float* dx, const float* dout, int64_t N, float p, uint64_t seed,
                                  uint64_t stream) {
  Open o(*this, {dx, dout});
  cpu::dropout_backward(dx, dout, N, p, seed, stream);
}
void CpuBackend::swiglu_forward(float* out, const float* gate, const float* up, int64_t N) {
  Open o(*this, {out, gate, up});
  cpu::swiglu_forward(out, gate, up, N);
}
void CpuBackend::swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                                 const float* up, int64_t N) {
  Open o(*this, {dgate, dup, dout, gate, up});
  cpu::swiglu_backward(dgate, dup, dout, gate, up, N);
}
void CpuBackend::residual_forward(float* out, const float* a, const float* b, int64_t N) {
  Open o(*this, {out, a, b});
  cpu::residual_forward(out, a, b, N);
}
float CpuBackend::cross_entropy_forward(float* losses, float* lse, const float* logits,
                                        const int32_t* targets, int N, int V) {
  Open o(*this, {losses, lse, logits, targets});
  return cpu::cross_entropy_forward(losses, lse, logits, targets, N, V);
}
void CpuBackend::cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                                        const int32_t* targets, float scale, int N, int V) {
  Open o(*this, {dlogits, logits, lse, targets});
  cpu::cross_entropy_backward(dlogits, logits, lse, targets, scale, N, V);
}
void CpuBackend::adamw_update(float* p, float* m, float* v, const float* g, int64_t* counters,
                              const uint8_t* frozen, int rows, int cols, StepCounter counter,
                              float lr, float beta1, float beta2, float eps, float weight_decay) {
  Open o(*this, {p, m, v, g, counters, frozen});
  cpu::adamw_update(p, m, v, g, counters, frozen, rows, cols, counter, lr, beta1, beta2, eps, weight_decay);
}
double CpuBackend::sum_squares(const float* x, size_t n) {
  Open o(*this, {x});
  return cpu::sum_squares(x, n);
}
void CpuBackend::scale(float* x, float a, size_t n) {
  Open o(*this, {x});
  cpu::scale(x, a, n);
}

}  // namespace switchlora
