#include "data/char_tokenizer.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/utf8.h"

namespace zerorl::data {

using nlohmann::json;

static size_t num_codepoints(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

CharTokenizer::CharTokenizer(std::vector<std::string> tokens, std::vector<std::string> special)
    : special_names_(std::move(special)) {
  vocab_.tokens = std::move(tokens);
  ZR_CHECK(!vocab_.tokens.empty(), "char tokenizer: empty vocabulary");
  vocab_.special.assign(vocab_.tokens.size(), 0);
  ascii_.assign(128, -1);
  for (size_t i = 0; i < vocab_.tokens.size(); ++i) {
    const std::string& t = vocab_.tokens[i];
    ZR_CHECK(!t.empty(), "char tokenizer: token ", i, " is empty");
    ZR_CHECK(utf8_invalid_offset(t) == std::string::npos, "char tokenizer: token ", i,
             " is not valid UTF-8");
    ZR_CHECK(vocab_.index.emplace(t, static_cast<int32_t>(i)).second, "char tokenizer: token '", t,
             "' appears twice");
    if (num_codepoints(t) > 1)
      multi_.push_back(static_cast<int32_t>(i));
    else if (t.size() == 1)
      ascii_[static_cast<unsigned char>(t[0])] = static_cast<int32_t>(i);
  }
  std::stable_sort(multi_.begin(), multi_.end(), [&](int32_t a, int32_t b) {
    return vocab_.tokens[a].size() > vocab_.tokens[b].size();
  });
  for (const auto& s : special_names_) {
    auto it = vocab_.index.find(s);
    ZR_CHECK(it != vocab_.index.end(), "char tokenizer: special token '", s,
             "' is not in the vocabulary");
    vocab_.special[it->second] = 1;
  }
  pad_id_ = token_to_id("<pad>");
  bos_id_ = token_to_id("<bos>");
  eos_id_ = token_to_id("<eos>");
  unk_id_ = token_to_id("<unk>");
}

CharTokenizer CharTokenizer::for_tasks() {
  std::vector<std::string> tokens = {"<pad>",    "<bos>",    "<eos>",     "<unk>", "<think>",
                                     "</think>", "<answer>", "</answer>", "\n"};
  for (char c = ' '; c <= '~'; ++c) tokens.emplace_back(1, c);
  return CharTokenizer(tokens, {"<pad>", "<bos>", "<eos>", "<unk>"});
}

CharTokenizer CharTokenizer::from_json(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    ZR_THROW(source, ": not valid JSON: ", e.what());
  }
  ZR_CHECK(j.value("type", "") == "zerorl-char", source, ": not a zerorl char tokenizer");
  ZR_CHECK(j.value("version", 0) == 1, source, ": unsupported char tokenizer version ",
           j.value("version", 0));
  try {
    return CharTokenizer(j.at("tokens").get<std::vector<std::string>>(),
                         j.value("special", std::vector<std::string>{}));
  } catch (const json::exception& e) {
    ZR_THROW(source, ": malformed char tokenizer: ", e.what());
  }
}

std::string CharTokenizer::to_json() const {
  json j;
  j["type"] = "zerorl-char";
  j["version"] = 1;
  j["tokens"] = vocab_.tokens;
  j["special"] = special_names_;
  return j.dump();
}

std::vector<int32_t> CharTokenizer::encode(std::string_view text) const {
  size_t bad = utf8_invalid_offset(text);
  ZR_CHECK(bad == std::string_view::npos, "tokenizer input is not valid UTF-8 at byte ", bad);
  std::vector<int32_t> out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    int32_t hit = -1;
    for (int32_t id : multi_) {
      const std::string& t = vocab_.tokens[id];
      if (text.compare(i, t.size(), t) == 0) {
        hit = id;
        break;
      }
    }
    if (hit >= 0) {
      out.push_back(hit);
      i += vocab_.tokens[hit].size();
      continue;
    }
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80 && ascii_[c] >= 0) {
      out.push_back(ascii_[c]);
      ++i;
      continue;
    }
    size_t start = i;
    utf8_next(text, i);
    auto it = vocab_.index.find(std::string(text.substr(start, i - start)));
    if (it != vocab_.index.end()) {
      out.push_back(it->second);
    } else {
      ZR_CHECK(unk_id_ >= 0, "char tokenizer: character '", text.substr(start, i - start),
               "' at byte ", start, " is not in the vocabulary");
      out.push_back(unk_id_);
    }
  }
  return out;
}

std::string CharTokenizer::decode(const int32_t* ids, size_t n, bool skip_special) const {
  return vocab_.join(ids, n, skip_special, vocab_.tokens);
}

int32_t CharTokenizer::token_to_id(std::string_view token) const { return vocab_.id_of(token); }

std::string CharTokenizer::id_to_token(int32_t id) const { return vocab_.token(id); }

bool CharTokenizer::is_special(int32_t id) const { return vocab_.is_special(id); }

}  // namespace zerorl::data
