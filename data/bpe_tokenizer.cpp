#include "data/bpe_tokenizer.h"

#include <algorithm>
#include <limits>
#include <cctype>
#include <queue>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/utf8.h"

namespace zerorl::data {

using nlohmann::json;

namespace {

bool is_space_byte(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
bool is_word_byte(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }

// HF's ByteLevel decoder: a token whose characters are all byte images turns
// into those bytes; any other token is kept as its own UTF-8 text.
std::string token_to_bytes(const std::string& token) {
  std::string out;
  size_t i = 0;
  while (i < token.size()) {
    int b = codepoint_to_byte(utf8_next(token, i));
    if (b < 0) return token;
    out += static_cast<char>(b);
  }
  return out;
}

}  // namespace

// Reads tokenizer.json section by section (normalizer, pre-tokenizer, model,
// added tokens, decoder; ~130 lines): each refusal names the field it
// checks, in the file's own order.
ByteLevelBpe::ByteLevelBpe(const std::string& json_text, const json* config,
                           const std::string& source)
    : json_text_(json_text), source_(source) {
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::exception& e) {
    ZR_THROW(source, ": not valid JSON: ", e.what());
  }
  ZR_CHECK(doc.is_object() && doc.contains("model"), source,
           ": not a Hugging Face tokenizer.json (no \"model\" section)");
  const json& model = doc["model"];
  std::string type = model.value("type", "");
  if (type.empty() && model.contains("merges")) type = "BPE";  // very old files omit it
  ZR_CHECK(type == "BPE", source, ": tokenizer model type '", type,
           "' is not supported (zerorl supports byte-level BPE only)");
  ZR_CHECK(!model.value("byte_fallback", false), source,
           ": BPE with byte_fallback (SentencePiece-style) is not supported");
  ZR_CHECK(model.value("dropout", json()).is_null() || model["dropout"].get<double>() == 0.0,
           source, ": BPE dropout is not supported");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    json v = model.value(k, json());
    ZR_CHECK(v.is_null() || v.get<std::string>().empty(), source, ": BPE ", k,
             " is not supported by byte-level BPE");
  }
  ignore_merges_ = model.value("ignore_merges", false);

  normalizer_ = Normalizer::from_json(doc.value("normalizer", json()), source);
  pre_ = PreTokenizer::from_json(doc.value("pre_tokenizer", json()), source);
  ZR_CHECK(pre_.byte_level(), source,
           ": the pre_tokenizer has no ByteLevel step; only byte-level BPE is supported "
           "(SentencePiece/Metaspace tokenizers are not)");
  if (doc.contains("decoder") && !doc["decoder"].is_null()) {
    std::string dt = doc["decoder"].value("type", "");
    ZR_CHECK(dt == "ByteLevel", source, ": decoder type '", dt,
             "' is not supported (byte-level BPE needs a ByteLevel decoder)");
  }

  // A token id: a JSON integer in [0, 2^31) (a float or an out-of-range
  // number would be undefined behaviour in the conversion to int32).
  auto token_id = [&](const json& v, const std::string& token) -> int32_t {
    ZR_CHECK((v.is_number_unsigned() || v.is_number_integer()) && v.get<int64_t>() >= 0 &&
                 v.get<int64_t>() <= std::numeric_limits<int32_t>::max(),
             source, ": id of token '", token, "' is ", v.dump(), ", not an integer in [0, 2^31)");
    return static_cast<int32_t>(v.get<int64_t>());
  };

  // Vocabulary.
  int32_t max_id = -1;
  ZR_CHECK(model.contains("vocab") && model["vocab"].is_object(), source,
           ": BPE model has no vocab object");
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    int32_t id = token_id(it.value(), it.key());
    vocab_.index[it.key()] = id;
    max_id = std::max(max_id, id);
  }
  std::vector<AddedToken> added;
  for (const auto& a : doc.value("added_tokens", json::array())) {
    const std::string content = a.at("content").get<std::string>();
    AddedToken t{content,
                 token_id(a.at("id"), content),
                 a.value("special", false),
                 a.value("lstrip", false),
                 a.value("rstrip", false),
                 a.value("single_word", false)};
    ZR_CHECK(!t.content.empty() && t.id >= 0, source, ": bad added token entry ", a.dump());
    vocab_.index[t.content] = t.id;
    max_id = std::max(max_id, t.id);
    added.push_back(std::move(t));
  }
  // Ids index dense tables: a stray huge id would allocate gigabytes.  Real
  // vocabularies are dense (ids 0..N-1, added tokens just past the vocab);
  // allow holes up to as many ids again as there are tokens.
  const size_t num_entries = vocab_.index.size() + added.size();
  ZR_CHECK(static_cast<size_t>(max_id) < 2 * num_entries + 256, source, ": token id ", max_id,
           " is far beyond the ", num_entries, " tokens listed (ids must be dense)");
  vocab_.tokens.assign(static_cast<size_t>(max_id + 1), std::string());
  vocab_.special.assign(vocab_.tokens.size(), 0);
  for (const auto& [tok, id] : vocab_.index) vocab_.tokens[id] = tok;
  token_bytes_.resize(vocab_.tokens.size());
  for (size_t i = 0; i < vocab_.tokens.size(); ++i)
    token_bytes_[i] = token_to_bytes(vocab_.tokens[i]);
  for (const auto& a : added) {
    vocab_.tokens[a.id] = a.content;
    token_bytes_[a.id] = token_to_bytes(a.content);
    vocab_.special[a.id] = a.special;
  }
  std::sort(added.begin(), added.end(), [](const AddedToken& x, const AddedToken& y) {
    return x.content.size() > y.content.size();
  });
  added_ = std::move(added);
  for (const auto& a : added_) added_first_byte_[static_cast<unsigned char>(a.content[0])] = true;

  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.index.find(byte_to_utf8()[b]);
    byte_id_[b] = it == vocab_.index.end() ? -1 : it->second;
  }
  json unk = model.value("unk_token", json());
  if (unk.is_string()) unk_id_ = token_to_id(unk.get<std::string>());

  // Merges: "a b" strings (older files) or ["a", "b"] pairs (tokenizers >= 0.20).
  const json merges = model.value("merges", json::array());
  merges_.reserve(merges.size() * 2);
  int32_t rank = 0;
  for (const auto& m : merges) {
    std::string a, b;
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      ZR_CHECK(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos, source,
               ": merge ", rank, " '", s, "' is not two tokens separated by one space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else {
      ZR_CHECK(m.is_array() && m.size() == 2, source, ": merge ", rank, " is not a pair");
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    }
    auto ia = vocab_.index.find(a), ib = vocab_.index.find(b), iab = vocab_.index.find(a + b);
    ZR_CHECK(ia != vocab_.index.end() && ib != vocab_.index.end() && iab != vocab_.index.end(),
             source, ": merge ", rank, " ('", a, "', '", b,
             "') refers to a token missing from the vocab");
    uint64_t key = (static_cast<uint64_t>(ia->second) << 32) | static_cast<uint32_t>(ib->second);
    merges_.emplace(key, Merge{rank, iab->second});  // first (lowest) rank wins on duplicates
    ++rank;
  }

  bos_id_ =
      find_special(config, "bos_token", {"<|begin_of_text|>", "<s>", "<｜begin▁of▁sentence｜>"});
  eos_id_ = find_special(config, "eos_token",
                         {"<|endoftext|>", "<|end_of_text|>", "</s>", "<｜end▁of▁sentence｜>"});
  pad_id_ = find_special(config, "pad_token", {"<|pad|>", "<pad>"});
}

int32_t ByteLevelBpe::find_special(const json* config, const char* key,
                                   std::initializer_list<const char*> fallbacks) const {
  if (config && config->is_object() && config->contains(key)) {
    const json& v = (*config)[key];
    std::string name = v.is_string()   ? v.get<std::string>()
                       : v.is_object() ? v.value("content", "")
                                       : "";
    if (!name.empty()) return token_to_id(name);
    if (v.is_null()) return -1;
  }
  for (const char* name : fallbacks) {
    int32_t id = token_to_id(name);
    if (id >= 0) return id;
  }
  return -1;
}

int32_t ByteLevelBpe::token_to_id(std::string_view token) const { return vocab_.id_of(token); }

std::string ByteLevelBpe::id_to_token(int32_t id) const { return vocab_.token(id); }

bool ByteLevelBpe::is_special(int32_t id) const { return vocab_.is_special(id); }

std::vector<int32_t> ByteLevelBpe::encode(std::string_view text) const {
  size_t bad = utf8_invalid_offset(text);
  ZR_CHECK(bad == std::string_view::npos, "tokenizer input is not valid UTF-8 at byte ", bad);
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (added_.empty()) {
    encode_segment(text, out);
    return out;
  }
  // Cut out added tokens, leftmost-longest, as tokenizers' AddedVocabulary does.
  size_t seg_start = 0, i = 0;
  const size_t n = text.size();
  while (i < n) {
    if (!added_first_byte_[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    const AddedToken* hit = nullptr;
    for (const auto& a : added_) {
      if (text.compare(i, a.content.size(), a.content) != 0) continue;
      if (a.single_word) {
        bool left_ok = i == 0 || !is_word_byte(static_cast<unsigned char>(text[i - 1]));
        size_t e = i + a.content.size();
        bool right_ok = e == n || !is_word_byte(static_cast<unsigned char>(text[e]));
        if (!left_ok || !right_ok) continue;
      }
      hit = &a;
      break;
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + hit->content.size();
    if (hit->lstrip)
      while (start > seg_start && is_space_byte(static_cast<unsigned char>(text[start - 1])))
        --start;
    if (hit->rstrip)
      while (stop < n && is_space_byte(static_cast<unsigned char>(text[stop]))) ++stop;
    if (start > seg_start) encode_segment(text.substr(seg_start, start - seg_start), out);
    out.push_back(hit->id);
    seg_start = stop;
    i = stop;
  }
  if (seg_start < n) encode_segment(text.substr(seg_start), out);
  return out;
}

void ByteLevelBpe::encode_segment(std::string_view text, std::vector<int32_t>& out) const {
  std::string normalized;
  std::string_view s = text;
  if (!normalizer_.identity()) {
    normalized = normalizer_.normalize(text);
    s = normalized;
  }
  if (pre_.add_prefix_space() && !s.empty() && s[0] != ' ') {
    normalized = " " + std::string(s);
    s = normalized;
  }
  std::vector<Span> pieces;
  pre_.split(s, pieces);
  for (Span p : pieces) encode_piece(s.substr(p.begin, p.end - p.begin), out);
}

void ByteLevelBpe::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() == 1) {
    int32_t id = byte_id_[static_cast<unsigned char>(piece[0])];
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  std::string key(piece);
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  merge_word(piece, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (cache_.size() > 200000) cache_.clear();  // bounded memory on adversarial input
  cache_.emplace(std::move(key), std::move(ids));
}

void ByteLevelBpe::merge_word(std::string_view piece, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    std::string image;
    for (unsigned char c : piece) image += byte_to_utf8()[c];
    auto it = vocab_.index.find(image);
    if (it != vocab_.index.end()) {
      out.push_back(it->second);
      return;
    }
  }
  struct Sym {
    int32_t id, prev, next;
    bool alive;
  };
  std::vector<Sym> syms;
  syms.reserve(piece.size());
  for (size_t i = 0; i < piece.size(); ++i) {
    auto c = static_cast<unsigned char>(piece[i]);
    int32_t id = byte_id_[c];
    if (id < 0) {
      ZR_CHECK(unk_id_ >= 0, source_, ": byte 0x", std::hex, int(c),
               " has no token in the vocabulary and there is no unk_token");
      id = unk_id_;
    }
    int32_t k = static_cast<int32_t>(syms.size());
    syms.push_back({id, k - 1, k + 1, true});
  }
  if (!syms.empty()) syms.back().next = -1;

  // Min-heap on (rank, left position): lowest rank first, leftmost on ties.
  struct Cand {
    int32_t rank, pos, new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto lookup = [&](int32_t a, int32_t b) -> const Merge* {
    auto it = merges_.find((static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i)
    if (const Merge* m = lookup(syms[i].id, syms[i + 1].id)) heap.push({m->rank, i, m->new_id});
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    Sym& left = syms[c.pos];
    if (!left.alive || left.next < 0) continue;
    Sym& right = syms[left.next];
    const Merge* m = lookup(left.id, right.id);
    if (!m || m->new_id != c.new_id || m->rank != c.rank) continue;  // stale entry
    left.id = c.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) syms[left.next].prev = c.pos;
    if (left.prev >= 0)
      if (const Merge* pm = lookup(syms[left.prev].id, left.id))
        heap.push({pm->rank, left.prev, pm->new_id});
    if (left.next >= 0)
      if (const Merge* nm = lookup(left.id, syms[left.next].id))
        heap.push({nm->rank, c.pos, nm->new_id});
  }
  for (int32_t i = 0; i >= 0 && !syms.empty(); i = syms[i].next) out.push_back(syms[i].id);
}

std::string ByteLevelBpe::decode(const int32_t* ids, size_t n, bool skip_special) const {
  return vocab_.join(ids, n, skip_special, token_bytes_);
}

}  // namespace zerorl::data
