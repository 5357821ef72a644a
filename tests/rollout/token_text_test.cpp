// Incremental detokenisation: stop strings found across token boundaries
// (including inside a UTF-8 character), earliest match wins, and texts made
// valid UTF-8 the way Python's bytes.decode(errors="replace") does.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "data/char_tokenizer.h"
#include "rollout/token_text.h"

namespace zerorl::rollout {
namespace {

// Feed pieces one by one; return (index of the piece that completed a stop,
// end offset) or (-1, npos).
std::pair<int, size_t> feed(const StopMatcher& m, const std::vector<std::string>& pieces) {
  std::string text;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const size_t old = text.size();
    text += pieces[i];
    const size_t end = m.find_new(text, old);
    if (end != StopMatcher::npos) return {static_cast<int>(i), end};
  }
  return {-1, StopMatcher::npos};
}

TEST(StopMatcher, FindsAStopStringSplitOverTokens) {
  StopMatcher m({"</answer>"});
  auto [i, end] = feed(m, {"42", "</an", "sw", "er", ">tail"});
  EXPECT_EQ(i, 4);
  EXPECT_EQ(end, std::string("42</answer>").size());
  // Split one byte at a time too.
  std::vector<std::string> bytes;
  for (char c : std::string("x</answer>")) bytes.emplace_back(1, c);
  EXPECT_EQ(feed(m, bytes).first, 9);
  // A near miss is not a match.
  EXPECT_EQ(feed(m, {"</answ", "er", " >"}).first, -1);
}

TEST(StopMatcher, EarliestEndingStopWinsWithinOnePiece) {
  StopMatcher m({"cdef", "de"});
  auto [i, end] = feed(m, {"abc", "defg"});
  EXPECT_EQ(i, 1);
  EXPECT_EQ(end, 5u);  // "de" ends at 5, before "cdef" at 6
}

TEST(StopMatcher, MatchesInsideAMultibyteCharacterSplitAcrossTokens) {
  // "é" is C3 A9; a byte-level token may end between the two bytes.
  StopMatcher m({"\xC3\xA9!"});
  EXPECT_EQ(feed(m, {"caf\xC3", "\xA9", "!"}).first, 2);
}

TEST(Utf8, SanitizeReplacesLikePythonErrorsReplace) {
  // Python: b"a\xe4\xbdb".decode(errors="replace") == "a\ufffdb"
  EXPECT_EQ(utf8_sanitize("a\xE4\xBD"
                          "b"),
            "a\xEF\xBF\xBD"
            "b");
  // b"\xff\xfe" -> two replacement characters
  EXPECT_EQ(utf8_sanitize("\xFF\xFE"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  // surrogate b"\xed\xa0\x80" -> three (the maximal subpart is one byte each)
  EXPECT_EQ(utf8_sanitize("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  // truncated at the end
  EXPECT_EQ(utf8_sanitize("ok\xF0\x9F\x98"), "ok\xEF\xBF\xBD");
  const std::string valid = "h\xC3\xA9llo \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80";
  EXPECT_EQ(utf8_sanitize(valid), valid);
}

TEST(Utf8, CompletePrefixStopsBeforeACutCharacter) {
  EXPECT_EQ(utf8_complete_prefix("ab\xE4\xBD"), 2u);
  EXPECT_EQ(utf8_complete_prefix("ab\xE4\xBD\xA0"), 5u);
  EXPECT_EQ(utf8_complete_prefix("ab\xF0"), 2u);
  EXPECT_EQ(utf8_complete_prefix("abc"), 3u);
}

TEST(TokenText, FromTokenizerMatchesDecodeAndDropsSpecials) {
  const data::CharTokenizer tok = data::CharTokenizer::for_tasks();
  const TokenText text = TokenText::from_tokenizer(tok);
  ASSERT_EQ(text.vocab_size(), tok.vocab_size());
  const std::vector<int32_t> ids = tok.encode("<think>1+2</think> <answer>3</answer>");
  std::vector<int64_t> ids64(ids.begin(), ids.end());
  EXPECT_EQ(text.decode(ids64), tok.decode(ids));
  ASSERT_GE(tok.eos_id(), 0);
  EXPECT_EQ(text.bytes(tok.eos_id()), "");
  EXPECT_THROW(text.bytes(tok.vocab_size()), Error);
}

}  // namespace
}  // namespace zerorl::rollout
