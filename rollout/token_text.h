// Incremental detokenisation for rollout: the bytes each token adds to the
// completion text, stop-string matching across token boundaries, and making
// the final text valid UTF-8.
//
// Why per-token bytes: zerorl tokenizers (data/tokenizer.h) promise that
// decode(ids) is the concatenation of the tokens' bytes.  The engine therefore
// appends one table entry per sampled token -- O(1) per token, no re-decoding
// of the whole completion -- and matches stop strings on the raw bytes.  A
// byte-level BPE token may hold half of a multi-byte UTF-8 character; byte
// matching does not care, and a stop string split over any number of tokens
// (or inside a character's bytes) is found as soon as its last byte arrives.
//
// The engine does not depend on a particular tokenizer: build a TokenText
// from a data::Tokenizer, or from any id -> bytes function (tests, other
// tokenizers).  Immutable after construction; share it between threads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace zerorl::data {
class Tokenizer;
}

namespace zerorl::rollout {

class TokenText {
 public:
  // bytes[id] is what token `id` adds to the text ("" for special tokens that
  // are left out of the text).
  explicit TokenText(std::vector<std::string> bytes);
  // Every id in [0, vocab_size): decode({id}) with skip_special = true, so
  // special tokens (end-of-text, padding) do not appear in completion text.
  static TokenText from_tokenizer(const data::Tokenizer& tok);
  static TokenText from_function(int64_t vocab_size,
                                 const std::function<std::string(int64_t)>& bytes_of);

  int64_t vocab_size() const { return static_cast<int64_t>(bytes_.size()); }
  // Throws zerorl::Error for an id out of range.
  const std::string& bytes(int64_t id) const;
  // Concatenated bytes of `ids` (may end inside a UTF-8 character).
  std::string decode(const std::vector<int64_t>& ids) const;

 private:
  std::vector<std::string> bytes_;
};

// Finds the earliest occurrence of any stop string in a text that grows at
// the end.  Cost per append is O(appended bytes x stop strings), never a
// rescan of the whole text.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops = {});
  bool empty() const { return stops_.empty(); }
  // Call after `text` grew from old_size bytes to text.size().  Returns the
  // end offset (one past the last byte) of the earliest-ending stop string
  // that ends in the new bytes, or npos.
  size_t find_new(std::string_view text, size_t old_size) const;
  static constexpr size_t npos = static_cast<size_t>(-1);

 private:
  std::vector<std::string> stops_;
};

// `bytes` with every invalid or truncated UTF-8 sequence replaced by U+FFFD
// (as Python's bytes.decode(errors="replace") does), so that text can go into
// JSON.  Valid input is returned unchanged.
std::string utf8_sanitize(std::string_view bytes);

// Length of the longest prefix of `bytes` that does not end inside a UTF-8
// character (for printing a growing text without splitting a character).
size_t utf8_complete_prefix(std::string_view bytes);

}  // namespace zerorl::rollout
