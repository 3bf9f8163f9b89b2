// End to end through the CLI on the bundled Brown corpus: training learns
// (full-rank, LoRA, SwitchLoRA), metrics are complete, resuming continues
// exactly, and bad input fails cleanly without touching what is on disk.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "tests/cli.h"

using namespace switchlora::test;

namespace {

// The tiny config (C = 64, L = 2) at T = 64: ~50 ms a step on 2 cores.
std::string train_cmd(const std::string& dir, const std::string& extra) {
  return bin() + " train --model_config configs/llama_tiny.json --data " + brown_data() +
         " --batch_size 8 --max_length 64 --warmup_steps 5 --eval_every 25 --max_eval_batches 4"
         " --save_dir " + dir + " " + extra;
}

double mean_loss(const std::vector<nlohmann::json>& lines, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; i++) s += lines[i]["loss"].get<double>();
  return s / (to - from);
}

}  // namespace

TEST_CASE("full-rank training on Brown learns and logs every metric") {
  const std::string dir = "/tmp/switchlora_e2e_full";
  std::filesystem::remove_all(dir);
  RunResult r = run(train_cmd(dir, "--lr 3e-3 --num_training_steps 50"));
  INFO(r.output);
  REQUIRE(r.rc == 0);
  CHECK(r.output.find("final validation loss") != std::string::npos);
  CHECK(r.output.find("ETA") != std::string::npos);
  const auto all = read_metrics(dir + "/metrics.jsonl");
  const auto lines = train_lines(all);
  REQUIRE(lines.size() == 50);
  for (const auto& j : lines)
    for (const char* k : {"step", "loss", "lr", "grad_norm", "tokens_per_s"}) CHECK(j.contains(k));
  int evals = 0;
  for (const auto& j : all)
    if (j.contains("val_loss")) {
      evals++;
      CHECK(j["val_ppl"].get<double>() == doctest::Approx(std::exp(j["val_loss"].get<double>())));
    }
  CHECK(evals == 2);  // step 25 and the final one
  // From ln(8192) = 9.0 at init; 50 steps of this tiny model reach ~6.5.
  const double first = mean_loss(lines, 0, 5), last = mean_loss(lines, 45, 50);
  INFO("first " << first << " last " << last);
  CHECK(first > 8.5);
  CHECK(last < first - 1.5);
  CHECK(std::filesystem::exists(dir + "/checkpoint_00000050.bin"));
}

TEST_CASE("LoRA training learns") {
  const std::string dir = "/tmp/switchlora_e2e_lora";
  std::filesystem::remove_all(dir);
  RunResult r = run(train_cmd(dir, "--use_lora --lora_rank 16 --lr 1e-2 --num_training_steps 40"));
  INFO(r.output);
  REQUIRE(r.rc == 0);
  const auto lines = train_lines(read_metrics(dir + "/metrics.jsonl"));
  REQUIRE(lines.size() == 40);
  CHECK(mean_loss(lines, 35, 40) < mean_loss(lines, 0, 5) - 1.0);
}

TEST_CASE("ReLoRA training learns across its merges and jagged schedule") {
  const std::string dir = "/tmp/switchlora_e2e_relora";
  std::filesystem::remove_all(dir);
  RunResult r = run(train_cmd(dir, "--use_lora --lora_rank 16 --lora_alpha 32 --relora 10 --scheduler cosine_restarts "
                                   "--restart_warmup_steps 2 --lr 1e-2 --num_training_steps 40"));
  INFO(r.output);
  REQUIRE(r.rc == 0);
  const auto lines = train_lines(read_metrics(dir + "/metrics.jsonl"));
  REQUIRE(lines.size() == 40);
  int merged = 0;
  for (const auto& l : lines) merged += l.value("relora_merged", 0);
  CHECK(merged == 3);  // after updates 11, 21, 31
  CHECK(lines[10]["lr"].get<double>() == 0.0);  // step 11 is a restart: lr starts again from 0
  CHECK(mean_loss(lines, 35, 40) < mean_loss(lines, 0, 5) - 1.0);
}

TEST_CASE("GaLore training learns with its projections refreshed every T steps") {
  const std::string dir = "/tmp/switchlora_e2e_galore";
  std::filesystem::remove_all(dir);
  RunResult r = run(train_cmd(dir, "--optimizer galore_adamw --rank 16 --update_proj_gap 10 --galore_scale 0.25 "
                                   "--lr 1e-2 --num_training_steps 40"));
  INFO(r.output);
  REQUIRE(r.rc == 0);
  const auto lines = train_lines(read_metrics(dir + "/metrics.jsonl"));
  REQUIRE(lines.size() == 40);
  for (size_t i = 0; i < lines.size(); i++) CHECK(lines[i]["projection_refreshed"] == (i % 10 == 0 ? 1 : 0));
  CHECK(mean_loss(lines, 35, 40) < mean_loss(lines, 0, 5) - 1.0);
}

TEST_CASE("SwitchLoRA training learns and its switch counts follow the schedule") {
  const std::string dir = "/tmp/switchlora_e2e_switch";
  std::filesystem::remove_all(dir);
  // interval 10 and D = 0.5 x 60 = 30 steps: k = 16 / interval(t) per layer
  // and per matrix starts at 1.6 and decays to 0.16 by the end.
  RunResult r = run(train_cmd(dir, "--switch_lora --lora_rank 16 --lr 1e-2 --num_training_steps 60"
                                   " --switch_lora_interval 10 --switch_lora_descent_rate 0.5 --adam_warm_step 2"));
  INFO(r.output);
  REQUIRE(r.rc == 0);
  CHECK(r.output.find("candidates") != std::string::npos);
  const auto lines = train_lines(read_metrics(dir + "/metrics.jsonl"));
  REQUIRE(lines.size() == 60);
  CHECK(mean_loss(lines, 55, 60) < mean_loss(lines, 0, 5) - 1.0);
  double early = 0, late = 0, expected_early = 0, expected_late = 0;
  for (int t = 0; t < 60; t++) {
    const double interval = 10 / std::pow(0.3, (t + 1) / 30.0);
    CHECK(lines[t]["switch_interval"].get<double>() == doctest::Approx(interval).epsilon(1e-5));
    // 14 adapted layers, A and B each: 28 x 16 / interval expected per step.
    (t < 20 ? expected_early : expected_late) += t < 20 || t >= 40 ? 28 * 16 / interval : 0;
    if (t < 20) early += lines[t]["switched"].get<int>();
    if (t >= 40) late += lines[t]["switched"].get<int>();
  }
  INFO("switched: first 20 steps " << early << " (expected " << expected_early << "), last 20 "
                                   << late << " (expected " << expected_late << ")");
  // Each step's count is a sum of 14 Bernoulli roundings (x2 for A and B):
  // sigma over 20 steps <= 2 sqrt(20 x 14 / 4) ~ 17; allow 4 sigma.
  CHECK(std::abs(early - expected_early) < 4 * 17);
  CHECK(std::abs(late - expected_late) < 4 * 17);
  CHECK(late < early / 2);
}

TEST_CASE("a resumed run continues exactly as if never stopped") {
  for (const char* method : {"--lr 3e-3", "--switch_lora --lora_rank 16 --lr 1e-2 --switch_lora_interval 10 "
                                          "--adam_warm_step 2 --switch_lora_descent_rate 0.5 --lora_dropout 0.1"}) {
    const std::string a = "/tmp/switchlora_e2e_resume_a", b = "/tmp/switchlora_e2e_resume_b";
    std::filesystem::remove_all(a);
    std::filesystem::remove_all(b);
    const std::string flags = std::string(method) + " --num_training_steps 12 --save_every 6 --keep_checkpoints 0";
    RunResult ra = run(train_cmd(a, flags));
    REQUIRE_MESSAGE(ra.rc == 0, ra.output);
    RunResult rb = run(train_cmd(b, flags + " --resume " + a + "/checkpoint_00000006.bin"));
    REQUIRE_MESSAGE(rb.rc == 0, rb.output);
    CHECK(rb.output.find("resumed from") != std::string::npos);
    const auto la = train_lines(read_metrics(a + "/metrics.jsonl"));
    const auto lb = train_lines(read_metrics(b + "/metrics.jsonl"));
    REQUIRE(la.size() == 12);
    REQUIRE(lb.size() == 6);  // the resumed run logs steps 7..12 only
    for (int i = 0; i < 6; i++) {
      INFO(method << " step " << 7 + i);
      CHECK(lb[i]["step"] == la[6 + i]["step"]);
      CHECK(lb[i]["loss"] == la[6 + i]["loss"]);  // bitwise: JSON keeps every digit
      CHECK(lb[i]["grad_norm"] == la[6 + i]["grad_norm"]);
      if (la[6 + i].contains("switched")) CHECK(lb[i]["switched"] == la[6 + i]["switched"]);
    }
    // --autoresume in the finished run's directory picks its newest checkpoint.
    RunResult rc = run(train_cmd(a, flags + " --autoresume"));
    CHECK(rc.output.find("resumed from " + a + "/checkpoint_00000012.bin") != std::string::npos);
  }
}

TEST_CASE("resuming checks every flag but the few that may change") {
  const std::string a = "/tmp/switchlora_e2e_identity";
  std::filesystem::remove_all(a);
  const std::string flags = "--use_lora --lora_rank 8 --lr 1e-2 --num_training_steps 8 --save_every 4 --keep_checkpoints 0";
  RunResult first = run(train_cmd(a, flags));
  REQUIRE_MESSAGE(first.rc == 0, first.output);
  const std::string ck = " --resume " + a + "/checkpoint_00000004.bin --save_dir " + a + "_b";
  // A flag no hand-kept list named before (AdamW's beta2) is part of the run.
  RunResult beta = run(train_cmd(a, flags + " --adam_beta2 0.99" + ck));
  INFO(beta.output);
  CHECK(beta.rc == 2);
  CHECK(beta.output.find("adam_beta2") != std::string::npos);
  // The method spelled another way, evaluation and saving may change.
  const std::string same = "--method lora --lora_rank 8 --lr 0.01 --num_training_steps 8 --eval_every 7 --save_every 3";
  RunResult ok = run(train_cmd(a, same + ck));
  INFO(ok.output);
  CHECK(ok.rc == 0);
  CHECK(ok.output.find("resumed from") != std::string::npos);
}

TEST_CASE("bad input is a one-line error naming the flag, and nothing is overwritten") {
  const std::string dir = "/tmp/switchlora_e2e_bad";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  { std::ofstream(dir + "/metrics.jsonl") << "{\"step\": 1, \"loss\": 1.0}\n"; }
  struct Case { std::string flags, needle; };
  const std::vector<Case> cases = {
      {"--batch_size 3 --total_batch_size 16", "--total_batch_size"},
      {"--max_length 512", "max_sequence_length"},
      {"--lora_rank 8", "--lora_rank"},
      {"--switch_lora --lora_rank 64", "--lora_rank"},
      {"--switch_lora --lora_rank 8 --switch_lora_interval 8 --fix_switch_lora_interval", "--adam_warm_step"},
      {"--switch_lora --lora_rank 8 --switch_lora_interval -1", "--switch_lora_interval"},
      {"--switch_lora --lora_rank 8 --switch_lora_descent_rate 0", "--switch_lora_descent_rate"},
      {"--scheduler stepwise", "--scheduler"},
      {"--switch_lora --lora_rank 8 --init_lora_type origin_lora", "--init_lora_type"},
      {"--num_training_steps abc", "--num_training_steps"},
      {"--no_such_flag 1", "--no_such_flag"},
      {"--vocab_size 100", "--vocab_size"},
      {"--resume /nonexistent/ckpt.bin", "/nonexistent/ckpt.bin"},
      {"--device tpu", "--device"},
      {"--dtype fp16", "--dtype"},
      {"--dtype bf16 --tf32", "--tf32"},
      {"--device cpu --dtype bf16", "--device cuda"},
      {"--use_lora --lora_rank 8 --no_offload_candidates", "--no_offload_candidates"},
      {"--use_lora --lora_rank 8 --warmed_up_model configs/llama_tiny.json", "--warmed_up_model"},
      {"--optimizer galore_adamw --use_lora", "--optimizer"},
      {"--optimizer galore_adamw --rank 64", "--rank"},
      {"--method lora --switch_lora", "--method"},
  };
  for (const Case& c : cases) {
    RunResult r = run(train_cmd(dir, "--num_training_steps 5 " + c.flags));
    INFO(c.flags << " ->\n" << r.output);
    CHECK(r.rc == 2);
    CHECK(r.output.find("switchlora: error:") != std::string::npos);
    CHECK(r.output.find(c.needle) != std::string::npos);
  }
  std::ifstream f(dir + "/metrics.jsonl");
  std::string line;
  std::getline(f, line);
  CHECK(line == "{\"step\": 1, \"loss\": 1.0}");
  // A shard with a wrong magic: the error names the file.
  const std::string bad = "/tmp/switchlora_e2e_bad_data";
  std::filesystem::remove_all(bad);
  std::filesystem::create_directories(bad);
  for (const char* fname : {"encoder.json", "vocab.bpe", "brown_val_000.bin"})
    std::filesystem::copy_file(brown_data() + "/" + fname, bad + "/" + fname);
  { std::ofstream(bad + "/x_train_000.bin", std::ios::binary) << std::string(2048, 'x'); }
  RunResult r = run(bin() + " train --model_config configs/llama_tiny.json --data " + bad + " --save_dir " + dir);
  INFO(r.output);
  CHECK(r.rc == 2);
  CHECK(r.output.find("x_train_000.bin") != std::string::npos);
}

TEST_CASE("Ctrl-C saves a checkpoint at the end of the current step and exits 130") {
  const std::string dir = "/tmp/switchlora_e2e_interrupt";
  std::filesystem::remove_all(dir);
  const std::string cmd = train_cmd(dir, "--lr 3e-3 --num_training_steps 100000");
  // Interrupt once the run has logged a few steps (waiting at most 60 s).
  RunResult r = run("(" + cmd + " & pid=$!; for i in $(seq 600); do"
                    " [ \"$(wc -l < " + dir + "/metrics.jsonl 2>/dev/null || echo 0)\" -ge 3 ] && break; sleep 0.1; done;"
                    " kill -INT $pid; wait $pid; echo exit=$?)");
  INFO(r.output);
  CHECK(r.output.find("exit=130") != std::string::npos);
  CHECK(r.output.find("interrupted at step") != std::string::npos);
  // The checkpoint is whole and usable.
  RunResult e = run(bin() + " eval --checkpoint " + dir + " --max_length 64 --max_eval_batches 1");
  INFO(e.output);
  CHECK(e.rc == 0);
  CHECK(e.output.find("val loss") != std::string::npos);
}

TEST_CASE("every subcommand answers --help with its flags and exit 0") {
  for (const char* cmd : {"prepare", "train", "eval", "sample", "bench", "export", "plan"}) {
    RunResult r = run(bin() + " " + cmd + " --help");
    INFO(cmd << ":\n" << r.output);
    CHECK(r.rc == 0);
    CHECK(r.output.find(std::string("usage: switchlora ") + cmd) != std::string::npos);
    CHECK(r.output.find("--") != std::string::npos);
  }
  RunResult none = run(bin());
  CHECK(none.rc == 2);
  CHECK(none.output.find("commands:") != std::string::npos);
  RunResult bad = run(bin() + " frobnicate");
  CHECK(bad.rc == 2);
  CHECK(bad.output.find("unknown command") != std::string::npos);
}

TEST_CASE("gradient accumulation follows the same trajectory as one large batch") {
  // total_batch_size 8 as 1 x 8, 2 x 4 and 4 x 2: the same sequences, the
  // same mean loss and gradient; only the summation order differs (~1e-7).
  std::vector<std::vector<nlohmann::json>> runs;
  for (int b : {8, 4, 2}) {
    const std::string dir = "/tmp/switchlora_e2e_accum_" + std::to_string(b);
    std::filesystem::remove_all(dir);
    RunResult r = run(bin() + " train --model_config configs/llama_tiny.json --data " + brown_data() +
                      " --batch_size " + std::to_string(b) + " --total_batch_size 8 --max_length 32"
                      " --switch_lora --lora_rank 8 --lr 1e-2 --num_training_steps 6 --eval_every 0"
                      " --switch_lora_interval 10 --adam_warm_step 2 --save_dir " + dir);
    REQUIRE_MESSAGE(r.rc == 0, r.output);
    CHECK(r.output.find(std::to_string(8 / b) + " accumulation") != std::string::npos);
    runs.push_back(train_lines(read_metrics(dir + "/metrics.jsonl")));
  }
  for (size_t k = 1; k < runs.size(); k++)
    for (size_t i = 0; i < 6; i++) {
      const double a = runs[0][i]["loss"].get<double>(), b = runs[k][i]["loss"].get<double>();
      INFO("run " << k << " step " << i + 1 << ": " << a << " vs " << b);
      CHECK(std::abs(a - b) <= 1e-5 * std::abs(a));
      CHECK(runs[0][i]["switched"] == runs[k][i]["switched"]);
    }
}
