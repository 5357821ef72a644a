#include "trainer/evaluate.h"

#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <map>

#include "core/comm.h"
#include "core/config.h"
#include "core/error.h"
#include "data/corpus.h"
#include "data/tokenizer.h"
#include "model/model.h"
#include "rewards/math/answer_extract.h"
#include "rewards/pipeline.h"

namespace zerorl {

EvalConfig EvalConfig::from(const ConfigNode& n) {
  EvalConfig c;
  c.every = n.get<long>("every", c.every);
  c.num_problems = n.get<long>("num_problems", c.num_problems);
  c.k = n.get<long>("k", c.k);
  c.temperature = n.get<double>("temperature", c.temperature);
  c.top_p = n.get<double>("top_p", c.top_p);
  c.max_new_tokens = n.get<long>("max_new_tokens", c.max_new_tokens);
  c.greedy = n.get<bool>("greedy", c.greedy);
  c.correct_reward = n.get<std::string>("correct_reward", c.correct_reward);
  c.format_reward = n.get<std::string>("format_reward", c.format_reward);
  c.seed = n.get<unsigned long long>("seed", c.seed);
  ZR_CHECK(c.every >= 0, n.where("every"), ": eval.every must be >= 0");
  ZR_CHECK(c.k >= 1, n.where("k"), ": eval.k must be >= 1");
  ZR_CHECK(c.temperature > 0, n.where("temperature"),
           ": eval.temperature must be > 0 (greedy is measured separately)");
  return c;
}

std::string scored_response(const std::string& rendered_prompt, const std::string& completion) {
  static const std::string kOpen = "<think>";
  size_t end = rendered_prompt.find_last_not_of(" \t");
  if (end != std::string::npos && end + 1 >= kOpen.size() &&
      rendered_prompt.compare(end + 1 - kOpen.size(), kOpen.size(), kOpen) == 0)
    return kOpen + completion;
  return completion;
}

namespace {

int reward_index(const rewards::RewardPipeline& p, const std::string& name) {
  if (name.empty()) return -1;
  const auto& names = p.names();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<int>(i);
  std::string known;
  for (auto& n : names) known += (known.empty() ? "" : ", ") + n;
  ZR_THROW("eval: no reward named '", name, "' in the rewards section (have: ", known, ")");
}

std::string answer_key(const std::string& response) {
  rewards::math::ExtractOptions opt;
  auto c = rewards::math::extract_candidates(response, opt);
  if (c.empty()) return "";
  std::string s = c.front().text;
  s.erase(std::remove_if(s.begin(), s.end(), [](char ch) { return ch == ' '; }), s.end());
  return s;
}

}  // namespace

EvalResult evaluate(const EvalContext& ctx, const std::vector<data::Example>& all_problems,
                    const EvalConfig& cfg, Comm& comm) {
  ZR_CHECK(ctx.policy && ctx.tokenizer && ctx.prompt_template && ctx.rewards && ctx.engine,
           "evaluate: incomplete context");
  torch::NoGradGuard no_grad;
  const int correct_idx = reward_index(*ctx.rewards, cfg.correct_reward);
  const int format_idx = reward_index(*ctx.rewards, cfg.format_reward);
  size_t n_total = all_problems.size();
  if (cfg.num_problems > 0) n_total = std::min<size_t>(n_total, cfg.num_problems);

  // This rank's problems: r, r + W, ...
  std::vector<const data::Example*> mine;
  std::vector<int64_t> ids;
  std::vector<rollout::PromptInput> prompts;
  std::vector<std::string> rendered;
  for (size_t i = comm.rank(); i < n_total; i += comm.size()) {
    const auto& ex = all_problems[i];
    mine.push_back(&ex);
    std::string text = ctx.prompt_template->render(ex.prompt);
    rendered.push_back(text);
    rollout::PromptInput in;
    in.id = static_cast<int64_t>(i);
    if (ctx.prepend_bos && ctx.tokenizer->bos_id() >= 0)
      in.tokens.push_back(ctx.tokenizer->bos_id());
    for (int32_t t : ctx.tokenizer->encode(text)) in.tokens.push_back(t);
    prompts.push_back(std::move(in));
  }

  auto score = [&](const rollout::RolloutBatch& b, int64_t g) {
    std::vector<rewards::Sample> samples;
    for (size_t j = 0; j < b.samples.size(); ++j) {
      const auto& ex = *mine[j / g];
      samples.push_back({rendered[j / g], scored_response(rendered[j / g], b.samples[j].text),
                         ex.answer, ex.task, ex.meta.dump()});
    }
    return ctx.rewards->score(samples);
  };

  double sums[8] = {0};  // pass1, passk, majk, greedy, format, tokens, worked, completions
  EvalResult result;
  if (!prompts.empty()) {
    rollout::SamplingParams sp = ctx.sampling;
    sp.temperature = cfg.temperature;
    sp.top_p = cfg.top_p;
    sp.top_k = 0;
    sp.seed = cfg.seed;
    sp.step = 0;
    if (cfg.max_new_tokens > 0) sp.max_new_tokens = cfg.max_new_tokens;
    auto batch = ctx.engine->generate(*ctx.policy, prompts, cfg.k, sp);
    auto scored = score(batch, cfg.k);
    for (size_t p = 0; p < prompts.size(); ++p) {
      int correct = 0;
      std::map<std::string, std::pair<int, bool>> votes;  // answer -> (count, correct)
      std::string best;
      int best_count = 0;
      for (long g = 0; g < cfg.k; ++g) {
        size_t j = p * cfg.k + g;
        bool ok = scored[j].values[correct_idx] >= 0.5;
        correct += ok;
        if (format_idx >= 0) sums[4] += scored[j].values[format_idx] >= 0.5;
        sums[5] += batch.samples[j].completion_length();
        sums[6] += data::uses_worked_steps(batch.samples[j].text);
        sums[7] += 1;
        std::string key = answer_key(scored_response(rendered[p], batch.samples[j].text));
        if (key.empty()) continue;
        auto& v = votes[key];
        v.first++;
        v.second = ok;
        if (v.first > best_count) {
          best_count = v.first;
          best = key;
        }
      }
      sums[0] += static_cast<double>(correct) / cfg.k;
      sums[1] += correct > 0;
      sums[2] += best_count > 0 && votes[best].second;
    }
    if (cfg.greedy) {
      sp.temperature = 0.0;
      sp.top_p = 1.0;
      auto gb = ctx.engine->generate(*ctx.policy, prompts, 1, sp);
      auto gs = score(gb, 1);
      for (size_t p = 0; p < prompts.size(); ++p) {
        sums[3] += gs[p].values[correct_idx] >= 0.5;
        if (comm.rank() == 0 && result.examples.size() < 4)
          result.examples.push_back({rendered[p], gb.samples[p].text});
      }
    }
  }
  at::Tensor t = at::from_blob(sums, {8}, at::kDouble).clone();
  comm.allreduce(t);
  auto s = t.accessor<double, 1>();
  const double n = static_cast<double>(n_total);
  auto& m = result.metrics;
  m["pass_at_1"] = n > 0 ? s[0] / n : 0.0;
  m["pass_at_" + std::to_string(cfg.k)] = n > 0 ? s[1] / n : 0.0;
  m["maj_at_" + std::to_string(cfg.k)] = n > 0 ? s[2] / n : 0.0;
  if (cfg.greedy) m["greedy_accuracy"] = n > 0 ? s[3] / n : 0.0;
  if (format_idx >= 0) m["format_rate"] = s[7] > 0 ? s[4] / s[7] : 0.0;
  m["mean_response_tokens"] = s[7] > 0 ? s[5] / s[7] : 0.0;
  m["worked_rate"] = s[7] > 0 ? s[6] / s[7] : 0.0;
  m["num_problems"] = n;
  return result;
}

}  // namespace zerorl
