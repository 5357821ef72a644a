#include "rewards/math/equivalence.h"
#include "rewards/math/equivalence_scalar.h"

#include <ginac/ginac.h>
#include <gmpxx.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <set>

namespace zerorl::rewards::math {
namespace {

using K = NodeKind;
using scalar::eval_rational;
using scalar::proportional;
using scalar::scalar_equal;
using scalar::tick;

// ------------------------------------------------------------ structure

bool has_number_literal(const NodeP& n) {
  if (n->kind == K::Num) return true;
  if (n->kind == K::Sym) return false;  // subscripts live in the name
  for (auto& k : n->kids)
    if (has_number_literal(k)) return true;
  return false;
}

bool is_eq(const NodeP& n) { return n->kind == K::Rel && n->ops.size() == 1 && n->ops[0] == "="; }

bool is_ineq(const NodeP& n) {
  if (n->kind != K::Rel) return false;
  for (auto& o : n->ops)
    if (o == "=" || o == "in") return false;
  return true;
}

// An assignment names its left side: "x = 3", "f(x) = 1", "(p, q) = (3, 2)".
bool is_assignment(const NodeP& n) { return is_eq(n) && !has_number_literal(n->kids[0]); }

// a = b = c keeps the last link; x \in S is S.
NodeP simplify_relation(const NodeP& n) {
  if (n->kind != K::Rel) return n;
  if (n->ops.size() == 1 && n->ops[0] == "in") return n->kids[1];
  bool all_eq = std::all_of(n->ops.begin(), n->ops.end(), [](auto& o) { return o == "="; });
  if (all_eq && n->ops.size() >= 2) {
    // "x = 5+5+1 = 11" assigns 11 to x: the left side is the last named part
    // before the value, else the first part.
    NodeP lhs = n->kids[0];
    for (size_t i = n->kids.size() - 1; i-- > 0;)
      if (!has_number_literal(n->kids[i])) {
        lhs = n->kids[i];
        break;
      }
    auto m = std::make_shared<Node>(*n);
    m->kids = {lhs, n->kids.back()};
    m->ops = {"="};
    return m;
  }
  return n;
}

NodeP infinity(bool negative) {
  NodeP inf = make_node(K::Sym, {}, "infty");
  return negative ? make_node(K::Neg, {inf}) : inf;
}

// a < x <= b, x > a, ... -> interval; nullptr when not of that shape.
NodeP relation_to_interval(const NodeP& n) {
  if (!is_ineq(n)) return nullptr;
  auto flip = [](const std::string& o) {
    if (o == "<") return std::string(">");
    if (o == ">") return std::string("<");
    if (o == "<=") return std::string(">=");
    if (o == ">=") return std::string("<=");
    return o;
  };
  std::vector<NodeP> parts = n->kids;
  std::vector<std::string> ops = n->ops;
  if (ops.size() == 2) {
    if ((ops[0] == ">" || ops[0] == ">=") && (ops[1] == ">" || ops[1] == ">=")) {
      std::reverse(parts.begin(), parts.end());
      std::reverse(ops.begin(), ops.end());
      for (auto& o : ops) o = flip(o);
    }
    if (!((ops[0] == "<" || ops[0] == "<=") && (ops[1] == "<" || ops[1] == "<="))) return nullptr;
    NodeP iv = make_node(K::Interval, {parts[0], parts[2]});
    auto m = std::const_pointer_cast<Node>(iv);
    m->left_closed = ops[0] == "<=";
    m->right_closed = ops[1] == "<=";
    return iv;
  }
  if (ops.size() != 1 || ops[0] == "!=") return nullptr;
  // Put the variable on the left.
  NodeP var = parts[0], bound = parts[1];
  std::string op = ops[0];
  if (has_number_literal(var) && !has_number_literal(bound)) {
    std::swap(var, bound);
    op = flip(op);
  }
  bool upper = op == "<" || op == "<=";
  NodeP iv = upper ? make_node(K::Interval, {infinity(true), bound})
                   : make_node(K::Interval, {bound, infinity(false)});
  auto m = std::const_pointer_cast<Node>(iv);
  m->left_closed = !upper && op == ">=";
  m->right_closed = upper && op == "<=";
  return iv;
}

// ± expands to both values; at most 16 alternatives.
std::vector<NodeP> expand_pm(const NodeP& n, Budget& b) {
  tick(b);
  bool any = false;
  std::function<bool(const NodeP&)> has = [&](const NodeP& x) {
    if (x->kind == K::PlusMinus) return true;
    for (auto& k : x->kids)
      if (has(k)) return true;
    return false;
  };
  any = has(n);
  if (!any) return {n};
  if (n->kind == K::PlusMinus) {
    std::vector<NodeP> out;
    if (n->kids.size() == 1) {
      for (auto& v : expand_pm(n->kids[0], b)) {
        out.push_back(v);
        out.push_back(make_node(K::Neg, {v}));
      }
    } else {
      for (auto& l : expand_pm(n->kids[0], b))
        for (auto& r : expand_pm(n->kids[1], b)) {
          out.push_back(make_node(K::Add, {l, r}));
          out.push_back(make_node(K::Add, {l, make_node(K::Neg, {r})}));
        }
    }
    if (out.size() > 16) throw BudgetExceeded{"too many ± combinations"};
    return out;
  }
  if (n->kind == K::Tuple || n->kind == K::List || n->kind == K::Set || n->kind == K::Rel ||
      n->kind == K::Interval || n->kind == K::Matrix)
    return {n};  // ± inside structure is expanded when its elements are compared
  std::vector<std::vector<NodeP>> opts;
  for (auto& k : n->kids) opts.push_back(expand_pm(k, b));
  std::vector<NodeP> out;
  std::vector<size_t> idx(opts.size(), 0);
  for (;;) {
    auto m = std::make_shared<Node>(*n);
    for (size_t i = 0; i < opts.size(); ++i) m->kids[i] = opts[i][idx[i]];
    out.push_back(m);
    if (out.size() > 16) throw BudgetExceeded{"too many ± combinations"};
    size_t i = 0;
    while (i < idx.size() && ++idx[i] == opts[i].size()) idx[i++] = 0;
    if (i == idx.size()) break;
  }
  return out;
}

bool is_collection(const NodeP& n) {
  return n->kind == K::Tuple || n->kind == K::List || n->kind == K::Set || n->kind == K::Interval ||
         n->kind == K::Union || n->kind == K::Intersect;
}

class Comparer {
 public:
  Comparer(const CompareOptions& o, Budget& b) : o_(o), b_(b) {}

  // The comparison rules in the order they are tried (~110 lines): which
  // rule decides a verdict depends on that order, so it stays in one place.
  Comparison eq(NodeP g, NodeP p, int depth = 0) {
    tick(b_);
    if (depth > 40) throw BudgetExceeded{"comparison nesting too deep"};
    g = simplify_relation(g);
    p = simplify_relation(p);

    // ---- equations and assignments
    if (is_eq(g) && is_eq(p)) {
      auto l = eq(g->kids[0], p->kids[0], depth + 1);
      if (l.equal && eq(g->kids[1], p->kids[1], depth + 1).equal) return {true, "same equation"};
      auto d1 = make_node(K::Add, {g->kids[0], make_node(K::Neg, {g->kids[1]})});
      auto d2 = make_node(K::Add, {p->kids[0], make_node(K::Neg, {p->kids[1]})});
      if (!is_collection(g->kids[1]) && !is_collection(p->kids[1])) {
        auto r = proportional(d1, d2, false, o_, b_);
        if (r.equal) return r;
      }
      if (is_assignment(g) && is_assignment(p) && l.equal) return {false, "different values"};
      if (is_assignment(g) && is_assignment(p)) return eq(g->kids[1], p->kids[1], depth + 1);
      return {false, "different equations"};
    }
    if (is_eq(g)) {
      if (is_assignment(g)) return eq(g->kids[1], p, depth + 1);
      return {false, "gold is an equation, prediction is not"};
    }
    if (is_eq(p)) return eq(g, p->kids[1], depth + 1);

    // ---- inequalities and intervals
    if (is_ineq(g) || is_ineq(p)) {
      if (is_ineq(g) && is_ineq(p)) return relation_eq(g, p, depth);
      if (is_ineq(g)) {
        NodeP iv = relation_to_interval(g);
        if (iv && (p->kind == K::Interval || p->kind == K::Tuple || p->kind == K::Union))
          return eq(iv, p, depth + 1);
        return {false, "gold is an inequality, prediction is not"};
      }
      if (o_.allow_set_relation_comp) {
        NodeP iv = relation_to_interval(p);
        if (iv) return eq(g, iv, depth + 1);
      }
      return {false, "prediction is an inequality, gold is not"};
    }

    // ---- ±
    auto ga = expand_pm(g, b_), pa = expand_pm(p, b_);
    if (ga.size() > 1 || pa.size() > 1) {
      if (p->kind == K::List || p->kind == K::Set) return unordered(ga, p->kids, depth);
      if (g->kind == K::List || g->kind == K::Set) return unordered(g->kids, pa, depth);
      return unordered(ga, pa, depth);
    }

    // ---- text
    if (g->kind == K::Text || p->kind == K::Text) {
      auto letters = [](const NodeP& n) {
        std::string s;
        for (char ch : to_string(n))
          if (std::isalnum((unsigned char)ch)) s += (char)std::tolower((unsigned char)ch);
        return s;
      };
      return letters(g) == letters(p) ? Comparison{true, "same text"}
                                      : Comparison{false, "different text"};
    }

    // ---- collections
    if (g->kind == K::Union || p->kind == K::Union) {
      NodeP gs = flatten_finite_union(g), ps = flatten_finite_union(p);
      if (gs->kind == K::Union && ps->kind == K::Union) return unordered(gs->kids, ps->kids, depth);
      if (gs->kind != K::Union && ps->kind != K::Union) return eq(gs, ps, depth + 1);
      return {false, "union vs non-union"};
    }
    if (g->kind == K::Interval || p->kind == K::Interval) {
      const NodeP& iv = g->kind == K::Interval ? g : p;
      const NodeP& other = g->kind == K::Interval ? p : g;
      if (other->kind == K::Interval) {
        if (g->left_closed != p->left_closed || g->right_closed != p->right_closed)
          return {false, "interval ends differ"};
        return ordered(g->kids, p->kids, depth);
      }
      if (other->kind == K::Tuple && other->kids.size() == 2 && !iv->left_closed &&
          !iv->right_closed)
        return ordered(g->kids, p->kids, depth);
      return {false, "interval vs non-interval"};
    }
    if (g->kind == K::Tuple && (p->kind == K::Tuple || p->kind == K::List))
      return ordered(g->kids, p->kids, depth);
    if (p->kind == K::Tuple && g->kind == K::List) return ordered(g->kids, p->kids, depth);
    if ((g->kind == K::List || g->kind == K::Set) && (p->kind == K::List || p->kind == K::Set))
      return unordered(g->kids, p->kids, depth);
    if (g->kind == K::Ratio || p->kind == K::Ratio) {
      if (g->kind != p->kind || g->kids.size() != p->kids.size())
        return {false, "ratio shapes differ"};
      auto r = ordered(g->kids, p->kids, depth);
      if (r.equal || g->kids.size() != 2) return r;
      mpq_class q1, q2;
      if ((eval_rational(g->kids[1], q1, b_) && q1 == 0) ||
          (eval_rational(p->kids[1], q2, b_) && q2 == 0))
        return r;  // 12:00 is a time, not a ratio
      // a:b = c:d when a d = b c (and the ratio is defined).
      auto ad = make_node(K::Mul, {g->kids[0], p->kids[1]});
      auto bc = make_node(K::Mul, {g->kids[1], p->kids[0]});
      auto c = scalar_equal(ad, bc, o_, b_);
      return c.equal ? Comparison{true, "equal ratios"} : Comparison{false, "different ratios"};
    }
    if (is_collection(g) || is_collection(p)) {
      // A one-element list is its element.
      if ((g->kind == K::List || g->kind == K::Set) && g->kids.size() == 1)
        return eq(g->kids[0], p, depth + 1);
      if ((p->kind == K::List || p->kind == K::Set) && p->kids.size() == 1)
        return eq(g, p->kids[0], depth + 1);
      return {false, "different kinds of answer"};
    }
    return scalar_equal(g, p, o_, b_);
  }

 private:
  const CompareOptions& o_;
  Budget& b_;

  NodeP flatten_finite_union(const NodeP& n) {
    if (n->kind != K::Union) return n;
    bool all_sets = std::all_of(n->kids.begin(), n->kids.end(),
                                [](auto& k) { return k->kind == K::Set || k->kind == K::List; });
    if (!all_sets) return n;
    std::vector<NodeP> items;
    for (auto& k : n->kids) items.insert(items.end(), k->kids.begin(), k->kids.end());
    return make_node(K::Set, items);
  }

  Comparison ordered(const std::vector<NodeP>& a, const std::vector<NodeP>& b, int depth) {
    if (a.size() != b.size()) return {false, "different lengths"};
    for (size_t i = 0; i < a.size(); ++i) {
      auto c = eq(a[i], b[i], depth + 1);
      if (!c.equal) return {false, "element " + std::to_string(i + 1) + ": " + c.how};
    }
    return {true, "all elements equal"};
  }

  // Set semantics: every element of each side equals one of the other.
  Comparison unordered(const std::vector<NodeP>& a, const std::vector<NodeP>& b, int depth) {
    if (a.size() > 64 || b.size() > 64) throw BudgetExceeded{"sets too large"};
    std::vector<char> b_hit(b.size(), 0);
    for (auto& x : a) {
      bool found = false;
      for (size_t j = 0; j < b.size(); ++j) {
        if (eq(x, b[j], depth + 1).equal) {
          found = true;
          b_hit[j] = 1;
        }
      }
      if (!found) return {false, "gold element " + to_string(x) + " missing"};
    }
    for (size_t j = 0; j < b.size(); ++j) {
      if (b_hit[j]) continue;
      bool found = false;
      for (auto& x : a)
        if (eq(x, b[j], depth + 1).equal) {
          found = true;
          break;
        }
      if (!found) return {false, "extra element " + to_string(b[j])};
    }
    return {true, "same set"};
  }

  Comparison relation_eq(const NodeP& g, const NodeP& p, int depth) {
    auto norm = [](const NodeP& n, std::vector<NodeP>& parts, std::vector<std::string>& ops) {
      parts = n->kids;
      ops = n->ops;
      bool greater =
          std::all_of(ops.begin(), ops.end(), [](auto& o) { return o == ">" || o == ">="; });
      if (greater) {
        std::reverse(parts.begin(), parts.end());
        std::reverse(ops.begin(), ops.end());
        for (auto& o : ops) o = o == ">" ? "<" : "<=";
      }
    };
    std::vector<NodeP> gp, pp;
    std::vector<std::string> go, po;
    norm(g, gp, go);
    norm(p, pp, po);
    if (go.size() == 1 && po.size() == 1) {
      // a < b  ~  c < d  when a - b = k (c - d), k > 0; also a < b ~ d > c via sign.
      bool gstrict = go[0] == "<" || go[0] == ">", pstrict = po[0] == "<" || po[0] == ">";
      if (go[0] == "!=" || po[0] == "!=") {
        if (go[0] != po[0]) return {false, "different relations"};
      } else if (gstrict != pstrict) {
        return {false, "strict vs non-strict"};
      }
      auto d1 = make_node(K::Add, {gp[0], make_node(K::Neg, {gp[1]})});
      auto d2 = make_node(K::Add, {pp[0], make_node(K::Neg, {pp[1]})});
      bool same_dir = (go[0] == "<" || go[0] == "<=") == (po[0] == "<" || po[0] == "<=");
      if (go[0] == "!=") return proportional(d1, d2, false, o_, b_);
      if (same_dir) return proportional(d1, d2, true, o_, b_);
      return proportional(d1, make_node(K::Neg, {d2}), true, o_, b_);
    }
    if (go != po) return {false, "different relations"};
    return ordered(gp, pp, depth);
  }
};

}  // namespace

Comparison equivalent(const NodeP& gold, const NodeP& pred, const CompareOptions& opt,
                      Budget& budget) {
  Comparer c(opt, budget);
  return c.eq(gold, pred);
}

}  // namespace zerorl::rewards::math
