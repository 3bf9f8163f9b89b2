// libFuzzer target: the tokenizer loader (fuzz/harness.h). make fuzz runs it.
#include "fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  switchlora::fuzz::tokenizer(data, size);
  return 0;
}
