// zerorl data: synthetic task splits and the pretraining corpus as JSONL.
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "core/error.h"
#include "data/corpus.h"
#include "data/task.h"

namespace zerorl::cli {

static const char* kUsage =
    "usage: zerorl data generate TASK [--split train|test] [--n N] [--seed S] [--out FILE]\n"
    "                           [task options]\n"
    "       zerorl data corpus [--task TASK] [--n N] [--seed S] [--out FILE]\n"
    "                          [--template tiny|r1zero] [--tagged-worked-fraction F]\n"
    "                          [--reflect-fraction F] [--reflect-confirm-fraction F]\n"
    "                          [--worked-check-fraction F] [--steps S] [--step-check-fraction F]\n"
    "                          [task options]\n"
    "\n"
    "generate writes N distinct problems of a split of TASK (addition, multiplication,\n"
    "sum, countdown) as JSONL {id, prompt, answer, task, meta}; train and test never share a\n"
    "problem, whatever the seeds.  corpus writes N pretraining documents {text, kind}\n"
    "(see docs/DATA.md; \"reflects\": true marks a self-check, \"slip\": true one that\n"
    "corrects a planted slip: --reflect-fraction of tagged worked solutions, task sum,\n"
    "--reflect-confirm-fraction of those confirming a right value instead;\n"
    "--worked-check-fraction of untagged worked solutions, half of them confirming; --steps\n"
    "is the step documents' share beside the default mix, --step-check-fraction the share of\n"
    "them that recheck their pair).  Output goes to --out, or stdout.\n"
    "\n"
    "task options (the difficulty knobs):\n"
    "  --min-digits D --max-digits D          addition, multiplication, sum (default 1..3)\n"
    "  --min-terms N --max-terms N            sum: numbers added, the level (default 2..4)\n"
    "  --chain running|remaining              sum: the worked chain's form (default running)\n"
    "  --num-count K --max-number M           countdown (default 4 numbers up to 50)\n"
    "  --min-target T --max-target T          countdown (default 10..200)\n"
    "  --test-fraction F                      share of problems held out (default 0.1)\n";

// Reads the task flags; call before Args::positionals() so that flag values
// are not taken for positional arguments.
static data::TaskConfig task_options(Args& args) {
  data::TaskConfig c;
  c.min_digits = static_cast<int>(args.int_value("--min-digits", c.min_digits));
  c.max_digits = static_cast<int>(args.int_value("--max-digits", c.max_digits));
  c.min_terms = static_cast<int>(args.int_value("--min-terms", c.min_terms));
  c.max_terms = static_cast<int>(args.int_value("--max-terms", c.max_terms));
  c.chain = args.value("--chain", c.chain);
  c.num_count = static_cast<int>(args.int_value("--num-count", c.num_count));
  c.max_number = static_cast<int>(args.int_value("--max-number", c.max_number));
  c.min_target = static_cast<int>(args.int_value("--min-target", c.min_target));
  c.max_target = static_cast<int>(args.int_value("--max-target", c.max_target));
  c.test_fraction = args.double_value("--test-fraction", c.test_fraction);
  return c;
}

static int run_data(Args& args) {
  long long n = args.int_value("--n", 1000);
  long long seed = args.int_value("--seed", 0);
  std::string out_path = args.value("--out", "-");
  auto split_opt = args.optional_value("--split");
  auto task_opt = args.optional_value("--task");
  auto tmpl_opt = args.optional_value("--template");
  auto tw_opt = args.optional_value("--tagged-worked-fraction");
  const double reflect = args.double_value("--reflect-fraction", 0.0);
  const double steps = args.double_value("--steps", 0.0);
  const double step_checks = args.double_value("--step-check-fraction", 0.0);
  const double worked_checks = args.double_value("--worked-check-fraction", 0.0);
  const double confirms = args.double_value("--reflect-confirm-fraction", 0.0);
  std::string split = split_opt.value_or("train");
  std::string task_flag = task_opt.value_or("addition");
  std::string tmpl = tmpl_opt.value_or("tiny");
  double tagged_worked = 0.25;
  if (tw_opt) {
    char* end = nullptr;
    tagged_worked = std::strtod(tw_opt->c_str(), &end);
    if (tw_opt->empty() || *end != '\0')
      throw UsageError("--tagged-worked-fraction expects a number, got '" + *tw_opt + "'");
  }
  data::TaskConfig task = task_options(args);
  auto pos = args.positionals();
  if (pos.empty()) throw UsageError("missing action: generate or corpus");
  if (n <= 0) throw UsageError("--n must be positive");
  if (seed < 0) throw UsageError("--seed must be non-negative");
  const std::string& action = pos[0];
  std::string task_name;
  if (action == "generate") {
    if (pos.size() != 2) throw UsageError("generate takes exactly one TASK");
    task_name = pos[1];
    if (split != "train" && split != "test") throw UsageError("--split must be train or test");
    if (task_opt || tmpl_opt || tw_opt || reflect != 0 || steps != 0 || step_checks != 0 ||
        worked_checks != 0 || confirms != 0)
      throw UsageError(
          "--task, --template, --tagged-worked-fraction, --reflect-fraction, "
          "--reflect-confirm-fraction, --worked-check-fraction, --steps and "
          "--step-check-fraction belong to 'corpus'");
  } else if (action == "corpus") {
    if (pos.size() != 1) throw UsageError("corpus takes no positional arguments (use --task)");
    task_name = task_flag;
    if (tmpl != "tiny" && tmpl != "r1zero") throw UsageError("--template must be tiny or r1zero");
    if (split_opt) throw UsageError("--split belongs to 'generate' (the corpus uses train only)");
  } else {
    throw UsageError("unknown action '" + action + "' (generate, corpus)");
  }
  if (task_name != "addition" && task_name != "multiplication" && task_name != "sum" &&
      task_name != "countdown")
    throw UsageError("unknown task '" + task_name + "' (addition, multiplication, sum, countdown)");
  task.name = task_name;
  task.seed = static_cast<uint64_t>(seed);
  try {
    task.validate();
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  args.finish();

  std::ofstream file;
  if (out_path != "-") {
    file.open(out_path, std::ios::binary);
    if (!file) throw Error("cannot write '" + out_path + "'");
  }
  std::ostream& out = out_path == "-" ? std::cout : file;
  if (action == "generate") {
    auto t = data::make_task(task);
    for (const auto& ex : t->generate_split(data::split_from_name(split), static_cast<size_t>(n)))
      out << ex.to_jsonl() << '\n';
  } else {
    data::CorpusConfig c;
    c.task = task;
    c.seed = static_cast<uint64_t>(seed);
    c.prompt_template.name = tmpl;
    c.tagged_worked_fraction = tagged_worked;
    c.reflect_fraction = reflect;
    c.steps = steps;
    c.step_check_fraction = step_checks;
    c.worked_check_fraction = worked_checks;
    c.reflect_confirm_fraction = confirms;
    try {
      c.validate();
    } catch (const Error& e) {
      throw UsageError(e.what());
    }
    data::CorpusGenerator gen(c);
    for (long long i = 0; i < n; ++i) {
      auto d = gen.document(static_cast<uint64_t>(i));
      nlohmann::json j = {{"text", d.text}, {"kind", data::doc_kind_name(d.kind)}};
      if (d.reflects) j["reflects"] = true;
      if (d.slip) j["slip"] = true;
      out << j.dump() << '\n';
    }
  }
  out.flush();
  if (!out) throw Error("write error on '" + out_path + "'");
  return 0;
}

ZR_REGISTER_COMMAND(data, "synthetic task splits and the pretraining corpus as JSONL", kUsage,
                    run_data);

}  // namespace zerorl::cli
