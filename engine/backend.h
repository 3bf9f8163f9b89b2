// The backend a model runs on (DESIGN §2): the op set, each op's shapes and
// equations declared here once (its CPU twin in engine/cpu/, its CUDA twin
// in engine/cuda/), the few updates the optimizer makes to parameters, and the memory
// calls that move data between the host and the backend's memory. The model,
// the optimizer and the switcher are written once against this interface;
// `--device cpu` gives them CpuBackend (engine/cpu/backend.cpp) and `--device
// cuda` CudaBackend (engine/cuda/backend.cu), chosen once at start.
//
// Pointers passed to the ops are BACKEND memory (device memory on CUDA),
// from alloc(). The host may touch that memory only through copy(); tests
// run the CPU backend with backend memory made unreadable outside the
// backend's own calls to prove that it never does (CpuBackend::protect).
//
// Every call is queued in order (one stream on CUDA) and may return before it
// is done; a host destination of copy() may be read, and a host source from
// alloc_host() rewritten, once synchronize() has returned. The calls that
// hand a number back to the host (cross_entropy's mean, sum_squares) wait
// for it. zero() and zero_2d() take backend memory only.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/error.h"
#include "engine/step_counter.h"

namespace switchlora {

enum class Device { kCpu, kCuda };

// How the GEMMs multiply (DESIGN §9): fp32 on every backend; on CUDA also TF32
// tensor cores (inputs rounded to 10-bit mantissas) or bf16 tensor cores
// (inputs rounded to bf16, 7-bit mantissas). Storage, accumulation, losses
// and reductions stay fp32 in every mode.
enum class Precision { kFp32, kTf32, kBf16 };

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;  // "cpu", "cuda:0 (NVIDIA H200)"

  // ------------------------------------------------------------ memory
  // Each backend's own calls: engine/cpu/backend.cpp, engine/cuda/backend.cu.
  // Backend memory, zero-filled. Never null (throws on failure).
  virtual void* alloc(size_t bytes) = 0;
  virtual void release(void* p) = 0;  // null is fine
  // Host memory the backend copies to and from fastest (pinned on CUDA).
  virtual void* alloc_host(size_t bytes) = 0;
  virtual void release_host(void* p) = 0;
  // bytes from src to dst, each host or backend memory (CUDA: unified addressing).
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  // `rows` runs of `width` bytes, dst and src advancing by their pitches:
  // moves a column of a row-major matrix (pitch = row bytes, width = 4).
  virtual void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                       size_t width, size_t rows) = 0;
  virtual void zero(void* p, size_t bytes) = 0;
  virtual void zero_2d(void* p, size_t pitch, size_t width, size_t rows) = 0;
  virtual void synchronize() = 0;  // waits for both queues below
  // copy, then wait: for host code that reads the destination, or reuses
  // the source, right away.
  void copy_and_wait(void* dst, const void* src, size_t bytes) {
    copy(dst, src, bytes);
    synchronize();
  }

  // A side queue for copies that should overlap the ops (SwitchLoRA's
  // candidate traffic; a second stream on CUDA, plain copies on the CPU).
  // The two queues are ordered only where asked:
  //   side_waits_for_main(): later side copies start after every call queued so far;
  //   main_waits_for_side(): later calls start after every side copy queued so far.
  virtual void copy_side(void* dst, const void* src, size_t bytes) = 0;
  virtual void side_waits_for_main() = 0;
  virtual void main_waits_for_side() = 0;

  // Names the part of a training step that follows ("forward and backward",
  // "optimizer", ...), for `switchlora bench --profile`: ignored except by
  // ProfilingBackend (engine/profile.h), which times the parts.
  virtual void phase(const char* /*name*/) {}

  // ------------------------------------------------------------ ops
  // The op set, declared once here (DESIGN §2): each op is a hand-written
  // forward/backward pair over fp32 arrays of backend memory, written twice,
  // in engine/cpu/X.cpp (the reference, declared in engine/ops.h) and in
  // engine/cuda/X.cu (engine/cuda/ops.h), with the same names and argument
  // order as here.
  //   - forward functions overwrite their outputs;
  //   - backward functions ACCUMULATE (+=) into gradient buffers, so zeroing
  //     the gradients is one explicit step per optimizer step; a null
  //     gradient pointer means "not needed" and is skipped. One exception:
  //     cross_entropy_backward, the first op of the backward pass, OVERWRITES
  //     d logits, and may write it over the logits themselves.
  // Dimension names as in llm.c: B batch, T time, C channels, NH heads,
  // HS head size (C = NH * HS), V vocabulary, N = B * T rows. The CPU ops
  // throw for a bad token or target id; kernels cannot throw, so on CUDA
  // those become NaN outputs instead (embedding.cu, cross_entropy.cu).

  // How matmul multiplies (Precision above). Throws if this backend lacks p:
  // the CPU has fp32 only; TF32 and bf16 need an Ampere or newer GPU.
  // Process-wide for this backend.
  void set_precision(Precision p) {
    apply_precision(p);
    precision_ = p;
  }
  Precision precision() const { return precision_; }
  // Matmul: C = alpha * op(A) @ op(B) + beta * C   -- the only BLAS call site
  // C: (M, N)   op(A): (M, K), A stored (M, K), or (K, M) when transA
  //             op(B): (K, N), B stored (K, N), or (N, K) when transB
  // Row-major, contiguous. beta = 0 overwrites C (C may be uninitialised, even NaN).
  // engine/cpu/matmul.cpp (OpenBLAS, BLIS or Eigen: CMake SWITCHLORA_BLAS), engine/cuda/matmul.cu (cuBLAS).
  // gemm multiplies at precision p, whatever precision() is (throws if this
  // backend lacks p); matmul is gemm at precision().
  virtual void gemm(float* C, const float* A, const float* B, int M, int N, int K, bool transA,
                    bool transB, float alpha, float beta, Precision p) = 0;
  void matmul(float* C, const float* A, const float* B, int M, int N, int K, bool transA,
              bool transB, float alpha = 1.0f, float beta = 0.0f) {
    gemm(C, A, B, M, N, K, transA, transB, alpha, beta, precision());
  }
  // Linear layer without bias, on matmul, weights in PyTorch's (out, in) layout:
  // y (N, out) = x (N, in) @ W^T
  void linear_forward(float* y, const float* x, const float* W, int N, int in, int out) {
    matmul(y, x, W, N, out, in, false, true);
  }
  // dx (N, in) = dx_beta * dx + dy @ W;   dW (out, in) += dy^T @ x
  // Gradients accumulate (dx_beta = 1); dx_beta = 0 lets dx's first writer
  // skip the zeroing of a fresh buffer (and the GEMM's read of it).
  void linear_backward(float* dx, float* dW, const float* dy, const float* x, const float* W,
                       int N, int in, int out, float dx_beta = 1.0f) {
    if (dx) matmul(dx, dy, W, N, in, out, false, false, 1.0f, dx_beta);
    if (dW) matmul(dW, dy, x, out, in, N, true, false, 1.0f, 1.0f);
  }

  // Embedding: out[n, :] = wte[tokens[n], :]
  // tokens: (N)   wte: (V, C)   out: (N, C)
  // engine/cpu/embedding.cpp, engine/cuda/embedding.cu
  virtual void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N,
                                 int C) = 0;
  // dwte[tokens[n], :] += dout[n, :]
  virtual void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N,
                                  int C) = 0;

  // RMSNorm: y = x / sqrt(mean(x^2) + eps) * g
  // x, y: (N, C)   g: (C)   rstd: (N) saved for backward
  // engine/cpu/rmsnorm.cpp, engine/cuda/rmsnorm.cu
  virtual void rmsnorm_forward(float* y, float* rstd, const float* x, const float* g, int N,
                               int C, float eps) = 0;
  // dx += ..., dg += ...
  virtual void rmsnorm_backward(float* dx, float* dg, const float* dy, const float* x,
                                const float* g, const float* rstd, int N, int C) = 0;

  // RoPE, rotary position embedding in HF LLaMA's "rotate_half" convention:
  // within each head, element i pairs with element i + HS/2 (i < HS/2) and
  // the pair is rotated by angle t * theta^(-2i/HS), t the position in the
  // sequence:
  //   out[i]        = x[i] cos - x[i + HS/2] sin
  //   out[i + HS/2] = x[i + HS/2] cos + x[i] sin
  // x, out: (B, T, NH, HS), i.e. the (N, C) output of a q or k projection.
  // engine/cpu/rope.cpp, engine/cuda/rope.cu
  virtual void rope_forward(float* out, const float* x, int B, int T, int NH, int HS,
                            float theta) = 0;
  // dx += R^T dout  (the inverse rotation)
  virtual void rope_backward(float* dx, const float* dout, int B, int T, int NH, int HS,
                             float theta) = 0;

  // Attention, causal and multi-head, with a fused softmax, scale 1/sqrt(HS):
  //   out[t] = sum_{s<=t} softmax_s(q[t].k[s] / sqrt(HS)) v[s]
  // q, k, v, out: (B, T, NH, HS)   lse: (B, NH, T), the log-sum-exp of each
  // softmax row, saved so that backward recomputes the probabilities instead
  // of storing the (T, T) matrix (the flash-attention trick). CUDA: HS at
  // most 128 (the kernel keeps a row of a head in registers).
  // engine/cpu/attention.cpp, engine/cuda/attention.cu
  virtual void attention_forward(float* out, float* lse, const float* q, const float* k,
                                 const float* v, int B, int T, int NH, int HS) = 0;
  // dq, dk, dv += ...   (out and lse are the forward's)
  virtual void attention_backward(float* dq, float* dk, float* dv, const float* dout,
                                  const float* q, const float* k, const float* v,
                                  const float* out, const float* lse, int B, int T, int NH,
                                  int HS) = 0;

  // SwiGLU: out = silu(gate) * up,  silu(x) = x * sigmoid(x)
  // gate, up, out: (N) elements
  // engine/cpu/swiglu.cpp, engine/cuda/swiglu.cu
  virtual void swiglu_forward(float* out, const float* gate, const float* up, int64_t N) = 0;
  // dgate += ..., dup += ...
  virtual void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                               const float* up, int64_t N) = 0;

  // Dropout with a counter-based mask (LoRA's --lora_dropout):
  //   out = keep * x / (1 - p),   keep[i] = uniform01(seed, stream, i) >= p
  // The same (seed, stream) gives the same mask on every backend and rank, so
  // backward recomputes it instead of storing it.   x, out: (N) elements
  // engine/cpu/dropout.cpp, engine/cuda/dropout.cu
  virtual void dropout_forward(float* out, const float* x, int64_t N, float p, uint64_t seed,
                               uint64_t stream) = 0;
  // dx += keep * dout / (1 - p)
  virtual void dropout_backward(float* dx, const float* dout, int64_t N, float p, uint64_t seed,
                                uint64_t stream) = 0;

  // Residual: out = a + b   a, b, out: (N) elements; out may alias a or b.
  // No backward: the gradient passes to both inputs unchanged.
  // engine/cpu/residual.cpp, engine/cuda/residual.cu
  virtual void residual_forward(float* out, const float* a, const float* b, int64_t N) = 0;

  // Cross-entropy, fused with the log-softmax over the vocabulary:
  //   losses[n] = logsumexp(logits[n, :]) - logits[n, targets[n]]
  // logits: (N, V)   targets: (N), each in [0, V)   losses, lse: (N)
  // Returns the mean of losses, accumulated in double, to the host (waits).
  // engine/cpu/cross_entropy.cpp, engine/cuda/cross_entropy.cu
  virtual float cross_entropy_forward(float* losses, float* lse, const float* logits,
                                      const int32_t* targets, int N, int V) = 0;
  // dlogits[n, :] = scale * (softmax(logits[n, :]) - onehot(targets[n]))
  // Overwrites, unlike the other backward ops; dlogits may equal logits
  // (in place), which is how the model calls it: the (N, V) gradient needs
  // no buffer of its own and no zeroing (N V = 66M floats at the paper's
  // vocabulary and batch 8 x 256). The model passes
  // scale = 1 / (N * grad_accum_steps) for a mean loss.
  virtual void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                                      const int32_t* targets, float scale, int N, int V) = 0;

  // ------------------------------------------------------------ updates
  // AdamW on one (rows, cols) tensor, as llm.c's adamw_update (optim/adamw.h
  // has the equations). p, m, v, g: (rows, cols); counters, frozen:
  // num_counters(counter, rows, cols) entries, frozen may be null (none
  // frozen). A frozen vector is skipped: no moment update, no count, no decay.
  // CPU: engine/cpu/adamw.cpp, CUDA: engine/cuda/adamw.cu.
  virtual void adamw_update(float* p, float* m, float* v, const float* g, int64_t* counters,
                            const uint8_t* frozen, int rows, int cols, StepCounter counter,
                            float lr, float beta1, float beta2, float eps, float weight_decay) = 0;
  // Gradient clipping's two halves (optim/clip.cpp): sum_i x_i^2, accumulated
  // in double (waits), and x *= a.  x: (n).
  // CPU: engine/cpu/update.cpp, CUDA: engine/cuda/update.cu.
  virtual double sum_squares(const float* x, size_t n) = 0;
  virtual void scale(float* x, float a, size_t n) = 0;

 protected:
  virtual void apply_precision(Precision p) = 0;

 private:
  Precision precision_ = Precision::kFp32;
};

// The process's CPU backend (the reference, always available).
Backend& cpu_backend();
// True when this build has the CUDA backend and a GPU is visible.
bool cuda_available();
// "cpu", "cuda" or "auto" (cuda when available, else cpu); the backend lives
// for the rest of the process, on GPU local_rank % device count. Throws
// naming --device for an unknown name or cuda without a GPU.
Backend& backend_for(const std::string& device, int local_rank = 0);
// "fp32", "tf32" or "bf16", for --dtype (tf32 is --dtype fp32 --tf32).
Precision precision_from_flags(const std::string& dtype, bool tf32);
// This machine's physical memory in bytes: the bound the CPU backend and the
// trainer check allocations against (with overcommit, a larger calloc
// "succeeds" and the OOM killer strikes when it is touched).
double host_memory_bytes();

// An owning array in backend (or the backend's host) memory, move-only:
// the one way the program holds backend memory.
template <typename T>
class Buffer {
 public:
  enum Where { kBackend, kHost };
  Buffer() = default;
  Buffer(Backend& be, size_t n, Where where = kBackend) : be_(&be), n_(n), where_(where) {
    const size_t bytes = (n ? n : 1) * sizeof(T);
    p_ = static_cast<T*>(where == kBackend ? be.alloc(bytes) : be.alloc_host(bytes));
    if (where == kHost) std::fill_n(p_, n, T());
  }
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    std::swap(be_, o.be_);
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    std::swap(where_, o.where_);
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() {
    if (!p_) return;
    if (where_ == kBackend) be_->release(p_);
    else be_->release_host(p_);
  }

  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }
  bool on_host() const { return where_ == kHost; }
  Backend& backend() const { return *be_; }

  // Whole-buffer moves to and from the host (these wait).
  std::vector<T> to_host() const {
    std::vector<T> out(n_);
    be_->copy_and_wait(out.data(), p_, n_ * sizeof(T));
    return out;
  }
  void from_host(const std::vector<T>& v) {
    SL_CHECK(v.size() == n_, "Buffer::from_host: " + std::to_string(v.size()) +
                                 " values for a buffer of " + std::to_string(n_));
    be_->copy_and_wait(p_, v.data(), n_ * sizeof(T));
  }

 private:
  Backend* be_ = nullptr;
  T* p_ = nullptr;
  size_t n_ = 0;
  Where where_ = kBackend;
};

}  // namespace switchlora
