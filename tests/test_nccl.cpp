// dist/nccl_communicator.h on one rank: the NCCL smoke test of the device
// check. One rank is all a single-GPU machine can run, but it still builds
// the clique, runs ncclAllReduce on device memory on the backend's stream,
// falls back to the host communicator for host memory, and must leave a
// training run exactly where SingleProcess leaves it. Skipped without a GPU
// or without NCCL in the build.
#include <doctest/doctest.h>

#include <cmath>

#include "dist/communicator.h"
#include "engine/backend.h"
#include "engine/rng.h"
#include "tests/tiny_config.h"
#include "train/switchlora_method.h"
#include "train/trainer.h"
#if SWITCHLORA_NCCL
#include "dist/nccl_communicator.h"
#endif

using namespace switchlora;

namespace {

#if SWITCHLORA_NCCL
constexpr bool kNccl = true;
#else
constexpr bool kNccl = false;
#endif

bool has_gpu_and_nccl() { return kNccl && cuda_available(); }

}  // namespace

TEST_CASE("the CPU backend and a single rank need no GPU communicator") {
  SingleProcess one;
  CHECK(make_gpu_communicator(one, cpu_backend()) == nullptr);
}

#if SWITCHLORA_NCCL
TEST_CASE("one-rank NCCL: the mean of one rank is the buffer itself, device or host" *
          doctest::skip(!has_gpu_and_nccl())) {
  Backend& be = backend_for("cuda");
  SingleProcess host;
  NcclCommunicator nccl(host);
  CHECK(nccl.world() == 1);
  std::vector<float> values(1000);
  Rng rng{3, 9, 0};
  for (float& x : values) x = rng.normal();
  Buffer<float> buf(be, values.size());
  buf.from_host(values);
  nccl.allreduce_mean(buf.data(), values.size());
  CHECK(buf.to_host() == values);  // x / 1 is x
  std::vector<float> on_host = values;
  nccl.allreduce_mean(on_host.data(), on_host.size());
  CHECK(on_host == values);
}

TEST_CASE("one-rank NCCL: three training steps as with SingleProcess" * doctest::skip(!has_gpu_and_nccl())) {
  Backend& be = backend_for("cuda");
  TrainOptions o;
  o.batch_size = o.total_batch_size = 2;
  o.max_length = 8;
  o.num_training_steps = o.sw.num_training_steps = 3;
  o.lora = {true, 4, 1.0f, "switchlora"};
  o.method = "switchlora";
  o.sw.switch_lora_interval = 2;
  o.sw.adam_warm_step = 1;
  SingleProcess single, host;
  NcclCommunicator nccl(host);
  Trainer a(o, test::tiny_config(), single, be), b(o, test::tiny_config(), nccl, be);
  const BatchFn batch = [](int32_t* in, int32_t* tg) {
    for (int i = 0; i < 16; i++) {
      in[i] = (i * 7) % 32;
      tg[i] = (i * 11 + 3) % 32;
    }
  };
  for (int s = 0; s < 3; s++) {
    const StepStats sa = a.train_step(batch), sb = b.train_step(batch);
    // Within rounding rather than bit for bit: the one-rank all-reduce is
    // NCCL's own kernel (a sum scaled by 1/1), not the identity SingleProcess
    // applies, and this test need not depend on how NCCL averages.
    CHECK(std::fabs(sa.loss - sb.loss) <= 1e-5f * std::fabs(sa.loss));
    CHECK(sa.method.value("switched", 0) == sb.method.value("switched", 0));
  }
}
#endif
