#include "data/countdown_task.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace zerorl::data {

namespace {

// Exact rational arithmetic; overflow is reported, never wrapped.
struct Frac {
  int64_t num = 0, den = 1;
};

Frac make_frac(__int128 n, __int128 d, bool& overflow) {
  if (d < 0) {
    n = -n;
    d = -d;
  }
  __int128 a = n < 0 ? -n : n, b = d;
  while (b) {
    __int128 t = a % b;
    a = b;
    b = t;
  }
  if (a > 1) {
    n /= a;
    d /= a;
  }
  const __int128 lim = static_cast<__int128>(1) << 62;
  if (n > lim || n < -lim || d > lim) overflow = true;
  return {static_cast<int64_t>(n), static_cast<int64_t>(d)};
}

std::string frac_text(Frac f) {
  return f.den == 1 ? std::to_string(f.num) : str_cat(f.num, "/", f.den);
}

struct Parser {
  explicit Parser(std::string_view text) : s(text) {}
  std::string_view s;
  size_t i = 0;
  std::vector<int64_t> used;
  std::vector<std::string> steps;
  std::string error;
  bool overflow = false;

  void skip() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  }
  bool eat(std::string_view tok) {
    skip();
    if (s.compare(i, tok.size(), tok) == 0) {
      i += tok.size();
      return true;
    }
    return false;
  }
  bool fail(std::string why) {
    if (error.empty()) error = std::move(why);
    return false;
  }
  bool apply(char op, Frac a, Frac b, Frac& out) {
    __int128 an = a.num, ad = a.den, bn = b.num, bd = b.den;
    switch (op) {
      case '+':
        out = make_frac(an * bd + bn * ad, ad * bd, overflow);
        break;
      case '-':
        out = make_frac(an * bd - bn * ad, ad * bd, overflow);
        break;
      case '*':
        out = make_frac(an * bn, ad * bd, overflow);
        break;
      default:
        if (b.num == 0) return fail("division by zero");
        out = make_frac(an * bd, ad * bn, overflow);
    }
    if (overflow) return fail("number too large");
    steps.push_back(str_cat(frac_text(a), op, frac_text(b), "=", frac_text(out)));
    return true;
  }
  bool factor(Frac& out) {
    skip();
    if (eat("(")) {
      if (!expr(out)) return false;
      if (!eat(")")) return fail("missing ')'");
      return true;
    }
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start)
      return fail(i < s.size() ? str_cat("unexpected '", s[i], "'") : "expression ends early");
    if (i - start > 12) return fail("number too large");
    int64_t v = std::stoll(std::string(s.substr(start, i - start)));
    used.push_back(v);
    out = {v, 1};
    return true;
  }
  bool term(Frac& out) {
    if (!factor(out)) return false;
    for (;;) {
      char op;
      if (eat("*") || eat("x") || eat("\xc3\x97"))
        op = '*';
      else if (eat("/") || eat("\xc3\xb7"))
        op = '/';
      else
        return true;
      Frac rhs;
      if (!factor(rhs) || !apply(op, out, rhs, out)) return false;
    }
  }
  bool expr(Frac& out) {
    if (!term(out)) return false;
    for (;;) {
      char op;
      if (eat("+"))
        op = '+';
      else if (eat("-") || eat("\xe2\x88\x92"))
        op = '-';
      else
        return true;
      Frac rhs;
      if (!term(rhs) || !apply(op, out, rhs, out)) return false;
    }
  }
};

}  // namespace

CheckResult check_countdown(std::string_view text, const std::vector<int64_t>& numbers,
                            int64_t target) {
  std::string_view e = text;
  size_t eq = e.find('=');
  if (eq != std::string_view::npos) e = e.substr(0, eq);
  Parser p(e);
  Frac value;
  bool ok = p.expr(value);
  p.skip();
  if (ok && p.i != e.size()) ok = p.fail(str_cat("unexpected '", e[p.i], "'"));
  if (!ok) return {false, "not an expression: " + p.error};
  std::vector<int64_t> want = numbers, got = p.used;
  std::sort(want.begin(), want.end());
  std::sort(got.begin(), got.end());
  if (got != want) return {false, "must use each of the given numbers exactly once"};
  if (value.den != 1 || value.num != target)
    return {false, str_cat("evaluates to ", frac_text(value), ", not ", target)};
  return {true, ""};
}

CountdownTask::CountdownTask(TaskConfig cfg) : Task(std::move(cfg)) {}

static std::vector<int64_t> numbers_of(const Example& ex) {
  return ex.meta.at("numbers").get<std::vector<int64_t>>();
}

Example CountdownTask::draw(uint64_t rng_seed) const {
  Rng rng(rng_seed);
  for (int attempt = 0; attempt < 10000; ++attempt) {
    std::vector<int64_t> numbers;
    struct Item {
      int64_t v;
      std::string e;
      bool atom;
    };
    std::vector<Item> pool;
    for (int k = 0; k < cfg_.num_count; ++k) {
      int64_t v = 1 + static_cast<int64_t>(rng.below(static_cast<uint64_t>(cfg_.max_number)));
      numbers.push_back(v);
      pool.push_back({v, std::to_string(v), true});
    }
    while (pool.size() > 1) {
      size_t i = rng.below(pool.size()), j = rng.below(pool.size() - 1);
      if (j >= i) ++j;
      Item a = pool[i], b = pool[j];
      if (a.v < b.v) std::swap(a, b);
      std::vector<char> ops = {'+'};
      if (a.v > b.v) ops.push_back('-');
      if (a.v * b.v <= 100000) ops.push_back('*');
      if (b.v > 1 && a.v % b.v == 0) ops.push_back('/');
      char op = ops[rng.below(ops.size())];
      int64_t v = op == '+' ? a.v + b.v : op == '-' ? a.v - b.v : op == '*' ? a.v * b.v : a.v / b.v;
      auto wrap = [](const Item& it) { return it.atom ? it.e : "(" + it.e + ")"; };
      Item c{v, wrap(a) + op + wrap(b), false};
      pool.erase(pool.begin() + static_cast<long>(std::max(i, j)));
      pool.erase(pool.begin() + static_cast<long>(std::min(i, j)));
      pool.push_back(std::move(c));
    }
    int64_t target = pool[0].v;
    if (target < cfg_.min_target || target > cfg_.max_target) continue;
    Example ex;
    ex.task = "countdown";
    std::string list;
    for (auto n : numbers) list += (list.empty() ? "" : ", ") + std::to_string(n);
    ex.prompt = str_cat("Using the numbers [", list, "], create an equation that equals ", target,
                        ". Use + - * / and each number exactly once.");
    ex.answer = pool[0].e;
    ex.meta = {{"numbers", numbers}, {"target", target}};
    return ex;
  }
  ZR_THROW("countdown: no problem with a target in [", cfg_.min_target, ", ", cfg_.max_target,
           "] found in 10000 draws; widen the target range");
}

std::string CountdownTask::key(const Example& ex) const {
  auto nums = numbers_of(ex);
  std::sort(nums.begin(), nums.end());
  std::string k;
  for (auto n : nums) k += std::to_string(n) + ",";
  return k + ":" + std::to_string(ex.meta.at("target").get<int64_t>());
}

CheckResult CountdownTask::check(std::string_view answer, const Example& ex) const {
  return check_countdown(answer, numbers_of(ex), ex.meta.at("target").get<int64_t>());
}

std::string CountdownTask::worked_solution(const Example& ex) const {
  Parser p(ex.answer);
  Frac value;
  ZR_CHECK(p.expr(value), "countdown gold '", ex.answer, "' does not parse: ", p.error);
  std::string out;
  for (const auto& s : p.steps) out += s + ". ";
  return out + "So " + ex.answer + "=" + frac_text(value) + ".";
}

}  // namespace zerorl::data
