// zerorl tokenize: text lines on stdin -> JSON id lists on stdout, and back.
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "data/utf8.h"
#include "core/error.h"
#include "data/char_tokenizer.h"
#include "data/tokenizer.h"

namespace zerorl::cli {

static const char* kUsage =
    "usage: zerorl tokenize --tokenizer FILE [--decode] [--skip-special]\n"
    "\n"
    "Without --decode, each line on stdin (without its newline) is encoded and\n"
    "printed as a JSON list of ids, one list per line.  With --decode, each line\n"
    "on stdin is a JSON list of ids and the decoded text is printed, one per line.\n"
    "No BOS/EOS is added.  A line that is not valid UTF-8 is skipped with a\n"
    "message naming its line number; the exit status is then 1.\n"
    "\n"
    "  --tokenizer FILE   a Hugging Face tokenizer.json (or its folder), a zerorl\n"
    "                     char tokenizer JSON, or 'char' for the built-in vocabulary\n"
    "                     of the synthetic tasks\n"
    "  --decode           ids -> text\n"
    "  --skip-special     with --decode, leave special tokens out\n";

static int run_tokenize(Args& args) {
  std::string path = args.value("--tokenizer");
  bool decode = args.flag("--decode");
  bool skip_special = args.flag("--skip-special");
  args.finish();
  if (skip_special && !decode) throw UsageError("--skip-special applies to --decode only");
  std::unique_ptr<data::Tokenizer> tok =
      path == "char" ? std::make_unique<data::CharTokenizer>(data::CharTokenizer::for_tasks())
                     : data::load_tokenizer(path);
  std::string line;
  size_t lineno = 0, skipped = 0;
  while (std::getline(std::cin, line)) {
    ++lineno;
    if (!decode) {
      const size_t bad = data::utf8_invalid_offset(line);
      if (bad != std::string::npos) {
        std::cerr << "zerorl tokenize: stdin line " << lineno << ": not valid UTF-8 (byte " << bad
                  << "); skipped\n";
        ++skipped;
        continue;
      }
      std::cout << nlohmann::json(tok->encode(line)).dump() << '\n';
      continue;
    }
    std::vector<int32_t> ids;
    try {
      ids = nlohmann::json::parse(line).get<std::vector<int32_t>>();
    } catch (const nlohmann::json::exception& e) {
      throw Error(
          str_cat("stdin line ", lineno, ": expected a JSON list of integer ids (", e.what(), ")"));
    }
    std::cout << tok->decode(ids, skip_special) << '\n';
  }
  if (skipped) {
    std::cerr << "zerorl tokenize: " << skipped << " of " << lineno
              << " lines skipped (not valid UTF-8)\n";
    return 1;
  }
  return 0;
}

ZR_REGISTER_COMMAND(tokenize, "text lines on stdin -> JSON id lists (and back)", kUsage,
                    run_tokenize);

}  // namespace zerorl::cli
