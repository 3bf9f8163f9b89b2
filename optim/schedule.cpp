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

const char* const kSchedulers[] = {"constant", "linear", "cosine", "cosine_with_min_lr"};

}  // namespace

void validate_schedule(const LrSchedule& s) {
  bool known = false;
  for (const char* name : kSchedulers) known = known || s.scheduler == name;
  if (!known)
    throw Error("--scheduler: unknown schedule '" + s.scheduler +
                "' (expected constant, linear, cosine or cosine_with_min_lr)");
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
}

float lr_at(const LrSchedule& s, int step) {
  // max(1, ...) as in HuggingFace: no decay phase when warm-up fills the run.
  const double decay_steps = std::max(1, s.num_training_steps - s.warmup_steps);
  const double progress = std::clamp((step - s.warmup_steps) / decay_steps, 0.0, 1.0);
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  double factor = 1.0;
  if (s.scheduler == "linear") factor = 1.0 - progress;
  else if (s.scheduler == "cosine") factor = cosine;
  else if (s.scheduler == "cosine_with_min_lr")
    factor = s.min_lr_ratio + (1.0 - s.min_lr_ratio) * cosine;
  else if (s.scheduler != "constant")
    validate_schedule(s);  // throws: only an unknown name gets here
  if (step < s.warmup_steps) factor = (double)step / s.warmup_steps;
  return (float)(s.lr * factor);
}

}  // namespace switchlora
