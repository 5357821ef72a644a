// The pretraining corpus for the tiny base model that the R1-Zero
// reproduction starts from.  Design and reasoning: docs/DATA.md.
//
// Like web text it mixes five kinds of documents about the task's TRAIN split
// problems (the test split never appears):
//   bare           the problem and its answer, no working ("12 + 7 = 19")
//   worked         the problem and a correct step-by-step solution
//   tagged_bare    template + "<think> short remark </think> <answer>A</answer>"
//   tagged_worked  template + "<think> worked steps </think> <answer>A</answer>"
//   noise          random characters, answers with a wrong digit, truncations
//   step           one step of a problem posed on its own and worked the long
//                  way (sum: a pair of its running sums added in columns)
// `mix` sets the shares of bare / worked / tagged / noise, and
// tagged_worked_fraction the share of tagged documents that think in worked
// steps.  reflect_fraction is the share of tagged_worked documents whose
// worked steps (inside <think>) recheck one pair at once
// (Task::reflective_solution): a planted slip caught and corrected, or, for
// reflect_confirm_fraction of them, a right value confirmed.
// worked_check_fraction is the share of untagged worked documents whose chain
// rechecks one pair the same way (half catching a planted slip, half
// confirming) and then goes on to the answer.  Documents with a check have
// reflects set (and slip where the check corrects one).  step_check_fraction is the share
// of step documents that state their pair in one go and then recheck it in
// columns, the check copying the pair just written (Task::Step::caught and
// ::confirmed): half catch and correct a planted slip, half confirm a right
// value, so the check is learned as a computation on the context, not as a
// string, and not as "the value changes"; those documents have reflects set
// (and slip where the check corrects one).
// Keeping the tagged worked share low makes the base prefer a bare guess after
// "<think>" (weak at temperature 0.6 and greedy), while the untagged worked
// documents teach the skill: RL only has to make the model choose it.
//
// document(i) is a pure function of (config, i); the generator is immutable
// and thread-safe.  Documents never contain "<eos>": the trainer separates them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/task.h"
#include "data/template.h"

namespace zerorl {
class ConfigNode;
}

namespace zerorl::data {

enum class DocKind { kBare, kWorked, kTaggedBare, kTaggedWorked, kNoise, kStep };
const char* doc_kind_name(DocKind k);

struct CorpusConfig {
  TaskConfig task;
  TemplateConfig prompt_template = {"tiny", ""};
  uint64_t seed = 0;
  double bare = 0.30, worked = 0.40, tagged = 0.25, noise = 0.05;  // normalised shares
  double steps = 0;  // normalised with the others; tasks with step problems only
  double tagged_worked_fraction = 0.25;
  double reflect_fraction = 0;          // tasks with reflective solutions only
  double step_check_fraction = 0;       // share of step documents that recheck their pair
  double reflect_confirm_fraction = 0;  // share of reflect_fraction's checks that confirm
  double worked_check_fraction = 0;     // share of untagged worked documents that check a pair
  // Reads a `corpus:` section: task, template, seed, mix {bare, worked,
  // tagged, noise, steps}, tagged_worked_fraction, reflect_fraction,
  // reflect_confirm_fraction, worked_check_fraction, step_check_fraction.
  static CorpusConfig from(const ConfigNode& n);
  void validate() const;
};

struct Document {
  std::string text;
  DocKind kind;
  std::string prompt;     // the problem it is about (a train-split prompt)
  std::string answer;     // the gold answer of its problem ("" for noise)
  bool reflects = false;  // it holds a self-check ("Wait, let me recheck x+y: ...")
  bool slip = false;      // ...that catches and corrects a planted slip
};

class CorpusGenerator {
 public:
  explicit CorpusGenerator(CorpusConfig cfg);
  Document document(uint64_t index) const;
  std::vector<Document> documents(uint64_t begin, uint64_t count) const;
  const CorpusConfig& config() const { return cfg_; }
  const Task& task() const { return *task_; }

  // The completion of a tagged document (what follows the template):
  // " <think-content> </think> <answer>A</answer>" for the tiny template.
  // With a check, the worked steps are Task::reflective_solution's.
  enum class Check { kNone, kCatchesSlip, kConfirms };
  std::string tagged_completion(const Example& ex, bool worked, uint64_t variant,
                                Check check = Check::kNone) const;

 private:
  CorpusConfig cfg_;
  std::unique_ptr<Task> task_;
  PromptTemplate template_;
};

// Whether a completion thinks in worked steps: at least two '=' (every
// worked style writes one per step and a final "So ...=A"; bare remarks none).
bool uses_worked_steps(std::string_view completion);

}  // namespace zerorl::data
