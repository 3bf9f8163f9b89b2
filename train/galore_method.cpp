#include "train/galore_method.h"

#include <Eigen/SVD>
#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "train/flags.h"
#include "train/options.h"

namespace switchlora {

GaloreMethod::GaloreMethod(Llama& model, const TrainOptions& o) : Method(model, o) {
  const GaloreOptions& g = o.galore;
  const std::vector<const Linear*> lins = static_cast<const Llama&>(model).linears();
  // Which side each weight projects, and one arena for every P, R, N.
  size_t total = 0;
  for (const Linear* l : lins) {
    const int m = l->out, n = l->in, r = g.rank;
    if (r < 1 || r >= std::min(m, n))
      throw Error("--rank " + std::to_string(r) + " must be in [1, min(m, n) = " + std::to_string(std::min(m, n)) +
                  ") of every projected weight (" + l->W->name + " is " + std::to_string(m) + " x " +
                  std::to_string(n) + ")");
    Projected p;
    p.lin = l;
    p.right = g.proj_type == "right" || (g.proj_type == "std" && m >= n) || (g.proj_type == "reverse_std" && m < n);
    p.rows = p.right ? m : r;
    p.cols = p.right ? r : n;
    projected_.push_back(p);
    total += (size_t)r * (p.right ? n : m) + 2 * (size_t)p.rows * p.cols;
  }
  arena_ = Buffer<float>(model.be, total);
  float* next = arena_.data();
  std::vector<AdamTensor> tensors;
  for (Projected& p : projected_) {
    const size_t P = (size_t)o.galore.rank * (p.right ? p.lin->in : p.lin->out), RN = (size_t)p.rows * p.cols;
    p.P = next, p.R = next + P, p.N = next + P + RN;
    next += P + 2 * RN;
    tensors.push_back({p.lin->W->name + ".galore", p.N, p.R, p.rows, p.cols, StepCounter::kPerTensor, nullptr});
  }
  // Everything else trains with the same AdamW, unprojected.
  for (AdamTensor& t : model.params.adam_tensors()) {
    bool projected = false;
    for (const Projected& p : projected_) projected = projected || p.lin->W->data == t.param;
    if (!projected) tensors.push_back(t);
  }
  build_optimizer(std::move(tensors));
  optimizer_->config().weight_decay = 0.0f;  // decoupled, applied after the update (see update())
}

// P from the SVD of the current gradient, in double on the host (Eigen's
// divide-and-conquer BDCSVD: Jacobi takes minutes at 60m): the same numbers
// on every rank (the gradient is all-reduced first and the SVD is
// deterministic). Signs: each singular vector's largest-magnitude entry
// positive, so a refresh is a function of G alone.
void GaloreMethod::refresh(Projected& p) {
  const Linear& l = *p.lin;
  const int m = l.out, n = l.in, r = opts_.galore.rank;
  std::vector<float> G((size_t)m * n);
  model_.be.copy_and_wait(G.data(), l.W->grad, G.size() * sizeof(float));
  const Eigen::MatrixXd Gd =
      Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(G.data(), m, n)
          .cast<double>();
  const Eigen::BDCSVD<Eigen::MatrixXd> svd(Gd, p.right ? Eigen::ComputeThinV : Eigen::ComputeThinU);
  const Eigen::MatrixXd& vectors = p.right ? svd.matrixV() : svd.matrixU();  // columns, sorted by singular value
  std::vector<float> P((size_t)r * (p.right ? n : m));
  for (int k = 0; k < r; k++) {
    Eigen::VectorXd v = vectors.col(k);
    Eigen::Index at;
    v.cwiseAbs().maxCoeff(&at);
    if (v(at) < 0) v = -v;
    for (int i = 0; i < v.size(); i++) {
      if (p.right) P[(size_t)k * n + i] = (float)v(i);  // P (r, n): row k = Vh[k]
      else P[(size_t)i * r + k] = (float)v(i);          // P (m, r): column k = U[:, k]
    }
  }
  model_.be.copy_and_wait(p.P, P.data(), P.size() * sizeof(float));
}

void GaloreMethod::update(int t, float lr) {
  Backend& be = model_.be;
  const GaloreOptions& g = opts_.galore;
  refreshed_ = t % g.update_proj_gap == 0;
  for (Projected& p : projected_) {
    const Linear& l = *p.lin;
    const int m = l.out, n = l.in, r = g.rank;
    if (refreshed_) refresh(p);
    // R = G P^T (m, r)  or  R = P^T G (r, n);  N starts at 0 for the step below
    if (p.right) be.matmul(p.R, l.W->grad, p.P, m, r, n, false, true);
    else be.matmul(p.R, p.P, l.W->grad, r, n, m, true, false);
    be.zero(p.N, (size_t)p.rows * p.cols * sizeof(float));
  }
  // GaLore's AdamW puts eps beside sqrt(v), not sqrt(v_hat): with
  // eps' = eps / sqrt(1 - b2^k) the engine's kernel computes exactly that.
  const double k = t + 1;  // every tensor's step count (none is ever frozen)
  AdamWConfig& c = optimizer_->config();
  c.eps = (float)(opts_.adam_eps / std::sqrt(1.0 - std::pow((double)opts_.adam_beta2, k)));
  optimizer_->step(lr);  // unprojected tensors updated; each N = -lr * Adam step of R
  for (Projected& p : projected_) {
    const Linear& l = *p.lin;
    const int m = l.out, n = l.in, r = g.rank;
    // W += scale * back(N):  N P (m, n)  or  P N (m, n)
    if (p.right) be.matmul(l.W->data, p.N, p.P, m, n, r, false, false, g.galore_scale, 1.0f);
    else be.matmul(l.W->data, p.P, p.N, m, n, r, false, false, g.galore_scale, 1.0f);
  }
  // Decoupled weight decay on every parameter, after its update (the repo's order).
  if (opts_.weight_decay > 0)
    be.scale(model_.params.trainable.data(), 1.0f - lr * opts_.weight_decay, model_.params.num_trainable());
}

void GaloreMethod::save(Checkpoint& ck) const {
  Method::save(ck);
  for (const Projected& p : projected_) {
    std::vector<float> P((size_t)opts_.galore.rank * (p.right ? p.lin->in : p.lin->out));
    model_.be.copy_and_wait(P.data(), p.P, P.size() * sizeof(float));
    ck.put(p.lin->W->name + ".galore_projector", P);
  }
}

void GaloreMethod::load(const Checkpoint& ck, const std::string& path) {
  Method::load(ck, path);
  for (Projected& p : projected_) {
    std::vector<float> P((size_t)opts_.galore.rank * (p.right ? p.lin->in : p.lin->out));
    ck.get(p.lin->W->name + ".galore_projector", P, path);
    model_.be.copy_and_wait(p.P, P.data(), P.size() * sizeof(float));
  }
}

void GaloreMethod::metrics(nlohmann::json& m) const { m["projection_refreshed"] = refreshed_ ? 1 : 0; }

namespace {

void read_galore_flags(Flags& f, TrainOptions& o, bool chosen) {
  GaloreOptions& g = o.galore;
  g.rank = f.get_int("rank", 128, "GaLore: projection rank r");
  g.update_proj_gap = f.get_int("update_proj_gap", 200, "GaLore: recompute the projections every T steps");
  g.galore_scale = f.get_float("galore_scale", 0.25f, "GaLore: scale of the projected-back update");
  g.proj_type = f.get_string("proj_type", "std", "GaLore: std | reverse_std | left | right");
  if (!chosen) {
    f.refuse({"rank", "update_proj_gap", "galore_scale", "proj_type"},
             "needs --optimizer galore_adamw (or --method galore)");
    return;
  }
  if (g.update_proj_gap < 1) throw Error("--update_proj_gap must be >= 1, got " + std::to_string(g.update_proj_gap));
  if (g.proj_type != "std" && g.proj_type != "reverse_std" && g.proj_type != "left" && g.proj_type != "right")
    throw Error("--proj_type must be std, reverse_std, left or right, got \"" + g.proj_type + "\"");
  if (!f.has("adam_eps")) o.adam_eps = 1e-6f;  // GaLore's AdamW default
}

// Full-rank weights and gradients (all-reduced in full), AdamW's moments of
// each projected gradient (r x max(m, n), twice) next to its projector
// (r x min(m, n)) for std; unprojected AdamW for the rest.
ParamCounts galore_counts(const LlamaConfig& c, int r) {
  ParamCounts n;
  n.trainable = always_trained(c);
  n.optimizer_state = 2 * always_trained(c);
  for (const auto& [in, out] : block_linears(c)) {
    n.trainable += c.num_hidden_layers * in * out;
    n.optimizer_state += c.num_hidden_layers * (size_t)r * (2 * std::max(in, out) + std::min(in, out));
  }
  return n;
}

}  // namespace

MethodInfo galore_method() {
  return {"galore", "GaLore: AdamW on rank-r projections of each weight's gradient", false,
          read_galore_flags, make_method<GaloreMethod>, galore_counts};
}

}  // namespace switchlora
