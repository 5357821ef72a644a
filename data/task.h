// Synthetic reasoning tasks: seeded generators with disjoint train/test
// splits, a difficulty knob, a checker, and a worked (step-by-step) solution
// for the pretraining corpus.
//
// Splits are disjoint by construction: a problem belongs to the test split
// iff a hash of its canonical key (independent of the seed) falls below
// test_fraction, so train and test generated with any seeds never share a
// problem.  generate(split, index) is a pure function of (config, split,
// index).  Tasks are immutable and thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "data/example.h"

namespace zerorl {
class ConfigNode;
}

namespace zerorl::data {

enum class Split { kTrain = 0, kTest = 1 };
const char* split_name(Split s);
Split split_from_name(const std::string& name);  // "train" | "test"; throws otherwise

struct TaskConfig {
  std::string name = "addition";  // addition | multiplication | sum | countdown
  uint64_t seed = 0;
  double test_fraction = 0.1;  // share of the problem space held out for test
  // addition / multiplication / sum: operands have min_digits..max_digits
  // digits (the difficulty knob).
  int min_digits = 1;
  int max_digits = 3;
  // sum: how many numbers are added, uniform in min_terms..max_terms (the
  // level; data/sum_task.h).
  int min_terms = 2;
  int max_terms = 4;
  // sum: the worked chain's form.  "running": "47+85=132. 132+36=168." (each
  // step finds its next term in the question); "remaining": every step but
  // the last also names the terms still to add, "47+85=132, left 36+25.
  // 132+36=168, left 25.", so that the next term is always in the line just
  // written, after a check as after a step (data/sum_task.h).
  std::string chain = "running";
  // countdown: how many numbers (the difficulty knob), their range, target range.
  int num_count = 4;
  int max_number = 50;
  int min_target = 10;
  int max_target = 200;

  // Reads a `task:` recipe section (keys as above; `name` is a choice).
  static TaskConfig from(const ConfigNode& n);
  void validate() const;
};

// The verdict of a task's checker on an extracted answer.
struct CheckResult {
  bool correct = false;
  std::string reason;  // why not, for logs ("not an integer", "uses 7 twice")
};

class Task {
 public:
  virtual ~Task() = default;
  const TaskConfig& config() const { return cfg_; }
  const std::string& name() const { return cfg_.name; }

  // The index-th problem of a split (no de-duplication: see generate_split).
  Example generate(Split split, uint64_t index) const;
  // n distinct problems of a split; throws if the split has fewer than n.
  std::vector<Example> generate_split(Split split, size_t n) const;
  // Which split a problem belongs to (by its canonical key).
  Split split_of(const Example& ex) const;

  // Check an answer already extracted from a completion (the text inside
  // <answer></answer>, or a bare final answer) against the example.
  virtual CheckResult check(std::string_view answer, const Example& ex) const = 0;
  // A correct worked solution: steps the tiny model can learn, ending with
  // the final answer.  Deterministic.
  virtual std::string worked_solution(const Example& ex) const = 0;

  // What the reflective corpus needs (issue 19, item 2); tasks without it
  // throw naming the task.
  //
  // A worked solution in which one step is rechecked at once, in the
  // surface form that trainer/reflection.h detects: a marker ("Wait, let me
  // recheck x+y:"), the step redone the long way, and the step restated with
  // its right value; the solution then goes on from the right value to the
  // gold.  With `slip` the step first states a planted slip that the check
  // corrects; without, it states the right value and the check confirms it.
  // Deterministic in `variant`.
  virtual std::string reflective_solution(const Example& ex, uint64_t variant, bool slip) const;
  // One step of a problem posed as a problem of its own and worked the long
  // way (the skill a self-check uses).  Deterministic in `variant`.
  struct Step {
    std::string prompt;  // "What is 132 + 36?"
    std::string answer;
    std::string worked;  // the long way, ending "So <expr>=<answer>."
    // The step stated in one go, then rechecked the long way: "x+y=v. Wait,
    // let me recheck x+y: <worked>", the check copying the pair just written.
    // In `caught` v holds a planted slip (one digit off by one) that the
    // check corrects; in `confirmed` v is right and the check restates it.
    std::string caught, confirmed;
  };
  virtual Step step_problem(const Example& ex, uint64_t variant) const;

 protected:
  explicit Task(TaskConfig cfg) : cfg_(std::move(cfg)) {}
  // Draw a problem from an RNG seeded by the caller.
  virtual Example draw(uint64_t rng_seed) const = 0;
  // Canonical key of a problem (same key <=> same problem).
  virtual std::string key(const Example& ex) const = 0;
  TaskConfig cfg_;
};

std::unique_ptr<Task> make_task(const TaskConfig& cfg);

// Number of worked steps in a completion: the count of '=' signs.  Bare
// answers have none; every worked style of the tasks writes one per step.
int count_worked_steps(std::string_view completion);

}  // namespace zerorl::data
