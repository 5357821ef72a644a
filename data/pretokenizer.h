// The normalizer and pre-tokenizer stages of a Hugging Face byte-level BPE
// tokenizer, rebuilt from the "normalizer" and "pre_tokenizer" sections of a
// tokenizer.json.
//
// Supported (anything else is refused with an Error naming the type):
//   normalizer:    null, NFC (through ICU), Sequence of those;
//   pre_tokenizer: ByteLevel (use_regex -> the GPT-2 split pattern;
//                  add_prefix_space only as the first step), Split with a
//                  Regex or String pattern and any behaviour (Isolated,
//                  Removed, MergedWithPrevious, MergedWithNext, Contiguous)
//                  and invert, Digits, Sequence of those.
// Split patterns are compiled with PCRE2 in UTF + Unicode-property mode and
// JIT; they run on each current piece separately, as `tokenizers` runs its
// Oniguruma patterns, so a lookahead never sees past a piece.
//
// Thread-safety: both classes are immutable after construction; normalize()
// and split() may run concurrently.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace zerorl::data {

struct Span {
  uint32_t begin = 0, end = 0;  // byte offsets, [begin, end)
};

class Normalizer {
 public:
  static Normalizer from_json(const nlohmann::json& j, const std::string& source);
  bool identity() const { return !nfc_; }
  // The normalized text (valid UTF-8 in, valid UTF-8 out).
  std::string normalize(std::string_view text) const;

 private:
  bool nfc_ = false;
};

// NFC normal form of valid UTF-8 text (ICU); ASCII is returned unchanged fast.
std::string nfc_normalize(std::string_view text);

class PreTokenizer {
 public:
  static PreTokenizer from_json(const nlohmann::json& j, const std::string& source);
  // The GPT-2 / Qwen2 split patterns, exactly as their tokenizer.json carry them.
  static const char* gpt2_pattern();
  static const char* qwen2_pattern();

  // Pieces of text (valid UTF-8) in order; empty pieces are dropped.
  void split(std::string_view text, std::vector<Span>& pieces) const;
  bool add_prefix_space() const { return add_prefix_space_; }
  // Whether a ByteLevel step was present (byte-level BPE needs one).
  bool byte_level() const { return byte_level_; }

  struct Step;  // one Split-like stage (defined in the .cpp)

 private:
  void parse(const nlohmann::json& j, const std::string& source, bool first);
  std::vector<std::shared_ptr<const Step>> steps_;
  bool add_prefix_space_ = false;
  bool byte_level_ = false;
};

}  // namespace zerorl::data
