// Learning-rate schedules (DESIGN §5): the formulas of HuggingFace's
// get_scheduler, which the paper's public code uses, with progress clamped
// to [0, 1] so a step past the end stays at the final value.
#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "engine/error.h"

namespace switchlora {

namespace {

const char* const kSchedulers[] = {"constant",         "linear",          "cosine",
                                   "cosine_with_min_lr", "cosine_to_min_lr", "cosine_restarts"};

// ReLoRA's jagged cosine (optim/schedule.h), as its repo's
// _get_cosine_schedule_with_multiple_warmups_lambda computes it.
double cosine_restarts(const LrSchedule& s, int t) {
  if (s.cycle_length <= 0) validate_schedule(s);  // throws naming --cycle_length
  const double W0 = s.warmup_steps, Wr = s.restart_warmup_steps, R = s.cycle_length, m = s.min_lr_ratio;
  const double span = std::max(1, s.num_training_steps - s.warmup_steps);
  auto decayed = [&](double progress) { return m + (1.0 - m) * 0.5 * (1.0 + std::cos(M_PI * progress)); };
  if (t < s.warmup_steps) return t / std::max(1.0, W0);
  const int into = t % s.cycle_length, cycle = t / s.cycle_length;
  if (into < s.restart_warmup_steps && t >= s.cycle_length)
    return into / std::max(1.0, Wr) * decayed((cycle * R + Wr - W0) / span);
  return decayed((t - W0) / span);
}

}  // namespace

void validate_schedule(const LrSchedule& s) {
  bool known = false;
  for (const char* name : kSchedulers) known = known || s.scheduler == name;
  if (!known)
    throw Error("--scheduler: unknown schedule '" + s.scheduler +
                "' (expected constant, linear, cosine, cosine_with_min_lr, cosine_to_min_lr or cosine_restarts)");
  const std::string where = "--scheduler " + s.scheduler + ": ";
  if (s.num_training_steps <= 0)
    throw Error(where + "--num_training_steps = " + std::to_string(s.num_training_steps) +
                " must be > 0");
  if (s.warmup_steps < 0 || s.warmup_steps > s.num_training_steps)
    throw Error(where + "--warmup_steps = " + std::to_string(s.warmup_steps) +
                " must be in [0, --num_training_steps = " +
                std::to_string(s.num_training_steps) + "]");
  if (!(s.min_lr_ratio >= 0.0f && s.min_lr_ratio <= 1.0f))
    throw Error(where + "--min_lr_ratio = " + std::to_string(s.min_lr_ratio) +
                " must be in [0, 1]");
  if (s.scheduler != "cosine_restarts") return;
  // ReLoRA's own asserts, as errors naming the flags.
  if (s.cycle_length <= 0)
    throw Error(where + "needs --cycle_length > 0 (steps between restarts), got " + std::to_string(s.cycle_length));
  if (s.restart_warmup_steps < 0 || s.restart_warmup_steps > s.cycle_length)
    throw Error(where + "--restart_warmup_steps = " + std::to_string(s.restart_warmup_steps) +
                " must be in [0, --cycle_length = " + std::to_string(s.cycle_length) + "]");
  if (s.num_training_steps % s.cycle_length != 0)
    throw Error(where + "--num_training_steps = " + std::to_string(s.num_training_steps) +
                " must be a multiple of --cycle_length = " + std::to_string(s.cycle_length) +
                " (every cycle a whole one, as ReLoRA's repo requires)");
  if (s.warmup_steps > s.cycle_length)
    throw Error(where + "--warmup_steps = " + std::to_string(s.warmup_steps) +
                " must be <= --cycle_length = " + std::to_string(s.cycle_length) +
                " (the first restart would come before the warm-up is done)");
  if (!(s.min_lr_ratio > 0.0f))
    throw Error(where + "--min_lr_ratio must be in (0, 1], got " + std::to_string(s.min_lr_ratio));
}

float lr_at(const LrSchedule& s, int step) {
  if (s.scheduler == "cosine_restarts") return (float)(s.lr * cosine_restarts(s, step));
  // max(1, ...) as in HuggingFace: no decay phase when warm-up fills the run.
  const double decay_steps = std::max(1, s.num_training_steps - s.warmup_steps);
  const double progress = std::clamp((step - s.warmup_steps) / decay_steps, 0.0, 1.0);
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  double factor = 1.0;
  if (s.scheduler == "linear") factor = 1.0 - progress;
  else if (s.scheduler == "cosine") factor = cosine;
  else if (s.scheduler == "cosine_with_min_lr") factor = std::max((double)s.min_lr_ratio, cosine);
  else if (s.scheduler == "cosine_to_min_lr") factor = s.min_lr_ratio + (1.0 - s.min_lr_ratio) * cosine;
  else if (s.scheduler != "constant")
    validate_schedule(s);  // throws: only an unknown name gets here
  if (step < s.warmup_steps) factor = (double)step / s.warmup_steps;
  return (float)(s.lr * factor);
}

}  // namespace switchlora
