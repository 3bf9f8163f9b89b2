// make fuzz's starting corpus: one small valid input per target, made by the
// engine itself, so the fuzzer starts from files that load and mutates its
// way into the corners.
//
//   make_seeds OUT_DIR   ->  OUT_DIR/<target>/seed
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "data/shard.h"
#include "data/tokenizer.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/export.h"
#include "train/trainer.h"

using namespace switchlora;

namespace {

void put(const std::string& out, const std::string& target, const std::string& bytes) {
  std::filesystem::create_directories(out + "/" + target);
  std::ofstream(out + "/" + target + "/seed", std::ios::binary) << bytes;
}

std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUT_DIR\n");
    return 2;
  }
  const std::string out = argv[1], tmp = out + "/.work";
  std::filesystem::create_directories(tmp);
  // A micro model: a checkpoint of a few KB, SwitchLoRA state and pools included.
  LlamaConfig c;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_attention_heads = 2;
  c.num_hidden_layers = 1;
  c.vocab_size = 16;
  c.max_sequence_length = 8;
  TrainOptions o;
  o.batch_size = o.total_batch_size = 1;
  o.max_length = 4;
  o.num_training_steps = 4;
  o.method = "switchlora";
  o.lora = {true, 2, 1.0f, "switchlora"};
  o.sw.switch_lora_interval = 2;
  o.sw.fix_switch_lora_interval = true;
  o.sw.adam_warm_step = 1;
  SingleProcess comm;
  Trainer tr(o, c, comm);
  tr.train_step([](int32_t* in, int32_t* tg) {
    for (int i = 0; i < 4; i++) in[i] = i, tg[i] = i + 1;
  });
  Checkpoint ck;
  tr.save_state(ck);
  save_checkpoint(tmp + "/ck.bin", ck);
  put(out, "checkpoint", read(tmp + "/ck.bin"));
  put(out, "config", config_to_json(c));
  save_safetensors(tmp + "/m.safetensors", model_tensors(tr.model));
  put(out, "safetensors", read(tmp + "/m.safetensors"));
  write_shard(tmp + "/s.bin", {1, 2, 3, 4, 5, 299, 0, 7});
  put(out, "shard", read(tmp + "/s.bin"));
  Tokenizer::train("the jury said the jury was the best of all juries in the land", 270).save(tmp);
  put(out, "tokenizer", read(tmp + "/encoder.json") + std::string(1, '\0') + read(tmp + "/vocab.bpe"));
  std::filesystem::remove_all(tmp);
  std::printf("seeds in %s\n", out.c_str());
  return 0;
}
