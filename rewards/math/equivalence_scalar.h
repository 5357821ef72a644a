// The scalar half of answer equivalence, internal to rewards/math
// (equivalence.cpp compares structure and calls it; not part of the
// grader's interface): exact GMP rationals and the GiNaC symbolic and
// numeric checks (equivalence.h states the rules and bounds).
#pragma once

#include <gmpxx.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "rewards/math/equivalence.h"
#include "rewards/math/expr.h"

namespace zerorl::rewards::math::scalar {

// One step of the budget; throws BudgetExceeded when steps or time run out.
inline void tick(Budget& b) {
  if (++b.steps > b.max_steps) throw BudgetExceeded{"step budget exhausted"};
  if ((b.steps & 63) == 0 && b.expired()) throw BudgetExceeded{"deadline"};
}

// The exact value of a tree of numbers and + - * / ^ (integer powers), or
// false when it is not such a tree.
bool eval_rational(const NodeP& n, mpq_class& out, Budget& b);

// Two scalar expressions: exact, then rounded to o.precision places when
// either side has a decimal point, then symbolic / numeric with GiNaC.
Comparison scalar_equal(const NodeP& g, const NodeP& p, const CompareOptions& o, Budget& b);

// (l1 - r1) = k (l2 - r2) for a constant k (> 0 when `positive`); d1, d2
// are the differences.
Comparison proportional(const NodeP& d1, const NodeP& d2, bool positive, const CompareOptions& o,
                        Budget& b);

}  // namespace zerorl::rewards::math::scalar
