// RewardPipeline: a weighted sum of named rewards, scored on a thread pool.
//
//   total(sample) = sum_i weight_i * reward_i.score(sample).value
//
// Each component is kept per sample (for logging), as is each reward's error
// reason.  Threads: a pool of `num_threads` (num_threads - 1 workers plus the
// calling thread), started by the first batch and joined by the destructor,
// pulls samples dynamically (each reward must be thread-safe, see reward.h);
// results are returned in input order and do not depend on the thread count.
// Concurrent score() calls on one pipeline are safe and run one after the
// other.  A reward that throws costs
// that sample that reward's component (0) with the exception text as reason;
// the other samples and rewards are unaffected.  score() itself never throws
// for bad completions.  The pipeline object may be shared read-only between
// threads; error counters are atomic.
//
// Recipe (the `rewards:` section, one entry per reward instance, in order):
//   rewards:
//     accuracy: {type: math, weight: 1.0, precision: 6}
//     format:   {type: format, weight: 0.2, mode: strict}
// `type` defaults to the entry's name; `weight` to 1.0; the other keys are
// the reward type's own options.  Three keys are the pipeline's own:
//     threads: 0
// the scoring threads (0: std::thread::hardware_concurrency(); formerly the
// top-level `reward_threads`, which a recipe now refuses naming this key);
//     max_error_rate: 0.5
// the largest fraction of a training step's samples on which one reward may
// fail (RewardResult::failed) before the run stops with that reward's last
// error (default 0.5; 1 never stops).  The trainer logs each reward's rate as
// reward/<name>/error_rate.
//     clip: 1.0e6
// the largest |value| a reward may return (default 1e6); a value beyond it
// (or not finite) is a failure of that sample's reward, scored 0.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "rewards/reward.h"

namespace zerorl::rewards {

struct ScoredSample {
  double total = 0.0;
  std::vector<double> values;       // one per reward, unweighted, pipeline order
  std::vector<std::string> errors;  // one per reward, "" when scored normally
  std::vector<char> failed;         // one per reward: RewardResult::failed
  // One per reward: RewardResult::answer, and RewardResult::reason (its
  // error when the reward gave no reason).
  std::vector<std::string> answers, reasons;
  // "<name>" -> unweighted value, and "<name>.<component>" for each component.
  std::map<std::string, double> components;
};

class RewardPipeline {
 public:
  // num_threads <= 0: std::thread::hardware_concurrency().
  explicit RewardPipeline(int num_threads = 0);
  RewardPipeline(RewardPipeline&&) noexcept;
  RewardPipeline& operator=(RewardPipeline&&) noexcept;
  ~RewardPipeline();

  void add(const std::string& name, double weight, std::unique_ptr<Reward> reward);

  ScoredSample score_one(const Sample& sample) const;
  std::vector<ScoredSample> score(const std::vector<Sample>& samples) const;

  size_t size() const;
  const std::vector<std::string>& names() const;
  const std::vector<double>& weights() const;
  // Number of samples each reward has reported an error for so far.
  std::vector<long long> error_counts() const;
  int num_threads() const { return num_threads_; }
  // rewards.max_error_rate (see the top of this file).
  double max_error_rate() const { return max_error_rate_; }
  void set_max_error_rate(double rate) { max_error_rate_ = rate; }
  // rewards.clip: a reward value v with |v| > clip is that sample's failure
  // (value 0, reason given), not a number that overflows the step's sums.
  double clip() const { return clip_; }
  void set_clip(double clip) { clip_ = clip; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int num_threads_;
  double max_error_rate_ = 0.5;
  double clip_ = 1e6;
};

// One entry's own keys, `type` (default: the entry's name) and `weight`;
// the rest are the type's (make_reward reads them).
struct RewardEntryConfig {
  std::string type;
  double weight = 1.0;
  static RewardEntryConfig from(const ConfigNode& entry, const std::string& name);
};

// Builds the pipeline from the `rewards:` section (see above); throws
// zerorl::Error naming the key and position on a bad entry, and when the
// section is empty.  num_threads >= 0 (tests, benchmarks) replaces the
// section's `threads` key, which is then not read.
RewardPipeline build_reward_pipeline(const ConfigNode& rewards_section, int num_threads = -1);

}  // namespace zerorl::rewards
