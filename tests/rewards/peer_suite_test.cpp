// The peer suites (tests/rewards/peer_suites/*.jsonl, vendored with their
// sources named in its README): verdicts other graders' own tests pin.  Reports agreement per
// category; fails below 95% on math_verify_cases.jsonl and 90% on other_grader_cases.jsonl, and
// fails for any disagreement not listed (as `file:line`) in docs/REWARDS.md, so every deliberate
// disagreement carries a written reason.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "rewards/math/grader.h"

namespace zr = zerorl::rewards::math;
namespace fs = std::filesystem;

namespace {

fs::path suite_dir() { return fs::path(ZR_SOURCE_DIR) / "tests" / "rewards" / "peer_suites"; }

// The suites ship with the repository: a missing file is a broken checkout.
// Outside CI (a trimmed copy) it is a skip naming the file; under CI=true a
// failure, so a lost file can never turn the check into a silent skip.
bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

#define REQUIRE_SUITE(file)                                             \
  do {                                                                  \
    const fs::path p = suite_dir() / (file);                            \
    if (!fs::exists(p)) {                                               \
      if (in_ci()) FAIL() << "peer suite missing under CI=true: " << p; \
      GTEST_SKIP() << "peer suite not found at " << p;                  \
    }                                                                   \
  } while (0)

std::string read_file(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The grader options a Math-Verify test case used (match types, precision).
zr::GradeOptions options_for(const nlohmann::json& c) {
  zr::GradeOptions o;
  o.extract.answer_tag = true;
  if (!c.contains("config")) {
    o.extract.whole_text = true;
    return o;
  }
  const auto& cfg = c["config"];
  bool latex = true, expr = true;
  if (cfg.contains("match_types")) {
    latex = expr = false;
    for (auto& m : cfg["match_types"]) {
      if (m == "latex") latex = true;
      if (m == "expr") expr = true;
    }
  }
  o.extract.boxed = true;
  o.extract.latex = latex;
  o.extract.phrases = true;
  o.extract.last_number = expr;
  o.extract.whole_text = expr;
  o.parse.decimal_comma = expr && !latex;
  if (cfg.contains("precision")) o.compare.precision = cfg["precision"].get<int>();
  if (cfg.contains("allow_set_relation_comp"))
    o.compare.allow_set_relation_comp = cfg["allow_set_relation_comp"].get<bool>();
  if (cfg.contains("strict")) o.compare.strict = cfg["strict"].get<bool>();
  return o;
}

struct Tally {
  int agree = 0, total = 0;
};

double run_suite(const std::string& file, std::vector<std::string>& unlisted) {
  fs::path p = suite_dir() / file;
  std::ifstream in(p);
  EXPECT_TRUE(in.good()) << "cannot read " << p;
  std::string docs = read_file(fs::path(ZR_SOURCE_DIR) / "docs" / "REWARDS.md");
  std::map<std::string, Tally> by_cat;
  Tally all;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    auto c = nlohmann::json::parse(line);
    zr::GradeOptions o = options_for(c);
    zr::Verdict v = zr::grade(c["gold"].get<std::string>(), c["pred"].get<std::string>(), o);
    bool expected = c["expected"].get<bool>();
    std::string cat = c["category"].get<std::string>();
    auto& t = by_cat[cat];
    ++t.total;
    ++all.total;
    if (v.correct == expected) {
      ++t.agree;
      ++all.agree;
    } else {
      std::string key = file + ":" + std::to_string(lineno);
      bool listed = docs.find("`" + key + "`") != std::string::npos;
      std::printf("  disagree %s%s [%s] expected=%d got=%d extracted='%.80s' reason=%s\n",
                  key.c_str(), listed ? "" : " (NOT LISTED in docs/REWARDS.md)", cat.c_str(),
                  (int)expected, (int)v.correct, v.extracted.c_str(), v.reason.c_str());
      if (!listed) unlisted.push_back(key);
    }
  }
  std::printf("%s: agreement %d/%d = %.1f%%\n", file.c_str(), all.agree, all.total,
              100.0 * all.agree / std::max(1, all.total));
  for (auto& [cat, t] : by_cat) std::printf("  %-48s %3d/%3d\n", cat.c_str(), t.agree, t.total);
  return all.total ? (double)all.agree / all.total : 0.0;
}

}  // namespace

TEST(PeerSuite, MathVerifyCasesAgreeAtLeast95Percent) {
  REQUIRE_SUITE("math_verify_cases.jsonl");
  std::vector<std::string> unlisted;
  double rate = run_suite("math_verify_cases.jsonl", unlisted);
  EXPECT_GE(rate, 0.95);
  EXPECT_TRUE(unlisted.empty()) << unlisted.size()
                                << " disagreements are not listed in docs/REWARDS.md";
}

TEST(PeerSuite, OtherGraderCasesAgreeAtLeast90Percent) {
  REQUIRE_SUITE("other_grader_cases.jsonl");
  std::vector<std::string> unlisted;
  double rate = run_suite("other_grader_cases.jsonl", unlisted);
  EXPECT_GE(rate, 0.90);
  EXPECT_TRUE(unlisted.empty()) << unlisted.size()
                                << " disagreements are not listed in docs/REWARDS.md";
}
