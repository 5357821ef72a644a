#include "trainer/evaluate.h"

#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "core/comm.h"
#include "core/config.h"
#include "core/error.h"
#include "core/process_grid.h"
#include "data/corpus.h"
#include "data/tokenizer.h"
#include "model/model.h"
#include "rewards/math/answer_extract.h"
#include "rewards/math/grader.h"
#include "rewards/pipeline.h"
#include "rollout/prompt_input.h"

namespace zerorl {

EvalConfig EvalConfig::from(const ConfigNode& n, const rollout::SamplingParams& rollout_sampling) {
  EvalConfig c;
  c.sampling = rollout_sampling;
  c.every = n.get<long>("every", c.every);
  c.num_problems = n.get<long>("num_problems", c.num_problems);
  c.k = n.get<long>("k", c.k);
  c.n = n.get<long>("n", c.n);
  c.sampling.temperature = n.get<double>("temperature", 0.6);
  c.sampling.top_p = n.get<double>("top_p", 0.95);
  c.sampling.top_k = 0;
  const long max_new_tokens = n.get<long>("max_new_tokens", 0);  // 0: the rollout's
  if (max_new_tokens > 0) c.sampling.max_new_tokens = max_new_tokens;
  c.greedy = n.get<bool>("greedy", c.greedy);
  c.correct_reward = n.get<std::string>("correct_reward", c.correct_reward);
  c.format_reward = n.get<std::string>("format_reward", c.format_reward);
  c.sampling.seed = n.get<unsigned long long>("seed", 12345);
  c.sampling.step = 0;
  ZR_CHECK(c.every >= 0, n.where("every"), ": eval.every must be >= 0");
  ZR_CHECK(c.k >= 1, n.where("k"), ": eval.k must be >= 1");
  ZR_CHECK(c.n == 0 || c.n >= c.k, n.where("n"),
           ": eval.n (samples per problem) must be 0 (= k) or >= eval.k (", c.k, "), got ", c.n);
  ZR_CHECK(c.sampling.temperature > 0, n.where("temperature"),
           ": eval.temperature must be > 0 (greedy is measured separately)");
  return c;
}

rewards::Sample reward_sample(const data::Example& example, const std::string& rendered_prompt,
                              const std::string& completion) {
  return {rendered_prompt, completion, example.answer, example.task, example.meta.dump()};
}

namespace {

// `key` is the recipe key that named the reward (eval.correct_reward or
// eval.format_reward): a user who never wrote it learns what to set.
int reward_index(const rewards::RewardPipeline& p, const std::string& name, const char* key,
                 const std::string& dflt, const char* none) {
  if (name.empty()) return -1;
  const auto& names = p.names();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<int>(i);
  std::string known;
  for (auto& n : names) known += (known.empty() ? "" : ", ") + n;
  ZR_THROW("eval: ", key, " = '", name, "' (default '", dflt,
           "') names no reward of the rewards section (", known, "); set ", key, " to one of them",
           none);
}

std::string answer_key(const std::string& response) {
  rewards::math::ExtractOptions opt;
  auto c = rewards::math::extract_candidates(response, opt);
  if (c.empty()) return "";
  std::string s = c.front().text;
  s.erase(std::remove_if(s.begin(), s.end(), [](char ch) { return ch == ' '; }), s.end());
  return s;
}

// One problem's line of eval_samples.jsonl (see EvalResult::samples).
std::string sample_line(int64_t problem, const std::string& decoding, const std::string& prompt,
                        const data::Example& ex, const rollout::RolloutSample& smp,
                        const rewards::ScoredSample& sc, const std::vector<std::string>& names,
                        bool correct, long num_correct, long num_samples) {
  auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); };
  nlohmann::json j = nlohmann::json::object();
  j["problem"] = problem;
  j["decoding"] = decoding;
  j["prompt"] = prompt;
  j["completion"] = smp.text;
  j["gold"] = ex.answer;
  j["finish_reason"] = rollout::finish_reason_name(smp.finish);
  j["tokens"] = smp.completion_length();
  j["correct"] = correct;
  j["reward"] = number(sc.total);
  nlohmann::json comp = nlohmann::json::object(), answers = nlohmann::json::object(),
                 reasons = nlohmann::json::object();
  for (const auto& [k, v] : sc.components) comp[k] = number(v);
  for (size_t r = 0; r < names.size(); ++r) {
    if (!sc.answers[r].empty()) answers[names[r]] = sc.answers[r];
    if (!sc.reasons[r].empty()) reasons[names[r]] = sc.reasons[r];
  }
  j["components"] = comp;
  if (!answers.empty()) j["answers"] = answers;
  if (!reasons.empty()) j["reasons"] = reasons;
  j["num_correct"] = num_correct;
  j["num_samples"] = num_samples;
  // A byte-level model can emit invalid UTF-8: replaced, never fatal.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Every rank's lines on rank 0 (empty elsewhere); rank r's p-th line is
// problem r + p * W, so interleaving restores test-split order.  Collective.
std::vector<std::string> gather_lines(const std::vector<std::string>& mine, Comm& comm) {
  std::string text;
  for (const auto& l : mine) text += l + "\n";
  at::Tensor len = at::full({1}, static_cast<int64_t>(text.size()), at::kLong);
  at::Tensor lens = comm.allgather(len);
  const int64_t max_len = lens.max().item<int64_t>();
  at::Tensor bytes = at::zeros({std::max<int64_t>(max_len, 1)}, at::kByte);
  std::copy(text.begin(), text.end(), bytes.data_ptr<uint8_t>());
  at::Tensor all = comm.allgather(bytes).contiguous();
  if (comm.rank() != 0) return {};
  std::vector<std::vector<std::string>> per_rank(comm.size());
  for (int r = 0; r < comm.size(); ++r) {
    const char* p = reinterpret_cast<const char*>(all[r].data_ptr<uint8_t>());
    std::string t(p, p + lens[r].item<int64_t>());
    size_t start = 0;
    for (size_t nl; (nl = t.find('\n', start)) != std::string::npos; start = nl + 1)
      per_rank[r].push_back(t.substr(start, nl - start));
  }
  std::vector<std::string> out;
  for (size_t p = 0;; ++p) {
    bool any = false;
    for (const auto& lines : per_rank)
      if (p < lines.size()) {
        out.push_back(lines[p]);
        any = true;
      }
    if (!any) break;
  }
  return out;
}

}  // namespace

// ---- the figures ---------------------------------------------------------------------

double pass_at_k(long n, long c, long k) {
  ZR_CHECK(n >= 1 && k >= 1 && k <= n && c >= 0 && c <= n,
           "pass_at_k: need 0 <= c <= n and 1 <= k <= n, got n=", n, " c=", c, " k=", k);
  if (n - c < k) return 1.0;
  // C(n-c, k) / C(n, k) = prod_{i = n-c+1}^{n} (1 - k / i)
  double miss = 1.0;
  for (long i = n - c + 1; i <= n; ++i)
    miss *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - miss;
}

bool math_answers_equivalent(const std::string& a, const std::string& b) {
  if (a == b) return true;
  static const rewards::math::GradeOptions opt;
  return rewards::math::compare_answers(a, b, opt).correct;
}

bool majority_correct(const ProblemOutcome& p, long k, const AnswerEquivalence& eq) {
  struct Cluster {
    size_t first;  // sample index of its first answer
    long votes;
  };
  std::vector<Cluster> clusters;
  const size_t n = std::min(p.answers.size(), static_cast<size_t>(k));
  for (size_t j = 0; j < n; ++j) {
    if (p.answers[j].empty()) continue;
    auto it = std::find_if(clusters.begin(), clusters.end(),
                           [&](const Cluster& c) { return eq(p.answers[c.first], p.answers[j]); });
    if (it == clusters.end())
      clusters.push_back({j, 1});
    else
      ++it->votes;
  }
  const Cluster* best = nullptr;
  for (const auto& c : clusters)
    if (!best || c.votes > best->votes) best = &c;
  return best && p.correct.at(best->first);
}

void score_problem(const ProblemOutcome& p, long k, const AnswerEquivalence& eq, EvalSums& sums) {
  const long n = static_cast<long>(p.correct.size());
  ZR_CHECK(n >= k && p.answers.size() == p.correct.size() && p.lengths.size() == p.correct.size() &&
               p.worked.size() == p.correct.size() &&
               (p.formatted.empty() || p.formatted.size() == p.correct.size()) &&
               (p.reflection.empty() || p.reflection.size() == p.correct.size()),
           "score_problem: ", n, " samples for k = ", k, " or vectors of different lengths");
  long c = 0;
  for (bool ok : p.correct) c += ok;
  sums.pass_at_1 += static_cast<double>(c) / static_cast<double>(n);
  sums.pass_at_k += pass_at_k(n, c, k);
  sums.maj_at_k += majority_correct(p, k, eq);
  sums.greedy_correct += p.greedy_correct > 0;
  for (bool f : p.formatted) sums.formatted += f;
  for (long len : p.lengths) sums.tokens += static_cast<double>(len);
  for (bool w : p.worked) sums.worked += w;
  sums.completions += static_cast<double>(n);
  sums.problems += 1;
  for (size_t j = 0; j < p.reflection.size(); ++j) {
    const Reflection& r = p.reflection[j];
    sums.reflection_measured += 1;
    sums.reflective += r.reflects();
    sums.markers += static_cast<double>(r.markers);
    sums.revised += r.revisions > 0;
    sums.correct_reflective += r.reflects() && p.correct[j];
    sums.correct_plain += !r.reflects() && p.correct[j];
  }
}

std::map<std::string, double> eval_metrics(const EvalSums& sums, long k, bool greedy,
                                           bool has_format) {
  const double problems = sums.problems, completions = sums.completions;
  auto per = [](double x, double d) { return d > 0 ? x / d : 0.0; };
  std::map<std::string, double> m;
  m["pass_at_1"] = per(sums.pass_at_1, problems);
  m["pass_at_" + std::to_string(k)] = per(sums.pass_at_k, problems);
  m["maj_at_" + std::to_string(k)] = per(sums.maj_at_k, problems);
  if (greedy) m["greedy_accuracy"] = per(sums.greedy_correct, problems);
  if (has_format) m["format_rate"] = per(sums.formatted, completions);
  m["mean_response_tokens"] = per(sums.tokens, completions);
  m["worked_rate"] = per(sums.worked, completions);
  m["num_problems"] = problems;
  if (sums.reflection_measured > 0) {
    const double nan = std::nan(""), all = sums.reflection_measured, with = sums.reflective,
                 without = all - with;
    m["reflection_rate"] = with / all;
    m["reflection_markers_mean"] = sums.markers / all;
    m["reflection_revision_rate"] = sums.revised / all;
    m["reflection_accuracy_with"] = with > 0 ? sums.correct_reflective / with : nan;
    m["reflection_accuracy_without"] = without > 0 ? sums.correct_plain / without : nan;
  }
  return m;
}

// ---- evaluate ------------------------------------------------------------------------

EvalResult evaluate(const EvalContext& ctx, const std::vector<data::Example>& all_problems,
                    const EvalConfig& cfg, Comm& comm) {
  ZR_CHECK(ctx.policy && ctx.tokenizer && ctx.prompt_template && ctx.rewards && ctx.engine,
           "evaluate: incomplete context");
  torch::NoGradGuard no_grad;
  const EvalConfig defaults;
  const int correct_idx = reward_index(*ctx.rewards, cfg.correct_reward, "eval.correct_reward",
                                       defaults.correct_reward, "");
  const int format_idx = reward_index(*ctx.rewards, cfg.format_reward, "eval.format_reward",
                                      defaults.format_reward, ", or to \"\" for none");
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
    prompts.push_back(
        rollout::make_prompt_input(static_cast<int64_t>(i), text, *ctx.tokenizer, ctx.prepend_bos));
  }

  auto score = [&](const rollout::RolloutBatch& b, int64_t g) {
    std::vector<rewards::Sample> samples;
    for (size_t j = 0; j < b.samples.size(); ++j)
      samples.push_back(reward_sample(*mine[j / g], rendered[j / g], b.samples[j].text));
    return ctx.rewards->score(samples);
  };

  const long n_samples = cfg.n > 0 ? cfg.n : cfg.k;
  std::vector<ProblemOutcome> outcomes(prompts.size());
  std::vector<std::string> lines;  // this rank's eval_samples lines
  EvalResult result;
  if (!prompts.empty()) {
    rollout::SamplingParams sp = cfg.sampling;
    auto batch = ctx.engine->generate(*ctx.policy, prompts, n_samples, sp);
    auto scored = score(batch, n_samples);
    for (size_t p = 0; p < prompts.size(); ++p) {
      ProblemOutcome& o = outcomes[p];
      for (long g = 0; g < n_samples; ++g) {
        const size_t j = p * n_samples + g;
        const auto& smp = batch.samples[j];
        o.correct.push_back(scored[j].values[correct_idx] >= 0.5);
        if (format_idx >= 0) o.formatted.push_back(scored[j].values[format_idx] >= 0.5);
        o.answers.push_back(answer_key(smp.text));
        o.lengths.push_back(smp.completion_length());
        o.worked.push_back(data::uses_worked_steps(smp.text));
        o.reflection.push_back(detect_reflection(smp.text));
      }
    }
    auto num_correct = [&](size_t p) {
      long c = 0;
      for (bool ok : outcomes[p].correct) c += ok;
      return c;
    };
    if (cfg.greedy) {
      sp.temperature = 0.0;
      sp.top_p = 1.0;
      auto gb = ctx.engine->generate(*ctx.policy, prompts, 1, sp);
      auto gs = score(gb, 1);
      for (size_t p = 0; p < prompts.size(); ++p) {
        outcomes[p].greedy_correct = gs[p].values[correct_idx] >= 0.5;
        if (comm.rank() == 0 && result.examples.size() < 4)
          result.examples.push_back({rendered[p], gb.samples[p].text});
        lines.push_back(sample_line(prompts[p].id, "greedy", rendered[p], *mine[p], gb.samples[p],
                                    gs[p], ctx.rewards->names(), outcomes[p].greedy_correct > 0,
                                    num_correct(p), n_samples));
      }
    } else {
      for (size_t p = 0; p < prompts.size(); ++p) {
        const size_t j = p * n_samples;
        lines.push_back(sample_line(prompts[p].id, "sampled", rendered[p], *mine[p],
                                    batch.samples[j], scored[j], ctx.rewards->names(),
                                    outcomes[p].correct[0], num_correct(p), n_samples));
      }
    }
  } else if (const ProcessGrid* grid = ctx.policy->expert_grid(); grid && grid->ep() > 1) {
    // Expert parallelism: generate() is a collective over the EP group
    // (rollout/engine.h); a rank without problems joins its peers' calls.
    rollout::SamplingParams sp = cfg.sampling;
    ctx.engine->generate(*ctx.policy, {}, n_samples, sp);
    if (cfg.greedy) {
      sp.temperature = 0.0;
      sp.top_p = 1.0;
      ctx.engine->generate(*ctx.policy, {}, 1, sp);
    }
  }
  result.samples = gather_lines(lines, comm);
  EvalSums sums;
  for (const auto& o : outcomes) score_problem(o, cfg.k, math_answers_equivalent, sums);
  // Every rank counts its own problems; the all-reduce makes the totals.
  const auto fields = sums.fields();
  at::Tensor t = at::empty({EvalSums::kSize}, at::kDouble);
  for (int i = 0; i < EvalSums::kSize; ++i) t.data_ptr<double>()[i] = *fields[i];
  comm.allreduce(t);
  for (int i = 0; i < EvalSums::kSize; ++i) *fields[i] = t.data_ptr<double>()[i];
  result.metrics = eval_metrics(sums, cfg.k, cfg.greedy, format_idx >= 0);
  return result;
}

}  // namespace zerorl
