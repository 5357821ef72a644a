// libFuzzer target over the math answer extraction and grading.
// Input: "<gold>\0<completion>" (no NUL: the first line is the gold).
// Built and run by scripts/fuzz_rewards.sh (clang++ -fsanitize=fuzzer).
#include <cstddef>
#include <cstdint>
#include <string>

#include "rewards/math/grader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  size_t cut = in.find('\0');
  if (cut == std::string::npos) cut = in.find('\n');
  std::string gold = cut == std::string::npos ? in : in.substr(0, cut);
  std::string completion = cut == std::string::npos ? in : in.substr(cut + 1);
  zerorl::rewards::math::GradeOptions o;
  o.timeout_ms = 1000;
  auto v = zerorl::rewards::math::grade(gold, completion, o);
  // A verdict always carries a reason.
  if (v.reason.empty()) __builtin_trap();
  zerorl::rewards::math::compare_answers(completion, gold, o);
  return 0;
}
