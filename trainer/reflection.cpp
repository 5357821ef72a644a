#include "trainer/reflection.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "trainer/metric_reducer.h"

namespace zerorl {

namespace {

bool word_char(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return std::isalnum(u) || c == '_';
}

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// Length of the match of `marker` at text[i] (case-insensitive, a space in
// the marker matching a run of whitespace), 0 when it does not match.
size_t match_at(std::string_view text, size_t i, const std::string& marker) {
  size_t t = i;
  for (size_t m = 0; m < marker.size(); ++m) {
    if (marker[m] == ' ') {
      if (t >= text.size() || !is_space(text[t])) return 0;
      while (t < text.size() && is_space(text[t])) ++t;
    } else {
      if (t >= text.size() || lower(text[t]) != marker[m]) return 0;
      ++t;
    }
  }
  return t - i;
}

bool is_op(char c) { return c == '+' || c == '-' || c == '*'; }

}  // namespace

const std::vector<std::string>& reflection_markers() {
  // Longest first, so that at one position the longest marker wins.
  static const std::vector<std::string> kMarkers = [] {
    std::vector<std::string> m = {
        "wait",         "recheck",         "re-check",         "rechecking",  "double-check",
        "double check", "double-checking", "let me check",     "check again", "verify",
        "verifying",    "verification",    "let me recompute", "recalculate"};
    std::stable_sort(m.begin(), m.end(), [](const std::string& a, const std::string& b) {
      return a.size() > b.size();
    });
    return m;
  }();
  return kMarkers;
}

std::string reasoning_text(std::string_view response) {
  static const std::string kAOpen = "<answer>", kAClose = "</answer>", kTOpen = "<think>",
                           kTClose = "</think>";
  std::string text;
  for (size_t pos = 0; pos < response.size();) {
    size_t a = response.find(kAOpen, pos);
    if (a == std::string_view::npos) {
      text.append(response.substr(pos));
      break;
    }
    text.append(response.substr(pos, a - pos));
    text += ' ';  // a removed answer still separates words
    size_t c = response.find(kAClose, a + kAOpen.size());
    pos = c == std::string_view::npos ? response.size() : c + kAClose.size();
  }
  if (text.find(kTOpen) == std::string::npos) {
    size_t c = text.find(kTClose);
    return c == std::string::npos ? text : text.substr(0, c);
  }
  std::string out;
  for (size_t pos = 0;;) {
    size_t o = text.find(kTOpen, pos);
    if (o == std::string::npos) break;
    size_t start = o + kTOpen.size();
    size_t c = text.find(kTClose, start);
    out += text.substr(start, c == std::string::npos ? std::string::npos : c - start);
    out += ' ';
    if (c == std::string::npos) break;
    pos = c + kTClose.size();
  }
  return out;
}

long count_reflection_markers(std::string_view text) {
  const auto& markers = reflection_markers();
  long count = 0;
  for (size_t i = 0; i < text.size();) {
    size_t len = 0;
    if (i == 0 || !word_char(text[i - 1]))
      for (const auto& m : markers) {
        size_t l = match_at(text, i, m);
        if (l > 0 && (i + l == text.size() || !word_char(text[i + l]))) {
          len = l;
          break;
        }
      }
    if (len > 0) {
      ++count;
      i += len;
    } else {
      ++i;
    }
  }
  return count;
}

long count_revisions(std::string_view text) {
  std::map<std::string, std::string> stated;  // expression -> first value
  long revisions = 0;
  for (size_t eq = text.find('='); eq != std::string_view::npos; eq = text.find('=', eq + 1)) {
    // The expression: digits, operators and spaces before '=', from a digit.
    size_t b = eq;
    while (b > 0 && (std::isdigit(static_cast<unsigned char>(text[b - 1])) || is_op(text[b - 1]) ||
                     text[b - 1] == ' '))
      --b;
    std::string expr;
    for (size_t i = b; i < eq; ++i)
      if (text[i] != ' ') expr += text[i];
    while (!expr.empty() && !std::isdigit(static_cast<unsigned char>(expr.front())))
      expr.erase(0, 1);
    bool has_op = false;
    for (size_t i = 1; i + 1 < expr.size(); ++i)
      has_op = has_op || (is_op(expr[i]) && std::isdigit(static_cast<unsigned char>(expr[i + 1])));
    if (!has_op || is_op(expr.back())) continue;
    // The value: an integer after '=' (spaces and a '-' allowed in front).
    size_t v = eq + 1;
    while (v < text.size() && text[v] == ' ') ++v;
    std::string value;
    if (v < text.size() && text[v] == '-') value += text[v++];
    while (v < text.size() && std::isdigit(static_cast<unsigned char>(text[v]))) value += text[v++];
    if (value.empty() || value == "-") continue;
    auto [it, fresh] = stated.emplace(expr, value);
    if (!fresh && it->second != value) {
      ++revisions;
      it->second = value;
    }
  }
  return revisions;
}

Reflection detect_reflection(std::string_view response) {
  const std::string reasoning = reasoning_text(response);
  return {count_reflection_markers(reasoning), count_revisions(reasoning)};
}

void add_reflection_metrics(MetricReducer& m, const Reflection& r, int correct) {
  m.add_mean("reflection/rate", r.reflects() ? 1.0 : 0.0, 1);
  m.add_mean("reflection/markers_mean", static_cast<double>(r.markers), 1);
  m.add_mean("reflection/revision_rate", r.revisions > 0 ? 1.0 : 0.0, 1);
  if (correct < 0) return;
  m.add_mean("reflection/accuracy_with", r.reflects() ? correct : 0.0, r.reflects() ? 1 : 0);
  m.add_mean("reflection/accuracy_without", r.reflects() ? 0.0 : correct, r.reflects() ? 0 : 1);
}

}  // namespace zerorl
