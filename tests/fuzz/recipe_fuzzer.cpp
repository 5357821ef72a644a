// libFuzzer target over the recipe loader: YAML text (and, after a NUL,
// one override per line) through Recipe::from_string, apply_overrides, the
// data-side sections' validation, check_all_read and dump.  Bad input must
// end in zerorl::Error (which names the key and line); any other exception,
// a crash or a sanitizer report is a finding.  Run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "data/corpus.h"
#include "data/dataset.h"
#include "data/template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  const size_t cut = in.find('\0');
  const std::string yaml = in.substr(0, cut);
  std::vector<std::string> overrides;
  if (cut != std::string::npos) {
    std::istringstream ls(in.substr(cut + 1));
    for (std::string line; std::getline(ls, line);) overrides.push_back(line);
  }
  try {
    zerorl::Recipe r = zerorl::Recipe::from_string(yaml, "fuzz.yaml");
    r.apply_overrides(overrides);
    const auto root = r.root();
    if (root.has("data")) zerorl::data::DatasetConfig::from(r.section("data"));
    if (root.has("template")) zerorl::data::TemplateConfig::from(r.section("template"));
    if (root.has("corpus")) zerorl::data::CorpusConfig::from(r.section("corpus"));
    r.dump();
    r.check_all_read();
  } catch (const zerorl::Error&) {
  }
  return 0;
}
