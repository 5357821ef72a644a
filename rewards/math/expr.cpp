// to_string (expr.h): the canonical text of an expression tree.
#include <string>

#include "rewards/math/expr.h"

namespace zerorl::rewards::math {

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
