// normalize_answer (latex_parser.h): surface forms of LaTeX and plain-text
// answers rewritten to one spelling before parsing.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>

#include "rewards/math/latex_lexer.h"
#include "rewards/math/latex_parser.h"
#include "rewards/math/text_util.h"

namespace zerorl::rewards::math {
namespace {

using latex::is_text_command;

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
}

bool only_letters_spaces(const std::string& s) {
  bool any = false;
  for (char c : s) {
    if (is_alpha(c))
      any = true;
    else if (!is_space(c) && c != '.')
      return false;
  }
  return any;
}

// Removes \text{units} (and a following ^2 / ^{3}) after a number, closing
// brace or parenthesis; rewrites \text{and} / \text{or} to a comma.
std::string strip_text_units(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '\\' && i + 1 < s.size() && is_alpha(s[i + 1])) {
      size_t j = i + 1;
      while (j < s.size() && is_alpha(s[j])) ++j;
      std::string cmd = s.substr(i + 1, j - i - 1);
      size_t k = j;
      while (k < s.size() && is_space(s[k])) ++k;
      if (is_text_command(cmd) && k < s.size() && s[k] == '{') {
        size_t close = match_brace(s, k);
        if (close != std::string::npos) {
          std::string content = trim(s.substr(k + 1, close - k - 1));
          std::string low = content;
          for (auto& c : low) c = (char)std::tolower((unsigned char)c);
          if (low == "and" || low == "or" || low == "," || low == "or," || low == "and,") {
            out += ",";
            i = close + 1;
            continue;
          }
          // A unit: letters only, following a value.
          std::string before = trim(out);
          char prev = before.empty() ? 0 : before.back();
          bool after_value = is_digit(prev) || prev == '}' || prev == ')' || prev == '.';
          if (after_value && only_letters_spaces(content) && low != "e" && low != "i") {
            size_t e = close + 1;
            // ^2, ^{2}, ^3 after a unit (cm^2).
            size_t q = e;
            while (q < s.size() && is_space(s[q])) ++q;
            if (q < s.size() && s[q] == '^') {
              if (q + 1 < s.size() && is_digit(s[q + 1]))
                e = q + 2;
              else if (q + 1 < s.size() && s[q + 1] == '{') {
                size_t c2 = match_brace(s, q + 1);
                if (c2 != std::string::npos && c2 - q <= 4) e = c2 + 1;
              }
            }
            i = e;
            continue;
          }
        }
      }
      out.append(s, i, j - i);
      i = j;
      continue;
    }
    out += s[i++];
  }
  return out;
}

// Unit words that follow a number as plain text ("10 meters", "5 days",
// "4 students"): those of Math-Verify's unit list that are units or counted
// nouns, singular, plural in -s or -es.  Left out on purpose: its single
// letters (m, s, h, ...: "3 t" is a product as often as a unit) and words
// that change the answer's meaning ("more", "less", "increase", "profit").
bool is_unit_word(const std::string& w) {
  static const std::set<std::string> kUnits = {
      "meter", "metre",  "cm",    "mm",      "km",     "dm",     "inch",    "inches",   "foot",
      "feet",  "ft",     "yard",  "mile",    "sq",     "square", "acre",    "hectare",  "liter",
      "litre", "gallon", "gal",   "cubic",   "cc",     "kg",     "gm",      "gram",     "lb",
      "pound", "second", "sec",   "minute",  "min",    "hour",   "hr",      "day",      "month",
      "year",  "yr",     "mph",   "kmph",    "kmh",    "degree", "deg",     "cent",     "rupee",
      "rs",    "ohm",    "unit",  "point",   "digit",  "mark",   "student", "children", "man",
      "men",   "woman",  "women", "soldier", "monkey", "apple",  "toy",     "coin",     "tile",
      "edge",  "meal",   "pie"};
  if (kUnits.count(w)) return true;
  for (const char* suffix : {"s", "es"}) {
    const size_t n = std::strlen(suffix);
    if (w.size() > n && w.compare(w.size() - n, n, suffix) == 0 &&
        kUnits.count(w.substr(0, w.size() - n)))
      return true;
  }
  return false;
}

// "10 meters" -> "10", "10 square meters" -> "10": up to two unit words at
// the end of the answer, after a number, closing brace or parenthesis.
std::string strip_unit_words(const std::string& s) {
  size_t cut = s.size();
  while (cut > 0 && (is_space(s[cut - 1]) || s[cut - 1] == '.')) --cut;
  size_t keep = std::string::npos;  // where the answer ends without its unit words
  for (int words = 0; words < 2; ++words) {
    size_t start = cut;
    while (start > 0 && is_alpha(s[start - 1])) --start;
    if (start == cut || (start > 0 && s[start - 1] == '\\')) break;
    std::string word = s.substr(start, cut - start);
    for (auto& c : word) c = (char)std::tolower((unsigned char)c);
    if (!is_unit_word(word)) break;
    cut = start;
    while (cut > 0 && is_space(s[cut - 1])) --cut;
    if (cut > 0 && (is_digit(s[cut - 1]) || s[cut - 1] == '}' || s[cut - 1] == ')')) keep = cut;
  }
  return keep == std::string::npos ? s : s.substr(0, keep);
}

// "and" / "or" as separate words between answers -> ",".
std::string words_to_commas(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    for (const char* w : {"and", "or"}) {
      size_t n = std::strlen(w);
      if (s.compare(i, n, w) == 0) {
        char prev = i ? s[i - 1] : ' ';
        char next = i + n < s.size() ? s[i + n] : ' ';
        if (!is_alpha(prev) && prev != '\\' && !is_alpha(next)) {
          out += ",";
          i += n;
          goto next_char;
        }
      }
    }
    out += s[i++];
  next_char:;
  }
  return out;
}

// 12,000,023 -> 12000023 where every group after the first has 3 digits.
std::string strip_thousands(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (is_digit(s[i]) && (i == 0 || (!is_digit(s[i - 1]) && s[i - 1] != '.' && s[i - 1] != ','))) {
      size_t j = i;
      while (j < s.size() && is_digit(s[j])) ++j;
      size_t lead = j - i;
      size_t k = j;
      int groups = 0;
      while (lead <= 3 && k + 4 <= s.size() && s[k] == ',' && is_digit(s[k + 1]) &&
             is_digit(s[k + 2]) && is_digit(s[k + 3]) &&
             (k + 4 == s.size() || !is_digit(s[k + 4]))) {
        k += 4;
        ++groups;
      }
      // "(2,100)" is an interval or a pair, not two thousand one hundred.
      char before = i ? s[i - 1] : ' ';
      char after = k < s.size() ? s[k] : ' ';
      if (groups == 1 && (before == '(' || before == '[') &&
          (after == ')' || after == ']' || after == ','))
        groups = 0;
      if (groups > 0 && !(s[i] == '0' && lead == 1)) {
        for (size_t q = i; q < k; ++q)
          if (s[q] != ',') out += s[q];
        i = k;
        continue;
      }
      out.append(s, i, j - i);
      i = j;
      continue;
    }
    out += s[i++];
  }
  return out;
}

}  // namespace

std::string normalize_answer(const std::string& in, const ParseOptions& opt) {
  if (in.size() > opt.max_chars) return in;
  std::string s;
  s.reserve(in.size());
  // Doubly escaped LaTeX ("\\frac" in a JSON-escaped dataset) -> "\frac".
  // Exactly two backslashes before a letter; "\\\end" is a row break + \end.
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\\' && i + 2 < in.size() && in[i + 1] == '\\' && is_alpha(in[i + 2]) &&
        (i == 0 || in[i - 1] != '\\'))
      continue;
    s += in[i];
  }
  replace_all(s, "{,}", ",");
  // ",\!" is LaTeX's thousands separator, whatever space follows it.
  for (size_t p = s.find(",\\!"); p != std::string::npos; p = s.find(",\\!", p + 1)) {
    size_t e = p + 3;
    while (e < s.size() && is_space(s[e])) ++e;
    s.replace(p, e - p, ",");
  }
  replace_all(s, "\\!", "");
  replace_all(s, "\\$", "");
  replace_all(s, "$", "");
  for (const char* deg : {"^{\\circ}", "^\\circ", "^{\\degree}", "\\degree", "\\circ", "°"})
    replace_all(s, deg, "");
  replace_all(s, "\\%", "");
  replace_all(s, "%", "");
  s = strip_text_units(s);
  s = strip_unit_words(s);
  s = words_to_commas(s);
  for (const char* w : {"percentage", "percent", "pct"}) {
    size_t p;
    while ((p = s.find(w)) != std::string::npos) s.erase(p, std::strlen(w));
  }
  s = strip_thousands(s);
  s = trim(s);
  while (!s.empty() &&
         (s.back() == '.' || s.back() == ',' || s.back() == ';' || is_space(s.back())))
    s.pop_back();
  while (!s.empty() && (s.front() == ',' || s.front() == ':' || is_space(s.front()))) s.erase(0, 1);
  if (opt.decimal_comma) {
    // Whole answer "1 000" -> "1000"; "1000,99" / "0,111" -> decimal.
    std::string t = s;
    bool spaced = t.size() > 4;
    for (size_t i = 0; i < t.size() && spaced; ++i)
      if (!is_digit(t[i]) && t[i] != ' ' && !(i == 0 && t[i] == '-')) spaced = false;
    if (spaced && t.find(' ') != std::string::npos) {
      std::string u;
      for (char c : t)
        if (c != ' ') u += c;
      s = u;
    }
    size_t c = s.find(',');
    if (c != std::string::npos && s.find(',', c + 1) == std::string::npos && c > 0 &&
        c + 1 < s.size()) {
      bool ok = true;
      for (size_t i = 0; i < s.size(); ++i)
        if (i != c && !is_digit(s[i]) && !(i == 0 && s[i] == '-')) ok = false;
      std::string left = s.substr(0, c), right = s.substr(c + 1);
      if (ok && (right.size() != 3 || left == "0" || left == "-0")) s[c] = '.';
    }
  }
  return s;
}

}  // namespace zerorl::rewards::math
