// The LaTeX answer lexer, internal to rewards/math (latex_normalize.cpp,
// latex_lexer.cpp, latex_parser.cpp; not part of the grader's interface):
// tokens, the parse-failure exception, and the command tables the
// normaliser, the lexer and the parser share.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "rewards/math/expr.h"

namespace zerorl::rewards::math::latex {

enum class Tk { Num, Letter, Cmd, Op, TextGroup, End };

struct Tok {
  Tk kind;
  std::string s;
};

struct ParseFail {
  std::string why;
};

// Throws ParseFail{why}.
[[noreturn]] void lex_fail(const std::string& why);

// Function names read as functions (\sin, ln, ...), with or without a backslash.
const std::set<std::string>& function_names();
// Commands whose {group} is text (\text, \mathrm, \mathbb, ...).
bool is_text_command(const std::string& c);

// The tokens of an already-normalised answer, ending with Tk::End.  Throws
// ParseFail on text it cannot read and BudgetExceeded when `budget` runs out.
std::vector<Tok> lex(const std::string& s, Budget& budget);

}  // namespace zerorl::rewards::math::latex
