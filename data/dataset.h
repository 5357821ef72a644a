// Datasets of prompts: JSONL files or a synthetic task, and the loading
// config a recipe's `data:` section builds.
//
// JSONL: one JSON object per line; blank lines are ignored.  The prompt and
// gold answer fields are configurable; "auto" takes the first present of
// prompt/question/problem and answer/ground_truth/solution.  A non-string
// answer (e.g. 72) is kept as its JSON text.  Optional "task" (string) and
// "id" (string) fields are carried along; every other field of the row
// joins Example::meta (what rewards see as metadata_json), merged into an
// optional "meta" object, whose own entries win a clash.  A malformed line (bad JSON, not
// an object, a missing or non-string prompt, a missing answer) is an Error
// naming file:line, or, with on_malformed: skip, is skipped and counted.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "data/curriculum.h"
#include "data/example.h"
#include "data/task.h"

namespace zerorl {
class ConfigNode;
}

namespace zerorl::data {

struct DatasetConfig {
  std::string source = "jsonl";  // jsonl | task
  std::string path;              // jsonl: the training file
  std::string test_path;         // jsonl: the held-out file (evaluation)
  std::string prompt_field = "auto";
  std::string answer_field = "auto";
  std::string on_malformed = "error";  // error | skip
  TaskConfig task;                     // source: task
  size_t train_size = 10000;           // source: task
  size_t test_size = 500;              // source: task
  // How PromptSource walks the examples.
  bool shuffle = true;
  uint64_t seed = 0;
  uint64_t epochs = 0;  // 0 = unlimited
  // An adaptive curriculum over the problems' levels (data/curriculum.h);
  // off unless a `curriculum:` sub-section is present.
  CurriculumConfig curriculum;

  // Reads a `data:` section; a `task:` sub-section when source is task.  With
  // source: jsonl a missing file is reported here, before any compute.
  static DatasetConfig from(const ConfigNode& n);
};

struct JsonlLoad {
  std::vector<Example> examples;
  size_t skipped = 0;                     // malformed lines skipped
  std::vector<std::string> skip_reasons;  // "file:line: why", the first 10
};

JsonlLoad load_jsonl(const std::string& path, const std::string& prompt_field = "auto",
                     const std::string& answer_field = "auto", bool skip_malformed = false);

// The examples of a split: the jsonl file (path or test_path) or the task's
// generated split.  Skipped lines are logged as a warning with their count.
std::vector<Example> load_examples(const DatasetConfig& cfg, Split split);

// Write examples as JSONL (Example::to_jsonl per line); throws on I/O errors.
void write_jsonl(const std::string& path, const std::vector<Example>& examples);

}  // namespace zerorl::data
