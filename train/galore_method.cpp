#include "train/galore_method.h"

#include <Eigen/SVD>
#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "train/flags.h"
#include "train/options.h"

namespace switchlora {

namespace {

// GaLore's rank must be below both sides of every weight it projects.
void check_rank(int r, size_t m, size_t n, const std::string& weight) {
  if (r < 1 || (size_t)r >= std::min(m, n))
    throw Error("--rank " + std::to_string(r) + " must be in [1, min(m, n) = " + std::to_string(std::min(m, n)) +
                ") of every projected weight (" + weight + ": " + std::to_string(m) + " x " +
                std::to_string(n) + ")");
}

}  // namespace

std::pair<bool, bool> galore_sides(const std::string& proj_type, size_t m, size_t n) {
  if (proj_type == "full") return {true, true};
  const bool right = proj_type == "right" || (proj_type == "std" && m >= n) || (proj_type == "reverse_std" && m < n);
  return {!right, right};
}

GaloreMethod::GaloreMethod(Llama& model, const TrainOptions& o) : Method(model, o) {
  const GaloreOptions& g = o.galore;
  const int r = g.rank;
  const std::vector<const Linear*> lins = static_cast<const Llama&>(model).linears();
  // Which sides each weight projects, and one arena for every U, Vh, R, N, S.
  std::vector<size_t> sizes;  // per weight: U, Vh, R, N, S
  for (const Linear* l : lins) {
    const int m = l->out, n = l->in;
    check_rank(r, m, n, l->W->name);
    const auto [left, right] = galore_sides(g.proj_type, m, n);
    Projected p;
    p.lin = l;
    p.rows = left ? r : m;
    p.cols = right ? r : n;
    projected_.push_back(p);
    const size_t RN = (size_t)p.rows * p.cols;
    sizes.insert(sizes.end(), {left ? (size_t)m * r : 0, right ? (size_t)r * n : 0, RN, RN,
                               left && right ? (size_t)r * n : 0});
  }
  size_t total = 0;
  for (size_t s : sizes) total += s;
  arena_ = Buffer<float>(model.be, total);
  float* next = arena_.data();
  const size_t* size = sizes.data();
  auto take = [&]() {
    float* at = *size ? next : nullptr;
    next += *size++;
    return at;
  };
  std::vector<AdamTensor> tensors;
  for (Projected& p : projected_) {
    p.U = take(), p.Vh = take(), p.R = take(), p.N = take(), p.S = take();
    // Adam's moments are R's shape; its "parameter" is N, which starts at 0
    // every step, so the optimizer leaves -lr * (Adam step of R) there.
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

namespace {

// Column k of `vectors` with its largest-magnitude entry made positive: the
// sign rule that makes a refresh a function of G alone (an SVD's vectors are
// defined up to sign; the reference, tests/reference/, uses the same rule).
Eigen::VectorXd signed_column(const Eigen::MatrixXd& vectors, int k) {
  Eigen::VectorXd v = vectors.col(k);
  Eigen::Index at;
  v.cwiseAbs().maxCoeff(&at);
  return v(at) < 0 ? Eigen::VectorXd(-v) : v;
}

}  // namespace

// U_r and/or Vh_r from the SVD of the current gradient, in double on the
// host (Eigen's divide-and-conquer BDCSVD: Jacobi takes minutes at 60m): the
// same numbers on every rank, since the gradient is all-reduced first and
// the SVD is deterministic.
void GaloreMethod::refresh(Projected& p) {
  const Linear& l = *p.lin;
  const int m = l.out, n = l.in, r = opts_.galore.rank;
  std::vector<float> G((size_t)m * n);
  model_.be.copy_and_wait(G.data(), l.W->grad, G.size() * sizeof(float));
  const Eigen::MatrixXd Gd =
      Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(G.data(), m, n)
          .cast<double>();
  const Eigen::BDCSVD<Eigen::MatrixXd> svd(Gd, (p.U ? Eigen::ComputeThinU : 0) | (p.Vh ? Eigen::ComputeThinV : 0));
  std::vector<float> P;
  if (p.U) {  // U_r (m, r): column k = U[:, k]
    P.assign((size_t)m * r, 0.0f);
    for (int k = 0; k < r; k++) {
      const Eigen::VectorXd u = signed_column(svd.matrixU(), k);
      for (int i = 0; i < m; i++) P[(size_t)i * r + k] = (float)u(i);
    }
    model_.be.copy_and_wait(p.U, P.data(), P.size() * sizeof(float));
  }
  if (p.Vh) {  // Vh_r (r, n): row k = Vh[k] = V[:, k]
    P.assign((size_t)r * n, 0.0f);
    for (int k = 0; k < r; k++) {
      const Eigen::VectorXd v = signed_column(svd.matrixV(), k);
      for (int j = 0; j < n; j++) P[(size_t)k * n + j] = (float)v(j);
    }
    model_.be.copy_and_wait(p.Vh, P.data(), P.size() * sizeof(float));
  }
}

void GaloreMethod::update(int t, float lr) {
  Backend& be = model_.be;
  const GaloreOptions& g = opts_.galore;
  const int r = g.rank;
  refreshed_ = t % g.update_proj_gap == 0;
  for (Projected& p : projected_) {
    const Linear& l = *p.lin;
    const int m = l.out, n = l.in;
    if (refreshed_) refresh(p);
    if (p.U && p.Vh) {  // R = (U_r^T G) Vh_r^T (r, r)
      be.matmul(p.S, p.U, l.W->grad, r, n, m, true, false);
      be.matmul(p.R, p.S, p.Vh, r, r, n, false, true);
    } else if (p.Vh) {  // R = G Vh_r^T (m, r)
      be.matmul(p.R, l.W->grad, p.Vh, m, r, n, false, true);
    } else {  // R = U_r^T G (r, n)
      be.matmul(p.R, p.U, l.W->grad, r, n, m, true, false);
    }
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
    const int m = l.out, n = l.in;
    const float s = g.galore_scale;
    // W += scale * back(N), back(N) (m, n) = U_r (N Vh_r), N Vh_r or U_r N
    if (p.U && p.Vh) {
      be.matmul(p.S, p.N, p.Vh, r, n, r, false, false);
      be.matmul(l.W->data, p.U, p.S, m, n, r, false, false, s, 1.0f);
    } else if (p.Vh) {
      be.matmul(l.W->data, p.N, p.Vh, m, n, r, false, false, s, 1.0f);
    } else {
      be.matmul(l.W->data, p.U, p.N, m, n, r, false, false, s, 1.0f);
    }
  }
  // Decoupled weight decay on every parameter, after its update (the repo's
  // order), each at its own rate (--non_adapter_lr).
  if (opts_.weight_decay > 0) {
    for (const AdamTensor& t : optimizer_->tensors())
      if (!t.name.ends_with(".galore"))  // not a projected N: an unprojected parameter
        be.scale(t.param, 1.0f - lr * t.lr_scale * opts_.weight_decay, t.numel());
    for (Projected& p : projected_)
      be.scale(p.lin->W->data, 1.0f - lr * opts_.weight_decay, (size_t)p.lin->out * p.lin->in);
  }
}

// The projectors by name: <W>.galore_U (m, r) and/or <W>.galore_Vh (r, n).
void GaloreMethod::save(Checkpoint& ck) const {
  Method::save(ck);
  const int r = opts_.galore.rank;
  auto put = [&](const std::string& name, const float* from, size_t n) {
    std::vector<float> P(n);
    model_.be.copy_and_wait(P.data(), from, n * sizeof(float));
    ck.put(name, P);
  };
  for (const Projected& p : projected_) {
    const std::string& w = p.lin->W->name;
    if (p.U) put(w + ".galore_U", p.U, (size_t)p.lin->out * r);
    if (p.Vh) put(w + ".galore_Vh", p.Vh, (size_t)r * p.lin->in);
  }
}

void GaloreMethod::load(const Checkpoint& ck, const std::string& path) {
  Method::load(ck, path);
  const int r = opts_.galore.rank;
  auto get = [&](const std::string& name, float* to, size_t n) {
    std::vector<float> P(n);
    ck.get(name, P, path);
    model_.be.copy_and_wait(to, P.data(), n * sizeof(float));
  };
  for (Projected& p : projected_) {
    const std::string& w = p.lin->W->name;
    if (p.U) get(w + ".galore_U", p.U, (size_t)p.lin->out * r);
    if (p.Vh) get(w + ".galore_Vh", p.Vh, (size_t)r * p.lin->in);
  }
}

void GaloreMethod::metrics(nlohmann::json& m) const { m["projection_refreshed"] = refreshed_ ? 1 : 0; }

namespace {

void read_galore_flags(Flags& f, TrainOptions& o, bool chosen) {
  GaloreOptions& g = o.galore;
  g.rank = f.get_int("rank", 128, "GaLore: projection rank r");
  g.update_proj_gap = f.get_int("update_proj_gap", 200, "GaLore: recompute the projections every T steps");
  g.galore_scale = f.get_float("galore_scale", 0.25f, "GaLore: scale of the projected-back update");
  g.proj_type = f.get_string("proj_type", "std", "GaLore: std | reverse_std | left | right | full");
  if (!chosen) {
    f.refuse({"rank", "update_proj_gap", "galore_scale", "proj_type"},
             "needs --optimizer galore_adamw (or --method galore)");
    return;
  }
  if (g.update_proj_gap < 1) throw Error("--update_proj_gap must be >= 1, got " + std::to_string(g.update_proj_gap));
  if (g.proj_type != "std" && g.proj_type != "reverse_std" && g.proj_type != "left" && g.proj_type != "right" &&
      g.proj_type != "full")
    throw Error("--proj_type must be std, reverse_std, left, right or full, got \"" + g.proj_type + "\"");
  if (!f.has("adam_eps")) o.adam_eps = 1e-6f;  // GaLore's AdamW default
}

// Full-rank weights and gradients (all-reduced in full); per projected
// weight, AdamW's two moments of R (m x r, r x n or r x r), R and N
// themselves, its projectors (U_r: m x r, Vh_r: r x n) and, for full, the
// r x n scratch S; unprojected AdamW for the rest.
ParamCounts galore_counts(const LlamaConfig& c, const TrainOptions& o) {
  const size_t r = o.galore.rank;
  ParamCounts n;
  n.trainable = always_trained(c);
  n.optimizer_state = 2 * always_trained(c);
  for (const auto& [in, out] : block_linears(c)) {
    check_rank(o.galore.rank, out, in, out == in ? "the attention weights" : "the MLP weights");
    const auto [left, right] = galore_sides(o.galore.proj_type, out, in);
    const size_t moments = 4 * (left ? r : out) * (right ? r : in);  // m, v, R, N
    const size_t projectors = (left ? out * r : 0) + (right ? r * in : 0) + (left && right ? r * in : 0);
    n.trainable += c.num_hidden_layers * in * out;
    n.optimizer_state += c.num_hidden_layers * (moments + projectors);
  }
  return n;
}

}  // namespace

MethodInfo galore_method() {
  return {"galore", "GaLore: AdamW on rank-r projections of each weight's gradient", false,
          read_galore_flags, make_method<GaloreMethod>, galore_counts};
}

}  // namespace switchlora
