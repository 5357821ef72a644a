#include "data/sum_task.h"

#include "core/error.h"
#include "core/rng.h"
#include "data/arithmetic_task.h"

namespace zerorl::data {

SumTask::SumTask(TaskConfig cfg) : Task(std::move(cfg)) {}

std::vector<uint64_t> SumTask::terms(const Example& ex) {
  return ex.meta.at("terms").get<std::vector<uint64_t>>();
}

Example SumTask::draw(uint64_t rng_seed) const {
  Rng rng(rng_seed);
  const int n =
      cfg_.min_terms +
      static_cast<int>(rng.below(static_cast<uint64_t>(cfg_.max_terms - cfg_.min_terms + 1)));
  std::vector<uint64_t> t;
  uint64_t total = 0;
  std::string prompt = "What is ";
  for (int i = 0; i < n; ++i) {
    t.push_back(draw_operand(rng, cfg_.min_digits, cfg_.max_digits));
    total += t.back();
    prompt += str_cat(i ? " + " : "", t.back());
  }
  Example ex;
  ex.task = cfg_.name;
  ex.prompt = prompt + "?";
  ex.answer = std::to_string(total);
  ex.meta = {{"terms", t}, {"level", n}};
  return ex;
}

std::string SumTask::key(const Example& ex) const {
  std::string k;
  for (uint64_t v : terms(ex)) k += str_cat(k.empty() ? "" : "+", v);
  return k;
}

CheckResult SumTask::check(std::string_view answer, const Example& ex) const {
  return check_integer_answer(answer, ex.answer);
}

std::string SumTask::worked_solution(const Example& ex) const {
  const std::vector<uint64_t> t = terms(ex);
  std::string out, all = std::to_string(t[0]);
  uint64_t acc = t[0];
  for (size_t i = 1; i < t.size(); ++i) {
    out += chain_step(acc, t[i], acc + t[i], left_after(t, i)) + " ";
    acc += t[i];
    all += str_cat("+", t[i]);
  }
  return out + str_cat("So ", all, "=", acc, ".");
}

std::string SumTask::left_after(const std::vector<uint64_t>& t, size_t i) const {
  std::string rest;
  if (cfg_.chain != "remaining") return rest;
  for (size_t j = i + 1; j < t.size(); ++j) rest += str_cat(rest.empty() ? "" : "+", t[j]);
  return rest;
}

std::string SumTask::chain_step(uint64_t x, uint64_t y, uint64_t v, const std::string& left) {
  return str_cat(x, "+", y, "=", v, left.empty() ? "" : ", left ", left, ".");
}

namespace {

// The pairs of the running sums: (acc, term) for terms 1..n-1.
std::vector<std::pair<uint64_t, uint64_t>> running_pairs(const std::vector<uint64_t>& t) {
  std::vector<std::pair<uint64_t, uint64_t>> pairs;
  uint64_t acc = t[0];
  for (size_t i = 1; i < t.size(); ++i) {
    pairs.emplace_back(acc, t[i]);
    acc += t[i];
  }
  return pairs;
}

// x + y with one digit of the sum off by one (a carry dropped or doubled).
uint64_t slipped_sum(uint64_t x, uint64_t y, Rng& rng) {
  const uint64_t s = x + y;
  const size_t digits = std::to_string(s).size();
  uint64_t p = 1;
  for (size_t j = rng.below(digits); j > 0; --j) p *= 10;
  const bool down = rng.below(2) == 0;
  return down && s >= p ? s - p : s + p;
}

// "x+y=v. Wait, let me recheck x+y: <columns> x+y=s.": the check names the
// pair exactly as it was just written (a copy of the preceding text, not a
// string to memorise), adds it in columns, as a step document does, and ends
// by stating the pair again as a chain step ("x+y=s.", not the columns' "So
// x+y=s."), so that what follows a check reads as what follows any step of
// the chain: runs 8 and 10 (docs/REPRODUCTION.md) lost their place after a
// check ending in "So", the word that opens a chain's last line.  With the
// "remaining" chain both statements also name the terms left ("x+y=v, left
// t."), so the term after the check is in the line just written.
std::string checked_pair(uint64_t x, uint64_t y, uint64_t v, const std::string& left = "") {
  std::string columns = worked_column_addition(x, y);
  columns.erase(columns.rfind("So "), 3);
  columns.replace(columns.rfind(str_cat(x, "+", y, "=")), std::string::npos,
                  SumTask::chain_step(x, y, x + y, left));
  return str_cat(SumTask::chain_step(x, y, v, left), " Wait, let me recheck ", x, "+", y, ": ",
                 columns);
}

}  // namespace

std::string SumTask::reflective_solution(const Example& ex, uint64_t variant, bool slip) const {
  const std::vector<uint64_t> t = terms(ex);
  const auto pairs = running_pairs(t);
  Rng rng(variant);
  // The checked pair is never the chain's last unless it is its only one, so
  // that a check is followed by the chain's next step: run 11's base, where
  // half the checks fell on the last pair, wrote the chain's last line after
  // 36 of 40 checks placed mid-chain (docs/REPRODUCTION.md).
  const size_t k = rng.below(pairs.size() > 1 ? pairs.size() - 1 : 1);
  std::string out, all = std::to_string(t[0]);
  for (size_t i = 0; i < pairs.size(); ++i) {
    const auto [x, y] = pairs[i];
    const uint64_t s = x + y;
    all += str_cat("+", y);
    const std::string left = left_after(t, i + 1);
    if (i != k) {
      out += chain_step(x, y, s, left) + " ";
      continue;
    }
    // The pair (slipped or right), rechecked at once by a check that copies
    // it as just written and adds it in columns, as a step document does:
    // local and reliable.
    out += checked_pair(x, y, slip ? slipped_sum(x, y, rng) : s, left) + " ";
  }
  return out + str_cat("So ", all, "=", pairs.back().first + pairs.back().second, ".");
}

Task::Step SumTask::step_problem(const Example& ex, uint64_t variant) const {
  const auto pairs = running_pairs(terms(ex));
  for (size_t i = 0; i < pairs.size(); ++i) {
    const auto [x, y] = pairs[(variant + i) % pairs.size()];
    Example two;
    two.meta = {{"terms", {x, y}}};
    if (split_of(two) == Split::kTest) continue;
    Rng rng(variant);
    return {str_cat("What is ", x, " + ", y, "?"), std::to_string(x + y),
            worked_column_addition(x, y), checked_pair(x, y, slipped_sum(x, y, rng)),
            checked_pair(x, y, x + y)};
  }
  const auto [x, y] = pairs[0];
  Rng rng(variant);
  return {str_cat(x, " + ", y, ":"), std::to_string(x + y), worked_column_addition(x, y),
          checked_pair(x, y, slipped_sum(x, y, rng)), checked_pair(x, y, x + y)};
}

}  // namespace zerorl::data
