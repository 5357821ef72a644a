// The LaTeX answer lexer (latex_lexer.h).
#include "rewards/math/latex_lexer.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>

#include "rewards/math/text_util.h"

namespace zerorl::rewards::math::latex {

const std::set<std::string>& function_names() {
  static const std::set<std::string> f = {
      "sin",  "cos",  "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "sinh",
      "cosh", "tanh", "log", "ln",  "exp", "lg",  "sqrt",   "arcsec", "arccsc", "arccot"};
  return f;
}

bool is_text_command(const std::string& c) {
  return c == "text" || c == "textbf" || c == "textit" || c == "textnormal" || c == "mbox" ||
         c == "mathrm" || c == "mathbf" || c == "mathit" || c == "operatorname" || c == "textrm" ||
         c == "mathsf" || c == "textsf" || c == "mathtt" || c == "texttt" || c == "rm" ||
         c == "mathbb" || c == "mathcal";
}

void lex_fail(const std::string& why) { throw ParseFail{why}; }

namespace {

// Commands that only change spacing or size.
bool is_ignorable_command(const std::string& c) {
  static const std::set<std::string> ign = {"left",
                                            "right",
                                            "big",
                                            "Big",
                                            "bigg",
                                            "Bigg",
                                            "bigl",
                                            "bigr",
                                            "Bigl",
                                            "Bigr",
                                            "biggl",
                                            "biggr",
                                            "displaystyle",
                                            "textstyle",
                                            "limits",
                                            "quad",
                                            "qquad",
                                            ",",
                                            ";",
                                            ":",
                                            " ",
                                            "!",
                                            "nonumber",
                                            "hline",
                                            "middle",
                                            "mathrlap",
                                            "cdotp"};
  return ign.count(c) > 0;
}

}  // namespace

// One loop over the characters with a branch per token class (~150 lines):
// a hand-written lexer reads best as one loop, the branches in priority order.
std::vector<Tok> lex(const std::string& s, Budget& budget) {
  std::vector<Tok> out;
  size_t i = 0;
  auto utf8 = [&](const char* seq, Tk k, const char* as) {
    size_t n = std::strlen(seq);
    if (s.compare(i, n, seq) == 0) {
      out.push_back({k, as});
      i += n;
      return true;
    }
    return false;
  };
  while (i < s.size()) {
    if (++budget.steps > budget.max_steps) throw BudgetExceeded{"step budget"};
    char c = s[i];
    if (is_space(c) || c == '~') {
      ++i;
      continue;
    }
    if (is_digit(c) || (c == '.' && i + 1 < s.size() && is_digit(s[i + 1]))) {
      size_t j = i;
      while (j < s.size() && is_digit(s[j])) ++j;
      if (j < s.size() && s[j] == '.' && j + 1 < s.size() && is_digit(s[j + 1])) {
        ++j;
        while (j < s.size() && is_digit(s[j])) ++j;
      } else if (j < s.size() && s[j] == '.' && (j + 1 == s.size() || !is_digit(s[j + 1]))) {
        // "5." : a trailing point, not a decimal.
      }
      std::string lit = s.substr(i, j - i);
      if (lit[0] == '.') lit = "0" + lit;
      out.push_back({Tk::Num, lit});
      i = j;
      continue;
    }
    if (is_alpha(c)) {
      size_t j = i;
      while (j < s.size() && is_alpha(s[j])) ++j;
      std::string w = s.substr(i, j - i);
      if (function_names().count(w) || w == "pi" || w == "infty" || w == "inf") {
        out.push_back({Tk::Cmd, w == "inf" ? "infty" : w});
      } else {
        for (char ch : w) out.push_back({Tk::Letter, std::string(1, ch)});
      }
      i = j;
      continue;
    }
    if (c == '\\') {
      if (i + 1 >= s.size()) {
        ++i;
        continue;
      }
      char d = s[i + 1];
      if (!is_alpha(d)) {
        std::string sym(1, d);
        i += 2;
        if (d == '\\') {
          out.push_back({Tk::Cmd, "\\"});
          continue;
        }
        if (d == '{' || d == '}') {
          out.push_back({Tk::Op, d == '{' ? "\\{" : "\\}"});
          continue;
        }
        if (is_ignorable_command(sym)) continue;
        if (d == '|') {
          out.push_back({Tk::Op, "|"});
          continue;
        }
        if (d == '#' || d == '&' || d == '_') continue;
        lex_fail("unsupported \\" + sym);
      }
      size_t j = i + 1;
      while (j < s.size() && is_alpha(s[j])) ++j;
      std::string cmd = s.substr(i + 1, j - i - 1);
      i = j;
      if (is_ignorable_command(cmd)) continue;
      // "\quadx" (a lost space): skip the spacing prefix, lex the rest.
      bool split = false;
      for (const char* pre : {"qquad", "quad"}) {
        size_t n = std::strlen(pre);
        if (cmd.size() > n && cmd.compare(0, n, pre) == 0) {
          i -= cmd.size() - n;
          split = true;
          break;
        }
      }
      if (split) continue;
      if (cmd == "dfrac" || cmd == "tfrac" || cmd == "cfrac") cmd = "frac";
      if (is_text_command(cmd)) {
        size_t k = i;
        while (k < s.size() && is_space(s[k])) ++k;
        if (k < s.size() && s[k] == '{') {
          size_t close = match_brace(s, k);
          if (close == std::string::npos) lex_fail("unbalanced braces after \\" + cmd);
          out.push_back({Tk::TextGroup, s.substr(k + 1, close - k - 1)});
          i = close + 1;
        } else if (k < s.size() && is_alpha(s[k])) {
          out.push_back({Tk::TextGroup, std::string(1, s[k])});
          i = k + 1;
        }
        continue;
      }
      out.push_back({Tk::Cmd, cmd});
      continue;
    }
    // A few UTF-8 forms models write.
    if ((unsigned char)c >= 0x80) {
      if (utf8("≤", Tk::Op, "<=") || utf8("≥", Tk::Op, ">=") || utf8("≠", Tk::Op, "!=") ||
          utf8("−", Tk::Op, "-") || utf8("×", Tk::Op, "*") || utf8("·", Tk::Op, "*") ||
          utf8("÷", Tk::Op, "/") || utf8("π", Tk::Cmd, "pi") || utf8("∞", Tk::Cmd, "infty") ||
          utf8("√", Tk::Cmd, "sqrt") || utf8("±", Tk::Cmd, "pm") || utf8("∪", Tk::Cmd, "cup") ||
          utf8("∩", Tk::Cmd, "cap") || utf8("∈", Tk::Cmd, "in") || utf8("²", Tk::Op, "^2") ||
          utf8("³", Tk::Op, "^3") || utf8("≈", Tk::Cmd, "approx"))
        continue;
      lex_fail("unsupported character in answer");
    }
    if ((c == '<' || c == '>' || c == '!') && i + 1 < s.size() && s[i + 1] == '=') {
      out.push_back({Tk::Op, std::string(1, c) + "="});
      i += 2;
      continue;
    }
    if (c == '=' && i + 1 < s.size() && s[i + 1] == '=') {
      out.push_back({Tk::Op, "="});
      i += 2;
      continue;
    }
    if (std::strchr("+-*/^_()[]{},;:=<>!|&'", c)) {
      if (c == '*' && i + 1 < s.size() && s[i + 1] == '*') {  // python power
        out.push_back({Tk::Op, "^"});
        i += 2;
        continue;
      }
      out.push_back({Tk::Op, std::string(1, c)});
      ++i;
      continue;
    }
    lex_fail(std::string("unexpected character '") + c + "'");
  }
  // "^2" from a superscript glyph becomes two tokens.
  std::vector<Tok> fixed;
  for (auto& t : out) {
    if (t.kind == Tk::Op && t.s.size() == 2 && t.s[0] == '^') {
      fixed.push_back({Tk::Op, "^"});
      fixed.push_back({Tk::Num, t.s.substr(1)});
    } else {
      fixed.push_back(t);
    }
  }
  fixed.push_back({Tk::End, ""});
  return fixed;
}

}  // namespace zerorl::rewards::math::latex
