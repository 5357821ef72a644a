// Countdown: reach a target from given numbers with + - * /, each number
// exactly once, and its checker.
#pragma once

#include <vector>

#include "data/task.h"

namespace zerorl::data {

// Check an arithmetic expression: integers, + - * / (also x, ×, ÷), and
// parentheses; a trailing "= value" is ignored.  Every number must be one of
// `numbers`, used exactly as many times as it is given (all of them); the
// value, computed with exact fractions, must equal target.
CheckResult check_countdown(std::string_view expr, const std::vector<int64_t>& numbers,
                            int64_t target);

class CountdownTask final : public Task {
 public:
  explicit CountdownTask(TaskConfig cfg);
  CheckResult check(std::string_view answer, const Example& ex) const override;
  // The gold expression's operations in evaluation order: "25+5=30, 30*3=90".
  std::string worked_solution(const Example& ex) const override;

 protected:
  Example draw(uint64_t rng_seed) const override;
  std::string key(const Example& ex) const override;
};

}  // namespace zerorl::data
