// The CUDA backend: engine/cuda/ops.h behind the Backend interface, on the
// current device (the NCCL communicator picks it per local rank; otherwise
// device 0). Plain host C++ may include this header: it names no CUDA type.
#pragma once
#include <memory>

#include "engine/backend.h"

namespace switchlora {

std::unique_ptr<Backend> make_cuda_backend();

}  // namespace switchlora
