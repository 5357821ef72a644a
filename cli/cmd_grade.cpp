// zerorl grade: JSONL {gold, completion} on stdin -> {correct, extracted, reason}.
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "core/error.h"
#include "rewards/math/grader.h"

namespace zerorl::cli {

static const char* kGradeUsage =
    "usage: zerorl grade [--summary] [--precision N] [--timeout-ms MS]\n"
    "\n"
    "Reads JSON lines {\"gold\": ..., \"completion\": ...} on stdin and writes one\n"
    "{\"correct\": bool, \"extracted\": str, \"reason\": str} per line on stdout, with\n"
    "the math accuracy grader of the `math` reward (docs/REWARDS.md).  A line that\n"
    "is not such an object gets correct=false and a reason; grading goes on.\n"
    "\n"
    "  --summary         print the counts to stderr at the end\n"
    "  --precision N     decimal places for rounded comparison of decimals (6)\n"
    "  --timeout-ms MS   bound per line (1000)\n";

static int run_grade(Args& args) {
  bool summary = args.flag("--summary");
  rewards::math::GradeOptions opt;
  opt.compare.precision = (int)args.int_value("--precision", 6);
  opt.timeout_ms = args.double_value("--timeout-ms", 1000.0);
  args.finish();
  if (opt.compare.precision < 0 || opt.compare.precision > 15)
    throw UsageError("--precision must be in [0, 15]");
  if (!(opt.timeout_ms > 0)) throw UsageError("--timeout-ms must be > 0");

  long long lines = 0, correct = 0, no_answer = 0, bounded = 0, bad = 0;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++lines;
    nlohmann::json out;
    nlohmann::json in = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!in.is_object() || !in.contains("gold") || !in.contains("completion") ||
        !in["gold"].is_string() || !in["completion"].is_string()) {
      ++bad;
      out = {
          {"correct", false},
          {"extracted", ""},
          {"reason", str_cat("bad input line ", lines,
                             ": expected a JSON object with string \"gold\" and \"completion\"")}};
    } else {
      auto v = rewards::math::grade(in["gold"].get<std::string>(),
                                    in["completion"].get<std::string>(), opt);
      correct += v.correct;
      no_answer += v.extracted.empty();
      bounded += v.reason.rfind("timeout", 0) == 0 || v.reason.rfind("bounded work", 0) == 0;
      out = {{"correct", v.correct}, {"extracted", v.extracted}, {"reason", v.reason}};
    }
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  }
  std::cout.flush();
  if (summary) {
    nlohmann::json s = {{"lines", lines},
                        {"correct", correct},
                        {"incorrect", lines - correct - bad},
                        {"no_answer", no_answer},
                        {"timeout_or_bounded", bounded},
                        {"bad_lines", bad}};
    std::cerr << s.dump() << '\n';
  }
  return 0;
}

ZR_REGISTER_COMMAND(grade, "JSONL {gold, completion} on stdin -> {correct, extracted, reason}",
                    kGradeUsage, run_grade);

}  // namespace zerorl::cli
