// Learning-rate schedules (DESIGN §5), as in the paper's public code:
// a linear warm-up from 0 over warmup_steps, then
//   constant:            lr
//   linear:              lr * (1 - progress)
//   cosine:              lr * 0.5 (1 + cos(pi progress))
//   cosine_with_min_lr:  lr * max(m, 0.5 (1 + cos(pi progress))),  m = min_lr_ratio
//                        (the SwitchLoRA authors' code: the cosine, cut off at its floor)
//   cosine_to_min_lr:    lr * (m + (1 - m) 0.5 (1 + cos(pi progress)))  (GaLore's and
//                        ReLoRA's cosine: the same curve squeezed onto [m, 1])
// progress = (step - warmup) / (num_training_steps - warmup), clamped to [0, 1].
//
// cosine_restarts (ReLoRA's jagged schedule, DESIGN §6): W0 = warmup_steps,
// Wr = restart_warmup_steps, R = cycle_length, T = num_training_steps,
// m = min_lr_ratio, factor at step t:
//   t < W0:                     t / W0
//   t mod R < Wr and t >= R:    (t mod R) / Wr * [m + (1-m) 0.5 (1 + cos(pi (floor(t/R) R + Wr - W0) / (T - W0)))]
//   else:                       m + (1-m) 0.5 (1 + cos(pi (t - W0) / (T - W0)))
#pragma once
#include <string>

namespace switchlora {

struct LrSchedule {
  std::string scheduler = "cosine";   // constant | linear | cosine | cosine_with_min_lr | cosine_to_min_lr | cosine_restarts
  float lr = 1e-3f;
  int warmup_steps = 0;
  int num_training_steps = 1;
  float min_lr_ratio = 0.1f;
  int cycle_length = 0, restart_warmup_steps = 0;  // cosine_restarts only
};

// Throws switchlora::Error naming --scheduler for an unknown name.
void validate_schedule(const LrSchedule& s);
// Learning rate for optimizer step `step` (0-based).
float lr_at(const LrSchedule& s, int step);

}  // namespace switchlora
