// The reflection detector (trainer/reflection.h) on hand-written
// completions: markers only in the reasoning part, on word boundaries, and
// arithmetic restatements with a different value.
#include "trainer/reflection.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "data/corpus.h"
#include "trainer/evaluate.h"
#include "trainer/metric_reducer.h"

namespace zerorl {
namespace {

long markers(const std::string& response) { return detect_reflection(response).markers; }
long revisions(const std::string& response) { return detect_reflection(response).revisions; }

TEST(Reflection, CountsMarkersInTheThinkBlock) {
  EXPECT_EQ(markers("<think> 4+8=12. Wait, let me check: 4+8=12. </think> <answer>12</answer>"), 2);
  EXPECT_EQ(markers("<think> WAIT. Let me   recompute. Verify it. </think><answer>3</answer>"), 3);
  EXPECT_EQ(markers("<think> Let me double-check, then check again. </think>"), 2);
  // The longest marker wins, matches never overlap: one each.
  EXPECT_EQ(markers("<think> let me recheck </think>"), 1);
  EXPECT_EQ(markers("<think> double-checking </think>"), 1);
  // No check at all.
  EXPECT_EQ(markers("<think> 4+8=12, write 2 carry 1. So 14+8=22. </think> <answer>22</answer>"),
            0);
  EXPECT_FALSE(detect_reflection("<think> 4+8=12 </think> <answer>12</answer>").reflects());
  EXPECT_TRUE(detect_reflection("<think> wait </think>").reflects());
}

TEST(Reflection, NeverCountsInsideTheAnswer) {
  EXPECT_EQ(markers("<think> 4+8=12 </think> <answer>wait, 12</answer>"), 0);
  EXPECT_EQ(markers("<think> 4+8=12 </think> <answer>12, let me verify"), 0);  // unclosed
  // Outside the think block (after </think>) is not reasoning either.
  EXPECT_EQ(markers("<think> 4+8=12 </think> wait <answer>12</answer>"), 0);
  // No think tags: everything but the answer is reasoning.
  EXPECT_EQ(markers("Wait, 4+8=12. <answer>wait</answer> recheck"), 2);
  // A think block closed only (the prompt opened it) ends at </think>.
  EXPECT_EQ(markers("4+8=12, wait. </think> <answer>12</answer> wait"), 1);
  // An unclosed think block runs to the end, the answer still cut out.
  EXPECT_EQ(markers("<think> wait <answer>wait</answer> verify"), 2);
  // The answer's removal does not glue words: "re<answer>x</answer>check".
  EXPECT_EQ(markers("<think>re<answer>x</answer>check</think>"), 0);
}

TEST(Reflection, FalseFriendsDoNotCount) {
  EXPECT_EQ(markers("<think> The awaited result; Waiting is a name; it was verified. </think>"), 0);
  EXPECT_EQ(markers("<think> rechecked, unverifying, waits, await, checkagain </think>"), 0);
  EXPECT_EQ(markers("<think> wait_1 x_verify 2wait </think>"), 0);
  // Punctuation and hyphens are boundaries; case does not matter.
  EXPECT_EQ(markers("<think>(Wait)-WAIT.wait!</think>"), 3);
  // A name that is exactly a marker word counts: the detector reads words.
  EXPECT_EQ(markers("<think> Mr. Wait adds 4+8=12. </think>"), 1);
}

TEST(Reflection, ArithmeticRevisions) {
  // A column restated with another value: one revision.
  EXPECT_EQ(revisions("<think> 4+8=11, write 1. 4+8=12, write 2. </think><answer>12</answer>"), 1);
  // Restating the same value, or different expressions, is not a revision.
  EXPECT_EQ(revisions("<think> 4+8=12. 4 + 8 = 12. 5+8=13. So 14+8=22. </think>"), 0);
  // Spaces inside the expression do not matter; a multiplication too.
  EXPECT_EQ(revisions("<think> 12*3=26. Wait: 12 * 3 = 36. So 12*3=36. </think>"), 1);
  // Back and forth: each change counts.
  EXPECT_EQ(revisions("<think> 7+5=11. 7+5=12. 7+5=11. </think>"), 2);
  // A lone number, a word before '=' or an answer never counts.
  EXPECT_EQ(revisions("<think> x=3, x=4. 12=12. 12=13. </think>"), 0);
  EXPECT_EQ(revisions("<think> 4+8=12 </think> <answer>4+8=13</answer>"), 0);
  // Revisions alone do not make a completion reflective (markers do).
  EXPECT_FALSE(detect_reflection("<think> 7+5=11. 7+5=12. </think>").reflects());
}

TEST(Reflection, StepMetricsSplitAccuracyByReflection) {
  MetricReducer m;
  add_reflection_metrics(m, {2, 1}, 1);
  add_reflection_metrics(m, {1, 0}, 0);
  add_reflection_metrics(m, {0, 0}, 1);
  add_reflection_metrics(m, {0, 0}, 0);
  add_reflection_metrics(m, {0, 0}, 0);
  const auto r = m.local();
  EXPECT_DOUBLE_EQ(r.at("reflection/rate"), 2.0 / 5);
  EXPECT_DOUBLE_EQ(r.at("reflection/markers_mean"), 3.0 / 5);
  EXPECT_DOUBLE_EQ(r.at("reflection/revision_rate"), 1.0 / 5);
  EXPECT_DOUBLE_EQ(r.at("reflection/accuracy_with"), 1.0 / 2);
  EXPECT_DOUBLE_EQ(r.at("reflection/accuracy_without"), 1.0 / 3);
  // No correctness reward: no accuracy split.  No reflective completion:
  // its accuracy is NaN, the name still there (all ranks add the same names).
  MetricReducer none, plain;
  add_reflection_metrics(none, {1, 0}, -1);
  EXPECT_EQ(none.local().count("reflection/accuracy_with"), 0u);
  add_reflection_metrics(plain, {0, 0}, 1);
  EXPECT_TRUE(std::isnan(plain.local().at("reflection/accuracy_with")));
  EXPECT_DOUBLE_EQ(plain.local().at("reflection/accuracy_without"), 1.0);
}

TEST(Reflection, EvalFiguresSplitAccuracyByReflection) {
  ProblemOutcome p;
  p.correct = {true, false, true, true};
  p.answers = {"1", "2", "1", ""};
  p.lengths = {5, 5, 5, 5};
  p.worked = {false, false, false, false};
  p.reflection = {{1, 0}, {3, 1}, {0, 0}, {0, 0}};
  EvalSums sums;
  score_problem(p, 2, math_answers_equivalent, sums);
  const auto m = eval_metrics(sums, 2, false, false);
  EXPECT_DOUBLE_EQ(m.at("reflection_rate"), 0.5);
  EXPECT_DOUBLE_EQ(m.at("reflection_markers_mean"), 1.0);
  EXPECT_DOUBLE_EQ(m.at("reflection_revision_rate"), 0.25);
  EXPECT_DOUBLE_EQ(m.at("reflection_accuracy_with"), 0.5);
  EXPECT_DOUBLE_EQ(m.at("reflection_accuracy_without"), 1.0);
  // Not measured (hand-built outcomes without it): no reflection keys.
  p.reflection.clear();
  EvalSums bare;
  score_problem(p, 2, math_answers_equivalent, bare);
  EXPECT_EQ(eval_metrics(bare, 2, false, false).count("reflection_rate"), 0u);
  // A reflection vector of the wrong length is refused.
  p.reflection = {{1, 0}};
  EXPECT_THROW(score_problem(p, 2, math_answers_equivalent, bare), Error);
}

// The reflective corpus (data/corpus.h, issue 19 item 2) writes its checks
// in the surface form this detector recognises: every document with a check
// (a tagged worked one, inside <think>, an untagged worked one, or a step
// document rechecking its pair) is reflective (a marker); exactly those whose
// check corrects a planted slip revise (the slipped pair restated right),
// tagged ones as a completion after the template too; no other document
// shows either.
TEST(Reflection, DetectsEveryCheckOfTheReflectiveCorpusAndNothingElse) {
  data::CorpusConfig c;
  c.task.name = "sum";
  c.task.min_digits = c.task.max_digits = 2;
  c.task.min_terms = 2;
  c.task.max_terms = 5;
  c.bare = 0.05;
  c.worked = 0.5;
  c.tagged = 0.2;
  c.noise = 0;
  c.steps = 0.25;
  c.tagged_worked_fraction = 0.5;
  c.reflect_fraction = 0.3;
  c.reflect_confirm_fraction = 0.5;
  c.worked_check_fraction = 0.05;
  c.step_check_fraction = 0.2;
  data::CorpusGenerator gen(c);
  int reflective = 0, tagged_reflective = 0, step_checks = 0, worked_checks = 0;
  for (const auto& d : gen.documents(0, 10000)) {
    const Reflection r = detect_reflection(d.text);
    EXPECT_EQ(r.reflects(), d.reflects) << d.text;
    // A check that confirms a right value is reflective but revises nothing.
    EXPECT_EQ(r.revisions > 0, d.slip) << d.text;
    reflective += d.reflects;
    step_checks += d.reflects && d.kind == data::DocKind::kStep;
    worked_checks += d.reflects && d.kind == data::DocKind::kWorked;
    if (d.kind == data::DocKind::kTaggedWorked && d.reflects) {
      ++tagged_reflective;
      // What follows the template is a completion as the policy would write it.
      const std::string completion = d.text.substr(d.text.find("<think>") + 7);
      EXPECT_TRUE(detect_reflection(completion).reflects()) << completion;
      EXPECT_EQ(detect_reflection(completion).revisions, d.slip ? 1 : 0) << completion;
    }
  }
  EXPECT_GT(reflective, 150);
  EXPECT_GT(step_checks, 150);
  EXPECT_GT(worked_checks, 150);
  EXPECT_EQ(tagged_reflective + step_checks + worked_checks, reflective);
}

}  // namespace
}  // namespace zerorl
