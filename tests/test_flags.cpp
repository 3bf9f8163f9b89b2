// The command line: the authors' spellings are accepted as they write them
// (`--autoresume True`, `--dtype bfloat16`, `--resume_from`,
// `--gradient_accumulation`, `--force_disable_candidates`, `--adam_warm_step
// -1`), and what cannot be right is a one-line error naming the flag.
#include <doctest/doctest.h>

#include "tests/train_flags.h"

using namespace switchlora;
using test::parse_train;
using test::train_flags_error;

TEST_CASE("booleans: --flag, --flag=V and --flag V with V true/false/True/False/1/0") {
  CHECK(parse_train({"--autoresume"}).autoresume);
  CHECK(parse_train({"--autoresume", "True"}).autoresume);
  CHECK(!parse_train({"--autoresume", "False"}).autoresume);
  CHECK(!parse_train({"--autoresume=false"}).autoresume);
  CHECK(parse_train({"--autoresume=True", "--lr", "1e-3"}).lr == 1e-3f);
  CHECK(!parse_train({"--use_lora", "False"}).lora.use_lora);
  CHECK(parse_train({"--use_lora", "True", "--lora_rank", "8"}).method == "lora");
  // A word that is not a boolean stays an argument of its own, and is refused.
  CHECK_THROWS_WITH_AS(parse_train({"--autoresume", "yes"}), doctest::Contains("unknown argument \"yes\""), Error);
  CHECK_THROWS_WITH_AS(parse_train({"--autoresume=maybe"}), doctest::Contains("--autoresume expects true or false"), Error);
}

TEST_CASE("the authors' spellings: --dtype bfloat16, --resume_from, --gradient_accumulation, --force_disable_candidates") {
  CHECK(parse_train({"--dtype", "bfloat16"}).dtype == "bf16");
  CHECK(parse_train({"--dtype", "float32"}).dtype == "fp32");
  CHECK(parse_train({"--resume_from", "runs/x"}).resume == "runs/x");
  CHECK(train_flags_error({"--resume", "a", "--resume_from", "b"}).find("disagree") != std::string::npos);

  TrainOptions o = parse_train({"--batch_size", "4", "--gradient_accumulation", "3"});
  resolve_total_batch_size(o, 2);
  CHECK(o.total_batch_size == 24);  // 4 x 3 x 2 ranks
  o = parse_train({"--batch_size", "4", "--gradient_accumulation", "3", "--total_batch_size", "16"});
  CHECK_THROWS_WITH_AS(resolve_total_batch_size(o, 1), doctest::Contains("--gradient_accumulation 3"), Error);
  o = parse_train({"--batch_size", "4"});
  resolve_total_batch_size(o, 2);
  CHECK(o.total_batch_size == 8);  // batch_size x ranks, as before

  // The authors' LoRA baseline: their SwitchLoRA code with no pools and no switching.
  CHECK(parse_train({"--use_lora", "--force_disable_candidates"}).method == "lora");
  CHECK(parse_train({"--switch_lora", "--force_disable_candidates"}).method == "lora");
  CHECK(parse_train({"--switch_lora"}).method == "switchlora");
  // --adam_warm_step -1: the counterpart is reset but not frozen.
  CHECK(parse_train({"--switch_lora", "--adam_warm_step", "-1"}).sw.adam_warm_step == 0);
}
