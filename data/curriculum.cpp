#include "data/curriculum.h"

#include <algorithm>
#include <set>

#include "core/config.h"
#include "core/error.h"

namespace zerorl::data {

CurriculumConfig CurriculumConfig::from(const ConfigNode& data) {
  CurriculumConfig c;
  if (!data.has("curriculum")) return c;
  const ConfigNode n = data.section("curriculum");
  c.on = true;
  c.start = n.get<long>("start", c.start);
  c.threshold = n.get<double>("threshold", c.threshold);
  c.window = n.get<long>("window", c.window);
  ZR_CHECK(c.threshold > 0 && c.threshold <= 1, n.where("threshold"), ": ", n.path("threshold"),
           " must be in (0, 1], got ", c.threshold);
  ZR_CHECK(c.window >= 1, n.where("window"), ": ", n.path("window"), " must be >= 1, got ",
           c.window);
  return c;
}

long example_level(const Example& ex) {
  ZR_CHECK(ex.meta.is_object() && ex.meta.contains("level") && ex.meta["level"].is_number_integer(),
           "example '", ex.prompt, "' has no integer meta \"level\" (a curriculum needs one)");
  return ex.meta["level"].get<long>();
}

Curriculum::Curriculum(const CurriculumConfig& cfg, const std::vector<Example>& train,
                       const std::string& key)
    : cfg_(cfg) {
  std::set<long> present;
  for (const Example& ex : train) {
    ZR_CHECK(ex.meta.is_object() && ex.meta.contains("level"), key,
             ": the training problems carry no level (meta \"level\"; task sum has one), e.g. '",
             ex.prompt, "'");
    present.insert(example_level(ex));
  }
  ZR_CHECK(!present.empty(), key, ": no training problems");
  levels_.assign(present.begin(), present.end());
  if (cfg_.start >= 0) {
    auto it = std::find(levels_.begin(), levels_.end(), cfg_.start);
    ZR_CHECK(it != levels_.end(), key, ".start: level ", cfg_.start,
             " is not among the training problems' levels (", levels_.front(), "..", levels_.back(),
             ")");
    at_ = static_cast<size_t>(it - levels_.begin());
  }
}

bool Curriculum::observe(int64_t correct, int64_t total) {
  ZR_CHECK(correct >= 0 && total >= correct, "curriculum: ", correct, " correct of ", total);
  if (at_ + 1 == levels_.size()) return false;  // the top level stays
  history_.emplace_back(correct, total);
  if (static_cast<long>(history_.size()) > cfg_.window) history_.erase(history_.begin());
  if (static_cast<long>(history_.size()) < cfg_.window) return false;
  int64_t c = 0, t = 0;
  for (const auto& [ci, ti] : history_) {
    c += ci;
    t += ti;
  }
  // Integers compared exactly: c / t >= threshold.
  if (t == 0 || static_cast<double>(c) < cfg_.threshold * static_cast<double>(t)) return false;
  ++at_;
  history_.clear();
  return true;
}

void Curriculum::save(std::map<std::string, int64_t>& ints) const {
  ints["curriculum_level"] = level();
  ints["curriculum_history"] = static_cast<int64_t>(history_.size());
  for (size_t i = 0; i < history_.size(); ++i) {
    ints["curriculum_correct_" + std::to_string(i)] = history_[i].first;
    ints["curriculum_total_" + std::to_string(i)] = history_[i].second;
  }
}

void Curriculum::restore(const std::map<std::string, int64_t>& ints) {
  auto level = ints.find("curriculum_level");
  if (level == ints.end()) return;
  auto it = std::find(levels_.begin(), levels_.end(), level->second);
  ZR_CHECK(it != levels_.end(), "checkpoint curriculum level ", level->second,
           " is not among the training problems' levels (", levels_.front(), "..", levels_.back(),
           ")");
  at_ = static_cast<size_t>(it - levels_.begin());
  history_.clear();
  const int64_t n = ints.at("curriculum_history");
  for (int64_t i = 0; i < n; ++i)
    history_.emplace_back(ints.at("curriculum_correct_" + std::to_string(i)),
                          ints.at("curriculum_total_" + std::to_string(i)));
}

}  // namespace zerorl::data
