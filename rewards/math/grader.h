// The math answer grader: extraction + normalisation + equivalence, with a
// deadline per call.  Used by MathReward, `zerorl grade` and the tests.
//
// grade() never throws and never hangs: any byte string gives a verdict, and
// a bound that is hit gives correct=false with the reason ("timeout ...",
// "too large ...").  Thread-safe (see equivalence.h for the GiNaC lock).
#pragma once

#include <string>

#include "rewards/math/answer_extract.h"
#include "rewards/math/equivalence.h"
#include "rewards/math/latex_parser.h"

namespace zerorl::rewards::math {

struct GradeOptions {
  ExtractOptions extract;
  ParseOptions parse;
  CompareOptions compare;
  double timeout_ms = 1000.0;             // per grade() call
  size_t max_completion_bytes = 1 << 20;  // longer completions are cut (from the front)
};

struct Verdict {
  bool correct = false;
  std::string extracted;  // the prediction's answer text ("" when none)
  std::string reason;     // how it matched, or why not
};

// Grades a completion against a gold answer (the gold may be a bare answer or
// a solution text; see extract_gold).
Verdict grade(const std::string& gold, const std::string& completion, const GradeOptions& opt);

// Compares two answers directly (both are run through extract_gold, which
// leaves a bare answer alone), e.g. for the peer suites.
Verdict compare_answers(const std::string& gold, const std::string& pred_answer,
                        const GradeOptions& opt);

}  // namespace zerorl::rewards::math
