#include "data/prompt_source.h"

#include <numeric>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"

namespace zerorl::data {

std::string DataCursor::to_string() const {
  return str_cat("epoch=", epoch, " offset=", offset, " size=", num_examples, " seed=", seed);
}

DataCursor DataCursor::from_string(const std::string& text) {
  std::istringstream in(text);
  DataCursor c;
  const char* keys[] = {"epoch", "offset", "size", "seed"};
  uint64_t* fields[] = {&c.epoch, &c.offset, &c.num_examples, &c.seed};
  for (int k = 0; k < 4; ++k) {
    std::string item;
    ZR_CHECK(in >> item, "data cursor '", text, "': missing ", keys[k], "=");
    std::string prefix = std::string(keys[k]) + "=";
    ZR_CHECK(item.rfind(prefix, 0) == 0 && item.size() > prefix.size() &&
                 item.find_first_not_of("0123456789", prefix.size()) == std::string::npos,
             "data cursor '", text, "': expected ", prefix, "<integer>, got '", item, "'");
    *fields[k] = std::stoull(item.substr(prefix.size()));
  }
  std::string extra;
  ZR_CHECK(!(in >> extra), "data cursor '", text, "': unexpected '", extra, "'");
  return c;
}

PromptSource::PromptSource(std::vector<Example> examples, const DatasetConfig& cfg,
                           size_t prompts_per_step, int rank, int world_size)
    : examples_(std::move(examples)),
      shuffle_(cfg.shuffle),
      seed_(cfg.seed),
      max_epochs_(cfg.epochs),
      per_step_(prompts_per_step),
      rank_(rank),
      world_(world_size) {
  ZR_CHECK(!examples_.empty(), "PromptSource: no examples");
  ZR_CHECK(examples_.size() < UINT32_MAX, "PromptSource: too many examples");
  ZR_CHECK(world_ >= 1 && rank_ >= 0 && rank_ < world_, "PromptSource: rank ", rank_,
           " outside world size ", world_);
  ZR_CHECK(per_step_ > 0 && per_step_ % static_cast<size_t>(world_) == 0, "prompts per step (",
           per_step_, ") must be a positive multiple of the world size (", world_,
           ") so that every rank gets whole groups");
}

const std::vector<uint32_t>& PromptSource::permutation(uint64_t epoch) const {
  int slot = static_cast<int>(epoch & 1);
  if (perm_epoch_[slot] != epoch) {
    auto& p = perm_[slot];
    p.resize(examples_.size());
    std::iota(p.begin(), p.end(), 0u);
    if (shuffle_) {
      Rng rng(seed_, epoch, 0, 0, RngPurpose::kData);
      for (size_t i = p.size(); i > 1; --i) std::swap(p[i - 1], p[rng.below(i)]);
    }
    perm_epoch_[slot] = epoch;
  }
  return perm_[slot];
}

bool PromptSource::exhausted() const {
  if (max_epochs_ == 0) return false;
  if (epoch_ >= max_epochs_) return true;
  uint64_t remaining = (max_epochs_ - epoch_) * examples_.size() - offset_;
  return remaining < per_step_;
}

std::vector<Example> PromptSource::next_batch() {
  ZR_CHECK(!exhausted(), "the dataset is exhausted after ", max_epochs_, " epoch(s)");
  const size_t n = examples_.size();
  const size_t per_rank = per_step_ / static_cast<size_t>(world_);
  std::vector<Example> out;
  out.reserve(per_rank);
  uint64_t epoch = epoch_, offset = offset_ + per_rank * static_cast<size_t>(rank_);
  while (offset >= n) {
    offset -= n;
    ++epoch;
  }
  for (size_t k = 0; k < per_rank; ++k) {
    out.push_back(examples_[permutation(epoch)[offset]]);
    if (++offset == n) {
      offset = 0;
      ++epoch;
    }
  }
  offset_ += per_step_;
  while (offset_ >= n) {
    offset_ -= n;
    ++epoch_;
  }
  return out;
}

std::vector<Example> PromptSource::next_batch(const std::function<bool(const Example&)>& keep) {
  ZR_CHECK(!exhausted(), "the dataset is exhausted after ", max_epochs_, " epoch(s)");
  const size_t n = examples_.size();
  const size_t per_rank = per_step_ / static_cast<size_t>(world_);
  const size_t first = per_rank * static_cast<size_t>(rank_);
  std::vector<Example> out;
  out.reserve(per_rank);
  size_t taken = 0, passed = 0;  // admitted this step; positions since the last admitted
  while (taken < per_step_) {
    ZR_CHECK(max_epochs_ == 0 || epoch_ < max_epochs_, "the dataset is exhausted after ",
             max_epochs_, " epoch(s) (", taken, " of ", per_step_,
             " prompts of this step admitted)");
    ZR_CHECK(passed <= n, "no training example is admitted in a whole epoch");
    const Example& ex = examples_[permutation(epoch_)[offset_]];
    if (keep(ex)) {
      if (taken >= first && taken < first + per_rank) out.push_back(ex);
      ++taken;
      passed = 0;
    } else {
      ++passed;
    }
    if (++offset_ == n) {
      offset_ = 0;
      ++epoch_;
    }
  }
  return out;
}

DataCursor PromptSource::cursor() const { return {epoch_, offset_, examples_.size(), seed_}; }

void PromptSource::restore(const DataCursor& c) {
  ZR_CHECK(c.num_examples == examples_.size(), "data cursor (", c.to_string(),
           ") was saved on a dataset of ", c.num_examples, " prompts; this one has ",
           examples_.size());
  ZR_CHECK(c.seed == seed_, "data cursor (", c.to_string(), ") was saved with shuffle seed ",
           c.seed, "; the recipe now says ", seed_);
  ZR_CHECK(c.offset < examples_.size(), "data cursor (", c.to_string(), ") is past the epoch end");
  epoch_ = c.epoch;
  offset_ = c.offset;
}

}  // namespace zerorl::data
