#include "dist/communicator.h"

#include <algorithm>
#include <cstdlib>

#if SWITCHLORA_MPI
#include "dist/mpi_communicator.h"
#endif

namespace switchlora {

int launched_world_size() {
  // Open MPI's mpirun sets the first, MPICH's hydra and Slurm's PMI the second.
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* v = std::getenv(var)) return std::max(1, std::atoi(v));
  return 1;
}

std::unique_ptr<Communicator> make_communicator(int* argc, char*** argv) {
  const int world = launched_world_size();
  // A plain run never touches MPI, so the binary works without mpirun.
  if (world == 1) return std::make_unique<SingleProcess>();
#if SWITCHLORA_MPI
  return std::make_unique<MpiCommunicator>(argc, argv);
#else
  (void)argc;
  (void)argv;
  throw Error("launched with " + std::to_string(world) +
              " ranks, but this build has no MPI: install libopenmpi-dev and rebuild");
#endif
}

}  // namespace switchlora
