// The checkpoint container: round trips, and every way a file can be bad is
// a clear error naming it; run directories keep the newest N checkpoints.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "data/file_io.h"
#include "engine/error.h"
#include "model/checkpoint.h"

using namespace switchlora;

namespace {

Checkpoint sample() {
  Checkpoint ck;
  ck.meta["step"] = 7;
  ck.put("floats", std::vector<float>{1.5f, -2.0f, 3.25f});
  ck.put("counters", std::vector<int64_t>{1, 2, 3, 4});
  return ck;
}

std::string fresh_dir(const char* name) {
  const std::string d = std::string("/tmp/switchlora_test_ckpt_") + name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace

TEST_CASE("a checkpoint round-trips its meta and blobs") {
  const std::string path = fresh_dir("roundtrip") + "/c.bin";
  save_checkpoint(path, sample());
  const Checkpoint ck = load_checkpoint(path);
  CHECK(ck.meta["step"] == 7);
  std::vector<float> f(3);
  ck.get("floats", f, path);
  CHECK(f == std::vector<float>{1.5f, -2.0f, 3.25f});
  std::vector<int64_t> c(4);
  ck.get("counters", c, path);
  CHECK(c[3] == 4);
  std::vector<float> wrong(5);
  CHECK_THROWS_WITH_AS(ck.get("floats", wrong, path), doctest::Contains("floats"), Error);
  CHECK_THROWS_WITH_AS(ck.blob("missing", path), doctest::Contains("missing"), Error);
  CHECK(!std::filesystem::exists(path + ".tmp." + std::to_string(getpid())));
}

TEST_CASE("bad magic, truncation and corruption are errors naming the file") {
  const std::string dir = fresh_dir("bad"), path = dir + "/c.bin";
  save_checkpoint(path, sample());
  const std::string good = read_file(path);

  write_file_atomic(path, "NOTACKPT" + good.substr(8));
  CHECK_THROWS_WITH_AS(load_checkpoint(path), doctest::Contains("bad magic"), Error);

  write_file_atomic(path, good.substr(0, good.size() - 3));
  CHECK_THROWS_WITH_AS(load_checkpoint(path), doctest::Contains("truncated"), Error);

  std::string flipped = good;
  flipped[flipped.size() - 2] ^= 0x10;  // a byte of the last blob
  write_file_atomic(path, flipped);
  CHECK_THROWS_WITH_AS(load_checkpoint(path), doctest::Contains("checksum"), Error);

  CHECK_THROWS_WITH_AS(load_checkpoint(dir + "/none.bin"), doctest::Contains("none.bin"), Error);

  // The header is inside the checksum: an edited step number is caught.
  std::string edited = good;
  const size_t at = edited.find("\"step\":7");
  REQUIRE(at != std::string::npos);
  edited[at + 7] = '8';
  write_file_atomic(path, edited);
  CHECK_THROWS_WITH_AS(load_checkpoint(path), doctest::Contains("checksum"), Error);

  // A version-1 checkpoint (flat blobs, header unchecked) says what it is.
  std::string old = good;
  old[8] = 1;
  write_file_atomic(path, old);
  CHECK_THROWS_WITH_AS(load_checkpoint(path), doctest::Contains("predates the named-tensor format"), Error);
}

TEST_CASE("a run directory keeps the newest checkpoints and resolves to the latest") {
  const std::string dir = fresh_dir("run");
  CHECK(resolve_checkpoint(dir).empty());
  for (int step : {10, 20, 30}) save_run_checkpoint(dir, step, sample(), 2);
  CHECK(!std::filesystem::exists(dir + "/checkpoint_00000010.bin"));
  CHECK(std::filesystem::exists(dir + "/checkpoint_00000020.bin"));
  CHECK(resolve_checkpoint(dir) == dir + "/checkpoint_00000030.bin");
  CHECK(resolve_checkpoint(dir + "/checkpoint_00000020.bin") == dir + "/checkpoint_00000020.bin");
  save_run_checkpoint(dir, 40, sample(), 0);  // keep all
  CHECK(std::filesystem::exists(dir + "/checkpoint_00000020.bin"));
}
