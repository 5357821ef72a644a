#include "rewards/countdown_reward.h"

#include <gmpxx.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

namespace zerorl::rewards {
namespace {

struct Fail {
  std::string why;
};

// Recursive descent over + - * / ( ) and integers, exact with GMP.
class Eval {
 public:
  Eval(const std::string& s, std::vector<long long>& used) : s_(s), used_(used) {}
  mpq_class run() {
    mpq_class v = expr(0);
    skip();
    if (i_ != s_.size()) throw Fail{std::string("unexpected '") + s_[i_] + "' in expression"};
    return v;
  }

 private:
  const std::string& s_;
  std::vector<long long>& used_;
  size_t i_ = 0;
  void skip() {
    while (i_ < s_.size() && std::isspace((unsigned char)s_[i_])) ++i_;
  }
  mpq_class expr(int d) {
    mpq_class v = term(d);
    for (;;) {
      skip();
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) {
        char op = s_[i_++];
        mpq_class r = term(d);
        v = op == '+' ? mpq_class(v + r) : mpq_class(v - r);
      } else {
        return v;
      }
    }
  }
  mpq_class term(int d) {
    mpq_class v = factor(d);
    for (;;) {
      skip();
      if (i_ < s_.size() && (s_[i_] == '*' || s_[i_] == '/' || s_[i_] == 'x' || s_[i_] == 'X')) {
        char op = s_[i_++];
        mpq_class r = factor(d);
        if (op == '/') {
          if (r == 0) throw Fail{"division by zero"};
          v /= r;
        } else {
          v *= r;
        }
      } else {
        return v;
      }
    }
  }
  mpq_class factor(int d) {
    if (d > 64) throw Fail{"expression nested too deeply"};
    skip();
    if (i_ >= s_.size()) throw Fail{"expression ends early"};
    if (s_[i_] == '(') {
      ++i_;
      mpq_class v = expr(d + 1);
      skip();
      if (i_ >= s_.size() || s_[i_] != ')') throw Fail{"unbalanced parentheses"};
      ++i_;
      return v;
    }
    if (s_[i_] == '-') {  // "-3" is not one of the numbers: a sign is not allowed
      throw Fail{"unary minus is not allowed"};
    }
    if (!std::isdigit((unsigned char)s_[i_]))
      throw Fail{std::string("unexpected '") + s_[i_] + "'"};
    size_t j = i_;
    while (j < s_.size() && std::isdigit((unsigned char)s_[j])) ++j;
    if (j - i_ > 12) throw Fail{"number too long"};
    long long n = std::stoll(s_.substr(i_, j - i_));
    i_ = j;
    used_.push_back(n);
    return mpq_class(mpz_class(std::to_string(n)));
  }
};

}  // namespace

CountdownRewardConfig CountdownRewardConfig::from(const ConfigNode& n) {
  CountdownRewardConfig c;
  c.correct_reward = n.get<double>("correct_reward", 1.0);
  c.format_reward = n.get<double>("format_reward", 0.1);
  c.max_chars = (size_t)n.get<int>("max_chars", 256);
  return c;
}

RewardResult CountdownReward::score(const Sample& s) const {
  RewardResult r;
  r.components = {{"correct", 0.0}, {"format", 0.0}};
  std::vector<long long> numbers;
  long long target = 0;
  try {
    auto meta = nlohmann::json::parse(s.metadata_json.empty() ? "{}" : s.metadata_json);
    const auto& nums = meta.contains("numbers") ? meta["numbers"] : meta.at("nums");
    for (auto& x : nums) numbers.push_back(x.get<long long>());
    target = meta.at("target").get<long long>();
  } catch (const std::exception& e) {
    r.error = std::string("countdown metadata needs numbers and target: ") + e.what();
    r.failed = true;
    return r;
  }
  size_t open = s.completion.rfind("<answer>");
  if (open == std::string::npos) {
    r.error = "no <answer> block";
    return r;
  }
  size_t close = s.completion.find("</answer>", open);
  if (close == std::string::npos) {
    r.error = "unclosed <answer> block";
    return r;
  }
  std::string expr = s.completion.substr(open + 8, close - open - 8);
  size_t eq = expr.find('=');
  if (eq != std::string::npos) expr = expr.substr(0, eq);
  if (expr.size() > cfg_.max_chars) {
    r.error = "answer longer than " + std::to_string(cfg_.max_chars) + " characters";
    return r;
  }
  r.components["format"] = 1.0;
  r.answer = expr;
  std::vector<long long> used;
  try {
    mpq_class v = Eval(expr, used).run();
    auto a = used, b = numbers;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a != b) {
      r.value = cfg_.format_reward;
      r.error = "";
      r.reason = "does not use each given number once";
      return r;  // wrong numbers: a wrong answer, not an error
    }
    if (v == mpq_class(mpz_class(std::to_string(target)))) {
      r.value = cfg_.correct_reward;
      r.components["correct"] = 1.0;
      r.reason = "reaches the target " + std::to_string(target);
    } else {
      r.value = cfg_.format_reward;
      r.reason = "equals " + v.get_str() + ", not the target " + std::to_string(target);
    }
  } catch (const Fail& f) {
    // Not an expression at all: no format credit either.
    r.value = 0.0;
    r.components["format"] = 0.0;
    r.error = f.why;
  }
  return r;
}

}  // namespace zerorl::rewards
