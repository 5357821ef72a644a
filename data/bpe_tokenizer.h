// Byte-level BPE loaded from a Hugging Face tokenizer.json.
//
// Encoding follows `tokenizers`: (1) added tokens are cut out of the text
// (leftmost-longest match, honouring lstrip/rstrip/single_word); (2) each
// remaining segment is normalized and split by the pre-tokenizer
// (data/pretokenizer.h); (3) each piece's bytes are mapped to their GPT-2
// unicode images and merged by merge rank, lowest rank first and leftmost
// first on ties (with `ignore_merges`, a piece that is itself a vocabulary
// entry is taken whole).  Post-processors (BOS templates) are not applied.
//
// Refused with an Error naming the file: model types other than BPE, a BPE
// without a ByteLevel pre-tokenizer (e.g. SentencePiece-style Metaspace),
// byte_fallback, dropout, continuing_subword_prefix / end_of_word_suffix,
// unsupported normalizers and pre-tokenizers.
//
// Thread-safety: encode/decode are const; a piece cache behind a mutex makes
// repeated words cheap.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/pretokenizer.h"
#include "data/tokenizer.h"
#include "data/vocab_table.h"

namespace zerorl::data {

class ByteLevelBpe final : public Tokenizer {
 public:
  // `config` is a sibling tokenizer_config.json (may be null): its bos_token,
  // eos_token and pad_token name the special ids.  Without it, well-known
  // names (<|endoftext|>, </s>, <|end_of_text|>, ...) are looked up.
  ByteLevelBpe(const std::string& json_text, const nlohmann::json* config,
               const std::string& source);

  std::string kind() const override { return "byte_bpe"; }
  std::vector<int32_t> encode(std::string_view text) const override;
  using Tokenizer::decode;
  std::string decode(const int32_t* ids, size_t n, bool skip_special = false) const override;
  int32_t vocab_size() const override { return vocab_.size(); }
  int32_t token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  bool is_special(int32_t id) const override;
  std::string to_json() const override { return json_text_; }
  std::string to_hf_json() const override { return json_text_; }

  size_t num_merges() const { return merges_.size(); }

 private:
  struct AddedToken {
    std::string content;
    int32_t id;
    bool special, lstrip, rstrip, single_word;
  };
  struct Merge {
    int32_t rank, new_id;
  };

  void encode_segment(std::string_view text, std::vector<int32_t>& out) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  void merge_word(std::string_view piece, std::vector<int32_t>& out) const;
  int32_t find_special(const nlohmann::json* config, const char* key,
                       std::initializer_list<const char*> fallbacks) const;

  std::string json_text_;
  std::string source_;
  Normalizer normalizer_;
  PreTokenizer pre_;
  bool ignore_merges_ = false;
  int32_t unk_id_ = -1;

  VocabTable vocab_;                            // model + added tokens
  std::vector<std::string> token_bytes_;        // id -> decoded bytes
  std::array<int32_t, 256> byte_id_{};          // byte -> id of its one-byte token
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> merge

  std::vector<AddedToken> added_;  // sorted longest first
  std::array<bool, 256> added_first_byte_{};

  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace zerorl::data
