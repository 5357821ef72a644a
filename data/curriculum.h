// An adaptive curriculum over a task's levels (issue 19, item 1): the prompt
// stream's level rises when the policy's accuracy on the current level
// passes a threshold, so that, as the policy takes on harder problems, its
// solutions have room to lengthen.  What verl / NeMo-RL users know as a
// curriculum or dynamic difficulty.
//
// Levels are the examples' meta "level" (task sum: the number of terms).
// The curriculum starts at `start` (default: the lowest level of the train
// set) and every step's prompts are drawn from the current level only
// (PromptSource::next_batch with a filter: the stream's other examples are
// passed over, so the order stays a pure function of the seed).  After each
// step the trainer reports the step's correct and total completions, summed
// over all ranks (integers: the same on every rank at any world size); once
// the last `window` steps at the current level together reach `threshold`
// accuracy, the next level present in the train set begins and the history
// clears.  The top level is kept to the end.  The state (level, history) is
// a few integers, saved in checkpoints, so a resumed run continues exactly.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "data/example.h"

namespace zerorl {
class ConfigNode;
}

namespace zerorl::data {

struct CurriculumConfig {
  bool on = false;          // a data.curriculum section is present
  long start = -1;          // first level; -1: the lowest level of the train set
  double threshold = 0.75;  // accuracy over the window that moves to the next level
  long window = 5;          // steps at a level pooled for that accuracy (>= 1)
  // Reads the optional `curriculum:` sub-section of a `data:` section.
  static CurriculumConfig from(const ConfigNode& data);
};

// An example's level (its meta "level"); throws naming the prompt if absent.
long example_level(const Example& ex);

class Curriculum {
 public:
  // The levels are those present in `train`; `start` must be one of them.
  // `key` names the recipe key in errors.
  Curriculum(const CurriculumConfig& cfg, const std::vector<Example>& train,
             const std::string& key = "data.curriculum");

  long level() const { return levels_[at_]; }
  long top() const { return levels_.back(); }
  const std::vector<long>& levels() const { return levels_; }
  // Whether an example belongs to the current level.
  bool admits(const Example& ex) const { return example_level(ex) == level(); }

  // One step's outcome at the current level, summed over all ranks.
  // Returns true when it moved to the next level.
  bool observe(int64_t correct, int64_t total);

  // Checkpoint state: "curriculum_level", "curriculum_history" (its length)
  // and "curriculum_correct_<i>" / "curriculum_total_<i>".
  void save(std::map<std::string, int64_t>& ints) const;
  // Restores what save() wrote; throws if the level is not one of this
  // train set's.  A checkpoint without curriculum state leaves it as is.
  void restore(const std::map<std::string, int64_t>& ints);

 private:
  CurriculumConfig cfg_;
  std::vector<long> levels_;
  size_t at_ = 0;
  std::vector<std::pair<int64_t, int64_t>> history_;  // (correct, total), oldest first
};

}  // namespace zerorl::data
