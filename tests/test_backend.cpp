// engine/backend.h and engine/cpu/backend.cpp: the memory calls, gemm's
// explicit precision, and the discipline the GPU needs from everything above
// the backend. With CpuBackend(strict = true) backend memory is unreadable
// outside the backend's calls and side-queue copies run as late as a GPU may
// run them, so a whole training run (SwitchLoRA switching and freezing,
// candidates offloaded or not and prefetched, checkpoint save and load,
// export, sync hashes, evaluation) that finishes on it, with the ordinary CPU
// backend's results bit for bit, never dereferenced a backend pointer on the
// host and never used a side copy without waiting for it: the bugs that would
// crash or silently corrupt a GPU run.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

#include "engine/cpu/backend.h"
#include "engine/rng.h"
#include "model/export.h"
#include "tests/same_bits.h"
#include "tests/tiny_config.h"
#include "train/switchlora_method.h"
#include "train/trainer.h"

using namespace switchlora;
using test::same_bits;

namespace {

// True when f, run in a child process, dies of a segmentation fault.
bool segfaults(void (*f)(float*), float* p) {
  const pid_t pid = fork();
  if (pid == 0) {
    std::signal(SIGSEGV, SIG_DFL);  // die of it, without doctest's crash report
    f(p);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

void host_read(float* p) {
  volatile float x = p[0];
  (void)x;
}

struct Outcome {
  std::vector<float> losses, trainable, frozen, candidates, logits;
  std::vector<int> switched;
  std::vector<NamedTensor> exported;
};

// Six SwitchLoRA steps on be (interval 2: vectors switch and freeze every
// step), a checkpoint round trip into a second trainer, two more steps there.
Outcome run_on(Backend& be, const std::string& method, bool offload) {
  const LlamaConfig c = test::tiny_config();
  TrainOptions o;
  o.batch_size = o.total_batch_size = 2;
  o.max_length = 8;
  o.lr = 2e-2f;
  o.num_training_steps = 8;
  if (method != "full") o.lora = {true, 4, 1.0f, "switchlora"};
  o.method = method;
  o.sw.switch_lora_interval = 2;
  o.sw.adam_warm_step = 1;
  o.sw.num_training_steps = o.num_training_steps;
  o.sw.offload_candidates = offload;
  SingleProcess comm;
  Rng rng{11, kStreamData, 0};
  std::vector<int32_t> tokens(64 * 16);
  for (int32_t& t : tokens) t = (int32_t)rng.below(c.vocab_size);
  size_t next = 0;
  const BatchFn batch = [&](int32_t* in, int32_t* tg) {
    for (int i = 0; i < 16; i++, next++) {
      in[i] = tokens[next % tokens.size()];
      tg[i] = tokens[(next + 1) % tokens.size()];
    }
  };

  Outcome out;
  Trainer first(o, c, comm, be);
  for (int s = 0; s < 6; s++) {
    const StepStats st = first.train_step(batch);
    out.losses.push_back(st.loss);
    out.switched.push_back(st.method.value("switched", 0));
  }
  first.check_in_sync("in the test");
  Checkpoint ck;
  first.save_state(ck);
  Trainer second(o, c, comm, be);
  second.load_state(ck, "in-memory checkpoint");
  for (int s = 0; s < 2; s++) {
    const StepStats st = second.train_step(batch);
    out.losses.push_back(st.loss);
    out.switched.push_back(st.method.value("switched", 0));
  }
  out.losses.push_back(second.evaluate(batch, 2));
  out.trainable = second.model.params.trainable.to_host();
  out.frozen = second.model.params.frozen.to_host();
  if (SwitchLora* sw = find_switcher(*second.method)) out.candidates = sw->candidates_host();
  out.exported = merged_tensors(second.model);
  std::vector<int32_t> in(16), tg(16);
  batch(in.data(), tg.data());
  second.model.forward(in.data(), nullptr, 2, 8);
  out.logits = second.model.logits_host();
  return out;
}

}  // namespace

TEST_CASE("strict backend memory is unreadable from the host, readable inside the backend's calls") {
  CpuBackend be(true);
  Buffer<float> buf(be, 1000);
  CHECK(segfaults(host_read, buf.data()));
  // The backend's own calls open it: a copy out sees the zeros alloc promises.
  const std::vector<float> v = buf.to_host();
  CHECK(v == std::vector<float>(1000, 0.0f));
  // Host memory from alloc_host stays readable.
  Buffer<float> host(be, 10, Buffer<float>::kHost);
  CHECK_FALSE(segfaults(host_read, host.data()));
}

TEST_CASE("a strict op refuses a host array, as a GPU kernel would fault on one") {
  CpuBackend be(true);
  Buffer<float> x(be, 8), y(be, 8);
  std::vector<float> host(8, 1.0f);
  CHECK_NOTHROW(be.residual_forward(y.data(), x.data(), x.data(), 8));
  CHECK_THROWS_WITH_AS(be.residual_forward(y.data(), x.data(), host.data(), 8),
                       doctest::Contains("outside backend memory"), Error);
  CHECK_THROWS_AS(be.zero(host.data(), 8 * sizeof(float)), Error);
}

TEST_CASE("a strict side copy lands at main_waits_for_side or synchronize, not before") {
  CpuBackend be(true);
  Buffer<float> a(be, 4), b(be, 4);
  a.from_host({1, 2, 3, 4});
  be.copy_side(b.data(), a.data(), 4 * sizeof(float));
  std::vector<float> seen(4);
  be.copy(seen.data(), b.data(), 4 * sizeof(float));
  CHECK(seen == std::vector<float>(4, 0.0f));  // not yet
  be.main_waits_for_side();
  be.copy(seen.data(), b.data(), 4 * sizeof(float));
  CHECK(seen == std::vector<float>{1, 2, 3, 4});
}

TEST_CASE("copy_2d moves a column of a row-major matrix; zero_2d clears exactly the columns asked") {
  for (bool protect : {false, true}) {
    CpuBackend be(protect);
    const int rows = 5, cols = 3;
    std::vector<float> m(rows * cols);
    for (int i = 0; i < rows * cols; i++) m[i] = (float)i;
    Buffer<float> M(be, m.size()), col(be, rows);
    M.from_host(m);
    be.copy_2d(col.data(), sizeof(float), M.data() + 1, cols * sizeof(float), sizeof(float), rows);
    CHECK(col.to_host() == std::vector<float>{1, 4, 7, 10, 13});
    be.copy_2d(M.data() + 2, cols * sizeof(float), col.data(), sizeof(float), sizeof(float), rows);
    be.zero_2d(M.data(), cols * sizeof(float), sizeof(float), rows);  // column 0
    CHECK(M.to_host() == std::vector<float>{0, 1, 1, 0, 4, 4, 0, 7, 7, 0, 10, 10, 0, 13, 13});
  }
}

// zero splits a large buffer over the OpenMP threads in 256 KiB chunks: an
// odd size and offset must clear every byte asked, and not one more.
TEST_CASE("zero clears exactly the bytes asked, across its chunks and threads") {
  CpuBackend be(false);
  const size_t n = 5 * (256 << 10) + 13, offset = 3;  // bytes
  Buffer<uint8_t> buf(be, n + 2 * offset);
  buf.from_host(std::vector<uint8_t>(n + 2 * offset, 0xAB));
  be.zero(buf.data() + offset, n);
  const std::vector<uint8_t> got = buf.to_host();
  std::vector<uint8_t> want(n + 2 * offset, 0);
  for (size_t i = 0; i < offset; i++) want[i] = want[n + offset + i] = 0xAB;
  CHECK(got == want);
}

TEST_CASE("training, switching, checkpoints, export and eval never touch backend memory from the host "
          "and wait for every side copy") {
  for (const char* method : {"full", "lora", "switchlora"}) {
    for (bool offload : {true, false}) {
      if (std::string(method) != "switchlora" && !offload) continue;
      CAPTURE(method);
      CAPTURE(offload);
      CpuBackend plain(false), strict(true);
      const Outcome a = run_on(plain, method, offload), b = run_on(strict, method, offload);
      CHECK(a.losses == b.losses);
      CHECK(a.switched == b.switched);
      CHECK(same_bits(a.trainable, b.trainable));
      CHECK(same_bits(a.frozen, b.frozen));
      CHECK(same_bits(a.candidates, b.candidates));
      CHECK(same_bits(a.logits, b.logits));
      REQUIRE(a.exported.size() == b.exported.size());
      for (size_t i = 0; i < a.exported.size(); i++) CHECK(same_bits(a.exported[i].data, b.exported[i].data));
      if (std::string(method) == "switchlora") {
        int total = 0;
        for (int s : a.switched) total += s;
        CHECK(total > 0);  // the run really switched
      }
    }
  }
}

TEST_CASE("offloading the candidates does not change a single bit of training") {
  CpuBackend be;
  const Outcome host = run_on(be, "switchlora", true), backend = run_on(be, "switchlora", false);
  CHECK(host.losses == backend.losses);
  CHECK(same_bits(host.trainable, backend.trainable));
  CHECK(same_bits(host.candidates, backend.candidates));
}

TEST_CASE("gemm multiplies at the precision it is given: the CPU's fp32 is matmul's product, "
          "the GPU precisions throw") {
  CpuBackend be;
  Rng rng{12, kStreamData, 0};
  const int M = 3, N = 4, K = 5;
  std::vector<float> a(M * K), b(K * N);
  for (float& x : a) x = rng.normal();
  for (float& x : b) x = rng.normal();
  Buffer<float> A(be, a.size()), B(be, b.size()), C(be, M * N), D(be, M * N);
  A.from_host(a);
  B.from_host(b);
  be.gemm(C.data(), A.data(), B.data(), M, N, K, false, false, 0.5f, 0.0f, Precision::kFp32);
  be.matmul(D.data(), A.data(), B.data(), M, N, K, false, false, 0.5f);
  const std::vector<float> product = C.to_host();
  CHECK(product == D.to_host());
  CHECK(product != std::vector<float>(M * N, 0.0f));
  CHECK_THROWS_WITH_AS(be.gemm(C.data(), A.data(), B.data(), M, N, K, false, false, 1.0f, 0.0f,
                               Precision::kBf16),
                       doctest::Contains("--device cuda"), Error);
  CHECK(C.to_host() == product);  // refused before it wrote anything
}

TEST_CASE("--device and --dtype errors name the flag") {
  auto message = [](auto f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  CHECK(message([] { backend_for("tpu"); }).find("--device") != std::string::npos);
  CHECK(message([] { precision_from_flags("fp16", false); }).find("--dtype") != std::string::npos);
  CHECK(message([] { precision_from_flags("bf16", true); }).find("--tf32") != std::string::npos);
  CHECK(message([] { cpu_backend().set_precision(Precision::kBf16); }).find("--device cuda") != std::string::npos);
  if (!cuda_available()) {
    CHECK(message([] { backend_for("cuda"); }).find("--device cuda") != std::string::npos);
    CHECK(&backend_for("auto") == &cpu_backend());
  }
}
