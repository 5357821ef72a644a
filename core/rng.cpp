#include "core/rng.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace zerorl {

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t stream_seed(uint64_t seed, uint64_t step, uint64_t rank, uint64_t sample,
                     RngPurpose purpose) {
  // Chain the coordinates through the mixer so that each one changes every
  // output bit; the order of mixing makes (a, b) and (b, a) distinct.
  uint64_t h = mix64(seed ^ 0x5a17e5eedULL);
  h = mix64(h ^ static_cast<uint64_t>(purpose));
  h = mix64(h ^ step);
  h = mix64(h ^ rank);
  h = mix64(h ^ sample);
  return h;
}

Rng::Rng(uint64_t seed) {
  uint64_t x = seed;
  for (auto& w : s_) {
    x += 0x9e3779b97f4a7c15ULL;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    w = z ^ (z >> 31);
  }
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

uint64_t Rng::below(uint64_t n) {
  ZR_CHECK(n > 0, "Rng::below needs n > 0");
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = next_u64();
  } while (x >= limit);
  return x % n;
}

double Rng::normal() {
  double u1 = uniform();
  double u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

std::string Rng::state_string() const {
  char buf[4 * 17 + 1];
  std::snprintf(buf, sizeof(buf), "%016llx-%016llx-%016llx-%016llx",
                static_cast<unsigned long long>(s_[0]), static_cast<unsigned long long>(s_[1]),
                static_cast<unsigned long long>(s_[2]), static_cast<unsigned long long>(s_[3]));
  return buf;
}

void Rng::set_state_string(const std::string& text) {
  unsigned long long a, b, c, d;
  char tail;
  ZR_CHECK(std::sscanf(text.c_str(), "%16llx-%16llx-%16llx-%16llx%c", &a, &b, &c, &d, &tail) == 4,
           "malformed RNG state '", text, "'");
  s_ = {a, b, c, d};
}

}  // namespace zerorl
