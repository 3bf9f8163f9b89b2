// CudaBackend: the op set of engine/cuda/ops.h behind the Backend interface
// (engine/backend.h), on the GPU that is current when it is made. It owns
// all the state the ops keep between calls (cuda::Workspace: the cuBLAS
// handle and device scratch) and frees it with itself.
//
// Everything runs on the default stream, so every call is ordered after the
// ones before it and the host needs to wait only to read results: in
// synchronize(), and in the two ops that hand a number back
// (cross_entropy_forward, sum_squares). Host and device pointers can be
// passed to the same copy calls because of unified virtual addressing
// (every 64-bit CUDA platform): cudaMemcpyDefault finds the direction from
// the pointers themselves.
#include <cstring>
#include <string>

#include "engine/cuda/backend.h"
#include "engine/cuda/common.cuh"
#include "engine/cuda/ops.h"

namespace switchlora {

namespace cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the "no driver" error so later calls do not see it
    return 0;
  }
  return n;
}

// The frees below run in destructors and drop their errors, as
// CudaBackend::release explains.
Scratch::~Scratch() {
  if (p_) cudaFree(p_);
}

void* Scratch::get(size_t bytes) {
  if (p_ && bytes <= bytes_) return p_;
  if (p_) CUDA_CHECK(cudaFree(p_));
  p_ = nullptr;
  bytes_ = 0;
  CUDA_CHECK(cudaMalloc(&p_, bytes ? bytes : 1));
  bytes_ = bytes;
  return p_;
}

Workspace::Workspace() { CUBLAS_CHECK(cublasCreate(&blas)); }

Workspace::~Workspace() { cublasDestroy(blas); }

}  // namespace cuda

namespace {

class CudaBackend : public Backend {
 public:
  CudaBackend() {
    CUDA_CHECK(cudaGetDevice(&device_));
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    name_ = "cuda:" + std::to_string(device_) + " (" + prop.name + ")";
    cc_major_ = prop.major;
    // Non-blocking: the side stream does not wait for the default stream
    // (nor it for the side stream) except through the two events below.
    CUDA_CHECK(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&main_done_, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&side_done_, cudaEventDisableTiming));
  }
  ~CudaBackend() override {
    cudaEventDestroy(main_done_);
    cudaEventDestroy(side_done_);
    cudaStreamDestroy(side_);
  }
  Device device() const override { return Device::kCuda; }
  std::string name() const override { return name_; }

  // ------------------------------------------------------------ memory
  // The zero fill is queued like everything else, so it is done before any
  // later call touches the memory.
  void* alloc(size_t bytes) override {
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 1));  // never null, even for 0 bytes
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes));
    return p;
  }
  // release and release_host run in destructors, also while an exception
  // from an earlier CUDA error unwinds the stack; cudaFree then returns that
  // same sticky error, and throwing it again would terminate the program
  // before the first message is seen. So their errors are dropped: the
  // error has already been, or will be, reported by a checked call.
  // (cudaFree waits for the device, so memory is never freed under a kernel.)
  void release(void* p) override {
    if (p) cudaFree(p);
  }
  // Pinned (page-locked) host memory: the GPU copies to and from it by DMA
  // at full bus speed, and cudaMemcpyAsync from it does not wait.
  void* alloc_host(size_t bytes) override {
    void* p = nullptr;
    CUDA_CHECK(cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault));
    std::memset(p, 0, bytes);
    return p;
  }
  void release_host(void* p) override {
    if (p) cudaFreeHost(p);
  }
  // A copy out of pinned host memory may still be reading it after this
  // returns, so the host must not rewrite such a source before synchronize().
  // A pageable host source is staged by the driver before the call returns.
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, 0));
  }
  void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
               size_t rows) override {
    if (width == 0 || rows == 0) return;
    CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, rows,
                                 cudaMemcpyDefault, 0));
  }
  // p: device memory (from alloc).
  void zero(void* p, size_t bytes) override {
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, 0));
  }
  void zero_2d(void* p, size_t pitch, size_t width, size_t rows) override {
    if (width == 0 || rows == 0) return;
    CUDA_CHECK(cudaMemset2DAsync(p, pitch, 0, width, rows, 0));
  }
  // Also where a fault inside an earlier kernel is reported. Waits for the
  // side stream too.
  void synchronize() override { CUDA_CHECK(cudaDeviceSynchronize()); }

  // ------------------------------------------------------------ side stream
  void copy_side(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, side_));
  }
  // An event marks everything queued on one stream so far; the other
  // stream's later work waits for it on the GPU, the host never blocks.
  void side_waits_for_main() override {
    CUDA_CHECK(cudaEventRecord(main_done_, 0));
    CUDA_CHECK(cudaStreamWaitEvent(side_, main_done_, 0));
  }
  void main_waits_for_side() override {
    CUDA_CHECK(cudaEventRecord(side_done_, side_));
    CUDA_CHECK(cudaStreamWaitEvent(0, side_done_, 0));
  }

  // ------------------------------------------------------------ ops
  // TF32 and bf16 tensor cores arrived with Ampere (compute capability 8.0);
  // on an older GPU cuBLAS would silently multiply some other way.
  void check_precision(Precision p) const {
    if (p != Precision::kFp32 && cc_major_ < 8)
      throw Error(std::string(p == Precision::kTf32 ? "--tf32" : "--dtype bf16") +
                  " needs an Ampere or newer GPU (compute capability 8.0); device " +
                  std::to_string(device_) + " has " + std::to_string(cc_major_) + ".x");
  }
  void apply_precision(Precision p) override { check_precision(p); }
  void gemm(float* C, const float* A, const float* B, int M, int N, int K, bool transA,
            bool transB, float alpha, float beta, Precision p) override {
    check_precision(p);
    cuda::matmul(ws_, C, A, B, M, N, K, transA, transB, alpha, beta, p);
  }
  void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N,
                         int C) override {
    cuda::embedding_forward(out, tokens, wte, N, C);
  }
  void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N,
                          int C) override {
    cuda::embedding_backward(ws_, dwte, dout, tokens, N, C);
  }
  void rmsnorm_forward(float* y, float* rstd, const float* x, const float* g, int N, int C,
                       float eps) override {
    cuda::rmsnorm_forward(y, rstd, x, g, N, C, eps);
  }
  void rmsnorm_backward(float* dx, float* dg, const float* dy, const float* x, const float* g,
                        const float* rstd, int N, int C) override {
    cuda::rmsnorm_backward(ws_, dx, dg, dy, x, g, rstd, N, C);
  }
  void rope_forward(float* out, const float* x, int B, int T, int NH, int HS,
                    float theta) override {
    cuda::rope_forward(out, x, B, T, NH, HS, theta);
  }
  void rope_backward(float* dx, const float* dout, int B, int T, int NH, int HS,
                     float theta) override {
    cuda::rope_backward(dx, dout, B, T, NH, HS, theta);
  }
  void attention_forward(float* out, float* lse, const float* q, const float* k,
                         const float* v, int B, int T, int NH, int HS) override {
    cuda::attention_forward(out, lse, q, k, v, B, T, NH, HS);
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                          const float* k, const float* v, const float* out, const float* lse,
                          int B, int T, int NH, int HS) override {
    cuda::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, HS);
  }
  void dropout_forward(float* out, const float* x, int64_t N, float p, uint64_t seed, uint64_t stream) override {
    cuda::dropout_forward(out, x, N, p, seed, stream);
  }
  void dropout_backward(float* dx, const float* dout, int64_t N, float p, uint64_t seed,
                        uint64_t stream) override {
    cuda::dropout_backward(dx, dout, N, p, seed, stream);
  }
  void swiglu_forward(float* out, const float* gate, const float* up, int64_t N) override {
    cuda::swiglu_forward(out, gate, up, N);
  }
  void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                       const float* up, int64_t N) override {
    cuda::swiglu_backward(dgate, dup, dout, gate, up, N);
  }
  void residual_forward(float* out, const float* a, const float* b, int64_t N) override {
    cuda::residual_forward(out, a, b, N);
  }
  float cross_entropy_forward(float* losses, float* lse, const float* logits,
                              const int32_t* targets, int N, int V) override {
    return cuda::cross_entropy_forward(ws_, losses, lse, logits, targets, N, V);
  }
  void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                              const int32_t* targets, float scale, int N, int V) override {
    cuda::cross_entropy_backward(dlogits, logits, lse, targets, scale, N, V);
  }

  // ------------------------------------------------------------ updates
  void adamw_update(float* p, float* m, float* v, const float* g, int64_t* counters,
                    const uint8_t* frozen, int rows, int cols, StepCounter counter, float lr,
                    float beta1, float beta2, float eps, float weight_decay) override {
    cuda::adamw_update(p, m, v, g, counters, frozen, rows, cols, counter, lr, beta1, beta2, eps,
                       weight_decay);
  }
  double sum_squares(const float* x, size_t n) override { return cuda::sum_squares(ws_, x, n); }
  void scale(float* x, float a, size_t n) override { cuda::scale(x, a, n); }

 private:
  int device_ = 0, cc_major_ = 0;  // cc_major_: compute capability major
  std::string name_;
  cudaStream_t side_ = nullptr;
  cudaEvent_t main_done_ = nullptr, side_done_ = nullptr;
  cuda::Workspace ws_;  // the ops' cuBLAS handle and scratch
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<CudaBackend>(); }

}  // namespace switchlora
