// Multi-digit addition and multiplication, and the integer-answer checker.
#pragma once

#include "data/task.h"

namespace zerorl {
class Rng;
}

namespace zerorl::data {

// Compare an extracted answer with an integer gold.  Accepts surrounding
// spaces, a leading "=", a trailing ".", a leading "+", and thousands
// separators ("1,234"); anything else that is not an integer is wrong with
// the reason "not an integer".
CheckResult check_integer_answer(std::string_view answer, const std::string& gold);

// Column addition, right to left, one step per column:
// "7+5=12, write 2 carry 1. 8+4+1=13, write 3 carry 1. ... So 987+45=1032."
std::string worked_column_addition(uint64_t a, uint64_t b);

// An operand of min_digits..max_digits digits (the count uniform, then the
// value uniform among numbers of that many digits; 1 digit includes 0).
uint64_t draw_operand(Rng& rng, int min_digits, int max_digits);

class ArithmeticTask final : public Task {
 public:
  explicit ArithmeticTask(TaskConfig cfg);
  CheckResult check(std::string_view answer, const Example& ex) const override;
  // addition: one column per step, right to left ("4+8+1=13, write 3 carry 1");
  // multiplication: one partial product per digit of the second operand, then
  // their sum.
  std::string worked_solution(const Example& ex) const override;

 protected:
  Example draw(uint64_t rng_seed) const override;
  std::string key(const Example& ex) const override;

 private:
  bool multiply_;
};

}  // namespace zerorl::data
