#include "rollout/token_text.h"

#include <algorithm>

#include "core/error.h"
#include "data/tokenizer.h"

namespace zerorl::rollout {

TokenText::TokenText(std::vector<std::string> bytes) : bytes_(std::move(bytes)) {}

TokenText TokenText::from_tokenizer(const data::Tokenizer& tok) {
  std::vector<std::string> bytes(static_cast<size_t>(tok.vocab_size()));
  for (int32_t id = 0; id < tok.vocab_size(); ++id)
    bytes[static_cast<size_t>(id)] = tok.decode(&id, 1, true);
  return TokenText(std::move(bytes));
}

TokenText TokenText::from_function(int64_t vocab_size,
                                   const std::function<std::string(int64_t)>& bytes_of) {
  ZR_CHECK(vocab_size >= 0, "TokenText: negative vocab_size ", vocab_size);
  std::vector<std::string> bytes(static_cast<size_t>(vocab_size));
  for (int64_t id = 0; id < vocab_size; ++id) bytes[static_cast<size_t>(id)] = bytes_of(id);
  return TokenText(std::move(bytes));
}

const std::string& TokenText::bytes(int64_t id) const {
  ZR_CHECK(id >= 0 && id < vocab_size(), "TokenText: token id ", id, " out of range [0, ",
           vocab_size(), ")");
  return bytes_[static_cast<size_t>(id)];
}

std::string TokenText::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  for (int64_t id : ids) out += bytes(id);
  return out;
}

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (size_t i = 0; i < stops_.size(); ++i)
    ZR_CHECK(!stops_[i].empty(), "stop string ", i, " is empty");
}

size_t StopMatcher::find_new(std::string_view text, size_t old_size) const {
  size_t best = npos;
  for (const std::string& s : stops_) {
    if (s.size() > text.size()) continue;
    // An occurrence ending in the new bytes starts at or after this.
    const size_t from = old_size >= s.size() - 1 ? old_size - (s.size() - 1) : 0;
    const size_t pos = text.find(s, from);
    if (pos != std::string_view::npos) best = std::min(best, pos + s.size());
  }
  return best;
}

namespace {

// Number of bytes of the valid UTF-8 sequence at b[i], or -k where k >= 1 is
// the length of the maximal invalid subpart to replace by one U+FFFD.
int utf8_sequence(std::string_view b, size_t i) {
  const auto c0 = static_cast<unsigned char>(b[i]);
  if (c0 < 0x80) return 1;
  int len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c0 >= 0xC2 && c0 <= 0xDF) {
    len = 2;
  } else if (c0 >= 0xE0 && c0 <= 0xEF) {
    len = 3;
    if (c0 == 0xE0) lo = 0xA0;
    if (c0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (c0 >= 0xF0 && c0 <= 0xF4) {
    len = 4;
    if (c0 == 0xF0) lo = 0x90;
    if (c0 == 0xF4) hi = 0x8F;  // <= U+10FFFF
  } else {
    return -1;
  }
  for (int k = 1; k < len; ++k) {
    if (i + static_cast<size_t>(k) >= b.size()) return -k;
    const auto c = static_cast<unsigned char>(b[i + static_cast<size_t>(k)]);
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (c < l || c > h) return -k;
  }
  return len;
}

}  // namespace

std::string utf8_sanitize(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const int n = utf8_sequence(bytes, i);
    if (n > 0) {
      out.append(bytes.substr(i, static_cast<size_t>(n)));
      i += static_cast<size_t>(n);
    } else {
      out += "\xEF\xBF\xBD";
      i += static_cast<size_t>(-n);
    }
  }
  return out;
}

size_t utf8_complete_prefix(std::string_view bytes) {
  // Look back at most 3 bytes for a lead byte whose sequence is cut short.
  const size_t n = bytes.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(bytes[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking
    size_t need = 1;
    if (c >= 0xC0 && c <= 0xDF)
      need = 2;
    else if (c >= 0xE0 && c <= 0xEF)
      need = 3;
    else if (c >= 0xF0 && c <= 0xF7)
      need = 4;
    return need > back ? n - back : n;
  }
  return n;
}

}  // namespace zerorl::rollout
