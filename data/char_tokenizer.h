// A character-level tokenizer for the synthetic tasks and the tiny models.
//
// Every id is one token string: a single character (a Unicode code point) or
// a multi-character token such as "<think>" or "<eos>".  Encoding takes, at
// each position, the longest multi-character token that matches, else the
// character; a character outside the vocabulary becomes <unk> when the
// vocabulary has one and is an Error (naming the character and byte offset)
// otherwise.  Special tokens (<pad>, <bos>, <eos>, <unk>) are matched in text
// like any multi-character token, as Hugging Face tokenizers do.
//
// Saved with a model as JSON (to_json(); an HDF5 string attribute holds it):
//   {"type": "zerorl-char", "version": 1, "tokens": [...], "special": [...]}
// where tokens[i] is the string of id i.
//
// Its Hugging Face form (to_hf_json(), what `zerorl export` writes as
// tokenizer.json) is a BPE model without merges over the one-character
// tokens, every multi-character token an added token (special as here),
// no normalizer, no pre-tokenizer and a Fuse decoder: `tokenizers` cuts the
// added tokens out of the text leftmost-longest, as encode() does, and maps
// each remaining character to its id or to <unk> (one per character), so
// both give the same ids.  from_hf_json() reads exactly that form back
// (is_hf_char_form()).  A vocabulary without <unk> has no HF equivalent for
// an unknown character (`tokenizers` drops it; encode() throws).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <unordered_map>
#include <vector>

#include "data/tokenizer.h"
#include "data/vocab_table.h"

namespace zerorl::data {

class CharTokenizer final : public Tokenizer {
 public:
  // tokens[i] is id i; `special` lists which of them are special.  Ids of
  // "<pad>", "<bos>", "<eos>" become pad/bos/eos when present.
  CharTokenizer(std::vector<std::string> tokens, std::vector<std::string> special);

  // The vocabulary zerorl's synthetic tasks and corpus use: <pad> <bos> <eos>
  // <unk>, the four reasoning tags, newline and printable ASCII (space..~).
  static CharTokenizer for_tasks();
  static CharTokenizer from_json(const std::string& json_text, const std::string& source);
  // A Hugging Face tokenizer.json of the form to_hf_json() writes (BPE with
  // no merges, no normalizer or pre-tokenizer, a Fuse decoder).
  static bool is_hf_char_form(const nlohmann::json& tokenizer_json);
  // Throws naming `source` when the document is not of that form, a
  // multi-character token is not an added token, or ids are not dense.
  static CharTokenizer from_hf_json(const nlohmann::json& tokenizer_json,
                                    const std::string& source);

  std::string kind() const override { return "char"; }
  std::vector<int32_t> encode(std::string_view text) const override;
  using Tokenizer::decode;
  std::string decode(const int32_t* ids, size_t n, bool skip_special = false) const override;
  int32_t vocab_size() const override { return vocab_.size(); }
  int32_t token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  bool is_special(int32_t id) const override;
  std::string to_json() const override;
  std::string to_hf_json() const override;

 private:
  VocabTable vocab_;
  std::vector<std::string> special_names_;
  std::vector<int32_t> ascii_;  // byte < 128 -> id of that character, -1 if none
  std::vector<int32_t> multi_;  // ids of multi-character tokens, longest first
  int32_t unk_id_ = -1;
};

}  // namespace zerorl::data
