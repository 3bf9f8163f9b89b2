// The communicator (DESIGN §8): what data-parallel training needs from the
// network. Gradients of the trainable buffer alone are averaged, once per
// optimizer step; frozen W and SwitchLoRA candidates never cross the wire.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace switchlora {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // buf (n floats) = the mean over ranks of buf.
  virtual void allreduce_mean(float* buf, size_t n) = 0;
  // Every rank gets root's bytes.
  virtual void broadcast(void* buf, size_t bytes, int root) = 0;
  // True on every rank when all ranks passed the same value.
  virtual bool all_equal(uint64_t value) = 0;
  virtual std::string name() const = 0;
};

// One process, no communication: the reference every other must match.
class SingleProcess : public Communicator {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  void allreduce_mean(float*, size_t) override {}
  void broadcast(void*, size_t, int) override {}
  bool all_equal(uint64_t) override { return true; }
  std::string name() const override { return "single"; }
};

// The MPI communicator when this process was started by mpirun with more than
// one rank (and MPI support was built), else SingleProcess.
std::unique_ptr<Communicator> make_communicator(int* argc, char*** argv);

}  // namespace switchlora
