#include "data/arithmetic_task.h"

#include <cctype>

#include "core/error.h"
#include "core/rng.h"

namespace zerorl::data {

static std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Canonical integer text ("-12", "0"), or "" when s is not an integer.
static std::string canonical_integer(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.front() == '=') s = trim(s.substr(1));
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  bool neg = false;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    neg = s.front() == '-';
    s.remove_prefix(1);
  }
  std::string digits;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (std::isdigit(static_cast<unsigned char>(c))) {
      digits += c;
    } else if (c == ',' && i > 0 && std::isdigit(static_cast<unsigned char>(s[i - 1]))) {
      // a thousands separator must be followed by exactly three digits
      size_t k = i + 1;
      while (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) ++k;
      if (k - (i + 1) != 3) return "";
    } else {
      return "";
    }
  }
  if (digits.empty()) return "";
  size_t nz = digits.find_first_not_of('0');
  digits = nz == std::string::npos ? "0" : digits.substr(nz);
  return (neg && digits != "0") ? "-" + digits : digits;
}

CheckResult check_integer_answer(std::string_view answer, const std::string& gold) {
  std::string a = canonical_integer(answer), g = canonical_integer(gold);
  ZR_CHECK(!g.empty(), "gold answer '", gold, "' is not an integer");
  if (a.empty()) return {false, "not an integer"};
  if (a != g) return {false, "wrong value"};
  return {true, ""};
}

ArithmeticTask::ArithmeticTask(TaskConfig cfg)
    : Task(std::move(cfg)), multiply_(cfg_.name == "multiplication") {}

static uint64_t pow10(int d) {
  uint64_t p = 1;
  while (d-- > 0) p *= 10;
  return p;
}

uint64_t draw_operand(Rng& rng, int min_digits, int max_digits) {
  int d =
      min_digits + static_cast<int>(rng.below(static_cast<uint64_t>(max_digits - min_digits + 1)));
  uint64_t lo = d == 1 ? 0 : pow10(d - 1), hi = pow10(d);
  return lo + rng.below(hi - lo);
}

Example ArithmeticTask::draw(uint64_t rng_seed) const {
  Rng rng(rng_seed);
  uint64_t a = draw_operand(rng, cfg_.min_digits, cfg_.max_digits);
  uint64_t b = draw_operand(rng, cfg_.min_digits, cfg_.max_digits);
  Example ex;
  ex.task = cfg_.name;
  const char* op = multiply_ ? "*" : "+";
  ex.prompt = str_cat("What is ", a, " ", op, " ", b, "?");
  ex.answer = std::to_string(multiply_ ? a * b : a + b);
  ex.meta = {{"a", a}, {"b", b}, {"op", op}};
  return ex;
}

std::string ArithmeticTask::key(const Example& ex) const {
  return str_cat(ex.meta.at("a").get<uint64_t>(), ex.meta.at("op").get<std::string>(),
                 ex.meta.at("b").get<uint64_t>());
}

CheckResult ArithmeticTask::check(std::string_view answer, const Example& ex) const {
  return check_integer_answer(answer, ex.answer);
}

std::string worked_column_addition(uint64_t a, uint64_t b) {
  std::string sa = std::to_string(a), sb = std::to_string(b), out;
  size_t n = std::max(sa.size(), sb.size());
  int carry = 0;
  for (size_t i = 0; i < n; ++i) {
    int da = i < sa.size() ? sa[sa.size() - 1 - i] - '0' : 0;
    int db = i < sb.size() ? sb[sb.size() - 1 - i] - '0' : 0;
    int s = da + db + carry;
    out += str_cat(da, "+", db, carry ? "+1" : "", "=", s, ", write ", s % 10);
    carry = s / 10;
    out += carry ? " carry 1. " : ". ";
  }
  if (carry) out += "write 1. ";
  out += str_cat("So ", a, "+", b, "=", a + b, ".");
  return out;
}

static std::string worked_multiplication(uint64_t a, uint64_t b) {
  std::string sb = std::to_string(b), out;
  std::vector<uint64_t> partials;
  for (size_t i = 0; i < sb.size(); ++i) {
    uint64_t d = static_cast<uint64_t>(sb[sb.size() - 1 - i] - '0');
    uint64_t p = a * d * pow10(static_cast<int>(i));
    partials.push_back(p);
    out += str_cat(a, "*", d, i ? std::string(i, '0') : "", "=", p, ". ");
  }
  if (partials.size() > 1) {
    uint64_t acc = partials[0];
    for (size_t i = 1; i < partials.size(); ++i) {
      out += str_cat(acc, "+", partials[i], "=", acc + partials[i], ". ");
      acc += partials[i];
    }
  }
  out += str_cat("So ", a, "*", b, "=", a * b, ".");
  return out;
}

std::string ArithmeticTask::worked_solution(const Example& ex) const {
  uint64_t a = ex.meta.at("a").get<uint64_t>(), b = ex.meta.at("b").get<uint64_t>();
  return multiply_ ? worked_multiplication(a, b) : worked_column_addition(a, b);
}

}  // namespace zerorl::data
