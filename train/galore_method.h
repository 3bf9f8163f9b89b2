// GaLore (Zhao et al., "GaLore: Memory-Efficient LLM Training by Gradient
// Low-Rank Projection"; DESIGN §6, as its repo's galore_torch behaves):
// full-rank weights, but every attention/MLP weight's gradient G (m x n) is
// projected to rank r before Adam sees it, so Adam's moments are r x n or
// m x r instead of m x n:
//
//   every update_proj_gap steps (0, T, 2T, ...):  U S Vh = svd(G)
//     std, m >= n:  P = Vh[:r] (r, n),  R = G P^T (m, r),  back: N P
//     std, m <  n:  P = U[:, :r] (m, r), R = P^T G (r, n),  back: P N
//     (reverse_std swaps the two; left and right force one side)
//   N = m_hat / (sqrt(v) + eps)-style Adam step of R (its repo's AdamW: HF's
//   eps placement, eps 1e-6 by default), W -= lr * galore_scale * back(N),
//   then decoupled weight decay W -= lr * wd * W.
// Embeddings, norms and lm_head: the same AdamW, unprojected.
#pragma once
#include "train/method.h"

namespace switchlora {

struct GaloreOptions {
  int rank = 128;
  int update_proj_gap = 200;
  float galore_scale = 0.25f;
  std::string proj_type = "std";  // std | reverse_std | left | right
};

class GaloreMethod : public Method {
 public:
  GaloreMethod(Llama& model, const TrainOptions& o);

  void update(int t, float lr) override;
  void save(Checkpoint& ck) const override;  // + each projector P by name
  void load(const Checkpoint& ck, const std::string& path) override;
  void metrics(nlohmann::json& m) const override;  // projection_refreshed (0 or 1)

  // One projected weight: which side P multiplies, and its buffers.
  struct Projected {
    const Linear* lin = nullptr;
    bool right = true;       // P = Vh[:r] (r, n), else P = U[:, :r] (m, r)
    float *P = nullptr, *R = nullptr, *N = nullptr;  // backend memory
    int rows = 0, cols = 0;  // the shape of R, N and of Adam's moments
  };
  const std::vector<Projected>& projected() const { return projected_; }

 private:
  void refresh(Projected& p);
  std::vector<Projected> projected_;
  Buffer<float> arena_;  // every P, R, N
  bool refreshed_ = false;
};

MethodInfo galore_method();

}  // namespace switchlora
