// GaLore (Zhao et al., "GaLore: Memory-Efficient LLM Training by Gradient
// Low-Rank Projection"; DESIGN §6, as its repo's galore_torch behaves):
// full-rank weights, but every attention/MLP weight's gradient G (m x n) is
// projected to rank r before Adam sees it, so Adam's moments are m x r, r x n
// or r x r instead of m x n:
//
//   every update_proj_gap steps (0, T, 2T, ...):  U S Vh = svd(G)
//     right (std when m >= n):  R = G Vh_r^T   (m, r)   back: N Vh_r
//     left  (std when m <  n):  R = U_r^T G    (r, n)   back: U_r N
//     full  (both sides):       R = U_r^T G Vh_r^T (r, r)  back: U_r N Vh_r
//     (U_r = U[:, :r], Vh_r = Vh[:r]; reverse_std swaps std's two sides)
//   N = the Adam step of R (its repo's AdamW: HF's eps placement, eps 1e-6
//   by default), W -= lr * galore_scale * back(N), then decoupled weight
//   decay W -= lr * wd * W.
// Embeddings, norms and lm_head: the same AdamW, unprojected.
#pragma once
#include "train/method.h"

namespace switchlora {

struct GaloreOptions {
  int rank = 128;
  int update_proj_gap = 200;
  float galore_scale = 0.25f;
  std::string proj_type = "std";  // std | reverse_std | left | right | full
};

class GaloreMethod : public Method {
 public:
  GaloreMethod(Llama& model, const TrainOptions& o);

  void update(int t, float lr) override;
  void save(Checkpoint& ck) const override;  // + each projector by name: <W>.galore_U, <W>.galore_Vh
  void load(const Checkpoint& ck, const std::string& path) override;
  void metrics(nlohmann::json& m) const override;  // projection_refreshed (0 or 1)
  size_t optimizer_state_size() const override { return Method::optimizer_state_size() + arena_.size(); }

  // One projected weight: its projectors (either or both) and its buffers.
  struct Projected {
    const Linear* lin = nullptr;
    float* U = nullptr;   // (m, r): G's first r left singular vectors as columns, or null
    float* Vh = nullptr;  // (r, n): its first r right singular vectors as rows, or null
    float *R = nullptr, *N = nullptr;  // the projected gradient and its update (rows, cols)
    float* S = nullptr;   // (r, n) scratch between the two sides of a full projection
    int rows = 0, cols = 0;  // the shape of R, N and of Adam's moments
  };
  const std::vector<Projected>& projected() const { return projected_; }

 private:
  void refresh(Projected& p);
  std::vector<Projected> projected_;
  Buffer<float> arena_;  // every U, Vh, R, N, S
  bool refreshed_ = false;
};

// Which projectors proj_type gives a weight of m x n: {left (U), right (Vh)}.
std::pair<bool, bool> galore_sides(const std::string& proj_type, size_t m, size_t n);

MethodInfo galore_method();

}  // namespace switchlora
