#include "engine/backend.h"

#include <unistd.h>

#include "engine/cpu/backend.h"
#ifdef SWITCHLORA_CUDA
#include <cuda_runtime_api.h>

#include "engine/cuda/backend.h"
#include "engine/cuda/ops.h"
#endif

namespace switchlora {

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

bool cuda_available() {
#ifdef SWITCHLORA_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

Backend& backend_for(const std::string& device, [[maybe_unused]] int local_rank) {
  if (device == "cpu") return cpu_backend();
  if (device != "cuda" && device != "auto")
    throw Error("--device must be cpu, cuda or auto, got \"" + device + "\"");
  if (!cuda_available()) {
    if (device == "auto") return cpu_backend();
#ifdef SWITCHLORA_CUDA
    throw Error("--device cuda: no GPU is visible (CUDA driver missing or CUDA_VISIBLE_DEVICES empty)");
#else
    throw Error("--device cuda: this switchlora was built without the CUDA backend (no nvcc at build time)");
#endif
  }
#ifdef SWITCHLORA_CUDA
  // Ranks sharing a host take different GPUs, as the NCCL communicator does.
  static std::unique_ptr<Backend> cuda = [local_rank] {
    const cudaError_t err = cudaSetDevice(local_rank % cuda::device_count());
    if (err != cudaSuccess) throw Error(std::string("cudaSetDevice failed: ") + cudaGetErrorString(err));
    return make_cuda_backend();
  }();
  return *cuda;
#else
  throw Error("unreachable: CUDA available in a build without CUDA");
#endif
}

Precision precision_from_flags(const std::string& dtype, bool tf32) {
  if (dtype == "bf16") {
    if (tf32) throw Error("--tf32 applies to --dtype fp32 only, not bf16");
    return Precision::kBf16;
  }
  if (dtype == "fp32") return tf32 ? Precision::kTf32 : Precision::kFp32;
  throw Error("--dtype must be fp32 or bf16, got \"" + dtype + "\"");
}

double host_memory_bytes() { return (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE); }

}  // namespace switchlora
