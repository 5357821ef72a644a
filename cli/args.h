// A small command-line reader for subcommands (the recipe carries the knobs;
// flags are few).  Flags are `--name value`, `--name=value` or boolean
// `--name`; everything else is positional (including `key=value` overrides).
//
// Usage inside a command:
//   auto model = args.value("--model");                   // required flag
//   int n = args.int_value("--max-new-tokens", 64);       // optional, typed
//   bool greedy = args.flag("--greedy");
//   auto prompts = args.values("--prompt");               // repeatable
//   args.finish();   // throws UsageError naming any flag not consumed
// Bad values and unknown flags throw UsageError, which main() turns into exit 2.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace zerorl::cli {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Args {
 public:
  Args(std::vector<std::string> argv);  // arguments after the subcommand name

  bool flag(const std::string& name);  // boolean flag present?
  std::optional<std::string> optional_value(const std::string& name);
  std::string value(const std::string& name);  // required
  std::string value(const std::string& name, const std::string& dflt);
  long long int_value(const std::string& name, long long dflt);
  double double_value(const std::string& name, double dflt);
  std::vector<std::string> values(const std::string& name);  // repeatable
  // Positional arguments (not starting with "--"), in order.
  std::vector<std::string> positionals();
  bool help_requested() const;
  // Throws UsageError if any "--flag" was not consumed by the calls above.
  void finish() const;

 private:
  struct Item {
    std::string text;
    bool used = false;
  };
  std::vector<Item> items_;
  // index of the value item for flag at i, or -1
  int value_index(size_t i) const;
};

}  // namespace zerorl::cli
