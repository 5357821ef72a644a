#include "data/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/bpe_tokenizer.h"
#include "data/char_tokenizer.h"

namespace zerorl::data {

namespace fs = std::filesystem;
using nlohmann::json;

static std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  ZR_CHECK(in, "cannot open tokenizer file '", p.string(), "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

// A JSON document of the wrong shape (a missing key, a string where a number
// belongs) makes nlohmann::json throw its own exceptions deep inside the
// loaders; they become the one user-facing error type, naming the file.
template <class F>
std::unique_ptr<Tokenizer> named_errors(const std::string& source, F&& load) {
  try {
    return load();
  } catch (const json::exception& e) {
    ZR_THROW(source, ": malformed tokenizer file: ", e.what());
  }
}

}  // namespace

std::unique_ptr<Tokenizer> tokenizer_from_json(const std::string& text, const std::string& source) {
  return named_errors(source, [&]() -> std::unique_ptr<Tokenizer> {
    json head;
    try {
      head = json::parse(text);
    } catch (const json::exception& e) {
      ZR_THROW(source, ": not valid JSON: ", e.what());
    }
    ZR_CHECK(head.is_object(), source, ": a tokenizer file must hold a JSON object");
    if (head.value("type", "") == "zerorl-char")
      return std::make_unique<CharTokenizer>(CharTokenizer::from_json(text, source));
    if (CharTokenizer::is_hf_char_form(head))
      return std::make_unique<CharTokenizer>(CharTokenizer::from_hf_json(head, source));
    ZR_CHECK(head.contains("model"), source,
             ": neither a Hugging Face tokenizer.json (no \"model\") nor a zerorl char tokenizer");
    return std::make_unique<ByteLevelBpe>(text, nullptr, source);
  });
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  fs::path p(path);
  if (fs::is_directory(p)) p /= "tokenizer.json";
  ZR_CHECK(fs::exists(p), "tokenizer file '", p.string(), "' does not exist");
  std::string text = read_file(p);
  return named_errors(p.string(), [&]() -> std::unique_ptr<Tokenizer> {
    json head;
    try {
      head = json::parse(text);
    } catch (const json::exception& e) {
      ZR_THROW(p.string(), ": not valid JSON: ", e.what());
    }
    if (head.is_object() && head.value("type", "") == "zerorl-char")
      return std::make_unique<CharTokenizer>(CharTokenizer::from_json(text, p.string()));
    if (CharTokenizer::is_hf_char_form(head))
      return std::make_unique<CharTokenizer>(CharTokenizer::from_hf_json(head, p.string()));
    ZR_CHECK(head.is_object() && head.contains("model"), p.string(),
             ": neither a Hugging Face tokenizer.json (no \"model\") nor a zerorl char tokenizer");
    json config;
    fs::path cfg = p.parent_path() / "tokenizer_config.json";
    if (fs::exists(cfg)) {
      try {
        config = json::parse(read_file(cfg));
      } catch (const json::exception& e) {
        ZR_THROW(cfg.string(), ": not valid JSON: ", e.what());
      }
    }
    return std::make_unique<ByteLevelBpe>(text, config.is_null() ? nullptr : &config, p.string());
  });
}

}  // namespace zerorl::data
