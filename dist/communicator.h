// The communicator (DESIGN §8): what data-parallel training needs from the
// network. Gradients of the trainable buffer alone are averaged, once per
// optimizer step; frozen W and SwitchLoRA candidates never cross the wire.
//
// Three implementations: SingleProcess (below), MpiCommunicator (CPU
// buffers, dist/mpi_communicator.h) and NcclCommunicator (GPU buffers,
// bootstrapped over MPI, dist/nccl_communicator.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/error.h"

namespace switchlora {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // This rank's index among the ranks on its host (picks the local GPU).
  virtual int local_rank() const = 0;
  // buf (n floats) = the mean over ranks of buf.
  virtual void allreduce_mean(float* buf, size_t n) = 0;
  // Every rank gets root's bytes.
  virtual void broadcast(void* buf, size_t bytes, int root) = 0;
  // True on every rank when all ranks passed the same value.
  virtual bool all_equal(uint64_t value) = 0;
  // Ends every rank with exit status `code`. Called by a rank that failed on
  // its own: the others may be waiting for it inside a collective.
  virtual void abort(int code) = 0;
  virtual std::string name() const = 0;
};

// One process, no communication: the reference every other must match.
class SingleProcess : public Communicator {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  int local_rank() const override { return 0; }
  void allreduce_mean(float*, size_t) override {}
  void broadcast(void*, size_t, int) override {}
  bool all_equal(uint64_t) override { return true; }
  void abort(int) override {}  // no other rank to take down
  std::string name() const override { return "single"; }
};

// A failure every rank detects together, in the same collective (ranks
// disagree, parameters diverged): main prints it once and every rank exits
// normally, with no abort.
struct CollectiveError : Error {
  using Error::Error;
};

// The MPI communicator when this process was started by mpirun with more than
// one rank (and MPI support was built), else SingleProcess. Under mpirun it
// must run before anything else in main: it calls MPI_Init.
std::unique_ptr<Communicator> make_communicator(int* argc, char*** argv);

class Backend;
// The communicator that all-reduces gradients held by `be`: null when host
// serves (CPU backend, or a single rank), else an NCCL communicator
// bootstrapped over host. Throws when the GPU needs NCCL and this build has none.
std::unique_ptr<Communicator> make_gpu_communicator(Communicator& host, Backend& be);

// The number of ranks the launcher (mpirun, srun) says this job has; 1 when
// not launched by one.
int launched_world_size();

}  // namespace switchlora
