// The parsed form of a math answer: a small immutable tree built by
// parse_answer() (latex_parser.h) and compared by equivalence.h.
//
// Nodes are shared and immutable, so trees can be shared between threads.
// Numbers keep their literal text (exact: "16386.16", "7", ".4" -> "0.4") and
// whether a decimal point was written, because decimals are compared after
// rounding while integers and fractions are compared exactly.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace zerorl::rewards::math {

enum class NodeKind {
  Num,        // text = canonical decimal literal
  Sym,        // text = name ("x", "a_37", "pi", "infty", "alpha")
  Text,       // text = lower-cased words (\text{Evelyn}, "odd")
  Add,        // sum of kids
  Mul,        // product of kids
  Div,        // kids[0] / kids[1]
  Neg,        // -kids[0]
  Pow,        // kids[0] ^ kids[1]
  Func,       // text = function name, kids = arguments
  PlusMinus,  // kids[0] ± kids[1]; unary ±x has kids = {x}
  Tuple,      // ordered (a, b, ...)
  List,       // bare "a, b, c" or "a and b": compared order-free
  Set,        // \{a, b\}
  Interval,   // kids = {lo, hi}, left_closed/right_closed
  Union,      // kids: sets/intervals
  Intersect,
  Rel,     // kids = chain parts, ops = relations between them
  Ratio,   // a : b : c
  Matrix,  // rows x cols, kids row-major
};

struct Node;
using NodeP = std::shared_ptr<const Node>;

struct Node {
  NodeKind kind = NodeKind::Num;
  std::string text;
  std::vector<NodeP> kids;
  std::vector<std::string> ops;  // Rel: "=", "<", "<=", ">", ">=", "!=", "in"
  bool left_closed = false, right_closed = false;
  int rows = 0, cols = 0;
  bool has_decimal = false;  // Num written with a decimal point (or any kid)
};

// A node of kind k over `kids`, with `text`; has_decimal is inherited from
// the kids.  The parser and the comparison build their trees with it.
inline NodeP make_node(NodeKind k, std::vector<NodeP> kids = {}, std::string text = "") {
  auto n = std::make_shared<Node>();
  n->kind = k;
  n->kids = std::move(kids);
  n->text = std::move(text);
  for (auto& c : n->kids) n->has_decimal = n->has_decimal || c->has_decimal;
  return n;
}

// Canonical text of a tree (used for structural comparison and messages).
std::string to_string(const NodeP& n);

// Work bounds shared by the parser and the comparison.  `deadline` is checked
// cooperatively (no signals), so bounds are safe in any thread.
struct Budget {
  std::chrono::steady_clock::time_point deadline;
  long long steps = 0;
  long long max_steps = 2'000'000;
  bool expired() const { return std::chrono::steady_clock::now() > deadline; }
};

// Thrown inside the math code (never out of a Reward) when a bound is hit.
struct BudgetExceeded {
  std::string why;
};

}  // namespace zerorl::rewards::math
