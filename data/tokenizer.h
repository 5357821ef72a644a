// The tokenizer interface, and loading a tokenizer from a file.
//
// Two implementations sit behind it:
//   * ByteLevelBpe (data/bpe_tokenizer.h): a Hugging Face `tokenizer.json`
//     of a byte-level BPE model (GPT-2, Qwen2/2.5/3, Llama 3, DeepSeek V2/V3);
//   * CharTokenizer (data/char_tokenizer.h): one token per character plus a
//     few multi-character tokens, for the synthetic tasks and tiny models.
//
// Contract:
//   * encode() turns UTF-8 text into ids.  It never adds BOS/EOS or any other
//     post-processing template: callers prepend bos_id() themselves where a
//     model wants it.  Invalid UTF-8 throws zerorl::Error naming the byte offset.
//   * decode() turns ids back into bytes (the concatenation of the tokens'
//     bytes), so decode(encode(s)) == s for every valid UTF-8 s.  Ids out of
//     range throw.  With skip_special, special tokens are left out.  (Added
//     tokens declared lstrip/rstrip absorb the spaces beside them, exactly
//     as in `tokenizers`, so text around those does not round-trip.)
//   * encode() and decode() are const and safe to call from several threads.
//   * to_json() returns a document that tokenizer_from_json() reads back into
//     an equal tokenizer; it is what a checkpoint stores (e.g. as an HDF5
//     string attribute) so a model travels with its tokenizer.
//   * to_hf_json() returns a Hugging Face tokenizer.json with which the
//     `tokenizers` library gives the same ids as encode() and the same text
//     as decode() (what `zerorl export` writes); load_tokenizer() and
//     tokenizer_from_json() read it back into an equal tokenizer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace zerorl::data {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // "byte_bpe" or "char".
  virtual std::string kind() const = 0;
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  virtual std::string decode(const int32_t* ids, size_t n, bool skip_special = false) const = 0;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const {
    return decode(ids.data(), ids.size(), skip_special);
  }

  // Number of ids: every id in [0, vocab_size()) decodes.
  virtual int32_t vocab_size() const = 0;
  // Id of an exact token string (vocabulary entry or added/special token), -1 if none.
  virtual int32_t token_to_id(std::string_view token) const = 0;
  // The token's string as stored (byte-level form for BPE); throws out of range.
  virtual std::string id_to_token(int32_t id) const = 0;
  virtual bool is_special(int32_t id) const = 0;

  // Special ids, -1 where the tokenizer has none.
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t pad_id() const { return pad_id_; }

  virtual std::string to_json() const = 0;
  virtual std::string to_hf_json() const = 0;

 protected:
  int32_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
};

// Load a tokenizer from a file: a Hugging Face tokenizer.json (or a folder
// holding one; a sibling tokenizer_config.json, when present, names the
// bos/eos/pad tokens) or a zerorl character tokenizer JSON.  Unsupported
// tokenizer types are refused with an Error that names the file and the type.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// The same from JSON text; `source` names it in error messages.
std::unique_ptr<Tokenizer> tokenizer_from_json(const std::string& json_text,
                                               const std::string& source = "<json>");

}  // namespace zerorl::data
