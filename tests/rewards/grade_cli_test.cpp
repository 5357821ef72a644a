// `zerorl grade` end to end (needs the full build's zerorl binary).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

TEST(GradeCli, JsonLinesInVerdictsOutSummaryToStderr) {
  const fs::path bin = fs::path(ZR_BINARY_DIR) / "zerorl";
  if (!fs::exists(bin)) GTEST_SKIP() << "zerorl binary not built at " << bin;
  const fs::path in = fs::temp_directory_path() / ("zr_grade_in_" + std::to_string(::getpid()));
  const fs::path out = in.string() + ".out", err = in.string() + ".err";
  {
    std::ofstream f(in);
    f << R"({"gold": "\\frac{1}{2}", "completion": "<think>x</think><answer>0.5</answer>"})"
      << "\n"
      << R"({"gold": "42", "completion": "The answer is \\boxed{41}."})"
      << "\n"
      << "not json\n"
      << R"({"gold": "10^{10^{10}}", "completion": "\\boxed{10^{10^{11}}}"})"
      << "\n";
  }
  std::string cmd = bin.string() + " grade --summary < " + in.string() + " > " + out.string() +
                    " 2> " + err.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream o(out);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(o, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_TRUE(rows[0]["correct"].get<bool>());
  EXPECT_EQ(rows[0]["extracted"], "0.5");
  EXPECT_FALSE(rows[1]["correct"].get<bool>());
  EXPECT_EQ(rows[1]["extracted"], "41");
  EXPECT_NE(rows[2]["reason"].get<std::string>().find("bad input line 3"), std::string::npos);
  EXPECT_NE(rows[3]["reason"].get<std::string>().find("exponent too large"), std::string::npos);
  std::ifstream e(err);
  std::stringstream ss;
  ss << e.rdbuf();
  auto summary = nlohmann::json::parse(ss.str());
  EXPECT_EQ(summary["lines"], 4);
  EXPECT_EQ(summary["correct"], 1);
  EXPECT_EQ(summary["bad_lines"], 1);
  EXPECT_EQ(summary["timeout_or_bounded"], 1);
  // An unknown flag is a usage error: exit status 2.
  EXPECT_EQ(
      WEXITSTATUS(std::system((bin.string() + " grade --bogus < /dev/null 2>/dev/null").c_str())),
      2);
  for (auto& p : {in, out, err}) std::remove(p.c_str());
}
