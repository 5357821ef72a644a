// PromptSource: the prompts each rank rolls out at each step.
//
// The examples are walked as one global stream, epoch after epoch; each
// epoch is a permutation of all examples (seeded by (seed, epoch), the same
// on every rank; identity when shuffle is off).  A step takes the next
// prompts_per_step positions of the stream and rank r gets the r-th
// contiguous slice of prompts_per_step / world_size of them.  Each prompt is
// one whole group (G completions are made from it on the rank that owns it),
// so groups never straddle ranks.  Consequences:
//   * across ranks, every example appears exactly once per epoch (a step may
//     straddle two epochs);
//   * the stream depends only on (examples, seed, shuffle), never on world
//     size, so a run is reproducible at any world size in its prompt order;
//   * with epochs > 0 the source is exhausted once fewer than
//     prompts_per_step positions remain; the incomplete last step is dropped
//     on every rank alike.
// The DataCursor (epoch, offset within the epoch) is all the state there is:
// restore(cursor()) continues with exactly the same next prompts.
// Not thread-safe; one PromptSource per rank.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/example.h"

namespace zerorl::data {

struct DataCursor {
  uint64_t epoch = 0;         // whole epochs consumed
  uint64_t offset = 0;        // stream positions consumed in the current epoch (all ranks)
  uint64_t num_examples = 0;  // dataset size it was taken on (checked on restore)
  uint64_t seed = 0;          // shuffle seed it was taken with (checked on restore)

  // "epoch=3 offset=128 size=1000 seed=7"; from_string throws on anything else.
  std::string to_string() const;
  static DataCursor from_string(const std::string& text);
  std::array<uint64_t, 4> to_ints() const { return {epoch, offset, num_examples, seed}; }
  static DataCursor from_ints(const std::array<uint64_t, 4>& v) { return {v[0], v[1], v[2], v[3]}; }
  bool operator==(const DataCursor& o) const { return to_ints() == o.to_ints(); }
};

class PromptSource {
 public:
  // prompts_per_step must be a positive multiple of world_size.
  PromptSource(std::vector<Example> examples, const DatasetConfig& cfg, size_t prompts_per_step,
               int rank = 0, int world_size = 1);

  // This rank's prompts for the next step (prompts_per_step / world_size of
  // them).  Throws once exhausted().
  std::vector<Example> next_batch();
  // The same over only the examples `keep` admits (a curriculum's level,
  // data/curriculum.h): the step takes the stream's next prompts_per_step
  // admitted examples, walking past the others (they count as consumed
  // positions), and rank r gets the r-th slice of them, so the step's
  // prompts still depend only on (examples, seed, shuffle, keep).  Throws
  // when the stream ends (epochs) or a whole epoch admits none.
  std::vector<Example> next_batch(const std::function<bool(const Example&)>& keep);
  bool exhausted() const;

  DataCursor cursor() const;
  // Throws if the cursor was taken on a different dataset size or seed.
  void restore(const DataCursor& c);

  size_t size() const { return examples_.size(); }
  uint64_t epoch() const { return epoch_; }
  const std::vector<Example>& examples() const { return examples_; }

 private:
  const std::vector<uint32_t>& permutation(uint64_t epoch) const;

  std::vector<Example> examples_;
  bool shuffle_;
  uint64_t seed_, max_epochs_;
  size_t per_step_;
  int rank_, world_;
  uint64_t epoch_ = 0, offset_ = 0;
  mutable uint64_t perm_epoch_[2] = {UINT64_MAX, UINT64_MAX};
  mutable std::vector<uint32_t> perm_[2];
};

}  // namespace zerorl::data
