// The communicators and the agreement checks (dist/). The MPI cases run for
// real: each relaunches this test binary under `mpirun -np 2`, restricted to
// itself (doctest -tc), and the two ranks check the collectives; the
// launching process checks that both ranks passed.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "dist_cli.h"
#include "dist/communicator.h"
#include "dist/sync_check.h"
#include "engine/rng.h"

using namespace switchlora;

namespace {

bool in_mpi_child() { return launched_world_size() > 1; }

// Runs test case `name` of this binary on 2 ranks; both must pass.
void run_on_two_ranks(const std::string& name) {
  const auto r = test::run_command(test::mpirun(2) + " /proc/" + std::to_string(getpid()) +
                                   "/exe --no-version --no-colors -tc='" + name + "'", 60);
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(r.output.find("1 passed") != std::string::npos);
}

}  // namespace

TEST_CASE("hash_bytes: equal bytes give equal digests and any one changed word changes it") {
  Rng rng{1, 2, 0};
  // Three blocks and a ragged tail, so block chaining and the byte loop run.
  std::vector<float> x((3 << 18) + 5);
  for (float& v : x) v = rng.normal();
  std::vector<float> y = x;
  const uint64_t h = hash_bytes(x.data(), x.size() * 4);
  CHECK(hash_bytes(y.data(), y.size() * 4) == h);
  for (size_t i : {(size_t)0, (size_t)1 << 18, x.size() / 2, x.size() - 1}) {
    uint32_t bits;
    std::memcpy(&bits, &y[i], 4);
    bits ^= 1u << rng.below(32);
    std::memcpy(&y[i], &bits, 4);
    CHECK_MESSAGE(hash_bytes(y.data(), y.size() * 4) != h, "flipped a bit of float ", i);
    y[i] = x[i];
  }
  // The length is part of the digest: a trailing zero is not invisible.
  y.push_back(0.0f);
  CHECK(hash_bytes(y.data(), y.size() * 4) != h);
}

TEST_CASE("fingerprint_file: a small file whole, a large one by blocks spread from its first byte to its last") {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("fingerprint_" + std::to_string(getpid()) + ".bin")).string();
  auto write = [&](const std::vector<unsigned char>& bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write((const char*)bytes.data(), (std::streamsize)bytes.size());
  };
  Rng rng{3, 4, 0};
  for (size_t size : {(size_t)1 << 20, (size_t)40 << 20}) {
    std::vector<unsigned char> x(size);
    for (unsigned char& c : x) c = (unsigned char)rng.below(256);
    write(x);
    const uint64_t h = fingerprint_file(path);
    CHECK(fingerprint_file(path) == h);
    // The first and last byte are in every fingerprint; so is the middle of a
    // small file and of the large one's 16th block (of 32, 64 KiB each).
    const size_t block16 = (size - (64 << 10)) * 16 / 31 + 1000;
    for (size_t at : {(size_t)0, size - 1, size == ((size_t)1 << 20) ? size / 2 : block16}) {
      x[at] ^= 0x20;
      write(x);
      CHECK_MESSAGE(fingerprint_file(path) != h, "size ", size, ", flipped byte ", at);
      x[at] ^= 0x20;
    }
    x.push_back(0);  // the size is part of it
    write(x);
    CHECK(fingerprint_file(path) != h);
  }
  std::filesystem::remove(path);
}

TEST_CASE("a process not started by mpirun gets the single-process communicator") {
  if (in_mpi_child()) return;
  auto comm = make_communicator(nullptr, nullptr);
  CHECK(comm->name() == "single");
  CHECK(comm->world() == 1);
  float x[2] = {3, 4};
  comm->allreduce_mean(x, 2);
  CHECK(x[0] == 3);
  CHECK(comm->all_equal(5));
}

TEST_CASE("mpi: allreduce_mean averages over ranks and broadcast and all_equal agree") {
  if (!in_mpi_child()) return run_on_two_ranks("mpi: allreduce_mean*");
  auto comm = make_communicator(nullptr, nullptr);
  REQUIRE(comm->name() == "mpi");
  REQUIRE(comm->world() == 2);
  const int rank = comm->rank();
  CHECK(comm->local_rank() == rank);  // both ranks on this host
  // Rank-dependent values whose mean is exact in float.
  std::vector<float> buf(3001);
  for (size_t i = 0; i < buf.size(); i++) buf[i] = (float)i * 0.5f + (rank ? 3.0f : 1.0f);
  comm->allreduce_mean(buf.data(), buf.size());
  for (size_t i = 0; i < buf.size(); i++)
    if (buf[i] != (float)i * 0.5f + 2.0f) FAIL_CHECK("element ", i, " = ", buf[i], " on rank ", rank);
  char msg[16] = {};
  if (rank == 1) std::strcpy(msg, "from rank 1");
  comm->broadcast(msg, sizeof msg, 1);
  CHECK(std::string(msg) == "from rank 1");
  CHECK(comm->all_equal(42));
  CHECK_FALSE(comm->all_equal((uint64_t)rank));
  CHECK_FALSE(comm->all_equal(rank ? ~0ull : 0ull));  // extremes of the min/max trick
}

TEST_CASE("mpi: check_ranks_agree passes equal identities and names each differing field") {
  if (!in_mpi_child()) return run_on_two_ranks("mpi: check_ranks_agree*");
  auto comm = make_communicator(nullptr, nullptr);
  const int rank = comm->rank();
  nlohmann::json id = {{"config", {{"hidden_size", 64}}}, {"lr", 0.001}, {"seed", 0}};
  CHECK_NOTHROW(check_ranks_agree(*comm, id));
  if (rank == 1) {
    id["lr"] = 0.002;
    id["config"]["hidden_size"] = 32;
  }
  std::string what;
  try {
    check_ranks_agree(*comm, id);
  } catch (const CollectiveError& e) {
    what = e.what();
  }
  INFO(what);
  CHECK(what.find("rank 1 has lr = 0.002 (rank 0: 0.001)") != std::string::npos);
  CHECK(what.find("rank 1 has config.hidden_size = 32 (rank 0: 64)") != std::string::npos);
  CHECK(what.find("has seed") == std::string::npos);
}

TEST_CASE("mpi: check_in_sync finds one flipped bit on one rank and names its buffer") {
  if (!in_mpi_child()) return run_on_two_ranks("mpi: check_in_sync*");
  auto comm = make_communicator(nullptr, nullptr);
  Rng rng{5, 6, 0};  // the same draws on both ranks
  std::vector<float> a(1000), b(20000);
  for (float& v : a) v = rng.normal();
  for (float& v : b) v = rng.normal();
  std::vector<NamedBuffer> bufs = {{"trainable parameters", a.data(), a.size()}, {"frozen weights", b.data(), b.size()}};
  CHECK_NOTHROW(check_in_sync(*comm, bufs, "at step 1"));
  if (comm->rank() == 1) {
    uint32_t bits;
    std::memcpy(&bits, &b[12345], 4);
    bits ^= 1;  // one unit in the last place
    std::memcpy(&b[12345], &bits, 4);
  }
  std::string what;
  try {
    check_in_sync(*comm, bufs, "at step 2");
  } catch (const CollectiveError& e) {
    what = e.what();
  }
  INFO(what);
  CHECK(what.find("ranks diverged at step 2: their frozen weights are no longer bitwise identical") == 0);
  CHECK(what.find("trainable") == std::string::npos);
}
