// The whole model: gradient check against finite differences, config errors,
// and the LoRA init invariant (W0 - s B0 A0 + s B0 A0 = W0).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/rng.h"
#include "tests/tiny_config.h"
#include "model/llama.h"
#include "model/linear.h"
#include "model/lora.h"

using namespace switchlora;
using switchlora::test::tiny_config;

namespace {

struct Batch {
  int B = 2, T = 6;
  std::vector<int32_t> in, tg;
  explicit Batch(int V, uint64_t seed, int B_ = 2, int T_ = 6) : B(B_), T(T_) {
    Rng rng{seed, 99, 0};
    for (int i = 0; i < B * T; i++) {
      in.push_back((int32_t)rng.below(V));
      tg.push_back((int32_t)rng.below(V));
    }
  }
};

// For each trainable tensor, compare the analytic directional derivative g.d
// with the central difference (L(p + h d) - L(p - h d)) / 2h, for two unit
// directions d: the gradient's own direction (where g.d = |g| is largest) and
// a random +-1 direction (which catches errors the first cannot see).
// The forward runs in float: the loss (~3.5) carries rounding ~1e-6, so with
// h = 1e-3 the difference quotient has noise ~1e-3 absolute, far below the
// derivatives tested (a tensor whose |g| < 1e-2 is skipped as uninformative).
void check_model_gradients(Llama& m, const Batch& b) {
  m.zero_grad();
  m.forward(b.in.data(), b.tg.data(), b.B, b.T);
  m.backward(1.0f);
  Rng rng{7, 8, 0};
  int checked = 0;
  for (Param& p : m.params.params) {
    if (!p.trainable) continue;
    const size_t n = p.numel();
    double gnorm = 0;
    for (size_t i = 0; i < n; i++) gnorm += (double)p.grad[i] * p.grad[i];
    gnorm = std::sqrt(gnorm);
    if (gnorm < 1e-2) continue;
    for (int dir = 0; dir < 2; dir++) {
      std::vector<float> d(n);
      double dn = 0, gd = 0;
      for (size_t i = 0; i < n; i++) {
        d[i] = dir == 0 ? p.grad[i] : (rng.uniform() < 0.5f ? -1.0f : 1.0f);
        dn += (double)d[i] * d[i];
      }
      for (size_t i = 0; i < n; i++) {
        d[i] = (float)(d[i] / std::sqrt(dn));
        gd += (double)p.grad[i] * d[i];
      }
      const float h = 1e-3f;
      std::vector<float> saved(p.data, p.data + n);
      for (size_t i = 0; i < n; i++) p.data[i] = saved[i] + h * d[i];
      const double lp = m.forward(b.in.data(), b.tg.data(), b.B, b.T);
      for (size_t i = 0; i < n; i++) p.data[i] = saved[i] - h * d[i];
      const double lm = m.forward(b.in.data(), b.tg.data(), b.B, b.T);
      std::copy(saved.begin(), saved.end(), p.data);
      const double fd = (lp - lm) / (2 * h);
      INFO(p.name << (dir == 0 ? " (gradient direction)" : " (random direction)") << ": analytic " << gd
                  << " finite difference " << fd << " |g| " << gnorm);
      // 2% of |g| (the scale of g.d for the gradient direction) plus the noise floor.
      CHECK(std::abs(fd - gd) <= 0.02 * gnorm + 2e-3);
    }
    checked++;
  }
  CHECK(checked >= 10);
}

}  // namespace

TEST_CASE("full-rank model gradients match finite differences (grad)") {
  LlamaConfig c = tiny_config();
  Llama m(c, LoraOptions{}, 1);
  check_model_gradients(m, Batch(c.vocab_size, 2));
}

TEST_CASE("LoRA model gradients match finite differences (grad), W gets none") {
  LlamaConfig c = tiny_config();
  LoraOptions lo{true, 4, 8.0f, "switchlora"};  // alpha 8: s = 2, so the adapters matter
  Llama m(c, lo, 1);
  init_lora_adapters(m, 1);
  check_model_gradients(m, Batch(c.vocab_size, 3));
  for (Linear* l : m.linears()) CHECK(l->W->grad == nullptr);
}

TEST_CASE("LoRA model gradients through the merged W + s B A match finite differences (grad)") {
  // 4 x 12 = 48 rows, twice the tiny model's widest W: every layer merges
  // (model/linear.h), where the 12 rows of the test above merge none.
  LlamaConfig c = tiny_config();
  LoraOptions lo{true, 4, 8.0f, "switchlora"};
  Llama m(c, lo, 1);
  init_lora_adapters(m, 1);
  for (const Linear* l : m.linears()) {
    CHECK(lora_merge_pays(*l, 48, {}));
    CHECK_FALSE(lora_merge_pays(*l, 12, {}));
    CHECK_FALSE(lora_merge_pays(*l, 48, LoraDropout{0.1f}));
  }
  check_model_gradients(m, Batch(c.vocab_size, 3, 4, 12));
}

TEST_CASE("a LoRA layer through the merged weight computes what it computes unmerged") {
  Backend& be = cpu_backend();
  const int N = 64, in = 24, out = 16, r = 4;
  ParamStore params;
  const int iW = params.add("W", out, in, false), iA = params.add("A", r, in, true, StepCounter::kPerRow),
            iB = params.add("B", out, r, true, StepCounter::kPerColumn);
  params.allocate(be);
  Linear l{"layer", in, out, r, 0.5f, &params[iW], &params[iA], &params[iB]};
  for (Param* p : {l.W, l.A, l.B}) fill_normal(params, *p, 3, 0.5f);
  REQUIRE(lora_merge_pays(l, N, {}));
  Rng rng{4, 0, 0};
  std::vector<float> x((size_t)N * in), dy((size_t)N * out);
  for (float& v : x) v = rng.normal();
  for (float& v : dy) v = rng.normal();
  struct Result { std::vector<float> y, xa, dx, dA, dB; };
  auto run = [&](float* w_merged) {
    Result res{std::vector<float>((size_t)N * out), std::vector<float>((size_t)N * r),
               std::vector<float>((size_t)N * in, 0.0f), {}, {}};
    std::vector<float> dxa((size_t)N * r);
    be.zero(params.trainable_grad.data(), params.trainable_grad.size() * sizeof(float));
    linear_layer_forward(be, l, res.y.data(), res.xa.data(), x.data(), N, {}, w_merged);
    linear_layer_backward(be, l, res.dx.data(), dxa.data(), dy.data(), x.data(), res.xa.data(), N, {}, w_merged);
    res.dA.assign(l.A->grad, l.A->grad + l.A->numel());
    res.dB.assign(l.B->grad, l.B->grad + l.B->numel());
    return res;
  };
  std::vector<float> w_merged((size_t)out * in);
  const Result merged = run(w_merged.data()), plain = run(nullptr);
  auto close = [](const char* what, const std::vector<float>& a, const std::vector<float>& b) {
    double err = 0, norm = 0;
    for (size_t i = 0; i < a.size(); i++) err = std::max(err, std::abs((double)a[i] - b[i])), norm = std::max(norm, std::abs((double)b[i]));
    INFO(what << ": max error " << err << " of max " << norm);
    CHECK(err <= 1e-5 * norm);  // fp32, sums of ~30 terms in another order
  };
  close("y", merged.y, plain.y);
  close("dx", merged.dx, plain.dx);
  CHECK(merged.xa == plain.xa);  // the same product either way
  close("dA", merged.dA, plain.dA);
  close("dB", merged.dB, plain.dB);
  CHECK(merged.y != plain.y);    // the merged path did run: a different order of sums
}

TEST_CASE("dx_beta 0 writes dx over whatever it held: the bits of accumulating into zeros") {
  // The model lets each gradient buffer's first writer overwrite it instead
  // of zeroing it (model/llama.cpp): every path of the layer must then write
  // all of dx, NaN before it included, and add the rest on top.
  Backend& be = cpu_backend();
  const int N = 64, in = 24, out = 16, r = 4;
  ParamStore params;
  const int iW = params.add("W", out, in, false), iA = params.add("A", r, in, true, StepCounter::kPerRow),
            iB = params.add("B", out, r, true, StepCounter::kPerColumn);
  params.allocate(be);
  Rng rng{6, 0, 0};
  std::vector<float> x((size_t)N * in), y((size_t)N * out), dy(y.size()), xa((size_t)N * r), dxa(xa.size());
  for (float& v : x) v = rng.normal();
  for (float& v : dy) v = rng.normal();
  std::vector<float> w_merged((size_t)out * in), drop_x(x.size()), drop_dx(x.size());
  const LoraDropout none{}, dropout{0.25f, 7, 3, drop_x.data(), drop_dx.data()};
  struct Path { const char* name; int r; const LoraDropout* d; float* w_merged; };
  for (const Path& path : {Path{"full rank", 0, &none, nullptr}, Path{"LoRA merged", r, &none, w_merged.data()},
                           Path{"LoRA unmerged", r, &none, nullptr}, Path{"LoRA with dropout", r, &dropout, nullptr}}) {
    INFO(path.name);
    Linear l{"layer", in, out, path.r, 0.5f, &params[iW], path.r ? &params[iA] : nullptr,
             path.r ? &params[iB] : nullptr};
    for (Param* p : {l.W, l.A, l.B})
      if (p) fill_normal(params, *p, 3, 0.5f);
    linear_layer_forward(be, l, y.data(), xa.data(), x.data(), N, *path.d, path.w_merged);  // for xa
    std::vector<float> added((size_t)N * in, 0.0f), written((size_t)N * in, std::nanf(""));
    linear_layer_backward(be, l, added.data(), dxa.data(), dy.data(), x.data(), xa.data(), N, *path.d, path.w_merged);
    linear_layer_backward(be, l, written.data(), dxa.data(), dy.data(), x.data(), xa.data(), N, *path.d,
                          path.w_merged, 0.0f);
    CHECK(written == added);
    std::vector<float> twice = added;  // and dx_beta 1 still adds
    linear_layer_backward(be, l, twice.data(), dxa.data(), dy.data(), x.data(), xa.data(), N, *path.d, path.w_merged);
    for (size_t i = 0; i < twice.size(); i++) REQUIRE(twice[i] == doctest::Approx(2 * added[i]).epsilon(1e-5));
  }
}

TEST_CASE("LoRA model gradients with adapter dropout match finite differences (grad)") {
  LlamaConfig c = tiny_config();
  LoraOptions lo{true, 4, 8.0f, "switchlora", 0.3f};
  Llama m(c, lo, 1);
  init_lora_adapters(m, 1);
  m.training = true;  // masks from dropout_key: the same in every forward of the check
  m.dropout_key = 5;
  check_model_gradients(m, Batch(c.vocab_size, 3));
  // The masks matter: without them the logits differ.
  Batch b(c.vocab_size, 4);
  m.forward(b.in.data(), nullptr, b.B, b.T);
  const std::vector<float> dropped = m.logits_host();
  m.training = false;
  m.forward(b.in.data(), nullptr, b.B, b.T);
  CHECK(m.logits_host() != dropped);
}

TEST_CASE("at init a LoRA model computes what the full-rank model computes") {
  LlamaConfig c = tiny_config();
  Batch b(c.vocab_size, 4);
  Llama full(c, LoraOptions{}, 5);
  full.forward(b.in.data(), nullptr, b.B, b.T);
  std::vector<float> ref(full.logits(), full.logits() + (size_t)b.B * b.T * c.vocab_size);
  for (const char* init : {"switchlora", "origin_lora"}) {
    Llama lora(c, LoraOptions{true, 4, 8.0f, init}, 5);
    init_lora_adapters(lora, 5);
    lora.forward(b.in.data(), nullptr, b.B, b.T);
    double err = 0, norm = 0;
    for (size_t i = 0; i < ref.size(); i++) {
      err += std::pow((double)lora.logits()[i] - ref[i], 2);
      norm += (double)ref[i] * ref[i];
    }
    // fp32: W0 - sBA + sBA rounds at ~1e-7 relative per element.
    INFO(init << ": relative error " << std::sqrt(err / norm));
    CHECK(std::sqrt(err / norm) < 1e-5);
  }
}

TEST_CASE("trainable parameters are contiguous and frozen W are outside") {
  LlamaConfig c = tiny_config();
  Llama m(c, LoraOptions{true, 4, 1.0f, "switchlora"}, 1);
  size_t expect = 0;
  for (const Param& p : m.params.params)
    if (p.trainable) {
      CHECK(p.offset == expect);
      CHECK(p.grad == m.params.trainable_grad.data() + p.offset);
      expect += p.numel();
    }
  CHECK(expect == m.params.num_trainable());
  const size_t C = 16, I = 24, L = 2, V = 32, r = 4;
  CHECK(m.params.num_frozen() == L * (4 * C * C + 3 * C * I));
  CHECK(m.params.num_trainable() == 2 * V * C + (2 * L + 1) * C + L * r * (8 * C + 3 * (C + I)));
}

TEST_CASE("bad configs and ranks are clear errors") {
  const std::string path = "/tmp/switchlora_test_config.json";
  auto write = [&](const std::string& text) { std::ofstream(path) << text; };
  write(R"({"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "vocab_size": 100, "max_sequence_length": 64})");
  CHECK_THROWS_WITH_AS(load_config(path), doctest::Contains("num_hidden_layers"), Error);
  write(R"({"hidden_size": 60, "intermediate_size": 128, "num_attention_heads": 8, "num_hidden_layers": 2, "vocab_size": 100, "max_sequence_length": 64})");
  CHECK_THROWS_WITH_AS(load_config(path), doctest::Contains("divisible"), Error);
  write(R"({"hidden_size": "64"})");
  CHECK_THROWS_WITH_AS(load_config(path), doctest::Contains(path.c_str()), Error);
  write("{not json");
  CHECK_THROWS_WITH_AS(load_config(path), doctest::Contains("not valid JSON"), Error);
  // Integers are range-checked before conversion: 2^32 + 16 does not wrap to 16.
  const std::string ok = R"("intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100, "max_sequence_length": 64)";
  write(R"({"hidden_size": 4294967312, )" + ok + "}");
  CHECK_THROWS_WITH_AS(load_config(path), doctest::Contains("\"hidden_size\" = 4294967312 is outside [1, 2^30]"), Error);
  write(R"({"hidden_size": 64.5, )" + ok + "}");
  CHECK_THROWS_WITH_AS(load_config(path), doctest::Contains("must be an integer"), Error);
  write(R"({"hidden_size": 64.0, )" + ok + "}");
  CHECK(load_config(path).hidden_size == 64);  // HF configs write integers as floats sometimes
  // HF fields the engine does not implement are refused, naming the field; their no-op values pass.
  auto refused = [&](const std::string& field, const std::string& value) {
    write(R"({"hidden_size": 64, )" + ok + ", \"" + field + "\": " + value + "}");
    const std::string message = "\"" + field + "\" = " + value;
    CHECK_THROWS_WITH_AS(load_config(path), doctest::Contains(message.c_str()), Error);
  };
  refused("num_key_value_heads", "2");
  refused("tie_word_embeddings", "true");
  refused("hidden_act", "\"gelu\"");
  refused("rope_scaling", R"({"factor":2.0,"type":"linear"})");
  refused("attention_bias", "true");
  write(R"({"hidden_size": 64, )" + ok + R"(, "num_key_value_heads": 4, "tie_word_embeddings": false, "hidden_act": "silu", "rope_scaling": null})");
  CHECK(load_config(path).num_attention_heads == 4);
  CHECK_THROWS_WITH_AS(load_config("/nonexistent/config.json"), doctest::Contains("/nonexistent/config.json"), Error);
  std::remove(path.c_str());
  LlamaConfig c = tiny_config();
  CHECK_THROWS_WITH_AS(Llama(c, LoraOptions{true, 16, 1.0f, "switchlora"}, 1), doctest::Contains("--lora_rank"), Error);
  CHECK_THROWS_WITH_AS(Llama(c, LoraOptions{true, 0, 1.0f, "switchlora"}, 1), doctest::Contains("--lora_rank"), Error);
  CHECK_THROWS_WITH_AS(Llama(c, LoraOptions{true, 4, 1.0f, "kaiming"}, 1), doctest::Contains("--init_lora_type"), Error);
}

TEST_CASE("token ids outside the vocabulary and too-long sequences are errors") {
  LlamaConfig c = tiny_config();
  Llama m(c, LoraOptions{}, 1);
  std::vector<int32_t> in(6, 1), tg(6, 1);
  tg[3] = c.vocab_size;
  CHECK_THROWS_WITH_AS(m.forward(in.data(), tg.data(), 1, 6), doctest::Contains("position 3"), Error);
  std::vector<int32_t> long_in(32, 1);
  CHECK_THROWS_WITH_AS(m.forward(long_in.data(), nullptr, 1, 32), doctest::Contains("max_sequence_length"), Error);
}
