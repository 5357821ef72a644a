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
    out += str_cat(acc, "+", t[i], "=", acc + t[i], ". ");
    acc += t[i];
    all += str_cat("+", t[i]);
  }
  return out + str_cat("So ", all, "=", acc, ".");
}

}  // namespace zerorl::data
