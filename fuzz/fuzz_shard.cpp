// libFuzzer target: the shard loader (fuzz/harness.h). make fuzz runs it.
#include "fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  switchlora::fuzz::shard(data, size);
  return 0;
}
