// Counter-based random numbers: every draw is a pure function of
// (seed, stream, index), so the CPU, the GPU and every MPI rank get the same
// number for the same purpose without sharing any state (DESIGN §2).
//
// The mixer is SplitMix64's finaliser applied to a combination of the three
// keys; it passes BigCrush when used as a counter-mode generator.
#pragma once
#include <cmath>
#include <cstdint>

// The integer hashes and uniform01 also compile as CUDA device code, so a
// GPU kernel draws the very numbers the CPU draws (dropout masks).
#if defined(__CUDACC__)
#define SL_HOST_DEVICE __host__ __device__
#else
#define SL_HOST_DEVICE
#endif

namespace switchlora {

SL_HOST_DEVICE inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// One 64-bit random word for (seed, stream, index).
SL_HOST_DEVICE inline uint64_t hash64(uint64_t seed, uint64_t stream, uint64_t index) {
  return splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ index);
}

// Uniform in [0, 1) with 24 random bits (exactly representable in float).
SL_HOST_DEVICE inline float uniform01(uint64_t seed, uint64_t stream, uint64_t index) {
  return (float)(hash64(seed, stream, index) >> 40) * (1.0f / 16777216.0f);
}

// Standard normal by Box-Muller from two independent words of one draw.
inline float normal01(uint64_t seed, uint64_t stream, uint64_t index) {
  uint64_t h = hash64(seed, stream, index);
  double u1 = ((double)(h >> 40) + 1.0) / 16777217.0;                // (0, 1]
  double u2 = (double)(splitmix64(h) >> 40) / 16777216.0;            // [0, 1)
  return (float)(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

// A sequence of draws for one purpose: the state is just a counter, so it can
// be checkpointed as one integer and resumed exactly.
struct Rng {
  uint64_t seed = 0, stream = 0, counter = 0;
  uint64_t next_u64() { return hash64(seed, stream, counter++); }
  float uniform() { return uniform01(seed, stream, counter++); }
  float normal() { return normal01(seed, stream, counter++); }
  // Uniform integer in [0, n) (n > 0); the modulo bias is < n / 2^64.
  uint64_t below(uint64_t n) { return next_u64() % n; }
};

// Streams: one per purpose, so adding a new use of randomness never shifts
// the numbers an existing use draws.
enum RngStream : uint64_t {
  kStreamInit = 1,         // weight init: stream + parameter index
  kStreamCandidates = 2,   // SwitchLoRA candidate pools
  kStreamSwitch = 3,       // switch rounding and discontinuous draws, keyed by (step, layer)
  kStreamData = 4,         // batch order
  kStreamSample = 5,       // text generation
  kStreamBench = 6,        // random tokens for benchmarks
  kStreamReLora = 7,       // ReLoRA: A redrawn at each merge, optimizer-state pruning masks
  kStreamDropout = 8,      // LoRA dropout masks, keyed by (micro-batch, layer)
};

}  // namespace switchlora
