#include "data/char_tokenizer.h"

#include <algorithm>
#include <map>
#include <set>

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

std::string CharTokenizer::to_hf_json() const {
  json vocab = json::object(), added = json::array();
  for (size_t i = 0; i < vocab_.tokens.size(); ++i) {
    const std::string& t = vocab_.tokens[i];
    vocab[t] = i;
    if (num_codepoints(t) > 1 || vocab_.special[i])
      added.push_back({{"id", i},
                       {"content", t},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", vocab_.special[i] != 0}});
  }
  json model = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", unk_id_ >= 0 ? json(vocab_.tokens[unk_id_]) : json(nullptr)},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", json::array()}};
  json j = {
      {"version", "1.0"},          {"truncation", nullptr},         {"padding", nullptr},
      {"added_tokens", added},     {"normalizer", nullptr},         {"pre_tokenizer", nullptr},
      {"post_processor", nullptr}, {"decoder", {{"type", "Fuse"}}}, {"model", model}};
  return j.dump(2);
}

bool CharTokenizer::is_hf_char_form(const json& j) {
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) return false;
  const json& m = j["model"];
  auto null_or_absent = [](const json& o, const char* k) {
    return !o.contains(k) || o[k].is_null();
  };
  return m.value("type", "") == "BPE" && m.contains("merges") && m["merges"].is_array() &&
         m["merges"].empty() && null_or_absent(j, "normalizer") &&
         null_or_absent(j, "pre_tokenizer") && j.contains("decoder") && j["decoder"].is_object() &&
         j["decoder"].value("type", "") == "Fuse";
}

CharTokenizer CharTokenizer::from_hf_json(const json& j, const std::string& source) {
  ZR_CHECK(is_hf_char_form(j), source,
           ": not a character tokenizer.json (BPE without merges, no normalizer or "
           "pre-tokenizer, Fuse decoder)");
  const json& m = j["model"];
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix", "dropout"})
    ZR_CHECK(!m.contains(k) || m[k].is_null(), source, ": model.", k,
             " is not supported in a character tokenizer");
  ZR_CHECK(!m.value("byte_fallback", false), source,
           ": model.byte_fallback is not supported in a character tokenizer");
  std::map<int64_t, std::string> by_id;
  std::set<std::string> added;
  std::vector<std::string> special;
  auto put = [&](const std::string& t, int64_t id) {
    auto [it, fresh] = by_id.emplace(id, t);
    ZR_CHECK(fresh || it->second == t, source, ": id ", id, " names both '", it->second, "' and '",
             t, "'");
  };
  for (const auto& [t, id] : m.at("vocab").items()) put(t, id.get<int64_t>());
  for (const auto& a : j.value("added_tokens", json::array())) {
    const std::string t = a.at("content").get<std::string>();
    ZR_CHECK(!a.value("lstrip", false) && !a.value("rstrip", false) &&
                 !a.value("single_word", false) && !a.value("normalized", false),
             source, ": added token '", t,
             "' has lstrip/rstrip/single_word/normalized, unsupported in a character tokenizer");
    put(t, a.at("id").get<int64_t>());
    added.insert(t);
    if (a.value("special", false)) special.push_back(t);
  }
  std::vector<std::string> tokens;
  for (const auto& [id, t] : by_id) {
    ZR_CHECK(id == static_cast<int64_t>(tokens.size()), source, ": ids are not dense (id ",
             tokens.size(), " is missing)");
    ZR_CHECK(num_codepoints(t) <= 1 || added.count(t), source, ": vocabulary entry '", t,
             "' has several characters but is no added token (BPE without merges never "
             "produces it)");
    tokens.push_back(t);
  }
  const json& unk = m.contains("unk_token") ? m["unk_token"] : json();
  ZR_CHECK(unk.is_null() || unk == "<unk>", source, ": model.unk_token must be \"<unk>\", got ",
           unk.dump());
  return CharTokenizer(std::move(tokens), std::move(special));
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
