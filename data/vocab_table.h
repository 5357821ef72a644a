// The id <-> token-string table both tokenizers keep (bpe_tokenizer.h,
// char_tokenizer.h): ids are dense in [0, size()), `index` names each token
// string's id, and `special` flags the special ids.  The owner fills the
// three members; the lookups below are the Tokenizer interface's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace zerorl::data {

struct VocabTable {
  std::vector<std::string> tokens;                 // id -> token string
  std::vector<uint8_t> special;                    // id -> is special
  std::unordered_map<std::string, int32_t> index;  // token string -> id

  int32_t size() const { return static_cast<int32_t>(tokens.size()); }
  // The id of an exact token string, -1 if none.
  int32_t id_of(std::string_view token) const {
    auto it = index.find(std::string(token));
    return it == index.end() ? -1 : it->second;
  }
  // Throws zerorl::Error for an id outside [0, size()).
  const std::string& token(int32_t id) const {
    ZR_CHECK(id >= 0 && id < size(), "token id ", id, " out of range [0, ", size(), ")");
    return tokens[static_cast<size_t>(id)];
  }
  bool is_special(int32_t id) const { return id >= 0 && id < size() && special[id]; }
  // Tokenizer::decode over a per-id text (the token strings, or their
  // bytes): the texts of ids[0..n) joined, special ids left out when
  // skip_special.  Throws zerorl::Error naming an id outside [0, size()).
  std::string join(const int32_t* ids, size_t n, bool skip_special,
                   const std::vector<std::string>& text_of) const {
    std::string out;
    for (size_t i = 0; i < n; ++i) {
      int32_t id = ids[i];
      ZR_CHECK(id >= 0 && id < size(), "decode: token id ", id, " out of range [0, ", size(), ")");
      if (skip_special && special[id]) continue;
      out += text_of[static_cast<size_t>(id)];
    }
    return out;
  }
};

}  // namespace zerorl::data
