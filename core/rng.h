// Deterministic random streams.
//
// Every random draw in zerorl comes from a stream whose seed is derived from
// named coordinates: (seed, step, rank, sample, purpose).  A draw therefore
// never depends on batch size, batch composition, thread scheduling or the
// number of ranks; the same coordinates give the same bits everywhere.
//
// Rng is xoshiro256** seeded through SplitMix64; it is small (32 bytes of
// state), copyable, and its state can be saved into a checkpoint and restored
// exactly.  Not thread-safe: give each thread or sample its own stream.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace zerorl {

// Named purposes keep streams of the same coordinates apart.
enum class RngPurpose : uint64_t {
  kInit = 1,    // weight initialisation
  kData = 2,    // dataset shuffling and task generation
  kSample = 3,  // token sampling in rollout
  kDropout = 4,
  kEval = 5,
  kOther = 6,
};

// SplitMix64 finaliser: a bijective 64-bit mix.
uint64_t mix64(uint64_t x);

// Seed of the stream at these coordinates.  Distinct coordinates give
// (with overwhelming probability) unrelated streams.
uint64_t stream_seed(uint64_t seed, uint64_t step, uint64_t rank, uint64_t sample,
                     RngPurpose purpose = RngPurpose::kOther);

class Rng {
 public:
  using State = std::array<uint64_t, 4>;
  explicit Rng(uint64_t seed = 0);
  Rng(uint64_t seed, uint64_t step, uint64_t rank, uint64_t sample, RngPurpose purpose)
      : Rng(stream_seed(seed, step, rank, sample, purpose)) {}

  uint64_t next_u64();
  // Uniform in [0, 1) with 53 random bits.
  double uniform();
  // Uniform integer in [0, n); n > 0.  Unbiased (rejection).
  uint64_t below(uint64_t n);
  // Standard normal (Box-Muller, no cached second value so state is exact).
  double normal();

  State state() const { return s_; }
  void set_state(const State& s) { s_ = s; }
  // "0123abcd-..." text form, for JSON/YAML/HDF5 attributes.
  std::string state_string() const;
  void set_state_string(const std::string& text);

 private:
  State s_;
};

}  // namespace zerorl
