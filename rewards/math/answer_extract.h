// Finding the final answer in a completion.
//
// Order (each step can be switched off):
//   1. the last <answer>...</answer> block (an unclosed <answer> runs to the
//      end of text); the steps below then look inside it only;
//   2. the last \boxed{...} / \fbox{...} with balanced braces (several boxes
//      at the very end separated only by "and", commas or a couple of words
//      are joined into a list);
//   3. a phrase: "final answer is", "the answer is", "answer:" (the last one);
//   4. the last LaTeX math segment ($...$, $$...$$, \(...\), \[...\]) or the
//      last number in the text, whichever ends later.
// Linear in the text length; no regex backtracking.  Never throws.
#pragma once

#include <string>
#include <vector>

namespace zerorl::rewards::math {

struct ExtractOptions {
  bool answer_tag = true;
  bool boxed = true;
  bool phrases = true;
  bool latex = true;        // $...$ and friends
  bool last_number = true;  // plain numbers in prose
  bool whole_text = false;  // a short completion that is just an answer
};

struct Candidate {
  std::string text;
  std::string method;  // "boxed", "answer_tag", "phrase", "latex", "number", "whole"
};

// Candidates in priority order (best first); empty when nothing looks like an answer.
std::vector<Candidate> extract_candidates(const std::string& completion, const ExtractOptions& opt);

// The gold answer as written in a dataset: a bare answer, or a solution
// text with \boxed{} / $...$.
std::string extract_gold(const std::string& gold);

}  // namespace zerorl::rewards::math
