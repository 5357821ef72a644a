#include "rewards/math/latex_parser.h"
#include "rewards/math/text_util.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>

namespace zerorl::rewards::math {
namespace {

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
}

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

// ---------------------------------------------------------------- lexer

namespace {

enum class Tk { Num, Letter, Cmd, Op, TextGroup, End };

struct Tok {
  Tk kind;
  std::string s;
};

struct ParseFail {
  std::string why;
};

void lex_fail(const std::string& why) { throw ParseFail{why}; }

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

// ---------------------------------------------------------------- parser

bool is_relop_cmd(const std::string& c) {
  static const std::set<std::string> r = {"le",       "leq", "leqslant", "ge", "geq",
                                          "geqslant", "ne",  "neq",      "lt", "gt",
                                          "approx",   "in",  "equiv",    "sim"};
  return r.count(c) > 0;
}

std::string relop_of(const Tok& t) {
  if (t.kind == Tk::Op) {
    if (t.s == "=" || t.s == "<" || t.s == ">" || t.s == "<=" || t.s == ">=" || t.s == "!=")
      return t.s;
    return "";
  }
  if (t.kind != Tk::Cmd) return "";
  const std::string& c = t.s;
  if (c == "le" || c == "leq" || c == "leqslant") return "<=";
  if (c == "ge" || c == "geq" || c == "geqslant") return ">=";
  if (c == "ne" || c == "neq") return "!=";
  if (c == "lt") return "<";
  if (c == "gt") return ">";
  if (c == "approx" || c == "sim") return "approx";
  if (c == "equiv") return "=";
  if (c == "in") return "in";
  return "";
}

bool is_greek(const std::string& c) {
  static const std::set<std::string> g = {
      "alpha",    "beta",    "gamma", "delta",  "epsilon", "varepsilon", "zeta",  "eta",   "theta",
      "vartheta", "iota",    "kappa", "lambda", "mu",      "nu",         "xi",    "rho",   "sigma",
      "tau",      "upsilon", "phi",   "varphi", "chi",     "psi",        "omega", "Gamma", "Delta",
      "Theta",    "Lambda",  "Xi",    "Pi",     "Sigma",   "Phi",        "Psi",   "Omega", "ell"};
  return g.count(c) > 0;
}

class Parser {
 public:
  Parser(std::vector<Tok> toks, const ParseOptions& o, Budget& b)
      : t_(std::move(toks)), o_(o), b_(b) {}

  NodeP top() {
    NodeP n = semilist({});
    if (peek().kind != Tk::End) fail("unexpected '" + peek().s + "'");
    return n;
  }

 private:
  std::vector<Tok> t_;
  size_t i_ = 0;
  const ParseOptions& o_;
  Budget& b_;
  int depth_ = 0;
  size_t nodes_ = 0;
  int abs_depth_ = 0;

  [[noreturn]] void fail(const std::string& why) { throw ParseFail{why}; }
  const Tok& peek(size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  Tok next() {
    Tok t = peek();
    if (i_ < t_.size() - 1) ++i_;
    return t;
  }
  bool is_op(const std::string& s, size_t k = 0) const {
    return peek(k).kind == Tk::Op && peek(k).s == s;
  }
  bool is_cmd(const std::string& s) const { return peek().kind == Tk::Cmd && peek().s == s; }
  void expect_op(const std::string& s) {
    if (!is_op(s)) fail("expected '" + s + "'");
    next();
  }

  struct Depth {
    Parser* p;
    explicit Depth(Parser* q) : p(q) {
      if (++p->depth_ > p->o_.max_depth) p->fail("nesting too deep");
      if ((++p->b_.steps & 255) == 0 && p->b_.expired()) throw BudgetExceeded{"deadline"};
    }
    ~Depth() { --p->depth_; }
  };

  NodeP mk(NodeKind k, std::vector<NodeP> kids = {}, std::string text = "") {
    if (++nodes_ > o_.max_nodes) fail("answer too large");
    auto n = std::make_shared<Node>();
    n->kind = k;
    n->kids = std::move(kids);
    n->text = std::move(text);
    for (auto& c : n->kids) n->has_decimal = n->has_decimal || c->has_decimal;
    return n;
  }

  bool at_closer(const std::vector<std::string>& closers) const {
    const Tok& t = peek();
    if (t.kind == Tk::End) return true;
    for (auto& c : closers) {
      if (t.kind == Tk::Op && t.s == c) return true;
      if (t.kind == Tk::Cmd && ("\\" + t.s) == c) return true;
    }
    return false;
  }

  // a; b; c  (outer) with comma lists inside -> list of tuples.
  NodeP semilist(const std::vector<std::string>& closers, bool semicolon_is_comma = false) {
    Depth d(this);
    std::vector<NodeP> items{commalist(closers, semicolon_is_comma)};
    while (!semicolon_is_comma && is_op(";")) {
      next();
      if (at_closer(closers)) break;
      items.push_back(commalist(closers, false));
    }
    if (items.size() == 1) return items[0];
    for (auto& it : items)
      if (it->kind == NodeKind::List) {
        auto tup = std::make_shared<Node>(*it);
        tup->kind = NodeKind::Tuple;
        it = tup;
      }
    return mk(NodeKind::List, items);
  }

  NodeP commalist(const std::vector<std::string>& closers, bool semicolon_is_comma) {
    std::vector<NodeP> items;
    auto sep = [&] { return is_op(",") || (semicolon_is_comma && is_op(";")); };
    while (sep()) next();  // leading separators ("and x")
    items.push_back(relation());
    while (sep()) {
      while (sep()) next();
      if (at_closer(closers) || (!semicolon_is_comma && is_op(";"))) break;
      items.push_back(relation());
    }
    if (items.size() == 1) return items[0];
    return mk(NodeKind::List, items);
  }

  NodeP relation() {
    std::vector<NodeP> parts{ratio()};
    std::vector<std::string> ops;
    for (;;) {
      std::string op = relop_of(peek());
      if (op.empty()) break;
      next();
      ops.push_back(op);
      parts.push_back(ratio());
    }
    if (ops.empty()) return parts[0];
    // "x = 1/3 \approx 0.33": the approximation after an exact value is
    // commentary; a lone "x \approx 11" is an assignment.
    auto first_approx = std::find(ops.begin(), ops.end(), "approx");
    if (first_approx != ops.end()) {
      if (first_approx != ops.begin()) {
        size_t k = first_approx - ops.begin();
        ops.resize(k);
        parts.resize(k + 1);
      }
      for (auto& o : ops)
        if (o == "approx") o = "=";
    }
    auto n = std::make_shared<Node>();
    n->kind = NodeKind::Rel;
    n->kids = parts;
    n->ops = ops;
    for (auto& c : parts) n->has_decimal = n->has_decimal || c->has_decimal;
    return n;
  }

  NodeP ratio() {
    std::vector<NodeP> parts{setop()};
    while (is_op(":")) {
      next();
      parts.push_back(setop());
    }
    if (parts.size() == 1) return parts[0];
    return mk(NodeKind::Ratio, parts);
  }

  NodeP setop() {
    NodeP a = additive();
    while (is_cmd("cup") || is_cmd("cap") || is_cmd("setminus")) {
      std::string c = next().s;
      if (c == "setminus") fail("set difference not supported");
      NodeKind k = c == "cup" ? NodeKind::Union : NodeKind::Intersect;
      NodeP b = additive();
      std::vector<NodeP> kids;
      if (a->kind == k)
        kids = a->kids;
      else
        kids.push_back(a);
      kids.push_back(b);
      a = mk(k, kids);
    }
    return a;
  }

  NodeP additive() {
    Depth d(this);
    NodeP acc = unary();
    for (;;) {
      if (is_op("+")) {
        next();
        NodeP r = term_after_sign();
        acc = add(acc, r);
      } else if (is_op("-")) {
        next();
        NodeP r = term_after_sign();
        acc = add(acc, mk(NodeKind::Neg, {r}));
      } else if (is_cmd("pm") || is_cmd("mp")) {
        bool mp = next().s == "mp";
        NodeP r = term_after_sign();
        if (mp) r = mk(NodeKind::Neg, {r});
        acc = mk(NodeKind::PlusMinus, {acc, r});
      } else {
        break;
      }
    }
    return acc;
  }

  NodeP add(const NodeP& a, const NodeP& b) {
    std::vector<NodeP> kids;
    if (a->kind == NodeKind::Add)
      kids = a->kids;
    else
      kids.push_back(a);
    kids.push_back(b);
    return mk(NodeKind::Add, kids);
  }

  NodeP term_after_sign() { return unary(); }

  NodeP unary() {
    Depth d(this);
    if (is_op("-")) {
      next();
      return mk(NodeKind::Neg, {unary()});
    }
    if (is_op("+")) {
      next();
      return unary();
    }
    if (is_cmd("pm")) {
      next();
      return mk(NodeKind::PlusMinus, {unary()});
    }
    return product();
  }

  bool starts_primary() const {
    const Tok& t = peek();
    switch (t.kind) {
      case Tk::Num:
      case Tk::Letter:
      case Tk::TextGroup:
        return true;
      case Tk::Op:
        return t.s == "(" || t.s == "{" || t.s == "\\{" || (t.s == "|" && abs_depth_ == 0) ||
               (t.s == "[" && false);
      case Tk::Cmd: {
        const std::string& c = t.s;
        if (c == "\\" || c == "end" || c == "cup" || c == "cap" || c == "pm" || c == "mp" ||
            c == "cdot" || c == "times" || c == "div" || c == "setminus" || c == "to" ||
            is_relop_cmd(c) || c == "rfloor" || c == "rceil" || c == "rangle" || c == "right")
          return false;
        return true;
      }
      default:
        return false;
    }
  }

  NodeP product() {
    NodeP acc = power();
    std::vector<NodeP> factors{acc};
    for (;;) {
      if (is_op("*") || is_cmd("cdot") || is_cmd("times")) {
        next();
        factors.push_back(power_with_sign());
      } else if (is_op("/") || is_cmd("div")) {
        next();
        NodeP den = power_with_sign();
        NodeP num = factors.size() == 1 ? factors[0] : mk(NodeKind::Mul, factors);
        factors = {mk(NodeKind::Div, {num, den})};
      } else if (starts_primary()) {
        factors.push_back(power());
      } else {
        break;
      }
    }
    return factors.size() == 1 ? factors[0] : mk(NodeKind::Mul, factors);
  }

  NodeP power_with_sign() {
    if (is_op("-")) {
      next();
      return mk(NodeKind::Neg, {power_with_sign()});
    }
    return power();
  }

  NodeP power() {
    Depth d(this);
    NodeP base = postfix();
    if (is_op("^")) {
      next();
      NodeP e = script_arg();
      base = mk(NodeKind::Pow, {base, e});
      while (is_op("!")) {
        next();
        base = mk(NodeKind::Func, {base}, "factorial");
      }
    }
    return base;
  }

  // A superscript / fraction argument: {group} or a single token.
  NodeP script_arg() {
    Depth d(this);
    if (is_op("{")) {
      next();
      NodeP n = semilist({"}"});
      expect_op("}");
      return n;
    }
    if (is_op("-")) {
      next();
      return mk(NodeKind::Neg, {script_arg()});
    }
    if (peek().kind == Tk::Num && peek().s.size() > 1 && peek().s.find('.') == std::string::npos) {
      // x^23 in LaTeX is x^2 * 3: take one digit.
      std::string first = peek().s.substr(0, 1);
      t_[i_].s = t_[i_].s.substr(1);
      return num(first);
    }
    return postfix();
  }

  NodeP num(const std::string& lit) {
    NodeP n = mk(NodeKind::Num, {}, lit);
    if (lit.find('.') != std::string::npos) std::const_pointer_cast<Node>(n)->has_decimal = true;
    return n;
  }

  NodeP postfix() {
    NodeP p = primary();
    for (;;) {
      if (is_op("_")) {
        next();
        std::string sub = raw_script();
        if (p->kind == NodeKind::Sym || p->kind == NodeKind::Num)
          p = mk(NodeKind::Sym, {}, p->text + "_" + sub);
        else
          fail("subscript on an expression");
      } else if (is_op("!")) {
        next();
        p = mk(NodeKind::Func, {p}, "factorial");
      } else if (is_op("'")) {
        next();
        if (p->kind != NodeKind::Sym) fail("prime on an expression");
        p = mk(NodeKind::Sym, {}, p->text + "'");
      } else {
        break;
      }
    }
    return p;
  }

  // The canonical text of a subscript ({37} -> "37", {n-k-1} -> "n-k-1").
  std::string raw_script() {
    if (is_op("{")) {
      next();
      std::string out;
      int d = 1;
      while (peek().kind != Tk::End) {
        if (is_op("{")) ++d;
        if (is_op("}") && --d == 0) break;
        out += next().s;
      }
      expect_op("}");
      return out;
    }
    Tok t = next();
    if (t.kind == Tk::End) fail("empty subscript");
    if (t.kind == Tk::Num && t.s.size() > 1) {  // x_12 is x_1 2 in LaTeX
      t_[i_ - 1].s = t.s.substr(1);
      --i_;
      return t.s.substr(0, 1);
    }
    return t.s;
  }

  NodeP group_or_token() {
    if (is_op("{")) {
      next();
      NodeP n = semilist({"}"});
      expect_op("}");
      return n;
    }
    if (peek().kind == Tk::Num && peek().s.find('.') == std::string::npos && peek().s.size() > 1) {
      std::string first = peek().s.substr(0, 1);  // \frac12 -> 1 / 2
      t_[i_].s = t_[i_].s.substr(1);
      return num(first);
    }
    return postfix();
  }

  NodeP bracketed(const std::string& open) {
    // ( ... ) or [ ... ], with the closer deciding interval ends.
    NodeP inner;
    std::vector<NodeP> items;
    if (is_op(")") || is_op("]")) fail("empty brackets");
    NodeP content = semilist({")", "]"}, true);
    Tok close = next();
    if (close.kind != Tk::Op || (close.s != ")" && close.s != "]")) fail("unbalanced brackets");
    if (content->kind == NodeKind::List)
      items = content->kids;
    else
      items = {content};
    if (items.size() == 1) {
      if (open == "(" && close.s == ")") return items[0];
      if (open == "[" && close.s == "]") return items[0];
      fail("mismatched brackets");
    }
    if (items.size() == 2 && !(open == "(" && close.s == ")")) {
      NodeP n = mk(NodeKind::Interval, items);
      auto m = std::const_pointer_cast<Node>(n);
      m->left_closed = open == "[";
      m->right_closed = close.s == "]";
      return n;
    }
    return mk(NodeKind::Tuple, items);
  }

  NodeP matrix(const std::string& env) {
    if (env == "array" && is_op("{")) {  // column spec
      int d = 0;
      do {
        if (is_op("{")) ++d;
        if (is_op("}")) --d;
        next();
      } while (d > 0 && peek().kind != Tk::End);
    }
    std::vector<std::vector<NodeP>> rows(1);
    for (;;) {
      if (is_cmd("end")) break;
      if (peek().kind == Tk::End) fail("unterminated matrix");
      if (is_cmd("\\")) {
        next();
        rows.emplace_back();
        continue;
      }
      if (is_op("&")) {
        next();
        continue;
      }
      rows.back().push_back(semilist({"&", "\\\\", "\\end"}));
    }
    next();  // \end
    if (is_op("{")) {
      next();
      while (!is_op("}") && peek().kind != Tk::End) next();
      expect_op("}");
    }
    while (!rows.empty() && rows.back().empty()) rows.pop_back();
    if (rows.empty()) fail("empty matrix");
    size_t cols = rows[0].size();
    std::vector<NodeP> kids;
    for (auto& r : rows) {
      if (r.size() != cols) fail("ragged matrix");
      for (auto& c : r) kids.push_back(c);
    }
    NodeP n = mk(NodeKind::Matrix, kids);
    auto m = std::const_pointer_cast<Node>(n);
    m->rows = (int)rows.size();
    m->cols = (int)cols;
    return n;
  }

  NodeP text_group(const std::string& raw) {
    std::string c = trim(raw);
    if (c.empty()) fail("empty text");
    if (c.size() == 1 && is_alpha(c[0])) return mk(NodeKind::Sym, {}, c);
    bool numeric = true;
    for (char ch : c)
      if (!is_digit(ch) && ch != '.') numeric = false;
    if (numeric) return num(c);
    if (function_names().count(c) && peek().kind != Tk::End) return func(c);
    std::string low;
    for (char ch : c) {
      if (is_alpha(ch) || is_digit(ch))
        low += (char)std::tolower((unsigned char)ch);
      else if (is_space(ch) && !low.empty() && low.back() != ' ')
        low += ' ';
    }
    while (!low.empty() && low.back() == ' ') low.pop_back();
    if (low.empty()) fail("text without letters");
    if (low.size() == 1) {
      // \text{(C)} names the choice C.
      for (char ch : c)
        if (is_alpha(ch)) return mk(NodeKind::Sym, {}, std::string(1, ch));
    }
    return mk(NodeKind::Text, {}, low);
  }

  NodeP func(const std::string& name) {
    // Optional power: \sin^2 x, \sin^{-1} x.
    NodeP pw;
    if (is_op("^")) {
      next();
      pw = script_arg();
    }
    NodeP base;
    if (name == "log" && is_op("_")) {
      next();
      std::string b = raw_script();
      NodeP arg = func_arg();
      return mk(NodeKind::Func, {arg, num(b)}, "logb");
    }
    NodeP arg = func_arg();
    std::string fname = name == "lg" ? "log10" : name;
    if (pw && pw->kind == NodeKind::Neg && pw->kids[0]->kind == NodeKind::Num &&
        pw->kids[0]->text == "1" && (name == "sin" || name == "cos" || name == "tan")) {
      return mk(NodeKind::Func, {arg}, "arc" + name);
    }
    NodeP f = mk(NodeKind::Func, {arg}, fname);
    if (pw) f = mk(NodeKind::Pow, {f, pw});
    return f;
  }

  NodeP func_arg() {
    if (is_op("(")) {
      next();
      NodeP a = semilist({")"});
      expect_op(")");
      return a;
    }
    if (is_op("{")) return group_or_token();
    if (is_op("-")) {
      next();
      return mk(NodeKind::Neg, {func_arg()});
    }
    // \sin 2x is sin(2x) by convention; \sin x \cos y is sin(x) cos(y).
    std::vector<NodeP> f{power()};
    while ((peek().kind == Tk::Letter || peek().kind == Tk::Num) && f.size() < 4 &&
           f.back()->kind == NodeKind::Num)
      f.push_back(power());
    return f.size() == 1 ? f[0] : mk(NodeKind::Mul, f);
  }

  NodeP primary() {
    Depth d(this);
    Tok t = peek();
    switch (t.kind) {
      case Tk::Num:
        next();
        return num(t.s);
      case Tk::Letter:
        next();
        return mk(NodeKind::Sym, {}, t.s);
      case Tk::TextGroup:
        next();
        return text_group(t.s);
      case Tk::End:
        fail("unexpected end of answer");
      case Tk::Op: {
        if (t.s == "(" || t.s == "[") {
          next();
          return bracketed(t.s);
        }
        if (t.s == "{") {
          next();
          if (is_op("}")) fail("empty group");
          NodeP n = semilist({"}"});
          expect_op("}");
          return n;
        }
        if (t.s == "\\{") {
          next();
          std::vector<NodeP> items;
          if (!is_op("\\}")) {
            NodeP c = semilist({"\\}"}, true);
            if (c->kind == NodeKind::List)
              items = c->kids;
            else
              items = {c};
          }
          expect_op("\\}");
          return mk(NodeKind::Set, items);
        }
        if (t.s == "|") {
          next();
          ++abs_depth_;
          NodeP a = additive();
          --abs_depth_;
          expect_op("|");
          return mk(NodeKind::Func, {a}, "abs");
        }
        fail("unexpected '" + t.s + "'");
      }
      case Tk::Cmd: {
        next();
        const std::string& c = t.s;
        if (c == "frac" || c == "binom") {
          NodeP a = group_or_token();
          NodeP b = group_or_token();
          if (c == "binom") return mk(NodeKind::Func, {a, b}, "binomial");
          return mk(NodeKind::Div, {a, b});
        }
        if (c == "sqrt") {
          NodeP idx;
          if (is_op("[")) {
            next();
            idx = semilist({"]"});
            expect_op("]");
          }
          NodeP a = group_or_token();
          if (idx) return mk(NodeKind::Pow, {a, mk(NodeKind::Div, {num("1"), idx})});
          return mk(NodeKind::Func, {a}, "sqrt");
        }
        if (function_names().count(c)) return func(c);
        if (c == "pi" || c == "infty") return mk(NodeKind::Sym, {}, c);
        if (c == "emptyset" || c == "varnothing") return mk(NodeKind::Set, {});
        if (is_greek(c)) return mk(NodeKind::Sym, {}, c);
        if (c == "boxed" || c == "fbox" || c == "overline" || c == "vec" || c == "hat" ||
            c == "bar" || c == "underline" || c == "widehat" || c == "overrightarrow") {
          NodeP a = group_or_token();
          if (c == "boxed" || c == "fbox") return a;
          if (a->kind == NodeKind::Sym) return mk(NodeKind::Sym, {}, c + "(" + a->text + ")");
          return mk(NodeKind::Sym, {}, c + "(" + to_string(a) + ")");
        }
        if (c == "lfloor" || c == "lceil") {
          NodeP a = additive();
          if (!is_cmd(c == "lfloor" ? "rfloor" : "rceil")) fail("unbalanced floor/ceil");
          next();
          return mk(NodeKind::Func, {a}, c == "lfloor" ? "floor" : "ceil");
        }
        if (c == "begin") {
          if (!is_op("{")) fail("\\begin without environment");
          next();
          std::string env;
          while (!is_op("}") && peek().kind != Tk::End) env += next().s;
          expect_op("}");
          if (env == "pmatrix" || env == "bmatrix" || env == "matrix" || env == "array" ||
              env == "vmatrix" || env == "Bmatrix" || env == "smallmatrix")
            return matrix(env);
          fail("unsupported environment " + env);
        }
        // An unknown command names something (\zzz, \heartsuit): a symbol.
        if (c.size() <= 32) return mk(NodeKind::Sym, {}, "\\" + c);
        fail("unsupported command \\" + c);
      }
    }
    fail("unreadable answer");
  }
};

}  // namespace

NodeP parse_answer(const std::string& s, const ParseOptions& opt, Budget& budget,
                   std::string* why) {
  if (s.size() > opt.max_chars) {
    if (why) *why = "answer longer than " + std::to_string(opt.max_chars) + " characters";
    return nullptr;
  }
  std::string t = trim(s);
  if (t.empty()) {
    if (why) *why = "empty answer";
    return nullptr;
  }
  // A plain word answer ("odd", "Evelyn") is text, not a product of letters.
  {
    bool words = t.size() >= 2 && is_alpha(t[0]);
    for (char c : t)
      if (!is_alpha(c) && c != ' ') words = false;
    if (words && !function_names().count(t) && t != "pi" && t != "infty") {
      auto n = std::make_shared<Node>();
      n->kind = NodeKind::Text;
      for (char c : t) n->text += (char)std::tolower((unsigned char)c);
      return n;
    }
  }
  try {
    Parser p(lex(t, budget), opt, budget);
    return p.top();
  } catch (const ParseFail& f) {
    if (why) *why = f.why;
    return nullptr;
  }
}

// ---------------------------------------------------------------- printing

std::string to_string(const NodeP& n) {
  if (!n) return "<null>";
  auto join = [&](const char* sep) {
    std::string s;
    for (size_t i = 0; i < n->kids.size(); ++i) s += (i ? sep : "") + to_string(n->kids[i]);
    return s;
  };
  switch (n->kind) {
    case NodeKind::Num:
    case NodeKind::Sym:
      return n->text;
    case NodeKind::Text:
      return "\\text{" + n->text + "}";
    case NodeKind::Add:
      return "(" + join("+") + ")";
    case NodeKind::Mul:
      return "(" + join("*") + ")";
    case NodeKind::Div:
      return "(" + join("/") + ")";
    case NodeKind::Neg:
      return "(-" + to_string(n->kids[0]) + ")";
    case NodeKind::Pow:
      return "(" + join("^") + ")";
    case NodeKind::Func:
      return n->text + "(" + join(",") + ")";
    case NodeKind::PlusMinus:
      return "(" + join("±") + (n->kids.size() == 1 ? "±" : "") + ")";
    case NodeKind::Tuple:
      return "(" + join(",") + ")";
    case NodeKind::List:
      return join(",");
    case NodeKind::Set:
      return "{" + join(",") + "}";
    case NodeKind::Interval:
      return std::string(n->left_closed ? "[" : "(") + join(",") + (n->right_closed ? "]" : ")");
    case NodeKind::Union:
      return join(" ∪ ");
    case NodeKind::Intersect:
      return join(" ∩ ");
    case NodeKind::Ratio:
      return join(":");
    case NodeKind::Rel: {
      std::string s = to_string(n->kids[0]);
      for (size_t i = 0; i < n->ops.size(); ++i)
        s += " " + n->ops[i] + " " + to_string(n->kids[i + 1]);
      return s;
    }
    case NodeKind::Matrix: {
      std::string s = "[";
      for (int r = 0; r < n->rows; ++r) {
        s += r ? ";" : "";
        for (int c = 0; c < n->cols; ++c) s += (c ? "," : "") + to_string(n->kids[r * n->cols + c]);
      }
      return s + "]";
    }
  }
  return "?";
}

}  // namespace zerorl::rewards::math
