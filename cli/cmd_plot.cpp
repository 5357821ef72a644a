// zerorl plot RUN_DIR: PNG curves from a run's metrics.jsonl (and eval.jsonl).
#include <iostream>
#include <string>

#include "cli/command.h"
#include "core/error.h"
#include "trainer/plot.h"

namespace zerorl::cli {

static const char* kUsage =
    "usage: zerorl plot RUN_DIR [--chart NAME=KEY[,KEY...]]...\n"
    "\n"
    "Draws line charts over training steps from RUN_DIR/metrics.jsonl (and\n"
    "RUN_DIR/eval.jsonl) into RUN_DIR/plots/NAME.png and prints their paths.\n"
    "Default charts: reward, accuracy, response_length, kl, entropy,\n"
    "clip_fraction, eval -- each drawn when its metrics exist.\n"
    "\n"
    "  --chart NAME=KEYS   draw this chart instead of the defaults (repeatable).\n"
    "                      KEYS: metric names separated by ',', one line each;\n"
    "                      'a|b' takes the first of a, b present; 'eval:KEY'\n"
    "                      reads eval.jsonl; nested keys are joined by '/'\n"
    "                      (e.g. time/rollout).\n";

static int run_plot(Args& args) {
  std::vector<std::string> chart_args = args.values("--chart");
  std::vector<std::string> pos = args.positionals();
  args.finish();
  if (pos.size() != 1) throw UsageError("expected one RUN_DIR");
  std::vector<ChartSpec> charts;
  try {
    for (const std::string& c : chart_args) charts.push_back(parse_chart_spec(c));
  } catch (const Error& e) {
    throw UsageError(std::string("--chart: ") + e.what());
  }
  if (charts.empty()) charts = default_chart_specs();
  std::vector<std::string> written = plot_run(pos[0], charts);
  ZR_CHECK(!written.empty(), "no chart drawn: '", pos[0],
           "/metrics.jsonl' has none of the charts' keys (is it empty?)");
  for (const std::string& p : written) std::cout << p << "\n";
  return 0;
}

ZR_REGISTER_COMMAND(plot, "PNG curves from metrics.jsonl", kUsage, run_plot);

}  // namespace zerorl::cli
