// Reflection detection: whether a completion re-checks or corrects itself
// (issue 19, item 3).  Pure functions on the completion as generated (what
// the rewards score and samples.jsonl logs; a prompt that opened <think>
// leaves only "</think>" in it, handled below); training
// (add_batch_metrics) and evaluation (evaluate) both count through
// detect_reflection().
//
// The reasoning part (reasoning_text): every <answer>...</answer> span is
// removed first (an unclosed <answer> to the end of the text), so nothing
// inside an answer ever counts; then, when "<think>" occurs, only what lies
// inside <think>...</think> blocks (an unclosed one to the end) is kept;
// with no "<think>" but a "</think>", what precedes the first "</think>";
// with neither tag, the whole text.
//
// Generic markers (any task; reflection_markers() lists them): matched
// ASCII case-insensitively on word boundaries (the characters either side
// of a match are not letters, digits or '_'), so "awaited", "Waiting" and
// "verified" do not count while "Wait," and "WAIT" do.  A space in a
// marker matches any run of whitespace.  At each position the longest
// marker wins and matches never overlap ("let me recheck" counts once).
// A name that is exactly a marker word ("Mr. Wait") counts: the detector
// reads words, not meaning.
//
// Task-aware revisions (arithmetic written as "E=v", as data/'s worked
// solutions are): an expression E of digits and + - * (spaces ignored, at
// least one operator between digits) stated equal to one integer and later,
// in the same reasoning, to a different integer.  Restating the same value
// is not a revision.  Other tasks' restatements are not detected.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace zerorl {

class MetricReducer;

struct Reflection {
  long markers = 0;    // generic markers in the reasoning part
  long revisions = 0;  // expressions restated with a different value
  // A reflective completion: at least one marker (reflection/rate).
  bool reflects() const { return markers > 0; }
};

// The generic markers, lower case, as matched.
const std::vector<std::string>& reflection_markers();

// The reasoning part of a scored response (see the rules above).
std::string reasoning_text(std::string_view response);

long count_reflection_markers(std::string_view reasoning);
long count_revisions(std::string_view reasoning);

// Both counts on reasoning_text(response).
Reflection detect_reflection(std::string_view response);

// One completion's figures into a step's metrics: reflection/rate,
// reflection/markers_mean, reflection/revision_rate, and, when `correct` is
// 0 or 1 (-1: no correctness reward), reflection/accuracy_with and
// reflection/accuracy_without (means over the reflective / non-reflective
// completions; NaN when there are none).  Every completion adds every name,
// so all ranks add the same names.
void add_reflection_metrics(MetricReducer& m, const Reflection& r, int correct);

}  // namespace zerorl
