// Where a training step's time goes, for `switchlora bench --profile`
// (DESIGN §9). ProfilingBackend wraps the run's backend and passes every
// call through to it; while on(), it also times them:
//
//   - the trainer names the phases of a step (Backend::phase): "forward and
//     backward", "all-reduce", "clip", "switch", "optimizer", ...;
//   - inside "forward and backward" each backend call's time goes to its op
//     ("attention", "norms", ...), each GEMM's to the layer kind its shape
//     says (M, N, K against the model's C, I, V and LoRA rank r), and the
//     host's time between calls to "host, between ops";
//   - inside any other phase, all of its time goes to the phase.
//
// On a GPU every timed call is followed by a synchronize, so the phases add
// up honestly but the profiled steps run slower than real ones; bench times
// its tokens/s on separate, unprofiled steps.
#pragma once
#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/backend.h"

namespace switchlora {

class ProfilingBackend : public Backend {
 public:
  // C, I, V: the model's hidden, intermediate and vocabulary sizes; r its
  // LoRA rank (0: none).
  ProfilingBackend(Backend& inner, int C, int I, int V, int r) : be_(inner), C_(C), I_(I), V_(V), r_(r) {}

  void on() { on_ = true; phase_ = ""; mark_ = now(); }
  void off() { phase("");  on_ = false; }
  // Seconds per phase or op so far, largest first.
  std::vector<std::pair<std::string, double>> seconds() const;

  void phase(const char* name) override;

  Device device() const override { return be_.device(); }
  std::string name() const override { return be_.name(); }
  void* alloc(size_t bytes) override { return be_.alloc(bytes); }
  void release(void* p) override { be_.release(p); }
  void* alloc_host(size_t bytes) override { return be_.alloc_host(bytes); }
  void release_host(void* p) override { be_.release_host(p); }
  void copy(void* dst, const void* src, size_t bytes) override {
    timed("copies and zeroing", [&] { be_.copy(dst, src, bytes); });
  }
  void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
               size_t rows) override {
    timed("copies and zeroing", [&] { be_.copy_2d(dst, dst_pitch, src, src_pitch, width, rows); });
  }
  void zero(void* p, size_t bytes) override { timed("copies and zeroing", [&] { be_.zero(p, bytes); }); }
  void zero_2d(void* p, size_t pitch, size_t width, size_t rows) override {
    timed("copies and zeroing", [&] { be_.zero_2d(p, pitch, width, rows); });
  }
  void synchronize() override { be_.synchronize(); }
  void copy_side(void* dst, const void* src, size_t bytes) override { be_.copy_side(dst, src, bytes); }
  void side_waits_for_main() override { be_.side_waits_for_main(); }
  void main_waits_for_side() override { be_.main_waits_for_side(); }

  void gemm(float* C, const float* A, const float* B, int M, int N, int K, bool transA, bool transB,
            float alpha, float beta, Precision p) override {
    timed(gemm_kind(M, N, K), [&] { be_.gemm(C, A, B, M, N, K, transA, transB, alpha, beta, p); });
  }
  void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C) override {
    timed("embedding", [&] { be_.embedding_forward(out, tokens, wte, N, C); });
  }
  void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C) override {
    timed("embedding", [&] { be_.embedding_backward(dwte, dout, tokens, N, C); });
  }
  void rmsnorm_forward(float* y, float* rstd, const float* x, const float* g, int N, int C, float eps) override {
    timed("norms", [&] { be_.rmsnorm_forward(y, rstd, x, g, N, C, eps); });
  }
  void rmsnorm_backward(float* dx, float* dg, const float* dy, const float* x, const float* g, const float* rstd,
                        int N, int C) override {
    timed("norms", [&] { be_.rmsnorm_backward(dx, dg, dy, x, g, rstd, N, C); });
  }
  void rope_forward(float* out, const float* x, int B, int T, int NH, int HS, float theta) override {
    timed("rope", [&] { be_.rope_forward(out, x, B, T, NH, HS, theta); });
  }
  void rope_backward(float* dx, const float* dout, int B, int T, int NH, int HS, float theta) override {
    timed("rope", [&] { be_.rope_backward(dx, dout, B, T, NH, HS, theta); });
  }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B, int T,
                         int NH, int HS) override {
    timed("attention", [&] { be_.attention_forward(out, lse, q, k, v, B, T, NH, HS); });
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse, int B, int T, int NH,
                          int HS) override {
    timed("attention", [&] { be_.attention_backward(dq, dk, dv, dout, q, k, v, out, lse, B, T, NH, HS); });
  }
  void swiglu_forward(float* out, const float* gate, const float* up, int64_t N) override {
    timed("swiglu", [&] { be_.swiglu_forward(out, gate, up, N); });
  }
  void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                       int64_t N) override {
    timed("swiglu", [&] { be_.swiglu_backward(dgate, dup, dout, gate, up, N); });
  }
  void dropout_forward(float* out, const float* x, int64_t N, float p, uint64_t seed, uint64_t stream) override {
    timed("dropout", [&] { be_.dropout_forward(out, x, N, p, seed, stream); });
  }
  void dropout_backward(float* dx, const float* dout, int64_t N, float p, uint64_t seed, uint64_t stream) override {
    timed("dropout", [&] { be_.dropout_backward(dx, dout, N, p, seed, stream); });
  }
  void residual_forward(float* out, const float* a, const float* b, int64_t N) override {
    timed("residual adds", [&] { be_.residual_forward(out, a, b, N); });
  }
  float cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets, int N,
                              int V) override {
    float loss = 0;
    timed("cross-entropy", [&] { loss = be_.cross_entropy_forward(losses, lse, logits, targets, N, V); });
    return loss;
  }
  void cross_entropy_backward(float* dlogits, const float* logits, const float* lse, const int32_t* targets,
                              float scale, int N, int V) override {
    timed("cross-entropy", [&] { be_.cross_entropy_backward(dlogits, logits, lse, targets, scale, N, V); });
  }
  void adamw_update(float* p, float* m, float* v, const float* g, int64_t* counters, const uint8_t* frozen,
                    int rows, int cols, StepCounter counter, float lr, float beta1, float beta2, float eps,
                    float weight_decay) override {
    timed("adamw", [&] {
      be_.adamw_update(p, m, v, g, counters, frozen, rows, cols, counter, lr, beta1, beta2, eps, weight_decay);
    });
  }
  double sum_squares(const float* x, size_t n) override {
    double s = 0;
    timed("norm of gradients", [&] { s = be_.sum_squares(x, n); });
    return s;
  }
  void scale(float* x, float a, size_t n) override { timed("scaling", [&] { be_.scale(x, a, n); }); }

 protected:
  void apply_precision(Precision p) override { be_.set_precision(p); }

 private:
  using Clock = std::chrono::steady_clock;
  static Clock::time_point now() { return Clock::now(); }
  static constexpr const char* kModel = "forward and backward";
  const char* gemm_kind(int M, int N, int K) const;
  // Times f as `what` when ops are timed one by one (on, in the model phase).
  template <class F>
  void timed(const char* what, F&& f) {
    if (!on_ || phase_ != kModel) return f();
    be_.synchronize();
    const Clock::time_point t0 = now();
    f();
    be_.synchronize();
    const double dt = std::chrono::duration<double>(now() - t0).count();
    seconds_[what] += dt;
    in_ops_ += dt;
  }

  Backend& be_;
  const int C_, I_, V_, r_;
  bool on_ = false;
  std::string phase_;         // "" before the first phase
  Clock::time_point mark_;    // when phase_ began
  double in_ops_ = 0;         // seconds of timed ops since mark_
  std::map<std::string, double> seconds_;
};

}  // namespace switchlora
