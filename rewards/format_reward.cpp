#include "rewards/format_reward.h"

#include <cctype>

namespace zerorl::rewards {
namespace {

size_t count(const std::string& s, const std::string& tag) {
  size_t n = 0;
  for (size_t p = s.find(tag); p != std::string::npos; p = s.find(tag, p + tag.size())) ++n;
  return n;
}

bool blank(const std::string& s, size_t a, size_t b) {
  for (size_t i = a; i < b && i < s.size(); ++i)
    if (!std::isspace((unsigned char)s[i])) return false;
  return true;
}

}  // namespace

FormatRewardConfig FormatRewardConfig::from(const ConfigNode& n) {
  FormatRewardConfig c;
  c.strict = n.choice("mode", {"strict", "lenient"}, "strict") == "strict";
  ZR_CHECK(!n.has("prompt_opens_think"), n.where("prompt_opens_think"), ": ",
           n.path("prompt_opens_think"),
           " was removed: the format reward sees that a prompt ending in <think> opened the "
           "think block (docs/REWARDS.md); delete the key");
  c.reward = n.get<double>("reward", 1.0);
  return c;
}

std::string FormatReward::check(const std::string& s, bool strict) {
  for (const char* tag : {"<think>", "</think>", "<answer>", "</answer>"}) {
    size_t n = count(s, tag);
    if (n == 0) return std::string("missing ") + tag;
    if (n > 1) return std::string("more than one ") + tag;
  }
  size_t t0 = s.find("<think>"), t1 = s.find("</think>"), a0 = s.find("<answer>"),
         a1 = s.find("</answer>");
  if (!(t0 < t1 && t1 < a0 && a0 < a1)) return "tags out of order";
  if (blank(s, t0 + 7, t1)) return "empty <think> block";
  if (blank(s, a0 + 8, a1)) return "empty <answer> block";
  if (!strict) return "";
  if (!blank(s, 0, t0)) return "text before <think>";
  if (!blank(s, t1 + 8, a0)) return "text between </think> and <answer>";
  std::string tail = s.substr(a1 + 9);
  for (const char* eos :
       {"<|endoftext|>", "<|im_end|>", "</s>", "<｜end▁of▁sentence｜>", "<|eot_id|>"}) {
    size_t p = tail.find(eos);
    if (p != std::string::npos && blank(tail, 0, p)) {
      tail = tail.substr(0, p) + tail.substr(p + std::string(eos).size());
      break;
    }
  }
  if (!blank(tail, 0, tail.size())) return "text after </answer>";
  return "";
}

bool FormatReward::prompt_opens_think(const std::string& prompt) {
  static const std::string kOpen = "<think>";
  const size_t end = prompt.find_last_not_of(" \t");
  return end != std::string::npos && end + 1 >= kOpen.size() &&
         prompt.compare(end + 1 - kOpen.size(), kOpen.size(), kOpen) == 0;
}

RewardResult FormatReward::score(const Sample& sample) const {
  RewardResult r;
  const std::string text =
      prompt_opens_think(sample.prompt) ? "<think>" + sample.completion : sample.completion;
  std::string why = check(text, cfg_.strict);
  r.value = why.empty() ? cfg_.reward : 0.0;
  r.components["well_formed"] = why.empty() ? 1.0 : 0.0;
  r.error = why;
  r.reason = why.empty() ? "well formed" : why;
  return r;
}

}  // namespace zerorl::rewards
