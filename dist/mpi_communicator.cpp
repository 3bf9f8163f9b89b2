#include "dist/mpi_communicator.h"

#if SWITCHLORA_MPI
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

namespace switchlora {

namespace {

// Every MPI call goes through this: a failure names the call, file and line.
#define MPI_CHECK(call)                                                                     \
  do {                                                                                      \
    const int mpi_err_ = (call);                                                            \
    if (mpi_err_ != MPI_SUCCESS) {                                                          \
      char mpi_msg_[MPI_MAX_ERROR_STRING];                                                  \
      int mpi_len_ = 0;                                                                     \
      MPI_Error_string(mpi_err_, mpi_msg_, &mpi_len_);                                      \
      throw ::switchlora::Error(std::string(#call) + " failed at " + __FILE__ + ":" +       \
                                std::to_string(__LINE__) + ": " + std::string(mpi_msg_, mpi_len_)); \
    }                                                                                       \
  } while (0)

// MPI counts are int: big buffers (a 7B model's gradients) go in pieces.
constexpr size_t kMaxCount = (size_t)1 << 30;

}  // namespace

MpiCommunicator::MpiCommunicator(int* argc, char*** argv) {
  MPI_CHECK(MPI_Init(argc, argv));
  MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_));
  // Local rank from host names: the ranks before this one on the same host.
  char host[MPI_MAX_PROCESSOR_NAME] = {};
  int len = 0;
  MPI_CHECK(MPI_Get_processor_name(host, &len));
  std::vector<char> hosts((size_t)world_ * MPI_MAX_PROCESSOR_NAME);
  MPI_CHECK(MPI_Allgather(host, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, hosts.data(), MPI_MAX_PROCESSOR_NAME,
                          MPI_CHAR, MPI_COMM_WORLD));
  for (int r = 0; r < rank_; r++)
    if (!std::strncmp(hosts.data() + (size_t)r * MPI_MAX_PROCESSOR_NAME, host, MPI_MAX_PROCESSOR_NAME))
      local_rank_++;
}

MpiCommunicator::~MpiCommunicator() { MPI_Finalize(); }

void MpiCommunicator::allreduce_mean(float* buf, size_t n) {
  for (size_t i = 0; i < n; i += kMaxCount) {
    const int count = (int)std::min(kMaxCount, n - i);
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + i, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
  }
  // Open MPI's all-reduce algorithms hand every rank bitwise the same sum, so
  // every rank computes the same mean (--check_sync_every verifies it).
  const float inv = 1.0f / (float)world_;
#pragma omp parallel for
  for (int64_t i = 0; i < (int64_t)n; i++) buf[i] *= inv;
}

void MpiCommunicator::broadcast(void* buf, size_t bytes, int root) {
  char* p = (char*)buf;
  for (size_t i = 0; i < bytes; i += kMaxCount) {
    const int count = (int)std::min(kMaxCount, bytes - i);
    MPI_CHECK(MPI_Bcast(p + i, count, MPI_BYTE, root, MPI_COMM_WORLD));
  }
}

bool MpiCommunicator::all_equal(uint64_t value) {
  // One reduction gives both min(v) and max(v) = ~min(~v).
  uint64_t v[2] = {value, ~value};
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD));
  return v[0] == ~v[1];
}

void MpiCommunicator::abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

}  // namespace switchlora
#endif
