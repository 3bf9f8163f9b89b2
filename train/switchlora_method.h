// SwitchLoRA (model/switchlora.h) as a training method: LoRA whose adapter
// vectors are switched with candidates after clipping, before the update.
#pragma once
#include "model/switchlora.h"
#include "train/method.h"

namespace switchlora {

class SwitchLoraMethod : public Method {
 public:
  SwitchLoraMethod(Llama& model, const TrainOptions& o);

  // Step t: switch (A then B, per layer), then zero the frozen vectors' grads.
  void before_update(int t) override;
  // One optimizer step has passed: thaw, and start fetching step t+1's candidates.
  void after_update(int t) override;
  void save(Checkpoint& ck) const override;  // + every pool by name, and who holds what
  void load(const Checkpoint& ck, const std::string& path) override;
  void metrics(nlohmann::json& m) const override;  // switched, switch_interval
  std::string progress() const override;
  std::vector<std::pair<std::string, std::vector<float>>> sync_buffers() const override;

  SwitchLora switcher;

 private:
  int switched_ = 0;
  double interval_ = 0;
};

MethodInfo switchlora_method();
// m's switcher when m is SwitchLoRA, else nullptr (for tests and tools).
SwitchLora* find_switcher(Method& m);

}  // namespace switchlora
