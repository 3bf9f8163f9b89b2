#include "dist/nccl_communicator.h"

#include "engine/backend.h"

namespace switchlora {

std::unique_ptr<Communicator> make_gpu_communicator(Communicator& host, Backend& be) {
  if (be.device() != Device::kCuda || host.world() == 1) return nullptr;
#if SWITCHLORA_NCCL
  return std::make_unique<NcclCommunicator>(host);
#else
  throw Error("--device cuda with " + std::to_string(host.world()) +
              " ranks needs NCCL, and this switchlora was built without it (install libnccl-dev and rebuild)");
#endif
}

}  // namespace switchlora

#if SWITCHLORA_NCCL
#include "engine/cuda/check.h"

// Every CUDA call goes through CUDA_CHECK (engine/cuda/check.h), every NCCL
// call through this: a failure names the call, its error string, file and line.
#define NCCL_CHECK(call)                                                                        \
  do {                                                                                          \
    const ncclResult_t nccl_err_ = (call);                                                      \
    if (nccl_err_ != ncclSuccess)                                                               \
      ::switchlora::cuda::throw_cuda(#call, ncclGetErrorString(nccl_err_), __FILE__, __LINE__); \
  } while (0)

namespace switchlora {

NcclCommunicator::NcclCommunicator(Communicator& host) : host_(&host) {
  int devices = 0;
  CUDA_CHECK(cudaGetDeviceCount(&devices));
  if (devices == 0) throw Error("NCCL communicator: no CUDA device on this host");
  device_ = host_->local_rank() % devices;
  CUDA_CHECK(cudaSetDevice(device_));
  ncclUniqueId id;
  if (host_->rank() == 0) NCCL_CHECK(ncclGetUniqueId(&id));
  host_->broadcast(&id, sizeof id, 0);
  NCCL_CHECK(ncclCommInitRank(&comm_, host_->world(), id, host_->rank()));
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_) ncclCommDestroy(comm_);
}

void NcclCommunicator::allreduce_mean(float* buf, size_t n) {
  cudaPointerAttributes attr;
  CUDA_CHECK(cudaPointerGetAttributes(&attr, buf));
  if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged) {
    host_->allreduce_mean(buf, n);
    return;
  }
  NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat, ncclAvg, comm_, cudaStreamLegacy));
}

void NcclCommunicator::abort(int code) {
  // Unblocks this rank's pending NCCL kernels before the host takes every rank down.
  if (comm_) ncclCommAbort(comm_);
  comm_ = nullptr;
  host_->abort(code);
}

}  // namespace switchlora
#endif
