// Data-parallel communication over MPI, for CPU buffers: the gradient mean is
// one MPI_Allreduce (sum) and a scale by 1/world. Built when CMake finds MPI
// (SWITCHLORA_MPI); used when mpirun starts more than one rank.
#pragma once
#if SWITCHLORA_MPI
#include "dist/communicator.h"

namespace switchlora {

class MpiCommunicator : public Communicator {
 public:
  // MPI_Init; errors come back as codes (MPI_ERRORS_RETURN) so that each call
  // site can name itself in the Error it throws.
  MpiCommunicator(int* argc, char*** argv);
  ~MpiCommunicator() override;  // MPI_Finalize

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  void allreduce_mean(float* buf, size_t n) override;
  void broadcast(void* buf, size_t bytes, int root) override;
  bool all_equal(uint64_t value) override;
  void abort(int code) override;
  std::string name() const override { return "mpi"; }

 private:
  int rank_ = 0, world_ = 1, local_rank_ = 0;
};

}  // namespace switchlora
#endif
