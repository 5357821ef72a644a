#include "data/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace zerorl::data {

using nlohmann::json;

// ---- normalizer --------------------------------------------------------------

std::string nfc_normalize(std::string_view text) {
  bool ascii = true;
  for (unsigned char c : text)
    if (c >= 0x80) {
      ascii = false;
      break;
    }
  if (ascii) return std::string(text);
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* nfc = unorm2_getNFCInstance(&err);
  ZR_CHECK(U_SUCCESS(err), "ICU: cannot load the NFC normalizer: ", u_errorName(err));
  int32_t len16 = 0;
  err = U_ZERO_ERROR;
  u_strFromUTF8(nullptr, 0, &len16, text.data(), static_cast<int32_t>(text.size()), &err);
  std::u16string src(static_cast<size_t>(len16), u'\0');
  err = U_ZERO_ERROR;
  u_strFromUTF8(reinterpret_cast<UChar*>(src.data()), len16, nullptr, text.data(),
                static_cast<int32_t>(text.size()), &err);
  ZR_CHECK(U_SUCCESS(err), "ICU: UTF-8 conversion failed: ", u_errorName(err));
  err = U_ZERO_ERROR;
  if (unorm2_isNormalized(nfc, reinterpret_cast<const UChar*>(src.data()), len16, &err) &&
      U_SUCCESS(err))
    return std::string(text);
  std::u16string dst(static_cast<size_t>(len16) * 3 + 16, u'\0');
  err = U_ZERO_ERROR;
  int32_t n = unorm2_normalize(nfc, reinterpret_cast<const UChar*>(src.data()), len16,
                               reinterpret_cast<UChar*>(dst.data()),
                               static_cast<int32_t>(dst.size()), &err);
  ZR_CHECK(U_SUCCESS(err), "ICU: NFC normalization failed: ", u_errorName(err));
  int32_t len8 = 0;
  err = U_ZERO_ERROR;
  u_strToUTF8(nullptr, 0, &len8, reinterpret_cast<const UChar*>(dst.data()), n, &err);
  std::string out(static_cast<size_t>(len8), '\0');
  err = U_ZERO_ERROR;
  u_strToUTF8(out.data(), len8, nullptr, reinterpret_cast<const UChar*>(dst.data()), n, &err);
  ZR_CHECK(U_SUCCESS(err), "ICU: UTF-16 conversion failed: ", u_errorName(err));
  return out;
}

static std::string type_of(const json& j) {
  return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>()
                                                                      : std::string("?");
}

Normalizer Normalizer::from_json(const json& j, const std::string& source) {
  Normalizer n;
  if (j.is_null()) return n;
  std::string type = type_of(j);
  if (type == "NFC") {
    n.nfc_ = true;
  } else if (type == "Sequence") {
    for (const auto& sub : j.value("normalizers", json::array())) {
      Normalizer s = from_json(sub, source);
      n.nfc_ = n.nfc_ || s.nfc_;
    }
  } else {
    ZR_THROW(source, ": normalizer type '", type,
             "' is not supported (zerorl supports none, NFC, or a Sequence of those)");
  }
  return n;
}

std::string Normalizer::normalize(std::string_view text) const {
  return nfc_ ? nfc_normalize(text) : std::string(text);
}

// ---- regex -------------------------------------------------------------------

namespace {

struct CodeDeleter {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

// One match-data block per thread: patterns have no capture groups we read,
// and pcre2_match fills ovector[0..1] even when the block is small.
pcre2_match_data* thread_match_data() {
  thread_local std::unique_ptr<pcre2_match_data, MatchDataDeleter> md(
      pcre2_match_data_create(8, nullptr));
  return md.get();
}

std::string regex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

enum class Behavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokenizer::Step {
  std::unique_ptr<pcre2_code, CodeDeleter> code;
  Behavior behavior = Behavior::kIsolated;
  bool invert = false;

  // Matches of the pattern inside text[piece], as absolute spans.
  void matches(std::string_view text, Span piece, std::vector<Span>& out) const {
    pcre2_match_data* md = thread_match_data();
    auto subject = reinterpret_cast<PCRE2_SPTR>(text.data() + piece.begin);
    PCRE2_SIZE len = piece.end - piece.begin, start = 0;
    while (start < len) {
      int rc = pcre2_match(code.get(), subject, len, start, PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      ZR_CHECK(rc >= 0, "pre-tokenizer regex failed: ", pcre2_message(rc));
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      if (ov[1] == ov[0]) {  // empty match: step over one character, as find_iter does
        start = ov[1] + 1;
        while (start < len && (subject[start] & 0xC0) == 0x80) ++start;
        continue;
      }
      out.push_back(
          {static_cast<uint32_t>(piece.begin + ov[0]), static_cast<uint32_t>(piece.begin + ov[1])});
      start = ov[1];
    }
  }

  void apply(std::string_view text, const std::vector<Span>& in, std::vector<Span>& out) const {
    std::vector<Span> found;
    std::vector<std::pair<Span, bool>> parts;  // (span, is_match)
    for (Span piece : in) {
      found.clear();
      parts.clear();
      matches(text, piece, found);
      uint32_t pos = piece.begin;
      for (Span m : found) {
        if (m.begin > pos) parts.push_back({{pos, m.begin}, invert});
        parts.push_back({m, !invert});
        pos = m.end;
      }
      if (pos < piece.end) parts.push_back({{pos, piece.end}, invert});
      size_t first_out = out.size();
      switch (behavior) {
        case Behavior::kIsolated:
          for (auto& [s, m] : parts) out.push_back(s);
          break;
        case Behavior::kRemoved:
          for (auto& [s, m] : parts)
            if (!m) out.push_back(s);
          break;
        case Behavior::kMergedWithPrevious:
          for (auto& [s, m] : parts) {
            if (m && out.size() > first_out)
              out.back().end = s.end;
            else
              out.push_back(s);
          }
          break;
        case Behavior::kMergedWithNext: {
          bool pending = false;
          for (auto& [s, m] : parts) {
            if (pending)
              out.back().end = s.end;
            else
              out.push_back(s);
            pending = m;
          }
          break;
        }
        case Behavior::kContiguous: {
          bool prev_match = false;
          for (auto& [s, m] : parts) {
            if (m && prev_match && out.size() > first_out)
              out.back().end = s.end;
            else
              out.push_back(s);
            prev_match = m;
          }
          break;
        }
      }
    }
  }
};

static std::shared_ptr<const PreTokenizer::Step> make_step(const std::string& pattern,
                                                           Behavior behavior, bool invert,
                                                           const std::string& source) {
  auto step = std::make_shared<PreTokenizer::Step>();
  int err = 0;
  PCRE2_SIZE offset = 0;
  step->code.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                 PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr));
  ZR_CHECK(step->code, source, ": pre-tokenizer pattern does not compile at offset ", offset, ": ",
           pcre2_message(err), " (pattern: ", pattern, ")");
  pcre2_jit_compile(step->code.get(), PCRE2_JIT_COMPLETE);  // falls back to the interpreter
  step->behavior = behavior;
  step->invert = invert;
  return step;
}

const char* PreTokenizer::gpt2_pattern() {
  return R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
}

const char* PreTokenizer::qwen2_pattern() {
  return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}

PreTokenizer PreTokenizer::from_json(const json& j, const std::string& source) {
  PreTokenizer p;
  if (!j.is_null()) p.parse(j, source, true);
  return p;
}

void PreTokenizer::parse(const json& j, const std::string& source, bool first) {
  std::string type = type_of(j);
  if (type == "Sequence") {
    for (const auto& sub : j.value("pretokenizers", json::array())) {
      parse(sub, source, first && steps_.empty() && !byte_level_);
    }
  } else if (type == "ByteLevel") {
    byte_level_ = true;
    if (j.value("add_prefix_space", false)) {
      ZR_CHECK(first, source,
               ": ByteLevel add_prefix_space is supported only as the first pre-tokenizer");
      add_prefix_space_ = true;
    }
    if (j.value("use_regex", true))
      steps_.push_back(make_step(gpt2_pattern(), Behavior::kIsolated, false, source));
  } else if (type == "Split") {
    const json& pat = j.at("pattern");
    std::string pattern;
    if (pat.contains("Regex"))
      pattern = pat["Regex"].get<std::string>();
    else if (pat.contains("String"))
      pattern = regex_escape(pat["String"].get<std::string>());
    else
      ZR_THROW(source, ": Split pattern must be {\"Regex\": ...} or {\"String\": ...}");
    std::string b = j.value("behavior", "Isolated");
    Behavior behavior;
    if (b == "Isolated")
      behavior = Behavior::kIsolated;
    else if (b == "Removed")
      behavior = Behavior::kRemoved;
    else if (b == "MergedWithPrevious")
      behavior = Behavior::kMergedWithPrevious;
    else if (b == "MergedWithNext")
      behavior = Behavior::kMergedWithNext;
    else if (b == "Contiguous")
      behavior = Behavior::kContiguous;
    else
      ZR_THROW(source, ": Split behavior '", b, "' is not supported");
    steps_.push_back(make_step(pattern, behavior, j.value("invert", false), source));
  } else if (type == "Digits") {
    bool individual = j.value("individual_digits", false);
    steps_.push_back(make_step("[0-9]", individual ? Behavior::kIsolated : Behavior::kContiguous,
                               false, source));
  } else {
    ZR_THROW(source, ": pre_tokenizer type '", type,
             "' is not supported (zerorl supports ByteLevel, Split, Digits and Sequence)");
  }
}

void PreTokenizer::split(std::string_view text, std::vector<Span>& pieces) const {
  pieces.clear();
  if (text.empty()) return;
  pieces.push_back({0, static_cast<uint32_t>(text.size())});
  std::vector<Span> next;
  for (const auto& step : steps_) {
    next.clear();
    step->apply(text, pieces, next);
    pieces.swap(next);
  }
  size_t k = 0;
  for (Span s : pieces)
    if (s.end > s.begin) pieces[k++] = s;
  pieces.resize(k);
}

}  // namespace zerorl::data
