// LaTeX / plain-text answer normalisation and parsing.
//
// normalize_answer() rewrites surface forms that mean the same thing:
// \left \right, \dfrac \tfrac \cfrac -> \frac, spacing commands, \$ and units
// in \text{...} after a number, degrees (^\circ), percent signs, thousands
// separators ("12,000,023", "14{,}916", "11,\!111"), trailing punctuation,
// "and"/"or" between answers -> ",".
//
// parse_answer() turns the normalised text into an expression tree
// (expr.h).  It understands numbers, letters (implicit multiplication),
// \frac{a}{b} \frac12 \sqrt3 \sqrt[n]{x}, powers, subscripts, functions
// (\sin ... \ln \log \exp), |x|, factorial, \pm, tuples, intervals with open
// or closed ends, \{sets\}, \cup \cap, relations and chains (= < > \le \ge
// \neq \in \approx), ratios a:b, matrices (pmatrix/bmatrix/array), \text.
// It returns nullptr (with a reason) for text it cannot read; it never
// throws except BudgetExceeded when the budget runs out, and bounds its
// recursion depth (hostile nesting is a parse failure, not a stack overflow).
#pragma once

#include <string>

#include "rewards/math/expr.h"

namespace zerorl::rewards::math {

struct ParseOptions {
  // European decimal comma ("1000,99" -> 1000.99, "0,111" -> 0.111) when the
  // whole answer is a single such number.  Off for LaTeX answers, where
  // "-2,1" is a list.
  bool decimal_comma = false;
  size_t max_chars = 4000;  // longer answers are not parsed
  int max_depth = 100;      // nesting of brackets / fractions
  size_t max_nodes = 2000;
};

std::string normalize_answer(const std::string& s, const ParseOptions& opt);

// Parses an already-normalised answer.  On failure returns nullptr and sets
// *why.
NodeP parse_answer(const std::string& normalized, const ParseOptions& opt, Budget& budget,
                   std::string* why);

}  // namespace zerorl::rewards::math
