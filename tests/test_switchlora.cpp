// SwitchLoRA's invariants (DESIGN §4): a switch keeps the output, frozen
// vectors do not move, the schedule switches as many vectors as it says, and
// the same seed switches identically everywhere.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "engine/error.h"
#include "engine/rng.h"
#include "tests/tiny_config.h"
#include "model/lora.h"
#include "model/switchlora.h"

using namespace switchlora;
using switchlora::test::tiny_config;

namespace {


// A model, its switcher and optimizer, and a fixed batch: the pieces of a
// training step, run by hand so a test can look between them.
struct Rig {
  Llama model;
  std::unique_ptr<SwitchLora> sw;
  std::unique_ptr<AdamW> opt;
  std::vector<int32_t> in, tg;
  int B = 2, T = 8;

  Rig(const SwitchOptions& so, int rank = 4, float alpha = 8.0f)
      : model(tiny_config(), LoraOptions{true, rank, alpha, "switchlora"}, 11) {
    sw = std::make_unique<SwitchLora>(model, so);
    std::vector<AdamTensor> op = model.params.adam_tensors();
    sw->attach(op);
    opt = std::make_unique<AdamW>(AdamWConfig{}, op);
    Rng rng{3, 4, 0};
    for (int i = 0; i < B * T; i++) {
      in.push_back((int32_t)rng.below(32));
      tg.push_back((int32_t)rng.below(32));
    }
  }
  std::vector<float> logits() {
    model.forward(in.data(), nullptr, B, T);
    return std::vector<float>(model.logits(), model.logits() + (size_t)B * T * 32);
  }
  void backward() {
    model.zero_grad();
    model.forward(in.data(), tg.data(), B, T);
    model.backward(1.0f);
  }
  // One full step in DESIGN order (no clipping: it does not matter here).
  int step(int t, bool do_switch = true) {
    backward();
    int n = do_switch ? sw->switch_step(t, *opt) : 0;
    sw->zero_frozen_grads();
    opt->step(1e-2f);
    sw->end_step();
    return n;
  }
};

double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double e = 0, n = 0;
  for (size_t i = 0; i < a.size(); i++) {
    e += std::pow((double)a[i] - b[i], 2);
    n += (double)b[i] * b[i];
  }
  return std::sqrt(e / n);
}

// Switch as much as the cap allows on every step: interval 1 with no
// freezing gives k = r before the cap, r/2 after it.
SwitchOptions eager(bool discontinuous) {
  SwitchOptions so;
  so.switch_lora_interval = 1;
  so.fix_switch_lora_interval = true;
  so.adam_warm_step = 0;
  so.discontinuous_switch = discontinuous;
  so.num_training_steps = 100;
  so.seed = 5;
  return so;
}

}  // namespace

TEST_CASE("switching A rows and B columns keeps the logits unchanged") {
  for (bool disc : {false, true}) {
    Rig rig(eager(disc));
    for (int t = 0; t < 6; t++) {
      rig.step(t, false);  // train a little so A, B and W are not at init
      const std::vector<float> before = rig.logits();
      const int n = rig.sw->switch_step(t, *rig.opt);
      // every one of the 14 adapted layers (q, k, v, o, gate, up, down x 2) switched
      CHECK(n == 14 * 2 * 2);
      // fp32: each switch adds a rank-1 correction to W rounding at ~1e-7
      // relative; a handful of them stay far below 1e-5.
      INFO((disc ? "discontinuous" : "continuous") << " step " << t << ": relative error "
                                                    << rel_err(rig.logits(), before));
      CHECK(rel_err(rig.logits(), before) < 1e-5);
    }
  }
}

TEST_CASE("at step 0 a SwitchLoRA model computes what the model without adapters computes") {
  Rig rig(eager(false));
  Llama full(tiny_config(), LoraOptions{}, 11);
  full.forward(rig.in.data(), nullptr, rig.B, rig.T);
  std::vector<float> ref(full.logits(), full.logits() + (size_t)rig.B * rig.T * 32);
  CHECK(rel_err(rig.logits(), ref) < 1e-5);
}

TEST_CASE("a discontinuous switch to the slot's own candidate keeps the output") {
  // The pool is only min(in, out) = 16 wide and r = 12 slots hold candidates,
  // so the draws often return a slot's own old candidate.
  SwitchOptions so = eager(true);
  Rig rig(so, 12);
  for (int t = 0; t < 10; t++) {
    rig.step(t, false);
    const std::vector<float> before = rig.logits();
    rig.sw->switch_step(t, *rig.opt);
    CHECK(rel_err(rig.logits(), before) < 1e-5);
  }
}

TEST_CASE("switching A's row freezes B's column: zero update, reset state; A keeps its own") {
  for (const bool skip : {false, true}) {
    INFO((skip ? "--thaw_restarts_bias_correction: frozen vectors skipped" : "the authors' rule: frozen steps counted"));
    SwitchOptions so;
    so.switch_lora_interval = 4;  // r = 4: exactly one A row and one B column per step
    so.fix_switch_lora_interval = true;
    so.adam_warm_step = 2;
    so.num_training_steps = 100;
    so.thaw_restarts_bias_correction = skip;
    Rig rig(so);
    for (int t = 0; t < 3; t++) rig.step(t, false);  // build up Adam state everywhere
    SwitchLayer& L = rig.sw->layers()[0];
    const Linear& l = *L.lin;
    const int r = l.r;
    // Step 3: A's cursor is at slot 0, B's at slot r/2 = 2.
    rig.backward();
    CHECK(rig.sw->switch_step(3, *rig.opt) == 14 * 2);
    const std::vector<float> mA_all = rig.opt->m(L.optim_A), mB = rig.opt->m(L.optim_B), vB = rig.opt->v(L.optim_B);
    // B's column 0 (the counterpart of A's row 0): moments and counter zeroed.
    CHECK(rig.opt->counter(L.optim_B, 0) == 0);
    for (int o = 0; o < l.out; o++) {
      CHECK(mB[(size_t)o * r + 0] == 0.0f);
      CHECK(vB[(size_t)o * r + 0] == 0.0f);
    }
    // A's row 0 (the switched vector) keeps its state: counter 3, moments non-zero.
    CHECK(rig.opt->counter(L.optim_A, 0) == 3);
    double mA = 0;
    for (int j = 0; j < l.in; j++) mA += std::abs(mA_all[j]);
    CHECK(mA > 0);
    // Mirror: B's column 2 switched, so A's row 2 was reset and B's column 2 kept.
    CHECK(rig.opt->counter(L.optim_A, 2) == 0);
    CHECK(rig.opt->counter(L.optim_B, 2) == 3);

    std::vector<float> colB0(l.out), rowA2(l.in);
    for (int o = 0; o < l.out; o++) colB0[o] = l.B->data[(size_t)o * r];
    std::copy_n(l.A->data + 2 * l.in, l.in, rowA2.begin());
    rig.sw->zero_frozen_grads();
    rig.opt->step(1e-2f);
    rig.sw->end_step();
    // Step 4: still frozen (adam_warm_step = 2 optimizer steps in all). Either
    // way the frozen vectors do not move (zero gradient, zeroed moments); the
    // authors' optimizer counts the steps, the skipping one does not.
    rig.step(4);
    for (int o = 0; o < l.out; o++) CHECK(l.B->data[(size_t)o * r] == colB0[o]);
    for (int j = 0; j < l.in; j++) CHECK(l.A->data[2 * l.in + j] == rowA2[j]);
    const int frozen_steps = skip ? 0 : 2;
    CHECK(rig.opt->counter(L.optim_B, 0) == frozen_steps);
    CHECK(rig.opt->counter(L.optim_A, 2) == frozen_steps);
    CHECK(rig.opt->counter(L.optim_A, 0) == 5);
    // Step 5: thawed; the first update's bias correction is k = 1 (skipped) or
    // k = adam_warm_step + 1 = 3 (the authors').
    rig.step(5);
    CHECK(rig.opt->counter(L.optim_B, 0) == frozen_steps + 1);
    CHECK(rig.opt->counter(L.optim_A, 2) == frozen_steps + 1);
    bool moved = false;
    for (int o = 0; o < l.out; o++) moved |= l.B->data[(size_t)o * r] != colB0[o];
    CHECK(moved);
  }
}

TEST_CASE("--remain_switch_state keeps the counterpart's moments and counter; --remain_switch_step_state the counter") {
  for (const int mode : {0, 1}) {
    SwitchOptions so;
    so.switch_lora_interval = 4;
    so.fix_switch_lora_interval = true;
    so.adam_warm_step = 2;
    so.remain_switch_state = mode == 0;  // the authors': everything kept
    so.remain_switch_step_state = mode == 1;
    Rig rig(so);
    for (int t = 0; t < 3; t++) rig.step(t, false);
    SwitchLayer& L = rig.sw->layers()[0];
    rig.backward();
    rig.sw->switch_step(3, *rig.opt);
    CAPTURE(mode);
    CHECK(rig.opt->counter(L.optim_B, 0) == 3);
    CHECK((rig.opt->m(L.optim_B)[0] != 0.0f) == (mode == 0));
  }
}

TEST_CASE("the number switched follows the schedule, identically for the same seed") {
  SwitchOptions so;
  so.num_training_steps = 2000;
  so.seed = 9;
  Rig a(so, 4), b(so, 4);
  SwitchLora& sa = *a.sw;
  // Same seed, separate instances (two "ranks"): identical decisions.
  for (int t = 0; t < 2000; t++)
    for (int layer = 0; layer < 14; layer++)
      REQUIRE(sa.planned_switches(t, layer) == b.sw->planned_switches(t, layer));
  // Sum over a long run: E[k_t] = r / interval(t); each step adds a Bernoulli
  // rounding with variance <= 1/4, so 14 layers x 2000 steps deviate by
  // sigma <= sqrt(28000) / 2 ~ 84; allow 5 sigma.
  double expected = 0, got = 0;
  for (int t = 0; t < 2000; t++)
    for (int layer = 0; layer < 14; layer++) {
      expected += 4.0 / sa.interval(t);
      got += sa.planned_switches(t, layer);
    }
  INFO("expected " << expected << " got " << got);
  CHECK(std::abs(got - expected) < 5 * 84);
  // The exponential schedule: rate(t) = 0.3^((t+1)/D), D = 0.1 * 2000 = 200
  // (0.1 is a float flag, so D is 200 to ~1e-7 relative).
  CHECK(sa.rate(199) == doctest::Approx(0.3).epsilon(1e-6));
  CHECK(sa.interval(0) == doctest::Approx(40 / std::pow(0.3, 1.0 / 200)).epsilon(1e-9));
  // Z: rate(t) = 1 - 1 / (1 + exp(-(10/D)(t - D))) is 1/2 at t = D.
  SwitchOptions z = so;
  z.switch_descend_type = std::string(1, 'Z');  // not = "Z": GCC 12 -Wrestrict false positive
  Rig rz(z, 4);
  CHECK(rz.sw->rate(200) == doctest::Approx(0.5).epsilon(1e-6));
  CHECK(rz.sw->rate(0) > 0.99);
}

TEST_CASE("--fix_switch_lora_interval switches at a constant expected rate") {
  SwitchOptions so;
  so.fix_switch_lora_interval = true;
  so.switch_lora_interval = 10;
  so.num_training_steps = 4000;
  Rig rig(so, 4);
  // E[k] = 4 / 10 each step, early and late alike; sigma of a 2000-step sum
  // over 14 layers is sqrt(28000 * 0.24) ~ 82; allow 5 sigma.
  double early = 0, late = 0;
  for (int t = 0; t < 2000; t++)
    for (int layer = 0; layer < 14; layer++) {
      early += rig.sw->planned_switches(t, layer);
      late += rig.sw->planned_switches(t + 2000, layer);
    }
  CHECK(std::abs(early - 11200) < 5 * 82);
  CHECK(std::abs(late - 11200) < 5 * 82);
}

TEST_CASE("bad switch options are clear errors naming the flag") {
  SwitchOptions so;
  so.switch_lora_interval = 8;
  so.adam_warm_step = 5;
  so.fix_switch_lora_interval = true;
  CHECK_THROWS_WITH_AS(Rig{so}, doctest::Contains("--adam_warm_step"), Error);
  so = SwitchOptions{};
  so.switch_lora_interval = 0;
  CHECK_THROWS_WITH_AS(Rig{so}, doctest::Contains("--switch_lora_interval"), Error);
  so = SwitchOptions{};
  so.switch_lora_descent_rate = -1;
  CHECK_THROWS_WITH_AS(Rig{so}, doctest::Contains("--switch_lora_descent_rate"), Error);
  so = SwitchOptions{};
  so.switch_descend_type = "linear";
  CHECK_THROWS_WITH_AS(Rig{so}, doctest::Contains("--switch_descend_type"), Error);
}

TEST_CASE("a vector switched out and later back returns with its trained values") {
  SwitchOptions so;
  so.switch_lora_interval = 4;  // one slot per step, round robin over the pool
  so.fix_switch_lora_interval = true;
  so.adam_warm_step = 2;
  Rig rig(so);
  SwitchLayer& L = rig.sw->layers()[0];
  const int in = L.lin->in;
  // Step 0 switches A's slot 0 away from its initial candidate h.
  const int h = L.held_A[0];
  rig.step(0, false);
  rig.step(1, false);  // train A's row 0 a little first
  std::vector<float> trained(L.lin->A->data, L.lin->A->data + in);
  rig.step(2);
  REQUIRE(L.held_A[0] != h);
  for (int j = 0; j < in; j++) REQUIRE(L.cand_A[(size_t)h * in + j] == trained[j]);
  // Walk on until some slot takes h again: it must come back exactly.
  bool back = false;
  for (int t = 3; t < 200 && !back; t++) {
    rig.backward();
    rig.sw->switch_step(t, *rig.opt);
    for (int slot = 0; slot < L.lin->r && !back; slot++)
      if (L.held_A[slot] == h) {
        back = true;
        for (int j = 0; j < in; j++) CHECK(L.lin->A->data[(size_t)slot * in + j] == trained[j]);
      }
    rig.sw->zero_frozen_grads();
    rig.opt->step(1e-2f);
    rig.sw->end_step();
  }
  CHECK(back);
}

TEST_CASE("A and B at init have the std SwitchLoRA prescribes") {
  LlamaConfig c = tiny_config();
  c.hidden_size = 256;
  c.intermediate_size = 688;
  c.num_attention_heads = 4;
  c.num_hidden_layers = 1;
  Llama m(c, LoraOptions{true, 32, 1.0f, "switchlora"}, 3);
  SwitchOptions so;
  SwitchLora sw(m, so);
  for (SwitchLayer& L : sw.layers()) {
    const Linear& l = *L.lin;
    auto std_of = [](const float* p, size_t n) {
      double s = 0, s2 = 0;
      for (size_t i = 0; i < n; i++) {
        s += p[i];
        s2 += (double)p[i] * p[i];
      }
      return std::sqrt(s2 / n - (s / n) * (s / n));
    };
    // >= 8192 samples of a uniform: the std estimate is good to ~1%.
    INFO(l.name);
    CHECK(std_of(l.A->data, l.A->numel()) == doctest::Approx(switchlora_sigma_A(l.out, l.in, 32)).epsilon(0.05));
    CHECK(std_of(l.B->data, l.B->numel()) == doctest::Approx(switchlora_sigma_B(l.out, l.in, 32)).epsilon(0.05));
  }
}

TEST_CASE("a vector switched out and drawn again in the same step arrives with its trained values") {
  // Discontinuous mode with a pool of 16 and 12 slots: a slot switched early
  // in a step frees its old candidate, which a later slot of the same step
  // may draw. That vector is not in the pool yet (write-backs land after the
  // step's switches); the plan marks it `from` the earlier move.
  Rig rig(eager(true), 12);
  int checked = 0;
  for (int t = 0; t < 40; t++) {
    rig.backward();
    const SwitchPlan p = rig.sw->plan(t);
    // Each such move: the vector the earlier move's slot holds now.
    std::vector<std::pair<size_t, std::vector<float>>> expect;
    for (size_t i = 0; i < p.moves.size(); i++) {
      const SwitchMove& m = p.moves[i];
      if (m.from < 0) continue;
      const SwitchMove& src = p.moves[m.from];
      const Linear& l = *rig.sw->layers()[m.layer].lin;
      std::vector<float> v;
      if (m.B) for (int o = 0; o < l.out; o++) v.push_back(l.B->data[(size_t)o * l.r + src.slot]);
      else v.assign(l.A->data + (size_t)src.slot * l.in, l.A->data + (size_t)(src.slot + 1) * l.in);
      expect.push_back({i, v});
    }
    rig.sw->switch_step(t, *rig.opt);
    for (const auto& [i, v] : expect) {
      const SwitchMove& m = p.moves[i];
      const Linear& l = *rig.sw->layers()[m.layer].lin;
      for (size_t j = 0; j < v.size(); j++) {
        const float got = m.B ? l.B->data[j * l.r + m.slot] : l.A->data[(size_t)m.slot * l.in + j];
        REQUIRE(got == v[j]);
      }
      checked++;
    }
    rig.sw->zero_frozen_grads();
    rig.opt->step(1e-2f);
    rig.sw->end_step();
  }
  CHECK(checked > 0);  // the case did occur
  MESSAGE(checked << " same-step redraws checked");
}
