// The checking macro of CUDA runtime calls, in a header that names no device
// code, so that host C++ built without nvcc uses it too: the kernel files
// through common.cuh, the NCCL communicator (dist/nccl_communicator.cpp)
// directly.
#pragma once
#include <cuda_runtime_api.h>

#include <string>

#include "engine/error.h"

namespace switchlora::cuda {

// The error of a failed call to a CUDA library (the runtime, cuBLAS, NCCL):
// the call, the library's error string, file and line.
[[noreturn]] inline void throw_cuda(const char* call, const char* msg, const char* file, int line) {
  throw Error(std::string(file) + ":" + std::to_string(line) + ": " + call + " failed: " + msg);
}

}  // namespace switchlora::cuda

#define CUDA_CHECK(call)                                                                   \
  do {                                                                                     \
    cudaError_t err_ = (call);                                                             \
    if (err_ != cudaSuccess)                                                               \
      ::switchlora::cuda::throw_cuda(#call, cudaGetErrorString(err_), __FILE__, __LINE__); \
  } while (0)
