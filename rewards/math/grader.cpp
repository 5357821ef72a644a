#include "rewards/math/grader.h"

#include <algorithm>
#include <cctype>

namespace zerorl::rewards::math {
namespace {

std::string squash(const std::string& s) {
  std::string o;
  for (char c : s)
    if (!std::isspace((unsigned char)c)) o += c;
  return o;
}

struct Parsed {
  NodeP node;
  std::string norm;
  std::string why;
  bool percent = false;  // written as a percentage (normalize_answer drops the sign)
};

bool has_percent(const std::string& answer) {
  return answer.find('%') != std::string::npos || answer.find("percent") != std::string::npos ||
         answer.find("pct") != std::string::npos;
}

Parsed parse(const std::string& answer, const GradeOptions& opt, Budget& b) {
  Parsed p;
  p.norm = normalize_answer(answer, opt.parse);
  p.node = parse_answer(p.norm, opt.parse, b, &p.why);
  p.percent = has_percent(answer);
  return p;
}

// A percentage read as its fraction: "25\%" -> 25/100.
Parsed as_fraction(const Parsed& pct, const GradeOptions& opt, Budget& b) {
  Parsed f;
  f.norm = "\\frac{" + pct.norm + "}{100}";
  f.node = parse_answer(f.norm, opt.parse, b, &f.why);
  return f;
}

Verdict compare_parsed(const Parsed& g, const Parsed& p, const GradeOptions& opt, Budget& b) {
  Verdict v;
  // Identical answers are equal without evaluating them (10^{10^{10}} too).
  if (!g.norm.empty() && squash(g.norm) == squash(p.norm)) {
    v.correct = true;
    v.reason = "same text";
    return v;
  }
  if (g.node && p.node) {
    Comparison c = equivalent(g.node, p.node, opt.compare, b);
    // A percentage equals its number and its fraction (25\% = 25 = 0.25),
    // as in Math-Verify.
    if (!c.equal && g.percent != p.percent) {
      const Parsed f = as_fraction(g.percent ? g : p, opt, b);
      if (f.node) {
        Comparison cf = g.percent ? equivalent(f.node, p.node, opt.compare, b)
                                  : equivalent(g.node, f.node, opt.compare, b);
        if (cf.equal) c = cf, c.how += " (percentage as a fraction)";
      }
    }
    v.correct = c.equal;
    v.reason = c.how;
    return v;
  }
  // One side is unreadable: the normalised texts must match exactly.
  bool same = !g.norm.empty() && squash(g.norm) == squash(p.norm);
  v.correct = same;
  v.reason = std::string(same ? "same text" : "different text") + " (" +
             (!g.node ? "gold: " + g.why : "answer: " + p.why) + ")";
  return v;
}

Budget make_budget(const GradeOptions& opt) {
  Budget b;
  b.deadline = std::chrono::steady_clock::now() +
               std::chrono::microseconds((long long)(opt.timeout_ms * 1000.0));
  return b;
}

}  // namespace

Verdict grade(const std::string& gold, const std::string& completion_in, const GradeOptions& opt) {
  Verdict v;
  std::string extracted, method;
  try {
    Budget b = make_budget(opt);
    std::string gold_answer = extract_gold(gold);
    if (gold_answer.empty()) {
      v.reason = "empty gold answer";
      return v;
    }
    // The answer is at the end: keep the tail of an over-long completion.
    const std::string& completion =
        completion_in.size() > opt.max_completion_bytes
            ? completion_in.substr(completion_in.size() - opt.max_completion_bytes)
            : completion_in;
    auto cands = extract_candidates(completion, opt.extract);
    if (cands.empty()) {
      v.reason = "no answer found";
      return v;
    }
    extracted = cands[0].text;
    method = cands[0].method;
    Parsed g = parse(gold_answer, opt, b);
    // The first candidate that parses is the answer; if none parses (or the
    // gold does not), the first one is compared as text.
    size_t pick = 0;
    Parsed p;
    bool parsed = false;
    for (size_t i = 0; i < cands.size() && i < 4 && g.node; ++i) {
      if (cands[i].text.empty()) continue;
      Parsed q = parse(cands[i].text, opt, b);
      if (q.node) {
        p = q;
        pick = i;
        parsed = true;
        break;
      }
    }
    if (!parsed) p = parse(cands[0].text, opt, b);
    extracted = cands[pick].text;
    method = cands[pick].method;
    v = compare_parsed(g, p, opt, b);
    v.reason = method + ": " + v.reason;
  } catch (const BudgetExceeded& e) {
    v.correct = false;
    v.reason = (e.why == "deadline" ? "timeout" : "bounded work: " + e.why);
  } catch (const std::exception& e) {
    v.correct = false;
    v.reason = std::string("grader error: ") + e.what();
  }
  v.extracted = extracted;
  return v;
}

Verdict compare_answers(const std::string& gold, const std::string& pred, const GradeOptions& opt) {
  Verdict v;
  try {
    Budget b = make_budget(opt);
    std::string ga = extract_gold(gold), pa = extract_gold(pred);
    v.extracted = pa;
    if (ga.empty() || pa.empty()) {
      v.reason = ga.empty() ? "empty gold answer" : "empty answer";
      return v;
    }
    Parsed g = parse(ga, opt, b), p = parse(pa, opt, b);
    std::string extracted = v.extracted;
    v = compare_parsed(g, p, opt, b);
    v.extracted = extracted;
  } catch (const BudgetExceeded& e) {
    v.correct = false;
    v.reason = (e.why == "deadline" ? "timeout" : "bounded work: " + e.why);
  } catch (const std::exception& e) {
    v.correct = false;
    v.reason = std::string("grader error: ") + e.what();
  }
  return v;
}

}  // namespace zerorl::rewards::math
