// Addition of several numbers: a task with difficulty levels and room to
// think (issue 19, item 1).
//
// A problem adds `terms` numbers ("What is 47 + 85 + 36?"); its level is the
// number of terms, drawn uniformly from min_terms..max_terms (a fixed mix:
// the prompt stream stays a pure function of seed and index, whatever the
// policy does), each term with min_digits..max_digits digits.
//
// The worked solution is a chain of running sums, each pair added in one
// go: "47+85=132. 132+36=168. So 47+85+36=168."  Every pair is a chance to
// slip, so a first attempt at a long chain is often wrong; a pair added the
// long way (checked_pair: column by column, data/arithmetic_task.h) is
// rarely wrong, so checking a step and redoing it raises the chance of
// being right.  More terms mean more steps: length has room to grow.
// With `chain: remaining` each step but the last also names the terms still
// to add ("47+85=132, left 36. 132+36=168."): the next term is then in the
// line just written rather than found by position in the question, which a
// check's own lines disturbed (docs/REPRODUCTION.md, runs 11-13).
#pragma once

#include <cstdint>
#include <vector>

#include "data/task.h"

namespace zerorl::data {

class SumTask final : public Task {
 public:
  explicit SumTask(TaskConfig cfg);
  CheckResult check(std::string_view answer, const Example& ex) const override;
  // The running sums, left to right, then "So <t1>+<t2>+...=<total>.".
  std::string worked_solution(const Example& ex) const override;

  // One pair of the running sums slips by a power of ten in one digit (a
  // dropped or doubled carry: 68+17=75 or 95), then at once "Wait, let me
  // recheck x + y:" naming the pair just written, the pair added in columns
  // (as a step document adds it), and the pair restated right:
  // "47+85=132. 132+36=178. Wait, let me recheck 132 + 36: 2+6=8, write 8.
  // 3+3=6, write 6. 1+0=1, write 1. So 132+36=168. So 47+85+36=168."  The
  // chain goes on from the right value.
  std::string reflective_solution(const Example& ex, uint64_t variant, bool slip) const override;
  // A pair of the running sums as "What is x + y?", added in columns.  The
  // pair is one whose two-term problem is in the train split (tried from
  // the variant-th pair on); a problem whose pairs are all held out gives
  // its first pair without the "What is" frame ("x + y:").
  Step step_problem(const Example& ex, uint64_t variant) const override;

  // The terms of a problem (its meta "terms").
  static std::vector<uint64_t> terms(const Example& ex);
  // One step of the chain: "x+y=v." or, with terms left, "x+y=v, left a+b.".
  static std::string chain_step(uint64_t x, uint64_t y, uint64_t v, const std::string& left);

 protected:
  Example draw(uint64_t rng_seed) const override;
  // The terms after the i-th, as "a+b" ("" with the running chain or none left).
  std::string left_after(const std::vector<uint64_t>& t, size_t i) const;
  std::string key(const Example& ex) const override;
};

}  // namespace zerorl::data
