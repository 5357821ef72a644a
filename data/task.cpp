#include "data/task.h"

#include <unordered_set>

#include "core/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/arithmetic_task.h"
#include "data/countdown_task.h"
#include "data/sum_task.h"

namespace zerorl::data {

std::string Example::to_jsonl() const {
  nlohmann::json j = {
      {"id", id}, {"prompt", prompt}, {"answer", answer}, {"task", task}, {"meta", meta}};
  return j.dump();
}

const char* split_name(Split s) { return s == Split::kTrain ? "train" : "test"; }

Split split_from_name(const std::string& name) {
  if (name == "train") return Split::kTrain;
  if (name == "test") return Split::kTest;
  ZR_THROW("split must be 'train' or 'test', got '", name, "'");
}

TaskConfig TaskConfig::from(const ConfigNode& n) {
  TaskConfig c;
  c.name = n.choice("name", {"addition", "multiplication", "sum", "countdown"}, c.name);
  c.seed = n.get<uint64_t>("seed", c.seed);
  c.test_fraction = n.get<double>("test_fraction", c.test_fraction);
  // Each task reads only its own knobs: another task's key is left unread,
  // so Recipe::check_all_read() refuses it by name and line.
  if (c.name == "countdown") {
    c.num_count = n.get<int>("num_count", c.num_count);
    c.max_number = n.get<int>("max_number", c.max_number);
    c.min_target = n.get<int>("min_target", c.min_target);
    c.max_target = n.get<int>("max_target", c.max_target);
  } else {
    c.min_digits = n.get<int>("min_digits", c.min_digits);
    c.max_digits = n.get<int>("max_digits", c.max_digits);
    if (c.name == "sum") {
      c.min_terms = n.get<int>("min_terms", c.min_terms);
      c.max_terms = n.get<int>("max_terms", c.max_terms);
      c.chain = n.choice("chain", {"running", "remaining"}, c.chain);
    }
  }
  try {
    c.validate();
  } catch (const Error& e) {
    ZR_THROW(n.where(), ": ", n.path(), ": ", e.what());
  }
  return c;
}

void TaskConfig::validate() const {
  ZR_CHECK(test_fraction > 0 && test_fraction < 1, "test_fraction must be in (0, 1), got ",
           test_fraction);
  ZR_CHECK(min_digits >= 1 && max_digits >= min_digits && max_digits <= 9,
           "digits must satisfy 1 <= min_digits <= max_digits <= 9, got ", min_digits, "..",
           max_digits);
  ZR_CHECK(min_terms >= 2 && max_terms >= min_terms && max_terms <= 9,
           "terms must satisfy 2 <= min_terms <= max_terms <= 9, got ", min_terms, "..", max_terms);
  ZR_CHECK(chain == "running" || chain == "remaining", "chain must be running or remaining, got '",
           chain, "'");
  ZR_CHECK(num_count >= 2 && num_count <= 6, "num_count must be in [2, 6], got ", num_count);
  ZR_CHECK(max_number >= 2 && max_number <= 1000, "max_number must be in [2, 1000], got ",
           max_number);
  ZR_CHECK(min_target >= 1 && max_target >= min_target, "need 1 <= min_target <= max_target, got ",
           min_target, "..", max_target);
}

static uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

Split Task::split_of(const Example& ex) const {
  // Independent of the seed on purpose: any two seeds agree on the split.
  uint64_t h = mix64(fnv1a(key(ex)) ^ 0x5e1f7e57ULL);
  double u = static_cast<double>(h >> 11) * 0x1.0p-53;
  return u < cfg_.test_fraction ? Split::kTest : Split::kTrain;
}

Example Task::generate(Split split, uint64_t index) const {
  for (uint64_t attempt = 0; attempt < 100000; ++attempt) {
    Example ex = draw(
        stream_seed(cfg_.seed, index, static_cast<uint64_t>(split), attempt, RngPurpose::kData));
    if (split_of(ex) != split) continue;
    ex.id = str_cat(cfg_.name, "/", split_name(split), "/", index);
    return ex;
  }
  ZR_THROW("task ", cfg_.name, ": no ", split_name(split),
           " problem found in 100000 draws (raise test_fraction or the difficulty)");
}

std::vector<Example> Task::generate_split(Split split, size_t n) const {
  std::vector<Example> out;
  std::unordered_set<std::string> seen;
  const uint64_t max_draws = 20 * static_cast<uint64_t>(n) + 1000;
  for (uint64_t i = 0; out.size() < n && i < max_draws; ++i) {
    Example ex = generate(split, i);
    if (seen.insert(key(ex)).second) out.push_back(std::move(ex));
  }
  ZR_CHECK(out.size() == n, "task ", cfg_.name, ": the ", split_name(split), " split yielded only ",
           out.size(), " distinct problems, ", n, " asked (raise the difficulty or ask fewer)");
  return out;
}

std::string Task::reflective_solution(const Example&, uint64_t, bool) const {
  ZR_THROW("task ", cfg_.name,
           " has no reflective worked solutions (corpus.reflect_fraction needs task sum)");
}

Task::Step Task::step_problem(const Example&, uint64_t) const {
  ZR_THROW("task ", cfg_.name, " has no step problems (corpus.mix.steps needs task sum)");
}

std::unique_ptr<Task> make_task(const TaskConfig& cfg) {
  cfg.validate();
  if (cfg.name == "addition" || cfg.name == "multiplication")
    return std::make_unique<ArithmeticTask>(cfg);
  if (cfg.name == "sum") return std::make_unique<SumTask>(cfg);
  if (cfg.name == "countdown") return std::make_unique<CountdownTask>(cfg);
  ZR_THROW("unknown task '", cfg.name, "' (known: addition, multiplication, sum, countdown)");
}

int count_worked_steps(std::string_view completion) {
  int n = 0;
  for (char c : completion) n += c == '=';
  return n;
}

}  // namespace zerorl::data
