#include "rewards/math_reward.h"

namespace zerorl::rewards {

MathRewardConfig MathRewardConfig::from(const ConfigNode& n) {
  MathRewardConfig c;
  auto& g = c.grade;
  g.compare.precision = n.get<int>("precision", 6);
  ZR_CHECK(g.compare.precision >= 0 && g.compare.precision <= 15, n.where("precision"), ": ",
           n.path("precision"), " must be in [0, 15], got ", g.compare.precision);
  g.timeout_ms = n.get<double>("timeout_ms", 1000.0);
  ZR_CHECK(g.timeout_ms > 0, n.where("timeout_ms"), ": ", n.path("timeout_ms"), " must be > 0");
  g.extract.answer_tag = n.get<bool>("answer_tag", true);
  g.extract.boxed = n.get<bool>("boxed", true);
  g.extract.phrases = n.get<bool>("phrases", true);
  g.extract.latex = n.get<bool>("latex", true);
  g.extract.last_number = n.get<bool>("last_number", true);
  g.compare.allow_set_relation_comp = n.get<bool>("allow_set_relation_comp", false);
  return c;
}

RewardResult MathReward::score(const Sample& s) const {
  RewardResult r;
  math::Verdict v = math::grade(s.gold, s.completion, cfg_.grade);
  r.value = v.correct ? 1.0 : 0.0;
  r.components["correct"] = r.value;
  r.answer = v.extracted;
  r.reason = v.reason;
  if (v.extracted.empty() || v.reason.rfind("timeout", 0) == 0 ||
      v.reason.rfind("bounded work", 0) == 0 || v.reason.rfind("grader error", 0) == 0 ||
      v.reason == "empty gold answer")
    r.error = v.reason;
  return r;
}

}  // namespace zerorl::rewards
