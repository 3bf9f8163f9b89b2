// LoRA (DESIGN §4, §6): frozen W, trainable adapters A, B on every attention
// and MLP linear, initialised once (model/lora.h), AdamW with a step count
// per row of A and per column of B. No switching.
#pragma once
#include "train/method.h"

namespace switchlora {

MethodInfo lora_method();
// LoRA's counts at rank r (throws naming --lora_rank outside (0, min(in, out))).
ParamCounts lora_counts(const LlamaConfig& c, const TrainOptions& o);

}  // namespace switchlora
