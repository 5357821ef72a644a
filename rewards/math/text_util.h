// Character and string helpers shared by the answer extractor and the LaTeX
// parser (ASCII classification; bytes >= 0x80 are never letters, digits or
// spaces, so UTF-8 passes through untouched).
#pragma once

#include <cctype>
#include <string>

namespace zerorl::rewards::math {

inline bool is_alpha(char c) { return std::isalpha((unsigned char)c) != 0; }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_space(char c) { return std::isspace((unsigned char)c) != 0; }

inline std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && is_space(s[a])) ++a;
  while (b > a && is_space(s[b - 1])) --b;
  return s.substr(a, b - a);
}

// Index of the '}' that closes the '{' at `open`, or npos.  A backslash
// escapes the character after it, as in LaTeX: `\{` and `\}` are not braces,
// and `\\` (a line break) does not escape the brace that follows it.
inline size_t match_brace(const std::string& s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      ++i;
      continue;
    }
    if (s[i] == '{')
      ++depth;
    else if (s[i] == '}' && --depth == 0)
      return i;
  }
  return std::string::npos;
}

}  // namespace zerorl::rewards::math
