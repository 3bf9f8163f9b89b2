// The CPU backend: engine/ops.h behind the Backend interface. Its memory is
// ordinary host memory, so the ops run in place.
//
// With strict = true (tests only) it behaves like a GPU where that matters
// to the code above it:
//   - every piece of backend memory is mapped unreadable except while one of
//     the backend's own calls runs: code that reads or writes model memory
//     behind the backend's back, which would read a device pointer on the
//     GPU, dies with a segmentation fault here instead;
//   - every array handed to an op must be backend memory (a host pointer
//     given to a GPU kernel is an illegal address);
//   - side-queue copies are held back until main_waits_for_side() or
//     synchronize(), the latest a GPU could run them: code that uses their
//     results without waiting computes with stale values here.
#pragma once
#include <initializer_list>
#include <vector>

#include "engine/backend.h"

namespace switchlora {

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(bool strict = false) : protect_(strict) {}
  ~CpuBackend() override;
  Device device() const override { return Device::kCpu; }
  std::string name() const override { return protect_ ? "cpu (strict)" : "cpu"; }

  void* alloc(size_t bytes) override;
  void release(void* p) override;
  void* alloc_host(size_t bytes) override;
  void release_host(void* p) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
               size_t rows) override;
  void zero(void* p, size_t bytes) override;
  void zero_2d(void* p, size_t pitch, size_t width, size_t rows) override;
  // The ops run as they are called, so the main queue is always done: only
  // the (strict) held-back side copies are ever waited for.
  void synchronize() override { run_side_copies(); }
  void copy_side(void* dst, const void* src, size_t bytes) override;
  void side_waits_for_main() override {}
  void main_waits_for_side() override { run_side_copies(); }

  void apply_precision(Precision p) override;
  void gemm(float* C, const float* A, const float* B, int M, int N, int K, bool transA,
            bool transB, float alpha, float beta, Precision p) override;
  void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N,
                         int C) override;
  void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N,
                          int C) override;
  void rmsnorm_forward(float* y, float* rstd, const float* x, const float* g, int N, int C,
                       float eps) override;
  void rmsnorm_backward(float* dx, float* dg, const float* dy, const float* x, const float* g,
                        const float* rstd, int N, int C) override;
  void rope_forward(float* out, const float* x, int B, int T, int NH, int HS,
                    float theta) override;
  void rope_backward(float* dx, const float* dout, int B, int T, int NH, int HS,
                     float theta) override;
  void attention_forward(float* out, float* lse, const float* q, const float* k,
                         const float* v, int B, int T, int NH, int HS) override;
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                          const float* k, const float* v, const float* out, const float* lse,
                          int B, int T, int NH, int HS) override;
  void swiglu_forward(float* out, const float* gate, const float* up, int64_t N) override;
  void dropout_forward(float* out, const float* x, int64_t N, float p, uint64_t seed, uint64_t stream) override;
  void dropout_backward(float* dx, const float* dout, int64_t N, float p, uint64_t seed,
                        uint64_t stream) override;
  void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                       const float* up, int64_t N) override;
  void residual_forward(float* out, const float* a, const float* b, int64_t N) override;
  float cross_entropy_forward(float* losses, float* lse, const float* logits,
                              const int32_t* targets, int N, int V) override;
  void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                              const int32_t* targets, float scale, int N, int V) override;
  void adamw_update(float* p, float* m, float* v, const float* g, int64_t* counters,
                    const uint8_t* frozen, int rows, int cols, StepCounter counter, float lr,
                    float beta1, float beta2, float eps, float weight_decay) override;
  double sum_squares(const float* x, size_t n) override;
  void scale(float* x, float a, size_t n) override;

 private:
  // Opens every protected region for the lifetime of one backend call;
  // strict: first checks that each of `arrays` (null allowed) is backend memory.
  struct Open {
    explicit Open(CpuBackend& b, std::initializer_list<const void*> arrays = {});
    ~Open();
    CpuBackend& b;
  };
  void set_access(bool readable);
  bool owns(const void* p) const;
  void run_side_copies();

  bool protect_;
  int open_depth_ = 0;
  struct Region { void* p; size_t bytes; };
  std::vector<Region> regions_;  // protected allocations
  struct Copy { void* dst; const void* src; size_t bytes; };
  std::vector<Copy> side_copies_;  // held back (strict)
};

}  // namespace switchlora
