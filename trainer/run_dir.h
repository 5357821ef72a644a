// The run directory: everything a run writes, under <root>/<name>/.
//
//   recipe.resolved.yaml   the resolved recipe (Recipe::dump())
//   recipe.resolved.N.yaml the recipes of earlier segments, N = 1, 2, ...: a
//                          resume with a changed recipe keeps the one before
//   metrics.jsonl          one JSON object per step: {"step": N, <metric>: x, ...,
//                          "time": {<timing>: seconds, ...}}
//   samples.jsonl          one object per logged completion (prompt, completion,
//                          reward and its breakdown), every N steps
//   eval.jsonl             one object per evaluation: {"step": N, <metric>: x}
//   eval_samples.jsonl     one object per evaluated problem and evaluation: its
//                          greedy (or first) completion, answers and reasons
//                          (trainer/evaluate.h, EvalResult::samples)
//   summary.json           written at the end (write_summary)
//   checkpoints/           see trainer/checkpoint.h
//   plots/                 see trainer/plot.h
//   tb/                    TensorBoard event files, with `logging.tensorboard: true`
//                          (core/tensorboard.h): every metrics line's values as
//                          scalars tagged as metrics.jsonl names them once flattened
//                          ("reward/mean", "time/rollout"), every eval line's as
//                          "eval/<name>", every samples batch as the text table
//                          "samples"; one new events file per process (the
//                          first append opens it), flushed at every append
//
// Byte-stability: keys are sorted and doubles printed as the shortest text
// that reads back as the same double, so two runs that compute the same
// numbers write byte-identical lines.  Wall-clock values belong in the
// "time" sub-object (of metrics lines) so that everything else can be
// compared between runs.  NaN and infinities are written as null.
//
// The `step` of a line is the number of completed training steps when it was
// logged (Checkpoint::step after that step; evaluation before training is
// step 0).  Resuming from a checkpoint of step S calls truncate_after(S):
// lines with step > S (and a torn last line) are removed, so appending again
// never duplicates a step.  The same holds for tb/: truncate_after rewrites
// its events files without the events of step > S.  Each process's events
// file starts with a SessionLog START (step 0 in a fresh run, S + 1 after a
// resume): TensorBoard ignores the first and, on a later one, drops the
// events of step >= S + 1 it was already showing (a live view across a crash).
//
// Clobbering: a rerun never deletes work by accident.  Opening a directory
// fresh (kFresh) throws when it holds checkpoints (the message names
// `--resume auto` and `--overwrite`) or a run with a different
// recipe.resolved.yaml; without checkpoints and with the same recipe (a run
// that died before its first checkpoint) its previous outputs are removed
// (logged: metrics, samples, eval, summary, plots, tb, segment recipes).
// kOverwrite removes everything of the previous run, whatever its recipe.
// kResume keeps everything (which recipe changes a resume may bring is the
// trainer's to check).
//
// Multi-rank: only rank 0 constructs a RunDir (and should do so before the
// other ranks touch checkpoints/, then barrier); the others use
// run_dir_path() for paths.  Not thread-safe.  I/O errors throw
// zerorl::Error naming the file.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace zerorl {

class ConfigNode;
class EventFileWriter;

// The recipe's `logging` section: outputs of a run beyond its JSONL files.
struct LoggingConfig {
  bool tensorboard = false;  // TensorBoard event files in <run>/tb/

  static LoggingConfig from(const ConfigNode& n);
};

// <root>/<name>; the name must be [A-Za-z0-9._-]+ and not "." or "..".
std::string run_dir_path(const std::string& root, const std::string& name);

// The recipe's `run` section: the run's outputs go to <dir>/<name>/.
struct RunConfig {
  std::string name;  // required
  std::string dir = "runs";

  static RunConfig from(const ConfigNode& n);
  std::string path() const { return run_dir_path(dir, name); }
};

// The recipe's `log` section: level (debug | info | warn | error) of the
// console log (core/log.h).
struct LogConfig {
  std::string level = "info";

  static LogConfig from(const ConfigNode& n);
};

// One completion for samples.jsonl.
struct SampleRecord {
  int64_t index = 0;  // sample index within the step (prompt-major: prompt*G + g)
  std::string prompt;
  std::string completion;
  std::string gold;  // reference answer, may be empty
  double reward = 0;
  std::map<std::string, double> components;  // reward breakdown (accuracy, format, ...)
  std::string reason;                        // the rewards' errors, "; "-joined, may be empty
  // Per reward (by pipeline name): the answer it extracted and why it gave
  // its value (rewards::ScoredSample answers / reasons); empty ones are left out.
  std::map<std::string, std::string> answers, reasons;
  std::map<std::string, double> numbers;     // extra numeric fields (advantage, tokens, ...)
  std::map<std::string, std::string> texts;  // extra text fields (finish_reason, ...)
};

// One parsed metrics line, nested objects flattened with '/' ("time/rollout").
struct MetricsRow {
  int64_t step = 0;
  std::map<std::string, double> values;  // null -> NaN
};

class RunDir {
 public:
  enum class Mode { kFresh, kResume, kOverwrite };

  // Creates or reopens <root>/<name>/ and writes recipe.resolved.yaml (see
  // the top of this file for clobbering).  Creates empty metrics.jsonl,
  // samples.jsonl, eval.jsonl and eval_samples.jsonl when missing.
  RunDir(const std::string& root, const std::string& name, const std::string& resolved_recipe,
         Mode mode, const LoggingConfig& logging = {});
  ~RunDir();
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const;  // path() + "/" + name
  std::string checkpoints_dir() const { return file("checkpoints"); }
  std::string plots_dir() const { return file("plots"); }
  std::string tensorboard_dir() const { return file("tb"); }

  // Resume: drops every line with step > `step` from the three JSONL files
  // (atomically: rewrite to a temp file, rename), and every event with step
  // > `step` from tb/'s events files.  Unparseable lines and torn records (a
  // crash mid-write) are dropped with a warning.  Returns the number of lines
  // and events dropped.  Call it before the first append.
  int64_t truncate_after(int64_t step);

  // Appends one line; metric names may not be "step" or "time".
  void append_metrics(int64_t step, const std::map<std::string, double>& values,
                      const std::map<std::string, double>& timings = {});
  void append_samples(int64_t step, const std::vector<SampleRecord>& samples);
  void append_eval(int64_t step, const std::map<std::string, double>& values);
  // eval_samples.jsonl: each JSON object line (EvalResult::samples) with
  // "step" added.
  void append_eval_samples(int64_t step, const std::vector<std::string>& lines);
  // summary.json, pretty-printed, written atomically.
  void write_summary(const nlohmann::json& summary);

 private:
  void append_line(const std::string& file_name, const std::string& line);
  std::string next_segment_recipe() const;  // the first unused segment_recipe_name
  EventFileWriter* tensorboard();           // null unless logging.tensorboard
  std::string path_;
  LoggingConfig logging_;
  std::unique_ptr<EventFileWriter> tb_;  // opened by the first append
  int64_t resumed_after_ = -1;           // truncate_after's step
};

// "recipe.resolved.<n>.yaml": the recipe of a run's n-th segment that a
// later resume changed.
std::string segment_recipe_name(int n);

// The exact line append_metrics writes (without the newline).
std::string format_metrics_line(int64_t step, const std::map<std::string, double>& values,
                                const std::map<std::string, double>& timings);
// Reads a metrics.jsonl (or eval.jsonl); a line that does not parse or lacks
// "step" throws naming the file and line number.  Non-numeric values are skipped.
std::vector<MetricsRow> read_metrics_jsonl(const std::string& path);

// Writes `text` to `path` atomically (temp file, fsync, rename).
void write_file_atomic(const std::string& path, const std::string& text);

// Removes a file or a directory tree; a missing path is fine; throws
// zerorl::Error naming the first entry it cannot remove.  Use it instead of
// std::filesystem::remove_all: libtorch.so exports its own copy of the
// std::filesystem functions, and its remove_all segfaults on a non-empty
// directory (seen with torch 2.11 + GCC 12).
void remove_tree(const std::string& path);

}  // namespace zerorl
