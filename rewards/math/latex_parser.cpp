// parse_answer (latex_parser.h): a recursive-descent parser from the
// lexer's tokens (latex_lexer.h) to an expression tree (expr.h).
#include "rewards/math/latex_parser.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>

#include "rewards/math/latex_lexer.h"
#include "rewards/math/text_util.h"

namespace zerorl::rewards::math {
namespace {

using latex::function_names;
using latex::lex;
using latex::ParseFail;
using latex::Tk;
using latex::Tok;

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
    return make_node(k, std::move(kids), std::move(text));
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

  // One case per kind of primary expression (~100 lines), as the grammar
  // lists them; a recursive-descent parser reads best that way.
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

}  // namespace zerorl::rewards::math
