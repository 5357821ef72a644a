// One prompt with its gold answer: what datasets, task generators and the
// corpus hand to the rollout, rewards and evaluation.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace zerorl::data {

struct Example {
  std::string id;      // stable: "addition/train/17", "train.jsonl:42"
  std::string prompt;  // the problem text, before any template
  std::string answer;  // the gold answer (a number, an expression, LaTeX...)
  std::string task;    // "addition", "multiplication", "countdown", or "" (free-form math)
  nlohmann::json meta =
      nlohmann::json::object();  // task data a checker needs (countdown: numbers, target)

  // {"id","prompt","answer","task","meta"} (one JSONL line, no newline).
  std::string to_jsonl() const;
};

}  // namespace zerorl::data
