// Data-parallel communication on GPUs with NCCL. Built when CMake finds CUDA
// and NCCL (SWITCHLORA_NCCL). NCCL needs every rank to hold the same unique
// id before it can connect them; the id is made on rank 0 and broadcast over
// the host communicator (MPI under mpirun), which also carries the few
// host-side messages (agreement checks, a logged loss).
//
//   auto host = make_communicator(&argc, &argv);   // MPI_Init
//   Backend& be = backend_for("cuda", host->local_rank());  // this rank's GPU
//   NcclCommunicator comm(*host);                  // the same GPU
//
// The all-reduce runs on the default stream, the stream of every backend
// call, so it starts after the backward pass that wrote the gradients and
// finishes before the optimizer reads them, with no extra synchronisation.
#pragma once
#if SWITCHLORA_NCCL
#include <cuda_runtime_api.h>
#include <nccl.h>

#include "dist/communicator.h"

namespace switchlora {

class NcclCommunicator : public Communicator {
 public:
  // Picks GPU local_rank % device_count (local rank from host names, so
  // ranks sharing a host take different GPUs), then joins the NCCL clique.
  // host must outlive this communicator.
  explicit NcclCommunicator(Communicator& host);
  ~NcclCommunicator() override;

  int rank() const override { return host_->rank(); }
  int world() const override { return host_->world(); }
  int local_rank() const override { return host_->local_rank(); }
  int device() const { return device_; }
  // buf in GPU memory: one ncclAllReduce with ncclAvg, queued on the
  // default stream; buf in host memory: the host communicator.
  void allreduce_mean(float* buf, size_t n) override;
  // Host bytes, over the host communicator (setup, not per-step traffic).
  void broadcast(void* buf, size_t bytes, int root) override { host_->broadcast(buf, bytes, root); }
  bool all_equal(uint64_t value) override { return host_->all_equal(value); }
  void abort(int code) override;
  std::string name() const override { return "nccl"; }

 private:
  Communicator* host_;
  int device_ = 0;
  ncclComm_t comm_ = nullptr;
};

}  // namespace switchlora
#endif
