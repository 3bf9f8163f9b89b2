#include "model/update_spectrum.h"

#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <functional>

#include "engine/error.h"

namespace switchlora {

int Spectrum::numerical_rank(double rel) const {
  if (sigma.empty() || sigma[0] == 0) return 0;
  int n = 0;
  for (double s : sigma) n += s > rel * sigma[0];
  return n;
}

Spectrum spectrum_of_sigma(std::vector<double> sigma) {
  Spectrum sp;
  std::sort(sigma.begin(), sigma.end(), std::greater<double>());
  sp.sigma = std::move(sigma);
  double sum = 0, sq = 0;
  for (double s : sp.sigma) sum += s, sq += s * s;
  sp.frobenius = std::sqrt(sq);
  if (sum == 0) return sp;  // dW = 0: every statistic 0
  double H = 0;
  for (double s : sp.sigma)
    if (s > 0) H -= (s / sum) * std::log(s / sum);
  sp.effective_rank = std::exp(H);
  sp.stable_rank = sq / (sp.sigma[0] * sp.sigma[0]);
  sp.above_1pct = sp.numerical_rank(0.01);
  return sp;
}

Spectrum spectrum_of(const std::vector<double>& M, int rows, int cols) {
  const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> m(M.data(), rows,
                                                                                                 cols);
  const Eigen::VectorXd s = Eigen::BDCSVD<Eigen::MatrixXd>(m).singularValues();
  return spectrum_of_sigma(std::vector<double>(s.data(), s.data() + s.size()));
}

std::vector<double> effective_weight(const Llama& model, const Linear& l) {
  const std::vector<float> W = model.params.get(*l.W);
  std::vector<double> out(W.begin(), W.end());
  if (l.r == 0) return out;
  // + s B A: B (out, r), A (r, in)
  const std::vector<float> A = model.params.get(*l.A), B = model.params.get(*l.B);
  for (int o = 0; o < l.out; o++)
    for (int k = 0; k < l.r; k++) {
      const double b = l.s * (double)B[(size_t)o * l.r + k];
      const float* a = A.data() + (size_t)k * l.in;
      double* row = out.data() + (size_t)o * l.in;
      for (int i = 0; i < l.in; i++) row[i] += b * a[i];
    }
  return out;
}

namespace {

// "model.layers.0.self_attn.q_proj" -> "q"; "...mlp.gate_proj" -> "gate".
std::string kind_of(const std::string& name) {
  const size_t dot = name.rfind('.');
  std::string k = name.substr(dot + 1);
  return k.ends_with("_proj") ? k.substr(0, k.size() - 5) : k;
}

}  // namespace

std::vector<LayerUpdate> learned_updates(const Llama& now, const Llama& base) {
  const std::vector<const Linear*> a = now.linears(), b = base.linears();
  if (a.size() != b.size())
    throw Error("the two models have " + std::to_string(a.size()) + " and " + std::to_string(b.size()) +
                " linear layers: not the same architecture");
  std::vector<LayerUpdate> out;
  for (size_t i = 0; i < a.size(); i++) {
    const Linear& x = *a[i];
    const Linear& y = *b[i];
    if (x.name != y.name || x.out != y.out || x.in != y.in)
      throw Error("layer " + x.name + " (" + std::to_string(x.out) + " x " + std::to_string(x.in) +
                  ") has no counterpart in the baseline (" + y.name + ", " + std::to_string(y.out) + " x " +
                  std::to_string(y.in) + ")");
    std::vector<double> dW = effective_weight(now, x);
    const std::vector<double> W0 = effective_weight(base, y);
    for (size_t e = 0; e < dW.size(); e++) dW[e] -= W0[e];
    out.push_back({x.name, kind_of(x.name), x.out, x.in, spectrum_of(dW, x.out, x.in)});
  }
  return out;
}

}  // namespace switchlora
