// The Reward contract and the registry of reward types by name.
//
// Contract (docs/ARCHITECTURE.md, "Reward"):
//   * score(const Sample&) -> RewardResult{value, components, error}.
//   * Pure and thread-safe: the pipeline calls score() on one Reward object
//     from many threads at once.  Implementations keep no mutable state other
//     than what they guard themselves (counters, a child process).
//   * Bounded in time: every built-in reward carries its own deadline.
//   * A malformed completion is value 0 with a reason in `error`; score()
//     should not throw.  If it does anyway, the pipeline turns the exception
//     into a zero reward with the message as the reason (one sample's failure
//     never affects another).
//
// A Sample is filled by the trainer from a RolloutBatch row (prompt and
// decoded completion) and its dataset row (gold answer, task, metadata).
// rewards/ depends on core/ and data/ only: no tensors here.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"

namespace zerorl::rewards {

struct Sample {
  std::string prompt;      // the prompt text as the policy saw it
  std::string completion;  // the decoded completion (no prompt)
  std::string gold;        // reference answer; empty when a task has none
  std::string task;        // dataset's task name ("math", "countdown", ...)
  // Task metadata: a JSON object as text (the dataset row's extra fields),
  // e.g. {"numbers": [3, 5, 7], "target": 22} for countdown.  "" means {}.
  std::string metadata_json;
};

struct RewardResult {
  double value = 0.0;
  // Named parts of `value` worth logging (e.g. {"correct": 1, "format": 0.1}).
  std::map<std::string, double> components;
  // Empty when the sample was scored normally; otherwise why it got `value`
  // (e.g. "no answer found", "plugin timeout after 2000 ms").
  std::string error;
  // The reward could not score the sample at all (it threw, a plug-in or a
  // command failed or timed out, bad metadata, a non-finite value), as
  // opposed to a verdict such as "no answer found".  Failures count towards
  // rewards.max_error_rate (see pipeline.h).
  bool failed = false;
  // For the sample logs (samples.jsonl, eval_samples.jsonl), never part of
  // `value`: the answer the reward extracted and judged ("" when none or
  // when the reward has no such notion) and why it gave `value`, also for a
  // plain wrong answer ("different text (18 vs 19)").  When `reason` is
  // empty the pipeline logs `error` in its place.
  std::string answer;
  std::string reason;
};

class Reward {
 public:
  virtual ~Reward() = default;
  virtual RewardResult score(const Sample& sample) const = 0;
};

// Builds a reward from its recipe options (the reward's own section; the
// factory reads its keys with defaults, so unknown keys are caught by
// Recipe::check_all_read()).
using RewardFactory = std::function<std::unique_ptr<Reward>(const ConfigNode& options)>;

// Registry: the built-in types ("math", "format", "countdown", "plugin",
// "command") are always present; register_reward adds more (thread-safe,
// replaces an existing name).
void register_reward(const std::string& type, RewardFactory factory);
// Throws zerorl::Error naming the type and the known types when unknown.
std::unique_ptr<Reward> make_reward(const std::string& type, const ConfigNode& options);
std::vector<std::string> registered_rewards();

}  // namespace zerorl::rewards
