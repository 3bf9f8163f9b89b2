// Learning-rate schedules (optim/schedule.cpp) against their formulas, written
// here a second time the way HuggingFace writes them: a warm-up lambda
// step / warmup and, after it, a decay lambda of progress.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "engine/error.h"
#include "engine/rng.h"
#include "optim/schedule.h"

using namespace switchlora;

namespace {

double expected_factor(const LrSchedule& s, int step) {
  if (step < s.warmup_steps) return (double)step / s.warmup_steps;
  double progress = (double)(step - s.warmup_steps) / (s.num_training_steps - s.warmup_steps);
  if (progress > 1.0) progress = 1.0;
  double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  if (s.scheduler == "linear") return 1.0 - progress;
  if (s.scheduler == "cosine") return cosine;
  if (s.scheduler == "cosine_with_min_lr") return std::max((double)s.min_lr_ratio, cosine);  // the authors'
  if (s.scheduler == "cosine_to_min_lr") return (double)s.min_lr_ratio + (1.0 - s.min_lr_ratio) * cosine;
  return 1.0;
}

// lr_at rounds a double product to float once: 2^-24 relative. The absolute
// floor 1e-7 * lr covers expected values that are exactly 0.
void check_lr(const LrSchedule& s, int step, double expected) {
  float got = lr_at(s, step);
  INFO(s.scheduler << " step " << step << ": lr_at = " << got << ", expected " << expected);
  CHECK(std::fabs(got - expected) <= 1e-6 * std::fabs(expected) + 1e-7 * s.lr);
}

std::string error_of(const LrSchedule& s) {
  try {
    validate_schedule(s);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("every schedule follows its formula at warm-up start, mid warm-up, warm-up end, middle and end") {
  Rng rng{2024, 100, 0};
  for (const char* name : {"constant", "linear", "cosine", "cosine_with_min_lr", "cosine_to_min_lr"}) {
    LrSchedule s;
    s.scheduler = name;
    s.lr = 1e-3f * (1.0f + rng.uniform());
    s.warmup_steps = 2 * (5 + (int)rng.below(50));   // even, so mid warm-up is a step
    s.num_training_steps = s.warmup_steps + 2 * (10 + (int)rng.below(500));
    s.min_lr_ratio = 0.05f + 0.3f * rng.uniform();
    validate_schedule(s);
    const int w = s.warmup_steps, n = s.num_training_steps, mid = (w + n) / 2;
    const double lr = s.lr;
    check_lr(s, 0, 0.0);
    check_lr(s, w / 2, 0.5 * lr);
    check_lr(s, w, lr);
    check_lr(s, mid, lr * expected_factor(s, mid));
    check_lr(s, n, lr * expected_factor(s, n));
    for (int k = 0; k < 20; k++) {
      int step = (int)rng.below(n + 1);
      check_lr(s, step, lr * expected_factor(s, step));
    }
    // The closed forms at the middle (progress 1/2) and the end (progress 1).
    const double m = s.min_lr_ratio;
    const std::string k = s.scheduler;
    const double at_mid = k == "linear" || k == "cosine" || k == "cosine_with_min_lr" ? 0.5  // m < 0.5 here
                          : k == "cosine_to_min_lr"                                  ? m + (1 - m) * 0.5
                                                                                     : 1.0;
    const double at_end = k == "constant" ? 1.0 : k == "cosine_with_min_lr" || k == "cosine_to_min_lr" ? m : 0.0;
    check_lr(s, mid, lr * at_mid);
    check_lr(s, n, lr * at_end);
    check_lr(s, n + 1000, lr * at_end);   // past the end the schedule stays put
  }
}

TEST_CASE("cosine_with_min_lr is the authors' max(m, cosine): the cosine itself until it reaches the floor") {
  LrSchedule s;
  s.scheduler = "cosine_with_min_lr";
  s.lr = 1e-3f;
  s.num_training_steps = 1000;
  s.min_lr_ratio = 0.1f;
  // Progress 0.25: cosine = 0.854 (above m: unchanged, unlike cosine_to_min_lr's 0.868);
  // progress 0.9: cosine = 0.0245 (below m: held at m).
  check_lr(s, 250, s.lr * 0.5 * (1 + std::cos(M_PI * 0.25)));
  check_lr(s, 900, s.lr * 0.1);
  s.scheduler = "cosine_to_min_lr";
  check_lr(s, 250, s.lr * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.25))));
  check_lr(s, 900, s.lr * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.9))));
}

TEST_CASE("cosine_with_min_lr and cosine_to_min_lr end at min_lr_ratio * lr and never go below it") {
  for (const char* name : {"cosine_with_min_lr", "cosine_to_min_lr"}) {
    LrSchedule s;
    s.scheduler = name;
    s.lr = 2e-3f;
    s.warmup_steps = 7;
    s.num_training_steps = 301;
    s.min_lr_ratio = 0.1f;
    check_lr(s, s.num_training_steps, (double)s.min_lr_ratio * s.lr);
    float floor = (float)((double)s.min_lr_ratio * s.lr);
    for (int step = s.warmup_steps; step <= s.num_training_steps; step++) {
      INFO("step " << step << ": lr " << lr_at(s, step) << " below floor " << floor);
      CHECK(lr_at(s, step) >= floor * (1 - 1e-6f));   // one float rounding of slack
    }
  }
}

TEST_CASE("no warm-up starts at the full rate; warm-up filling the run ends at it") {
  LrSchedule s;
  s.scheduler = "cosine";
  s.lr = 1e-3f;
  s.warmup_steps = 0;
  s.num_training_steps = 100;
  check_lr(s, 0, s.lr);
  s.warmup_steps = 100;
  check_lr(s, 99, s.lr * 0.99);
  check_lr(s, 100, s.lr);
}

TEST_CASE("bad schedules are errors that name the flag and the value") {
  LrSchedule s;
  s.num_training_steps = 100;
  s.warmup_steps = 10;
  CHECK(error_of(s).empty());

  LrSchedule bad = s;
  bad.scheduler = "cosin";
  std::string e = error_of(bad);
  CHECK(e.find("--scheduler") != std::string::npos);
  CHECK(e.find("cosin") != std::string::npos);
  CHECK_THROWS_AS(lr_at(bad, 3), Error);

  bad = s;
  bad.warmup_steps = -1;
  e = error_of(bad);
  CHECK(e.find("--scheduler") != std::string::npos);
  CHECK(e.find("--warmup_steps = -1") != std::string::npos);

  bad = s;
  bad.warmup_steps = 101;
  e = error_of(bad);
  CHECK(e.find("--warmup_steps = 101") != std::string::npos);

  bad = s;
  bad.num_training_steps = 0;
  bad.warmup_steps = 0;
  e = error_of(bad);
  CHECK(e.find("--scheduler") != std::string::npos);
  CHECK(e.find("--num_training_steps = 0") != std::string::npos);

  bad = s;
  bad.min_lr_ratio = 1.5f;
  e = error_of(bad);
  CHECK(e.find("--scheduler") != std::string::npos);
  CHECK(e.find("--min_lr_ratio = 1.5") != std::string::npos);
  bad.min_lr_ratio = -0.1f;
  CHECK(error_of(bad).find("--min_lr_ratio = -0.1") != std::string::npos);
}

TEST_CASE("cosine_restarts follows ReLoRA's jagged formula at every step, re-warm-ups included") {
  LrSchedule s;
  s.scheduler = "cosine_restarts";
  s.lr = 1e-3f;
  s.warmup_steps = 10;       // W0
  s.restart_warmup_steps = 5;  // Wr
  s.cycle_length = 25;       // R
  s.num_training_steps = 100;  // T
  s.min_lr_ratio = 0.1f;     // m
  validate_schedule(s);
  const double m = s.min_lr_ratio;
  auto cosine = [&](double progress) { return m + (1 - m) * 0.5 * (1 + std::cos(M_PI * progress)); };
  for (int t = 0; t < s.num_training_steps; t++) {
    double f;
    if (t < 10) f = t / 10.0;
    else if (t % 25 < 5 && t >= 25) f = (t % 25) / 5.0 * cosine(((t / 25) * 25 + 5 - 10) / 90.0);
    else f = cosine((t - 10) / 90.0);
    check_lr(s, t, s.lr * f);
  }
  // Each restart begins at zero and climbs back to the decayed curve.
  CHECK(lr_at(s, 25) == 0.0f);
  CHECK(lr_at(s, 50) == 0.0f);
  CHECK(lr_at(s, 29) < lr_at(s, 30));
  CHECK(std::fabs(lr_at(s, 30) - s.lr * cosine(20 / 90.0)) <= 1e-9);
}

TEST_CASE("cosine_restarts refuses what ReLoRA's repo asserts, naming the flag") {
  LrSchedule s;
  s.scheduler = "cosine_restarts";
  s.num_training_steps = 100;
  s.cycle_length = 0;
  CHECK(error_of(s).find("--cycle_length") != std::string::npos);
  s.cycle_length = 20;
  s.warmup_steps = 30;
  CHECK(error_of(s).find("--warmup_steps") != std::string::npos);
  s.warmup_steps = 10;
  s.restart_warmup_steps = 21;
  CHECK(error_of(s).find("--restart_warmup_steps") != std::string::npos);
  s.restart_warmup_steps = 5;
  s.min_lr_ratio = 0.0f;
  CHECK(error_of(s).find("--min_lr_ratio") != std::string::npos);
  s.min_lr_ratio = 0.1f;
  CHECK(error_of(s).empty());
  s.num_training_steps = 110;  // five and a half cycles of 20
  const std::string e = error_of(s);
  CHECK(e.find("--num_training_steps = 110 must be a multiple of --cycle_length = 20") != std::string::npos);
}
