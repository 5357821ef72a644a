#include "rewards/math/answer_extract.h"
#include "rewards/math/text_util.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace zerorl::rewards::math {
namespace {

std::string lower(const std::string& s) {
  std::string o = s;
  for (auto& c : o) c = (char)std::tolower((unsigned char)c);
  return o;
}

struct Span {
  size_t begin, end;  // of the whole match
  std::string content;
};

// Text between two answers that still lets them be read as one list.
bool separator_only(const std::string& gap) {
  std::string g;
  // Drop \text{...} groups, $ and \( \) \[ \] delimiters, spacing commands.
  for (size_t i = 0; i < gap.size();) {
    if (gap.compare(i, 5, "\\text") == 0 || gap.compare(i, 5, "\\mbox") == 0) {
      size_t b = gap.find('{', i);
      size_t e = b == std::string::npos ? b : match_brace(gap, b);
      if (e != std::string::npos) {
        g += ' ';
        i = e + 1;
        continue;
      }
    }
    if (gap[i] == '\\') {
      size_t j = i + 1;
      while (j < gap.size() && is_alpha(gap[j])) ++j;
      if (j == i + 1 && j < gap.size()) ++j;
      g += ' ';
      i = j;
      continue;
    }
    g += gap[i++];
  }
  for (char c : g)
    if (c == '#' || c == '<' || c == '>' || c == ':' || c == '=') return false;
  int words = 0;
  bool conj = false;
  for (size_t i = 0; i < g.size();) {
    if (is_alpha(g[i])) {
      size_t j = i;
      while (j < g.size() && is_alpha(g[j])) ++j;
      std::string w = lower(g.substr(i, j - i));
      if (w == "and" || w == "or")
        conj = true;
      else
        ++words;
      i = j;
    } else if (is_digit(g[i])) {
      return false;
    } else {
      ++i;
    }
  }
  // "\boxed{1} papers and \boxed{2} bins" is one answer in two boxes;
  // "\boxed{3}, then \boxed{4}" is a correction.
  return g.size() < 200 && (words == 0 || (conj && words <= 2));
}

std::vector<Span> find_boxed(const std::string& s) {
  std::vector<Span> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t a = s.find("\\boxed", i), b = s.find("\\fbox", i);
    size_t p = std::min(a, b);
    if (p == std::string::npos) break;
    size_t q = p + (p == a ? 6 : 5);
    while (q < s.size() && is_space(s[q])) ++q;
    if (q < s.size() && s[q] == '{') {
      size_t e = match_brace(s, q);
      if (e == std::string::npos) {
        i = q + 1;
        continue;
      }
      out.push_back({p, e + 1, s.substr(q + 1, e - q - 1)});
      i = e + 1;
    } else if (q < s.size() && q > p + 6 - 1 && !is_alpha(s[q])) {
      // "\boxed 5": up to whitespace or '$'.
      size_t e = q;
      while (e < s.size() && !is_space(s[e]) && s[e] != '$') ++e;
      if (e > q) out.push_back({p, e, s.substr(q, e - q)});
      i = std::max(e, q + 1);
    } else {
      i = q + 1;
    }
  }
  return out;
}

std::vector<Span> find_latex(const std::string& s) {
  std::vector<Span> out;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c == '\\' && i + 1 < s.size() && (s[i + 1] == '(' || s[i + 1] == '[')) {
      const char* close = s[i + 1] == '(' ? "\\)" : "\\]";
      size_t e = s.find(close, i + 2);
      if (e == std::string::npos) break;
      std::string content = s.substr(i + 2, e - i - 2);
      if (s[i + 1] == '(' && content.find('\n') != std::string::npos) {
        i += 2;
        continue;
      }
      out.push_back({i, e + 2, content});
      i = e + 2;
      continue;
    }
    if (c == '\\' && i + 1 < s.size()) {
      i += 2;
      continue;
    }
    if (c == '$') {
      bool dbl = i + 1 < s.size() && s[i + 1] == '$';
      size_t start = i + (dbl ? 2 : 1);
      size_t e = start;
      while (e < s.size()) {
        if (s[e] == '\\') {
          e += 2;
          continue;
        }
        if (s[e] == '$') break;
        if (!dbl && s[e] == '\n') break;
        ++e;
      }
      if (e >= s.size() || s[e] != '$') {
        i = start;
        continue;
      }
      std::string content = s.substr(start, e - start);
      out.push_back({i, e + (dbl ? 2 : 1), content});
      i = e + (dbl ? 2 : 1);
      continue;
    }
    ++i;
  }
  return out;
}

// Joins the last span with the spans before it that are separated by
// separators only ("$1$ and $2$", "\boxed{1}, \boxed{2}").
std::string join_tail(const std::string& s, const std::vector<Span>& spans) {
  size_t k = spans.size() - 1;
  while (k > 0 && separator_only(s.substr(spans[k - 1].end, spans[k].begin - spans[k - 1].end)))
    --k;
  std::string out;
  for (size_t j = k; j < spans.size(); ++j) out += (j > k ? ", " : "") + spans[j].content;
  return out;
}

bool number_char_ok_before(const std::string& s, size_t i) {
  return i == 0 ||
         !(is_alpha(s[i - 1]) || is_digit(s[i - 1]) || s[i - 1] == '_' || s[i - 1] == '^');
}

// The last number in prose: -1,234.5, 3/4, .5; not glued to letters.
bool last_number(const std::string& s, Span& out) {
  bool found = false;
  size_t i = 0;
  while (i < s.size()) {
    bool lead_dot = s[i] == '.' && i + 1 < s.size() && is_digit(s[i + 1]);
    if ((is_digit(s[i]) || lead_dot) && number_char_ok_before(s, i)) {
      size_t b = i;
      if (b > 0 && s[b - 1] == '-') --b;
      size_t e = i;
      for (;;) {
        while (e < s.size() && is_digit(s[e])) ++e;
        // thousands group, decimal part, fraction
        if (e + 3 < s.size() + 0 && s[e] == ',' && e + 3 < s.size() && is_digit(s[e + 1]) &&
            is_digit(s[e + 2]) && is_digit(s[e + 3]) &&
            (e + 4 >= s.size() || !is_digit(s[e + 4]))) {
          e += 4;
          continue;
        }
        if (e < s.size() && (s[e] == '.' || s[e] == ',' || s[e] == '/') && e + 1 < s.size() &&
            is_digit(s[e + 1])) {
          ++e;
          continue;
        }
        break;
      }
      bool glued = e < s.size() && is_alpha(s[e]) &&
                   !(e + 1 < s.size() && s[e] == 'm' && (unsigned char)s[e + 1] >= 0x80);
      // "2A" is glued; units like "cm" after a space are not.
      if (glued && e + 1 < s.size() && is_alpha(s[e + 1]) && b > 0 && !is_alpha(s[b ? b - 1 : 0]))
        glued = false;
      if (!glued) {
        out = {b, e, s.substr(b, e - b)};
        found = true;
      }
      i = e;
      continue;
    }
    ++i;
  }
  return found;
}

std::string strip_math_delims(const std::string& t) {
  auto spans = find_latex(t);
  if (!spans.empty()) return join_tail(t, spans);
  return t;
}

bool sentence_like(const std::string& t) {
  int words = 0;
  for (size_t i = 0; i < t.size();) {
    if (t[i] == '\\') {  // a command is not a word
      ++i;
      while (i < t.size() && is_alpha(t[i])) ++i;
      continue;
    }
    if (is_alpha(t[i])) {
      size_t j = i;
      while (j < t.size() && is_alpha(t[j])) ++j;
      if (j - i >= 3) ++words;
      i = j;
    } else {
      ++i;
    }
  }
  return words >= 2;
}

void add_region(const std::string& r, const ExtractOptions& opt, std::vector<Candidate>& out,
                bool whole_answer = false) {
  size_t boxed_end = 0, phrase_pos = 0;
  size_t first = out.size();
  if (opt.boxed) {
    auto boxes = find_boxed(r);
    if (!boxes.empty()) {
      out.push_back({join_tail(r, boxes), "boxed"});
      boxed_end = boxes.back().end;
    }
  }
  if (opt.phrases) {
    std::string low = lower(r);
    size_t best = std::string::npos, best_end = 0;
    for (const char* p :
         {"final answer is", "final answer:", "the answer is", "answer is", "answer:"}) {
      size_t pos = low.rfind(p);
      if (pos != std::string::npos && (best == std::string::npos || pos > best)) {
        best = pos;
        best_end = pos + std::strlen(p);
      }
    }
    if (best != std::string::npos) {
      size_t e = best_end;
      // to the end of the sentence
      size_t stop = r.size();
      for (size_t k = best_end; k < r.size(); ++k) {
        if (r[k] == '\n') {
          stop = k;
          break;
        }
        if (r[k] == '.' && (k + 1 == r.size() || is_space(r[k + 1])) &&
            !(k > 0 && is_digit(r[k - 1]) && k + 1 < r.size() && is_digit(r[k + 1]))) {
          // a period followed by space ends the sentence unless inside $...$
          size_t dollars = std::count(r.begin() + best_end, r.begin() + k, '$');
          if (dollars % 2 == 0) {
            stop = k;
            break;
          }
        }
      }
      std::string seg = trim(r.substr(e, stop - e));
      while (!seg.empty() && (seg[0] == ':' || is_space(seg[0]))) seg.erase(0, 1);
      if (!seg.empty()) {
        // "The volume of $ABCD$ is 120." names the answer in prose: take its
        // last number; otherwise the math in the segment, or the segment.
        std::string prose;
        for (auto& sp : find_latex(seg)) (void)sp;
        {
          std::string t = seg;
          auto spans = find_latex(t);
          for (size_t k = spans.size(); k-- > 0;)
            t.replace(spans[k].begin, spans[k].end - spans[k].begin, " X ");
          prose = t;
        }
        Span num;
        std::string m;
        if (sentence_like(prose) && last_number(seg, num))
          m = num.content;
        else
          m = strip_math_delims(seg);
        phrase_pos = best;
        out.push_back({trim(m), "phrase"});
      }
    }
  }
  // "... \boxed{255} ... The final answer is $10,455$.": the last stated
  // answer wins.
  if (out.size() == first + 2 && out[first].method == "boxed" && phrase_pos > boxed_end)
    std::swap(out[first], out[first + 1]);
  // Inside <answer>...</answer> the whole block is the answer unless it is
  // prose ("<answer>\\sqrt{8}</answer>" must not become "8").
  if (whole_answer) {
    std::string w = trim(r);
    if (!w.empty() && w.size() <= 1000 && !sentence_like(w)) out.push_back({w, "answer_tag"});
  }
  Span lat{0, 0, ""}, num{0, 0, ""};
  bool has_lat = false, has_num = false;
  std::vector<Span> spans;
  if (opt.latex) {
    spans = find_latex(r);
    if (!spans.empty()) {
      has_lat = true;
      lat = spans.back();
    }
  }
  if (opt.last_number) has_num = last_number(r, num);
  if (has_lat && (!has_num || lat.end >= num.end)) out.push_back({join_tail(r, spans), "latex"});
  if (has_num) out.push_back({num.content, "number"});
  if (has_lat && has_num && lat.end < num.end) out.push_back({join_tail(r, spans), "latex"});
}

}  // namespace

std::vector<Candidate> extract_candidates(const std::string& text, const ExtractOptions& opt) {
  std::vector<Candidate> out;
  std::string region = text;
  if (opt.answer_tag) {
    size_t open = text.rfind("<answer>");
    if (open != std::string::npos) {
      size_t start = open + 8;
      size_t close = text.find("</answer>", start);
      region = text.substr(start, close == std::string::npos ? std::string::npos : close - start);
      std::vector<Candidate> inner;
      add_region(region, opt, inner, /*whole_answer=*/true);
      for (auto& c : inner)
        if (c.method != "answer_tag") c.method = "answer_tag+" + c.method;
      out.insert(out.end(), inner.begin(), inner.end());
      std::string whole = trim(region);
      if (!whole.empty() && whole.size() <= 1000) out.push_back({whole, "answer_tag"});
      return out;
    }
  }
  if (opt.whole_text) {
    std::string w = trim(text);
    bool marked = w.find('$') != std::string::npos || w.find("\\boxed") != std::string::npos ||
                  w.find("\\(") != std::string::npos || w.find("\\[") != std::string::npos ||
                  w.find('<') != std::string::npos || w.find("nswer") != std::string::npos;
    if (!w.empty() && w.size() <= 200 && !marked && !sentence_like(w)) out.push_back({w, "whole"});
  }
  add_region(region, opt, out);
  return out;
}

std::string extract_gold(const std::string& gold) {
  if (gold.find("\\boxed") != std::string::npos || gold.find("\\fbox") != std::string::npos) {
    auto boxes = find_boxed(gold);
    if (!boxes.empty()) return join_tail(gold, boxes);
  }
  if (gold.find('$') != std::string::npos || gold.find("\\(") != std::string::npos ||
      gold.find("\\[") != std::string::npos) {
    auto spans = find_latex(gold);
    if (!spans.empty()) return join_tail(gold, spans);
  }
  return trim(gold);
}

}  // namespace zerorl::rewards::math
