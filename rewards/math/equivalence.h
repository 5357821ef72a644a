// Equivalence of two parsed answers (gold vs prediction).
//
//  * Numbers and rational expressions are compared exactly with GMP rationals
//    (microseconds, lock-free).  When either side was written with a decimal
//    point and the exact values differ, both are rounded to `precision`
//    decimal places and compared.
//  * Everything else (radicals, pi, functions, variables, matrices) goes to
//    GiNaC: the difference is expanded / normalised, and if that does not
//    give zero, both sides are evaluated at 30 digits (at three fixed points
//    for the free variables) and compared.  GiNaC is not thread-safe, so
//    these calls are serialised behind one mutex, waited on until the
//    deadline at most.
//  * Structure: sets and bare lists order-free (duplicates ignored), tuples
//    ordered, intervals with their ends, unions, ratios, relations (x < 3 vs
//    -x > -3, equations up to a non-zero factor), "x = 3" vs "3" (the gold's
//    left side must be a name, the prediction's right side is taken), ± as
//    the set of both values, inequality chains vs intervals.
//
// Bounds: exponents above 1000 (or results above ~20000 digits), factorials
// above 1000 and step/deadline exhaustion raise BudgetExceeded, which the
// caller turns into a "timeout"/"too large" verdict; no input can make this
// code hang, recurse without bound or crash.
#pragma once

#include <string>

#include "rewards/math/expr.h"

namespace zerorl::rewards::math {

struct CompareOptions {
  int precision = 6;                     // decimal places for rounded comparison
  bool allow_set_relation_comp = false;  // also read a predicted a<x<b as an interval
  bool strict = true;                    // different free variables are different answers
};

struct Comparison {
  bool equal = false;
  std::string how;  // "exact", "rounded to 6 places", "symbolic", "numeric", ... or why not
};

// Throws BudgetExceeded when a bound is hit.
Comparison equivalent(const NodeP& gold, const NodeP& pred, const CompareOptions& opt,
                      Budget& budget);

}  // namespace zerorl::rewards::math
