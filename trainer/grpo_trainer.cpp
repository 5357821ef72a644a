// The GRPO step loop.  Legend: B completions on this rank, P prompts on this
// rank, G group size, T padded (prompt + completion - 1) length.
#include "trainer/grpo_trainer.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <ctime>
#include <deque>
#include <filesystem>
#include <limits>
#include <optional>
#include <nlohmann/json.hpp>

#include "core/collective_timeout.h"
#include "core/comm.h"
#include "core/config.h"
#include "core/log.h"
#include "core/recipe_diff.h"
#include "core/recipe_path.h"
#include "core/progress.h"
#include "data/curriculum.h"
#include "data/dataset.h"
#include "data/prompt_source.h"
#include "data/template.h"
#include "model/model.h"
#include "model/moe_ep.h"
#include "rewards/pipeline.h"
#include "rollout/batch_tensors.h"
#include "rollout/engine.h"
#include "rollout/prompt_input.h"
#include "trainer/advantages.h"
#include "trainer/checkpoint.h"
#include "trainer/disaggregated.h"
#include "trainer/evaluate.h"
#include "trainer/expert_parallel.h"
#include "trainer/grad_sync.h"
#include "trainer/grpo_loss.h"
#include "trainer/memory_plan.h"
#include "trainer/metric_reducer.h"
#include "trainer/optimizer.h"
#include "trainer/plot.h"
#include "trainer/policy_step.h"
#include "trainer/policy_file.h"
#include "trainer/rank_agreement.h"
#include "trainer/reflection.h"
#include "trainer/routing_replay.h"
#include "trainer/run_dir.h"
#include "trainer/stop_signal.h"
#include "trainer/train_recipe.h"

namespace zerorl {

TrainConfig TrainConfig::from(const ConfigNode& n) {
  TrainConfig c;
  c.steps = n.get<long>("steps", c.steps);
  c.prompts_per_step = n.get<long>("prompts_per_step", c.prompts_per_step);
  c.group_size = n.get<long>("group_size", c.group_size);
  c.epochs = n.get<long>("epochs", c.epochs);
  c.minibatches = n.get<long>("minibatches", c.minibatches);
  c.micro_batch = n.get<long>("micro_batch", c.micro_batch);
  c.activation_checkpointing = n.get<bool>("activation_checkpointing", false);
  c.routing_replay = n.get<bool>("routing_replay", c.routing_replay);
  const std::string old_logprobs =
      n.choice("old_logprobs", {"auto", "rollout", "recompute"}, "auto");
  c.old_logprobs = old_logprobs == "rollout"     ? OldLogprobs::kRollout
                   : old_logprobs == "recompute" ? OldLogprobs::kRecompute
                                                 : OldLogprobs::kAuto;
  c.ref_reset_every = n.get<long>("ref_reset_every", c.ref_reset_every);
  c.sample_every = n.get<long>("sample_every", c.sample_every);
  c.samples_per_log = n.get<long>("samples_per_log", c.samples_per_log);
  c.seed = n.get<unsigned long long>("seed", c.seed);
  c.zero = n.get<long>("zero", c.zero);
  ZR_CHECK(c.zero >= 0 && c.zero <= 2, n.where("zero"), ": train.zero must be 0, 1 or 2, got ",
           c.zero);
  c.overlap_grad_sync = n.get<bool>("overlap_grad_sync", c.overlap_grad_sync);
  ZR_CHECK(c.steps >= 0, n.where("steps"), ": train.steps must be >= 0");
  ZR_CHECK(c.prompts_per_step > 0, n.where("prompts_per_step"),
           ": train.prompts_per_step must be > 0");
  ZR_CHECK(c.group_size >= 2, n.where("group_size"),
           ": train.group_size must be >= 2 (GRPO compares within a group)");
  ZR_CHECK(c.epochs >= 1 && c.minibatches >= 1 && c.micro_batch >= 0, n.where(),
           ": train.epochs and minibatches must be >= 1, micro_batch >= 0");
  return c;
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}
// CPU seconds of every thread of this process: on a shared machine the
// steadier measure of the work done (wall time includes waiting for a core).
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Everything a run holds; built once by setup().
struct Run {
  TrainConfig train;
  AdvantageConfig adv;
  LossConfig loss;
  OptimizerConfig optim;
  EvalConfig eval;
  long ckpt_every = 0, keep_last = 0;  // CheckpointConfig's, set by setup()
  bool prepend_bos = false;
  at::Device device = at::kCPU;  // where the policy, reference and learner tensors live
  std::string recipe_yaml, run_path;

  // Expert parallelism (trainer/expert_parallel.h): null unless
  // parallel.expert > 1.  Declared before the models, which point to it.
  std::unique_ptr<ProcessGrid> grid;
  Policy policy;
  std::shared_ptr<model::CausalLM> reference;  // null when beta == 0
  std::unique_ptr<Optimizer> opt;
  data::PromptTemplate tmpl = data::PromptTemplate::tiny();
  std::unique_ptr<data::PromptSource> source;
  // data.curriculum: the level the prompts are drawn at (null when off).
  std::unique_ptr<data::Curriculum> curriculum;
  std::vector<data::Example> test_set;
  std::unique_ptr<rewards::RewardPipeline> rewards;
  std::unique_ptr<rollout::Engine> engine;
  rollout::SamplingParams sampling;
  std::unique_ptr<RunDir> dir;  // rank 0 only
  long start_step = 0;
  long ref_reset_step = 0;
  // Dynamic sampling: steps that hit max_sampling_rounds short of a full batch.
  long short_steps = 0;
  // Per reward (pipeline order): this rank's latest failure text, for the
  // message when rewards.max_error_rate stops the run.
  std::vector<std::string> reward_last_failure;
  long format_zero_steps = 0;  // steps whose format reward was 0 on every sample
  // Wall-clock seconds of the run's earlier segments (from the checkpoint
  // resumed) and when this segment started.
  double wall_before = 0;
  Clock::time_point t_start = Clock::now();
  double wall_seconds() const { return wall_before + seconds_since(t_start); }

  // rollout.mode disaggregated (trainer/disaggregated.h); roles is null when
  // colocated.
  DisaggregatedConfig async;
  std::unique_ptr<Roles> roles;
  std::unique_ptr<WeightBroadcast> weights_out;   // the policy's weights, learners -> rollout
  std::map<int64_t, double> version_fingerprint;  // learners: every version sent
  long stale_dropped = 0;                         // groups dropped for staleness, whole run

  bool learner() const { return !roles || roles->learner(); }
  // The ranks this rank trains (or rolls out) with: the world when colocated.
  Comm& role_comm(Comm& world) const { return roles ? roles->role_comm() : world; }
};

// The batch laid out for teacher forcing (rollout/batch_tensors.h: rows are
// completions, [B, T] with the completion mask), on the learner's device,
// plus which completions hit the length cap.
struct Packed {
  rollout::PaddedRollout t;
  at::Tensor truncated_B;
  std::vector<int64_t> len_B;  // teacher-forced positions of each row (prompt + completion - 1)
  at::Tensor routing_MBTK;     // MoE policy: the rollout's experts (routing_tensor)
  bool replay = false;         // train.routing_replay: the learner's forwards use routing_MBTK

  // The longest of `rows`: a forward over them is cut to this many positions
  // (right padding beyond every row's end changes nothing before it).
  int64_t span(const std::vector<int64_t>& rows) const {
    int64_t s = 1;
    for (int64_t r : rows) s = std::max(s, len_B[r]);
    return s;
  }
};

Packed pack(const rollout::RolloutBatch& rb, at::Device device, const model::CausalLM& policy,
            bool routing_replay) {
  Packed p;
  p.t = rollout::pad_rollout(rb);
  p.replay = routing_replay;
  if (!policy.moe_layers().empty())
    p.routing_MBTK = routing_tensor(rb, static_cast<int64_t>(policy.moe_layers().size()),
                                    policy.config().moe.top_k, p.t.tokens_BT.size(1))
                         .to(device);
  p.truncated_B = at::zeros({static_cast<int64_t>(rb.samples.size())}, at::kBool);
  for (size_t b = 0; b < rb.samples.size(); ++b) {
    p.truncated_B[b] = rb.samples[b].finish == rollout::FinishReason::kLength;
    p.len_B.push_back(rb.samples[b].prompt_length() + rb.samples[b].completion_length() - 1);
  }
  p.t.completion_mask_BT = p.t.completion_mask_BT.to(at::kFloat);
  if (device.is_cpu()) return p;
  for (at::Tensor* x : {&p.t.tokens_BT, &p.t.targets_BT, &p.t.valid_BT, &p.t.completion_mask_BT,
                        &p.t.behaviour_logp_BT, &p.truncated_B})
    *x = x->to(device);
  return p;
}

// One scored group-batch: a rollout round's, or the groups kept for the
// update (P groups on this rank, B = P * G completions), and what the step's
// phases add to it.
struct StepBatch {
  rollout::RolloutBatch rollout;
  std::vector<std::string> prompts_rendered;  // [P]
  std::vector<data::Example> examples;        // [P]
  // [P] each group's place in the step's global batch (rank-major over
  // rounds); picks its minibatch, so the split is the same at any world size.
  std::vector<int64_t> group_pos;
  std::vector<rewards::ScoredSample> scores;  // [B]
  // [B] what the advantages see: the pipeline's total, overlong-shaped
  // (reward_phase), then less the KL penalty when loss.kl_in = reward
  // (shape_rewards).
  std::vector<double> rewards;
  GroupAdvantages adv;
  long global_groups = 0;  // groups in the step's batch over all ranks
  // The learner's view (reference_phase): the batch packed for teacher
  // forcing (none when this rank kept no groups) and the reference's
  // log-probs [B, T] (undefined without a reference model).
  std::optional<Packed> packed;
  at::Tensor ref_logp_BT;

  size_t num_groups() const { return examples.size(); }
  long group_size() const { return static_cast<long>(rollout.group_size); }
};

// ---- step logger -------------------------------------------------------------------

// A step's bookkeeping, so the loop and its phases name only what they
// measure: the metrics (reduced over ranks by write()) and this rank's
// wall-clock seconds per phase (summed when a phase runs more than once in
// the step, e.g. one rollout per dynamic-sampling round).  metrics.jsonl's
// "time" holds rank 0's, with learner = reference + update, learner_cpu the
// process CPU seconds of those two phases, and the two throughputs.
class StepLog {
 public:
  MetricReducer metrics;

  // Times its scope as `phase` (wall clock and process CPU).
  class Timer {
   public:
    Timer(StepLog& log, std::string phase)
        : log_(log), phase_(std::move(phase)), cpu0_(process_cpu_seconds()) {}
    ~Timer() {
      log_.add_seconds(phase_, seconds_since(t0_));
      log_.cpu_[phase_] += process_cpu_seconds() - cpu0_;
    }
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;

   private:
    StepLog& log_;
    std::string phase_;
    Clock::time_point t0_ = Clock::now();
    double cpu0_;
  };
  Timer time(std::string phase) { return Timer(*this, std::move(phase)); }
  void add_seconds(const std::string& phase, double seconds) { seconds_[phase] += seconds; }
  double seconds(const std::string& phase) const {
    const auto it = seconds_.find(phase);
    return it == seconds_.end() ? 0.0 : it->second;
  }

  // Collective: reduces the metrics over ranks and derives reward/std; rank
  // 0 appends them and the timing to metrics.jsonl (and the batch's first
  // completions to samples.jsonl every train.sample_every steps).  Returns
  // the reduced metrics.
  std::map<std::string, double> write(const Run& run, Comm& comm, long step, const StepBatch& b);

 private:
  std::map<std::string, double> seconds_, cpu_;
};

void copy_weights(model::CausalLM& dst, const model::CausalLM& src) {
  torch::NoGradGuard g;
  auto s = src.named_weights();
  auto d = dst.named_weights();
  ZR_CHECK(s.size() == d.size(), "reference and policy differ in structure");
  for (size_t i = 0; i < s.size(); ++i) d[i].second.copy_(s[i].second);
}

// ---- setup -----------------------------------------------------------------------

// Keys a resume may change: they do not touch what the run computes (its
// length, when it evaluates, logs, samples and checkpoints, where its
// outputs live, how rewards are threaded and when they stop the run, how
// optimizer state is sharded: a resume may also change the world size).
const std::vector<std::string> kMayChangeOnResume = {"train.steps",
                                                     "train.sample_every",
                                                     "train.samples_per_log",
                                                     "train.zero",
                                                     "train.overlap_grad_sync",
                                                     "parallel.expert",
                                                     "parallel.rollout_ranks",
                                                     "eval.*",
                                                     "checkpoint.*",
                                                     "log.*",
                                                     "logging.*",
                                                     "run.*",
                                                     "rewards.threads",
                                                     "comm",  // before it was a section
                                                     "comm.*",
                                                     "rewards.max_error_rate"};

// A resume with a changed recipe is refused unless every changed key may
// change (kMayChangeOnResume); the error names the keys that may not.
void check_resume_recipe(const std::string& saved_yaml, const std::string& yaml,
                         const std::string& ckpt_path) {
  std::vector<std::string> refused;
  for (const auto& k : recipe_changed_keys(saved_yaml, yaml))
    if (!key_matches(k, kMayChangeOnResume)) refused.push_back(k);
  if (refused.empty()) return;
  std::string keys, allowed;
  for (const auto& k : refused) keys += (keys.empty() ? "" : ", ") + k;
  for (const auto& k : kMayChangeOnResume) allowed += (allowed.empty() ? "" : ", ") + k;
  ZR_THROW("cannot resume from ", ckpt_path, " with a changed recipe: ", keys,
           " differ from the checkpoint's (a resume may change only ", allowed,
           "); start a new run (another run.name, or --overwrite) to change them");
}

// Before any weights are read: the context fits the model's positions, and
// on a GPU the memory plan (trainer/memory_plan.h) fits the device; an unset
// train.micro_batch becomes the largest power of two whose plan fits.
void check_memory_and_context(Run& run, const Recipe& recipe, Comm& comm) {
  constexpr int64_t kPlanPromptTokens = 512;  // prompt length the plan assumes
  const double device_bytes = device_memory_bytes(run.device);
  MemoryPlanInput in = plan_input_from_recipe(
      recipe, comm.size(), device_bytes / static_cast<double>(int64_t{1} << 30), kPlanPromptTokens);
  ZR_CHECK(run.sampling.max_new_tokens < in.model.max_position,
           recipe.section("rollout").section("sampling").where("max_new_tokens"),
           ": rollout.sampling.max_new_tokens (", run.sampling.max_new_tokens,
           ") plus the prompt must stay within the model's max_position_embeddings (",
           in.model.max_position, ")");
  if (device_bytes <= 0) return;        // CPU: host memory is not planned
  const int64_t rows = in.micro_batch;  // the whole minibatch per rank when unset
  if (run.train.micro_batch == 0) {
    const int64_t mb = largest_fitting_micro_batch(in, rows);
    if (mb > 0) {
      run.train.micro_batch = mb;
      in.micro_batch = mb;
      ZR_LOG_INFO("train.micro_batch unset: ", mb,
                  " rows per forward (largest that fits the plan)");
    } else {
      in.micro_batch = 1;
    }
  }
  const MemoryPlan plan = plan_memory(in);
  ZR_CHECK(plan.fits, "the recipe does not fit this device (zerorl plan ", recipe.source_name(),
           " --world-size ", comm.size(), " shows the same table):\n", plan.table());
  if (comm.rank() == 0) ZR_LOG_INFO("memory plan per rank:\n", plan.table());
}

// setup, step 1 of 3 (read the recipe) is read_train_recipe()
// (trainer/train_recipe.h).

void build_learner(Run& run, const TrainRecipe& cfg, Comm& comm);

// setup, step 2 of 3: the run's objects from its configs.  Data first (a
// missing file fails before any compute), then the policy (checked against
// the positions and the device memory before its weights are read), the
// reference, the optimizer and the rollout engine.  `comm` is this rank's
// role (the world when colocated); a rollout rank (disaggregated) builds no
// reference and no optimizer.
void build_run(Run& run, TrainRecipe cfg, const Recipe& recipe, Comm& comm, Comm& world) {
  ZR_CHECK(!cfg.policy.on_cuda || at::hasCUDA(), recipe.section("policy").where("device"),
           ": policy.device is cuda but this process sees no CUDA device");
  if (cfg.policy.on_cuda) run.device = at::Device(at::kCUDA);
  run.prepend_bos = cfg.policy.prepend_bos;
  run.tmpl = data::PromptTemplate::from_config(cfg.prompt_template);
  run.sampling = cfg.rollout.sampling;
  run.rewards = std::make_unique<rewards::RewardPipeline>(std::move(cfg.rewards));
  run.reward_last_failure.assign(run.rewards->size(), "");
  run.adv = cfg.advantage;
  run.loss = cfg.loss;
  run.train = cfg.train;
  run.optim = cfg.optimizer;
  run.eval = cfg.eval;
  run.ckpt_every = cfg.checkpoint.every;
  run.keep_last = cfg.checkpoint.keep_last;
  run.recipe_yaml = cfg.resolved_yaml;
  run.run_path = cfg.run.path();
  ZR_CHECK(run.train.prompts_per_step % comm.size() == 0, "train.prompts_per_step (",
           run.train.prompts_per_step, ") must be a multiple of the ", comm.size(), " ranks");
  const long local_prompts = run.train.prompts_per_step / comm.size();
  if (run.loss.behaviour_is != LossConfig::BehaviourIs::kNone &&
      run.train.old_logprobs_from_rollout())
    ZR_LOG_WARN("loss.behaviour_is=", to_string(run.loss.behaviour_is),
                " has no effect: the old log-probs are the rollout's (every weight is 1); set "
                "train.old_logprobs=recompute to correct the rollout/learner gap");
  // Ranks given different recipes would train diverging replicas, or hang
  // when their step counts differ: refuse before any work.
  check_ranks_share_recipe(run.recipe_yaml, world);

  // Data first: a missing file fails before any compute.
  auto train_set = data::load_examples(cfg.data, data::Split::kTrain);
  run.test_set = data::load_examples(cfg.data, data::Split::kTest);
  // A disaggregated learner draws each round's whole batch: the groups it
  // receives may come from any place of it (dynamic sampling).
  const bool whole = run.roles && run.learner();
  run.source =
      std::make_unique<data::PromptSource>(train_set, cfg.data, local_prompts * comm.size(),
                                           whole ? 0 : comm.rank(), whole ? 1 : comm.size());
  if (cfg.data.curriculum.on) {
    const ConfigNode data_node = recipe.section("data");
    const std::string where = data_node.where("curriculum") + ": data.curriculum";
    ZR_CHECK(!cfg.advantage.dynamic_sampling, where,
             " with advantage.dynamic_sampling is not supported (a round's groups would be "
             "drawn at one level and judged with others dropped); turn one of them off");
    ZR_CHECK(!run.async.on, where,
             " with rollout.mode disaggregated is not supported (the rollout ranks draw ahead "
             "of the learners' accuracy); turn one of them off");
    const auto& names = run.rewards->names();
    ZR_CHECK(std::find(names.begin(), names.end(), run.eval.correct_reward) != names.end(), where,
             " judges accuracy by eval.correct_reward '", run.eval.correct_reward,
             "', which is not a reward of this recipe");
    run.curriculum = std::make_unique<data::Curriculum>(cfg.data.curriculum, train_set, where);
  }

  check_memory_and_context(run, recipe, comm);
  const std::string& init = cfg.policy.init;
  run.policy = load_policy(init);
  auto& model = *run.policy.model;
  cast_parameters(model, cfg.policy.dtype, "policy.init " + init);
  ZR_CHECK(!run.train.routing_replay || !model.moe_layers().empty(),
           recipe.section("train").where("routing_replay"),
           ": train.routing_replay needs an MoE policy; ", init, " has no MoE layer");
  // Every prompt fits the context with max_new_tokens: checked once at
  // start, not when a long prompt is first drawn hours into a run.
  const int64_t max_pos = model.config().max_position;
  rollout::check_prompts_fit(train_set, run.tmpl, *run.policy.tokenizer, run.prepend_bos, max_pos,
                             run.sampling.max_new_tokens, "training");
  if (run.eval.every > 0)
    rollout::check_prompts_fit(run.test_set, run.tmpl, *run.policy.tokenizer, run.prepend_bos,
                               max_pos, run.eval.sampling.max_new_tokens, "test");
  model.to(run.device);
  check_ranks_share_weights(model.named_weights(), "policy.init " + init, world);
  ZR_LOG_INFO("policy ", model.config().summary(), "; ", model.param_report().to_string());
  run.grid = build_expert_parallel(cfg, recipe, model, comm, run.learner());
  if (run.roles)
    run.weights_out = std::make_unique<WeightBroadcast>(model.named_weights(), run.optim.bucket_mb,
                                                        run.grid.get());
  if (run.learner()) build_learner(run, cfg, comm);
  auto text = std::make_shared<rollout::TokenText>(
      rollout::TokenText::from_tokenizer(*run.policy.tokenizer));
  rollout::EngineOptions eo = rollout::engine_options(cfg.rollout);
  // Recorded for every MoE policy: replay uses it, and without replay the
  // learner's own choice is compared with it (rollout/expert_mismatch).
  eo.routing(!model.moe_layers().empty());
  if (run.policy.tokenizer->eos_id() >= 0) eo.eos(run.policy.tokenizer->eos_id());
  // A rank that only generates keeps its decode graphs and KV cache pool
  // between steps (weights arrive in place); a learner needs the memory.
  eo.keep_cache(!run.learner());
  run.engine = std::make_unique<rollout::Engine>(eo, text);
}

// The learner's part of build_run: the reference and the optimizer.
void build_learner(Run& run, const TrainRecipe& cfg, Comm& comm) {
  auto& model = *run.policy.model;
  if (run.loss.needs_reference()) {
    // In the compute dtype: no fp32 copy of a bf16 policy.
    run.reference = std::make_shared<model::CausalLM>(model.config(), /*random_init=*/false);
    cast_parameters(*run.reference, cfg.policy.dtype, "");
    run.reference->to(run.device);
    if (run.grid)
      model::apply_expert_parallel(*run.reference, *run.grid, cfg.parallel.overlap_shared_expert);
    copy_weights(*run.reference, model);
    for (auto& p : run.reference->parameters()) p.set_requires_grad(false);
  }
  std::vector<NamedParam> params;
  for (auto& p : model.named_parameters(true)) {
    const auto [part, parts] = expert_piece(run.grid.get(), p.key());
    params.push_back({p.key(), p.value(), p.value().dim() >= 2,
                      gradient_group(run.grid.get(), p.key()), part, parts});
  }
  run.opt = std::make_unique<Optimizer>(params, run.optim, comm);
  {
    // The learner's per-rank state (trainer/shard_plan.h), exact bytes.
    int64_t param_bytes = 0;
    for (const auto& p : params) param_bytes += static_cast<int64_t>(p.param.nbytes());
    ZR_LOG_INFO("learner state per rank (", dtype_name(cfg.policy.dtype), ", zero ", run.train.zero,
                ", ", comm.size(), " ranks): params ", param_bytes, " B, grads ", param_bytes,
                " B, grad sync ", run.opt->plan().sync_bytes(), " B, masters ",
                run.opt->master_bytes(), " B, AdamW moments ", run.opt->moment_bytes(), " B");
  }
}

// setup, step 3 of 3: the run directory, and with `resume` the checkpoint's
// state (weights, reference, optimizer slices, data cursor, counters).
void resume_or_start(Run& run, const RunConfig& where, const LoggingConfig& logging, Comm& comm,
                     const std::string& resume, bool overwrite) {
  auto& model = *run.policy.model;
  ResumePoint rp;
  if (!resume.empty()) {
    if (resume == "auto") {
      rp = find_resume_checkpoint(run.run_path + "/checkpoints", comm);
    } else {
      rp = resolve_resume_path(resume, comm.rank(), comm.size());
    }
  }
  if (rp.found())
    check_resume_recipe(inspect_checkpoint(checkpoint_rank_file(rp.path, 0)).recipe_yaml,
                        run.recipe_yaml, rp.path);
  if (comm.rank() == 0)
    for (const auto& [step, why] : rp.skipped)
      ZR_LOG_WARN("checkpoint step ", step, " failed verification (", why, "); kept as '",
                  quarantine_checkpoint(run.run_path + "/checkpoints", step, why),
                  "' so that resuming from step ", rp.step, " cannot overwrite it");
  if (comm.rank() == 0)
    run.dir = std::make_unique<RunDir>(where.dir, where.name, run.recipe_yaml,
                                       rp.found()  ? RunDir::Mode::kResume
                                       : overwrite ? RunDir::Mode::kOverwrite
                                                   : RunDir::Mode::kFresh,
                                       logging);
  comm.barrier();
  if (rp.found()) {
    // rp.path is the step directory: the replicated state from rank 0's file;
    // the weights put together from the files that hold them (under expert
    // parallelism, at either end, the experts are row shards of several).
    const std::string file0 = checkpoint_rank_file(rp.path, 0);
    Checkpoint c = load_checkpoint(file0);
    const int64_t ckpt_ep = c.ints.count("parallel_expert") ? c.ints.at("parallel_expert") : 1;
    const int64_t ep = run.grid ? run.grid->ep() : 1;
    if (c.world_size != comm.size() || ckpt_ep != ep)
      ZR_LOG_INFO(rp.path, ": written by ", c.world_size, " ranks (parallel.expert ", ckpt_ep,
                  "), resharded onto ", comm.size(), " (parallel.expert ", ep, ")");
    const RowPick mine = expert_rows(run.grid.get(), model.config().moe.num_experts);
    {
      torch::NoGradGuard g;
      auto copy_in = [&](const NamedTensors& dst, const NamedTensors& src, const char* what) {
        std::map<std::string, at::Tensor> saved(src.begin(), src.end());
        bool said = false;
        for (auto& [n, t] : dst) {
          auto it = saved.find(n);
          ZR_CHECK(it != saved.end(), rp.path, ": ", what, " weight '", n, "' missing");
          ZR_CHECK(it->second.sizes() == t.sizes(), rp.path, ": ", what, " weight '", n,
                   "' has shape ", it->second.sizes(), " here ", t.sizes());
          if (!said && it->second.scalar_type() != t.scalar_type()) {
            ZR_LOG_INFO(rp.path, " holds ", dtype_name(it->second.scalar_type()), " weights ('", n,
                        "'); converted to ", dtype_name(t.scalar_type()), " (policy.dtype)");
            said = true;
          }
          t.copy_(it->second);
        }
      };
      copy_in(model.named_weights(), load_checkpoint_group(rp.path, "model", mine), "policy");
      if (run.reference) {
        if (c.reference.empty())
          copy_weights(*run.reference, model);
        else
          copy_in(run.reference->named_weights(), load_checkpoint_group(rp.path, "reference", mine),
                  "reference");
      }
    }
    {
      // Each rank file holds one slice of the optimizer state.
      std::vector<NamedTensors> slices;
      for (int r = 0; r < c.world_size; ++r)
        slices.push_back(r == 0 ? c.optimizer
                                : load_checkpoint(checkpoint_rank_file(rp.path, r)).optimizer);
      run.opt->load_state(slices);
    }
    // Every rank read the same files; make the replicas identical whatever
    // each rank's file system served (DDP does the same after loading).
    broadcast_replicas(model.named_weights(), run.grid.get(), comm);
    if (run.reference) broadcast_replicas(run.reference->named_weights(), run.grid.get(), comm);
    run.source->restore(data::DataCursor::from_string(c.data_cursor));
    run.start_step = c.step;
    run.ref_reset_step = c.ints.count("ref_reset_step") ? c.ints["ref_reset_step"] : 0;
    run.short_steps = c.ints.count("dynamic_short_steps") ? c.ints["dynamic_short_steps"] : 0;
    if (run.curriculum) run.curriculum->restore(c.ints);
    run.stale_dropped = c.ints.count("stale_groups_dropped") ? c.ints["stale_groups_dropped"] : 0;
    run.wall_before = c.doubles.count("wall_seconds") ? c.doubles["wall_seconds"] : 0.0;
    if (run.dir) run.dir->truncate_after(c.step);
    ZR_LOG_INFO("resumed from ", rp.path, " at step ", c.step);
  }
}

// rollout.mode disaggregated: what it does not (yet) combine with, refused
// before any work, naming the key.
void check_disaggregated(const TrainRecipe& cfg, const Recipe& recipe, Comm& world) {
  const DisaggregatedConfig& d = cfg.disaggregated;
  ZR_CHECK(world.backend() == "mpi", d.where_mode,
           ": rollout.mode disaggregated runs over MPI point-to-point; this run's comm.backend "
           "is ",
           world.backend(), " (set comm.backend: mpi and start under mpirun)");
  // A policy on a GPU: the weights are staged through pinned host buffers
  // over MPI (trainer/disaggregated.h), and the one learner's role is the
  // "single" Comm; several learners would sync CUDA gradients over NCCL.
  ZR_CHECK(!cfg.policy.on_cuda || world.size() - d.rollout_ranks == 1, d.where_ranks,
           ": rollout.mode disaggregated with policy.device cuda runs over MPI with one learner "
           "(parallel.rollout_ranks = world size - 1 = ",
           world.size() - 1,
           "); several learners on GPUs (their gradient sync and the weight "
           "broadcast over NCCL) are planned (issue 16)");
  const int L = world.size() - d.rollout_ranks;
  // Expert parallelism: each role is its own DP x EP grid (trainer/disaggregated.h).
  const int E = cfg.parallel.expert;
  ZR_CHECK(E == 1 || (L % E == 0 && d.rollout_ranks % E == 0), cfg.parallel.where_expert,
           ": parallel.expert = ", E,
           " with rollout.mode disaggregated must divide both roles: ", L, " learners and ",
           d.rollout_ranks, " rollout ranks (parallel.rollout_ranks)");
  ZR_CHECK(E == 1 || !cfg.policy.on_cuda, cfg.parallel.where_expert,
           ": parallel.expert > 1 with rollout.mode disaggregated and policy.device cuda is "
           "planned (issue 16): the rollout ranks' expert exchange would need NCCL");
  ZR_CHECK(L >= 1, d.where_ranks, ": parallel.rollout_ranks = ", d.rollout_ranks,
           " leaves no learner among the ", world.size(), " ranks");
  ZR_CHECK(cfg.train.prompts_per_step % L == 0 && cfg.train.prompts_per_step % d.rollout_ranks == 0,
           recipe.section("train").where("prompts_per_step"), ": train.prompts_per_step (",
           cfg.train.prompts_per_step, ") must be a multiple of the ", L, " learner and the ",
           d.rollout_ranks, " rollout ranks (parallel.rollout_ranks)");
}

void setup(Run& run, Recipe& recipe, Comm& world, const std::string& resume, bool overwrite) {
  TrainRecipe cfg = read_train_recipe(recipe);
  log::set_level(log::level_from_string(cfg.log.level));
  const RunConfig where = cfg.run;
  const LoggingConfig logging = cfg.logging;
  run.async = cfg.disaggregated;
  if (run.async.on) {
    check_disaggregated(cfg, recipe, world);
    run.roles = std::make_unique<Roles>(world, run.async.rollout_ranks, cfg.parallel.expert);
  }
  Comm& comm = run.role_comm(world);
  build_run(run, std::move(cfg), recipe, comm, world);
  // A rollout rank takes its start (step, data cursor, weights) from learner 0.
  if (run.learner()) resume_or_start(run, where, logging, comm, resume, overwrite);
}

// ---- phases ------------------------------------------------------------------------

// rollout: G completions of each of this rank's prompts, the step's global
// places [first_place, + prompts.size()).  Prompt ids are global stream
// positions, so a completion does not depend on the world size.
void rollout_phase(Run& run, int64_t first_place, long step, long round,
                   const std::vector<data::Example>& prompts, StepBatch& out, StepLog& log) {
  const auto timer = log.time("rollout");
  std::vector<rollout::PromptInput> inputs;
  const long P = static_cast<long>(prompts.size());
  for (long i = 0; i < P; ++i) {
    std::string text = run.tmpl.render(prompts[i].prompt);
    inputs.push_back(
        rollout::make_prompt_input((round * run.train.prompts_per_step) + first_place + i, text,
                                   *run.policy.tokenizer, run.prepend_bos));
    out.group_pos.push_back(first_place + i);
    out.prompts_rendered.push_back(text);
    out.examples.push_back(prompts[i]);
  }
  rollout::SamplingParams sp = run.sampling;
  sp.seed = run.train.seed;
  sp.step = static_cast<uint64_t>(step);
  torch::NoGradGuard g;
  out.rollout = run.engine->generate(*run.policy.model, inputs, run.train.group_size, sp);
}

// reward: the pipeline's weighted sum per completion (never throws on bad
// text), overlong-shaped (loss.overlong = soft): dynamic sampling keeps or
// drops a group by these rewards.
void reward_phase(Run& run, StepBatch& b, StepLog& log) {
  const auto timer = log.time("reward");
  const long G = b.group_size();
  std::vector<rewards::Sample> samples;
  for (size_t j = 0; j < b.rollout.samples.size(); ++j)
    samples.push_back(
        reward_sample(b.examples[j / G], b.prompts_rendered[j / G], b.rollout.samples[j].text));
  b.scores = run.rewards->score(samples);
  b.rewards.clear();
  for (auto& s : b.scores) b.rewards.push_back(s.total);
  std::vector<int64_t> lengths;
  for (auto& s : b.rollout.samples) lengths.push_back(s.completion_length());
  apply_overlong_shaping(b.rewards, lengths, run.loss);
}

at::Tensor select_rows(const at::Tensor& t, const std::vector<int64_t>& rows);

// Rows `rows` of a [B, T] tensor, cut to the first `span` positions.
at::Tensor select_span(const at::Tensor& t_BT, const std::vector<int64_t>& rows, int64_t span) {
  return select_rows(t_BT, rows).narrow(1, 0, span);
}

// Teacher-forced log-probs (and entropies) [b, S] of the listed rows, S =
// p.span(rows), replaying the rollout's experts when p has them.  With
// `mismatch`, the rows' log-probs and routing are compared with the
// rollout's (the caller's model must be the one that generated them).
std::pair<at::Tensor, at::Tensor> teacher_forced(model::CausalLM& m, const Packed& p,
                                                 const std::vector<int64_t>& rows,
                                                 double temperature, bool entropy, bool record_load,
                                                 bool checkpoint = false,
                                                 RoutingMismatch* mismatch = nullptr) {
  kernels::LogprobOptions lo;
  lo.temperature = temperature;
  lo.with_entropy = entropy;
  model::ForwardOptions fo;
  const int64_t S = p.span(rows);
  fo.valid_BT = select_span(p.t.valid_BT, rows, S);
  fo.record_expert_load = record_load;
  fo.activation_checkpointing = checkpoint;
  std::vector<at::Tensor> recorded;  // the rollout's experts of these rows
  if (p.routing_MBTK.defined()) recorded = replay_rows(p.routing_MBTK, rows, S);
  if (p.replay) fo.replay_routing = recorded;
  fo.record_routing = mismatch && !recorded.empty();
  auto out =
      m.logprobs(select_span(p.t.tokens_BT, rows, S), select_span(p.t.targets_BT, rows, S), lo, fo);
  if (mismatch) {
    mismatch->add_logprobs(select_span(p.t.behaviour_logp_BT, rows, S), out.logp_BT,
                           select_span(p.t.completion_mask_BT, rows, S));
    if (fo.record_routing)
      mismatch->add_experts(m.last_routing(), recorded, fo.valid_BT.reshape({-1}));
  }
  return {out.logp_BT, entropy ? out.entropy_BT : at::Tensor()};
}

// Rows in chunks of `micro` (0: one chunk of all), longest rows first when
// chunked, so each chunk's forward carries little padding.
std::vector<std::vector<int64_t>> length_chunks(const Packed& p, std::vector<int64_t> rows,
                                                int64_t micro) {
  if (micro <= 0) return {rows};
  std::stable_sort(rows.begin(), rows.end(),
                   [&](int64_t a, int64_t b) { return p.len_B[a] > p.len_B[b]; });
  std::vector<std::vector<int64_t>> out;
  for (size_t s = 0; s < rows.size(); s += micro)
    out.emplace_back(rows.begin() + s, rows.begin() + std::min(rows.size(), s + micro));
  return out;
}

// No-grad log-probs [B, T] of every row (0 past each row's end), in
// length-sorted chunks of train.micro_batch rows (`mismatch`: as in
// teacher_forced).
at::Tensor logprobs_no_grad(model::CausalLM& m, const Packed& p, int64_t micro, double temperature,
                            RoutingMismatch* mismatch = nullptr) {
  torch::NoGradGuard g;
  std::vector<int64_t> all(p.len_B.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  if (micro <= 0)
    return teacher_forced(m, p, all, temperature, false, false, false, mismatch).first.detach();
  at::Tensor out;
  for (const auto& part : length_chunks(p, all, micro)) {
    at::Tensor lp = teacher_forced(m, p, part, temperature, false, false, false, mismatch).first;
    if (!out.defined())
      out = at::zeros({p.t.tokens_BT.size(0), p.t.tokens_BT.size(1)}, lp.options());
    out.narrow(1, 0, lp.size(1)).index_copy_(0, at::tensor(part, at::kLong).to(lp.device()), lp);
  }
  return out;
}

at::Tensor select_rows(const at::Tensor& t, const std::vector<int64_t>& rows) {
  return t.index_select(0, at::tensor(rows, at::kLong).to(t.device()));
}

void add_batch_metrics(Run& run, const StepBatch& b, const std::vector<bool>& signal,
                       MetricReducer& m);

void append_group(StepBatch& dst, StepBatch& src, size_t g, int64_t pos) {
  const long G = src.group_size();
  dst.prompts_rendered.push_back(src.prompts_rendered[g]);
  dst.examples.push_back(src.examples[g]);
  dst.group_pos.push_back(pos);
  for (size_t j = g * G; j < (g + 1) * G; ++j) {
    dst.rollout.samples.push_back(std::move(src.rollout.samples[j]));
    dst.scores.push_back(std::move(src.scores[j]));
    dst.rewards.push_back(src.rewards[j]);
  }
}

// Dynamic sampling's choice in one round, made alike by every rank that drew
// a part of it (the colocated ranks, or the rollout ranks: `comm`): each of
// this rank's groups with a signal takes the step's next place in the
// trained batch in stream order -- after the groups kept in earlier rounds
// and, in this round, by lower ranks (one allgather of the counts) -- until
// N are kept.  Returns each group's batch place, or -1 (no signal, or past
// N), and advances `kept`, the step's kept groups over all ranks (<= N).
// Without dynamic sampling every group is trained at its place in the round.
std::vector<int64_t> batch_places(const Run& run, Comm& comm, const StepBatch& b,
                                  const std::vector<bool>& signal, long& kept) {
  const long N = run.train.prompts_per_step;
  if (!run.adv.dynamic_sampling) {
    kept = N;
    return b.group_pos;
  }
  long mine = 0;
  for (bool s : signal) mine += s;
  const at::Tensor counts = comm.allgather(at::full({1}, static_cast<double>(mine), at::kDouble));
  long pos = kept, total = 0;
  for (int r = 0; r < comm.size(); ++r) {
    const long c = std::lround(counts[r].item<double>());
    if (r < comm.rank()) pos += c;
    total += c;
  }
  std::vector<int64_t> out(signal.size(), -1);
  for (size_t g = 0; g < signal.size() && pos < N; ++g)
    if (signal[g]) out[g] = pos++;
  kept = std::min(N, kept + total);
  return out;
}

long max_sampling_rounds(const Run& run) {
  return run.adv.dynamic_sampling ? run.adv.max_sampling_rounds : 1;
}

// Dynamic sampling's metrics of a step, from this rank's share: the rounds
// drawn, the groups drawn and with a signal among them, the kept batch (the
// rank's share and, in global_groups, the whole); a step short of N kept
// groups is counted and warned about.
void add_dynamic_metrics(Run& run, Comm& comm, long step, long rounds, double drawn,
                         double with_signal, const StepBatch& kept, MetricReducer& m) {
  const long N = run.train.prompts_per_step;
  m.add_max("dynamic/rounds", static_cast<double>(rounds));
  m.add_sum("dynamic/groups_drawn", drawn);
  m.add_sum("dynamic/groups_with_signal", with_signal);
  m.add_sum("dynamic/groups_kept", static_cast<double>(kept.num_groups()));
  // The learner's balance: ranks keep unequal shares of the batch.
  m.add_min("dynamic/rank_groups_min", static_cast<double>(kept.num_groups()));
  m.add_max("dynamic/rank_groups_max", static_cast<double>(kept.num_groups()));
  if (kept.global_groups < N) {
    ++run.short_steps;
    if (comm.rank() == 0)
      ZR_LOG_WARN("step ", step + 1, ": dynamic sampling kept ", kept.global_groups, " of ", N,
                  " groups in ", rounds, " rounds (advantage.max_sampling_rounds); training on ",
                  kept.global_groups == 0 ? "none: update skipped" : "those");
  }
  m.add_max("dynamic/short_steps_total", static_cast<double>(run.short_steps));
}

// rollout + reward, with DAPO's dynamic sampling when advantage.dynamic_sampling
// is on: groups whose rewards do not differ (groups_with_signal) are dropped
// and further rounds of prompts are drawn until prompts_per_step groups with
// a signal are kept over all ranks, or max_sampling_rounds rounds were drawn.
// Kept groups are ordered by (round, rank, prompt), i.e. by their position in
// the global prompt stream, and the first prompts_per_step are trained on, so
// which groups are kept does not depend on the world size (a rank may keep
// more or fewer than its share; the loss is normalised over all ranks).
// Every rank learns every rank's count each round (batch_places), so all
// ranks take the same number of rounds and advance their prompt sources
// alike.  Metrics of what was drawn (rewards, lengths, zero-spread fraction)
// cover every round; the update sees only the kept groups.
StepBatch sample_phase(Run& run, Comm& comm, long step, StepLog& log) {
  MetricReducer& m = log.metrics;
  const long N = run.train.prompts_per_step;
  StepBatch kept;
  kept.rollout.group_size = run.train.group_size;
  long round = 0;
  double with_signal = 0;
  for (; round < max_sampling_rounds(run) && kept.global_groups < N; ++round) {
    StepBatch b;
    const std::vector<data::Example> prompts =
        run.curriculum ? run.source->next_batch(
                             [&](const data::Example& ex) { return run.curriculum->admits(ex); })
                       : run.source->next_batch();
    if (run.curriculum) m.add_max("curriculum/level", static_cast<double>(run.curriculum->level()));
    rollout_phase(run, comm.rank() * static_cast<int64_t>(prompts.size()), step, round, prompts, b,
                  log);
    reward_phase(run, b, log);
    const std::vector<bool> signal =
        groups_with_signal(b.rewards, b.group_size(), run.adv.zero_spread_tol);
    add_batch_metrics(run, b, signal, m);
    if (!run.adv.dynamic_sampling) {
      kept = std::move(b);
      kept.global_groups = N;
      break;
    }
    const std::vector<int64_t> at = batch_places(run, comm, b, signal, kept.global_groups);
    for (size_t g = 0; g < at.size(); ++g) {
      with_signal += signal[g];
      if (at[g] >= 0) append_group(kept, b, g, at[g]);
    }
  }
  if (run.adv.dynamic_sampling)
    add_dynamic_metrics(run, comm, step, round, static_cast<double>(round * (N / comm.size())),
                        with_signal, kept, m);
  return kept;
}

// reference: the kept batch packed for the learner (rollout/batch_tensors.h)
// and the reference model's log-probs of it (no grad), for the KL term.
// Resets the reference to the policy every train.ref_reset_every steps.
void reference_phase(Run& run, long step, StepBatch& b, StepLog& log) {
  const auto timer = log.time("reference");
  if (!b.rollout.samples.empty()) {
    b.packed = pack(b.rollout, run.device, *run.policy.model, run.train.routing_replay);
    log.metrics.add_sum("learner/tokens", b.packed->t.valid_BT.sum().item<double>());
  } else {
    log.metrics.add_sum("learner/tokens", 0);
  }
  if (!run.reference) return;
  if (run.train.ref_reset_every > 0 && step > 0 && step % run.train.ref_reset_every == 0 &&
      run.ref_reset_step != step) {
    copy_weights(*run.reference, *run.policy.model);
    run.ref_reset_step = step;
    ZR_LOG_INFO("reference reset to the policy at step ", step);
  }
  if (b.packed)
    b.ref_logp_BT = logprobs_no_grad(*run.reference, *b.packed, run.train.micro_batch,
                                     run.sampling.logprob_temperature());
}

// shape rewards: with loss.kl_in = reward, each completion's KL penalty
// (beta * its summed per-token KL to the reference, trainer/grpo_loss.h) is
// subtracted from its reward before the advantages; reward/kl_penalty is
// its mean.  The overlong shaping happened in reward_phase (dynamic sampling
// needs it), so after this the rewards are final.
void shape_rewards(const Run& run, StepBatch& b, MetricReducer& m) {
  if (!run.reference || run.loss.kl_in != LossConfig::KlIn::kReward) return;
  if (!b.packed) {
    m.add_mean("reward/kl_penalty", 0, 0);
    return;
  }
  const auto pen = kl_reward_penalty(b.packed->t.behaviour_logp_BT, b.ref_logp_BT,
                                     b.packed->t.completion_mask_BT, run.loss);
  for (size_t j = 0; j < pen.size(); ++j) {
    b.rewards[j] -= pen[j];
    m.add_mean("reward/kl_penalty", pen[j], 1);
  }
}

// The statistics a rank adds for a minibatch in which it holds no rows, so
// that every rank reports the same metric names.
LossStats empty_loss_stats(const Run& run) {
  return LossStats::empty(run.loss, run.reference != nullptr, /*has_entropy=*/true);
}

// update: mu epochs x minibatches optimizer steps, each a collective
// (policy_step: gradient sync, AdamW, MoE balancing biases).  A rank that
// kept no groups (dynamic sampling; b.packed empty) still joins every
// collective with empty gradients; a step whose batch is empty on every rank
// (no group with a signal) is not updated.
void update_phase(Run& run, Comm& comm, const StepBatch& b, StepLog& log) {
  const auto timer = log.time("update");
  if (b.global_groups == 0) return;
  MetricReducer& m = log.metrics;
  auto& model = *run.policy.model;
  const Packed* full = b.packed ? &*b.packed : nullptr;
  const long G = b.group_size();
  const int64_t B = static_cast<int64_t>(b.rollout.samples.size());
  at::Tensor mask_BT, old_logp_BT, adv_B;
  const double T = run.sampling.logprob_temperature();
  RoutingMismatch mismatch;
  mismatch.experts = !model.moe_layers().empty();
  bool mismatch_measured = false;
  auto t = Clock::now();
  if (full) {
    mask_BT = full->t.completion_mask_BT;
    if (run.loss.overlong == LossConfig::Overlong::kMask)
      mask_BT = mask_truncated(mask_BT, full->truncated_B);
    const bool use_rollout_old = run.train.old_logprobs_from_rollout();
    old_logp_BT = full->t.behaviour_logp_BT;
    if (!use_rollout_old) {
      old_logp_BT = logprobs_no_grad(model, *full, run.train.micro_batch, T, &mismatch);
      mismatch_measured = true;
    }
    adv_B = at::tensor(b.adv.advantages, at::kDouble).to(run.device, at::kFloat);
  }
  log.add_seconds("old_logprobs", seconds_since(t));
  double fwd_bwd = 0, sync = 0, apply = 0;
  long blowups = 0;  // updates of this step skipped by the blow-up guard
  const long M = run.train.minibatches;
  for (long epoch = 0; epoch < run.train.epochs; ++epoch) {
    for (long mb = 0; mb < M; ++mb) {
      // Minibatch mb: the groups whose place in the step's global batch is
      // = mb (mod M), the same set at every world size.
      std::vector<int64_t> rows;
      for (int64_t i = 0; i < B; ++i)
        if (b.group_pos[i / G] % M == mb) rows.push_back(i);
      LossScale local;
      if (!rows.empty()) local = LossScale::of(select_rows(mask_BT, rows));
      const LossScale scale = local.allreduced(comm);
      if (scale.num_seqs == 0) continue;  // a short dynamic-sampling batch: no rank has rows
      if (rows.empty() && epoch == 0) empty_loss_stats(run).add_to(m, "loss/");
      bool finite = true;
      t = Clock::now();
      std::vector<std::vector<int64_t>> parts;  // none when this rank holds no rows
      if (!rows.empty()) parts = length_chunks(*full, rows, run.train.micro_batch);
      // Without recomputed old log-probs, the first optimizer step's forward
      // (the policy still as it generated the batch) measures the mismatch.
      const bool measure = !mismatch_measured && epoch == 0 && mb == 0;
      for (const auto& part : parts) {
        auto [logp, ent] =
            teacher_forced(model, *full, part, T, true, true, run.train.activation_checkpointing,
                           measure ? &mismatch : nullptr);
        const int64_t S = logp.size(1);
        LossInputs in;
        in.logp_BT = logp;
        in.old_logp_BT = select_span(old_logp_BT, part, S);
        if (b.ref_logp_BT.defined()) in.ref_logp_BT = select_span(b.ref_logp_BT, part, S);
        in.advantages_B = select_rows(adv_B, part);
        in.mask_BT = select_span(mask_BT, part, S);
        in.entropy_BT = ent;
        if (run.loss.behaviour_is != LossConfig::BehaviourIs::kNone)
          in.behaviour_logp_BT = select_span(full->t.behaviour_logp_BT, part, S);
        auto out = grpo_loss(in, run.loss, scale);
        finite = finite && std::isfinite(out.stats.loss);
        if (&part == &parts.back()) run.opt->overlap_next_backward();
        out.loss.backward();
        if (epoch == 0) out.stats.add_to(m, "loss/");
      }
      fwd_bwd += seconds_since(t);
      const PolicyStepReport report = policy_step(*run.opt, model, comm, finite);
      const StepReport& rep = report.optimizer;
      sync += rep.sync_seconds;
      apply += rep.apply_seconds;
      if (report.load_imbalance_max)
        m.add_max("moe/load_imbalance_max", *report.load_imbalance_max);
      m.add_mean("optim/grad_norm", rep.grad_norm, 1);
      m.add_max("optim/lr", rep.lr);
      m.add_max("optim/skipped_total", static_cast<double>(rep.num_skipped));
      m.add_max("optim/update_ratio", rep.update_ratio);
      blowups += rep.blowup ? 1 : 0;  // the same on every rank: a max, not a sum
      if (rep.blowup && comm.rank() == 0)
        ZR_LOG_WARN(
            "update skipped: it would blow the weights up (||update|| / ||weights|| = ",
            rep.update_ratio, ", optimizer.max_update_ratio ", run.opt->config().max_update_ratio,
            ", or a weight non-finite or beyond its dtype); optim/skipped_blowup counts it");
    }
  }
  m.add_max("optim/skipped_blowup", static_cast<double>(blowups));
  mismatch.report(m);
  log.add_seconds("fwd_bwd", fwd_bwd);
  log.add_seconds("grad_sync", sync);
  log.add_seconds("optimizer", apply);
}

// Metrics of one drawn rollout round (all of its groups, kept or not).
void add_batch_metrics(Run& run, const StepBatch& b, const std::vector<bool>& signal,
                       MetricReducer& m) {
  const auto& names = run.rewards->names();
  const auto correct_at = std::find(names.begin(), names.end(), run.eval.correct_reward);
  for (size_t j = 0; j < b.scores.size(); ++j) {
    const auto& s = b.scores[j];
    m.add_mean("reward/mean", b.rewards[j], 1);
    m.add_mean("reward/sq", b.rewards[j] * b.rewards[j], 1);
    for (size_t r = 0; r < names.size(); ++r) {
      m.add_mean("reward/" + names[r], s.values[r], 1);
      m.add_mean("reward/" + names[r] + "/error_rate", s.failed[r] ? 1.0 : 0.0, 1);
      if (s.failed[r]) run.reward_last_failure[r] = s.errors[r];
    }
    const auto& smp = b.rollout.samples[j];
    m.add_mean("response/length_mean", static_cast<double>(smp.completion_length()), 1);
    m.add_max("response/length_max", static_cast<double>(smp.completion_length()));
    m.add_mean("response/truncated_rate", smp.finish == rollout::FinishReason::kLength, 1);
    add_reflection_metrics(
        m, detect_reflection(smp.text),
        correct_at == names.end() ? -1 : s.values[correct_at - names.begin()] >= 0.5);
  }
  std::vector<int64_t> lengths;
  for (const auto& smp : b.rollout.samples)
    lengths.push_back(static_cast<int64_t>(smp.completion_length()));
  add_length_histogram(m, lengths, run.sampling.max_new_tokens);
  double zero_spread = 0;
  for (bool s : signal) zero_spread += !s;
  m.add_mean("advantage/zero_spread_frac", zero_spread, static_cast<double>(signal.size()));
  // A disaggregated learner's share of a rollout rank's batch may come
  // without that generate()'s statistics (another learner counts them):
  // all zero, and no count towards the occupancy.
  const bool has_stats = b.rollout.stats.num_samples > 0;
  m.add_sum("rollout/generated_tokens", static_cast<double>(b.rollout.stats.generated_tokens));
  m.add_sum("rollout/prefill_tokens", static_cast<double>(b.rollout.stats.prefill_tokens));
  m.add_mean("rollout/occupancy", b.rollout.stats.occupancy(), has_stats ? 1 : 0);
  if (run.grid)  // expert parallelism: forwards joined with no tokens (rollout/engine.h)
    m.add_sum("rollout/idle_forwards", static_cast<double>(b.rollout.stats.idle_forwards));
}

// The curriculum's step (data/curriculum.h): this step's correct and total
// completions, summed over all ranks as integers (the same on every rank at
// any world size), may move the prompts to the next level.
void curriculum_phase(Run& run, Comm& comm, long step, const StepBatch& b) {
  if (!run.curriculum) return;
  const auto& names = run.rewards->names();
  const size_t at = static_cast<size_t>(
      std::find(names.begin(), names.end(), run.eval.correct_reward) - names.begin());
  double correct = 0;
  for (const auto& s : b.scores) correct += s.values[at] >= 0.5 ? 1 : 0;
  const double total = comm.allreduce_scalar(static_cast<double>(b.scores.size()));
  correct = comm.allreduce_scalar(correct);
  const long was = run.curriculum->level();
  if (run.curriculum->observe(std::llround(correct), std::llround(total)) && comm.rank() == 0)
    ZR_LOG_INFO("step ", step + 1, ": curriculum level ", was, " -> ", run.curriculum->level());
}

// Rewards that cannot work stop the run: a reward that failed on more than
// rewards.max_error_rate of the step's samples (over all ranks; every rank
// sees the same reduced rate, so all throw) ends it with its last error.
void check_reward_failures(const Run& run, const std::map<std::string, double>& metrics,
                           long step) {
  const auto& names = run.rewards->names();
  for (size_t r = 0; r < names.size(); ++r) {
    auto it = metrics.find("reward/" + names[r] + "/error_rate");
    if (it == metrics.end() || !(it->second > run.rewards->max_error_rate())) continue;
    const std::string& last = run.reward_last_failure[r];
    ZR_THROW("reward '", names[r], "' failed on ", it->second * 100, "% of the samples of step ",
             step + 1, " (more than rewards.max_error_rate = ", run.rewards->max_error_rate(),
             "); its last error", last.empty() ? std::string(" was on another rank") : ": " + last);
  }
}

// A format reward at 0 on every sample of a step is worth a word: usually
// the template and the format reward disagree (e.g. a template whose prompt
// does not open the think block with a policy that never writes <think>).  Said at the first such
// step and then every 50th, so a long run of them does not flood the log.
void warn_if_format_never_met(Run& run, const std::map<std::string, double>& metrics, long step) {
  const std::string& name = run.eval.format_reward;
  auto it = metrics.find("reward/" + name);
  if (name.empty() || it == metrics.end() || it->second != 0.0) return;
  if (run.format_zero_steps++ % 50 != 0) return;
  ZR_LOG_WARN("step ", step + 1, ": the format reward '", name, "' is 0 on every sample (",
              run.format_zero_steps,
              " such step(s) so far); check that the template and the reward agree: the ",
              "completion must hold <think>...</think><answer>...</answer>, or the prompt end in ",
              "<think> and the completion hold the rest (template.name: tiny; docs/REWARDS.md)");
}

std::vector<SampleRecord> sample_records(const Run& run, const StepBatch& b) {
  std::vector<SampleRecord> out;
  const long G = b.group_size();
  for (size_t j = 0;
       j < b.scores.size() && static_cast<long>(out.size()) < run.train.samples_per_log; ++j) {
    SampleRecord r;
    r.index = static_cast<int64_t>(j);
    r.prompt = b.prompts_rendered[j / G];
    r.completion = b.rollout.samples[j].text;
    r.gold = b.examples[j / G].answer;
    r.reward = b.rewards[j];
    r.components = b.scores[j].components;
    for (auto& e : b.scores[j].errors)
      if (!e.empty()) r.reason += (r.reason.empty() ? "" : "; ") + e;
    for (size_t k = 0; k < run.rewards->names().size(); ++k) {
      r.answers[run.rewards->names()[k]] = b.scores[j].answers[k];
      r.reasons[run.rewards->names()[k]] = b.scores[j].reasons[k];
    }
    r.numbers["advantage"] = b.adv.advantages[j];
    r.numbers["tokens"] = static_cast<double>(b.rollout.samples[j].completion_length());
    r.texts["finish_reason"] = rollout::finish_reason_name(b.rollout.samples[j].finish);
    out.push_back(std::move(r));
  }
  return out;
}

std::map<std::string, double> StepLog::write(const Run& run, Comm& comm, long step,
                                             const StepBatch& b) {
  auto reduced = metrics.reduce(comm);
  const double mean = reduced["reward/mean"];
  reduced["reward/std"] = std::sqrt(std::max(0.0, reduced["reward/sq"] - mean * mean));
  reduced.erase("reward/sq");
  length_quantiles(reduced, run.sampling.max_new_tokens);
  std::map<std::string, double> timing = seconds_;
  timing["learner"] = timing["reference"] + timing["update"];
  timing["learner_cpu"] = cpu_["reference"] + cpu_["update"];
  const double gen = reduced["rollout/generated_tokens"];
  timing["rollout_tokens_per_s"] = timing["rollout"] > 0 ? gen / timing["rollout"] : 0.0;
  timing["learner_tokens_per_s"] =
      timing["learner"] > 0 ? reduced["learner/tokens"] / timing["learner"] : 0.0;
  if (run.dir) {
    run.dir->append_metrics(step + 1, reduced, timing);
    if (run.train.sample_every > 0 && (step + 1) % run.train.sample_every == 0)
      run.dir->append_samples(step + 1, sample_records(run, b));
  }
  return reduced;
}

std::map<std::string, double> evaluate_phase(Run& run, Comm& comm, long step) {
  EvalContext ctx;
  ctx.policy = run.policy.model.get();
  ctx.tokenizer = run.policy.tokenizer.get();
  ctx.prompt_template = &run.tmpl;
  ctx.rewards = run.rewards.get();
  ctx.engine = run.engine.get();
  ctx.prepend_bos = run.prepend_bos;
  auto res = evaluate(ctx, run.test_set, run.eval, comm);
  if (run.dir) {
    run.dir->append_eval(step, res.metrics);
    run.dir->append_eval_samples(step, res.samples);
  }
  std::string line;
  for (auto& [k, v] : res.metrics) line += " " + k + "=" + std::to_string(v);
  ZR_LOG_INFO("eval step ", step, ":", line);
  return res.metrics;
}

void checkpoint_phase(Run& run, Comm& comm, long step) {
  Checkpoint c;
  c.step = step;
  c.world_size = comm.size();
  c.rank = comm.rank();
  c.recipe_yaml = run.recipe_yaml;
  c.model_config_json = run.policy.model->config().to_hf_json();
  // Each rank writes what it owns (trainer/checkpoint.h, "Sharded writing"):
  // rank 0 the replicated weights and reference, under expert parallelism
  // each expert shard's first replica its experts (row shards); every rank
  // its optimizer slice.  Any world size and EP size reads them back.
  const int64_t n_experts = run.policy.model->config().moe.num_experts;
  if (run.grid) c.ints["parallel_expert"] = run.grid->ep();
  // This rank's trainable elements (under EP: the dense ones and its experts).
  int64_t numel = 0;
  for (const auto& p : run.policy.model->parameters()) numel += p.numel();
  c.ints["rank_param_numel"] = numel;
  {
    // What this rank holds, so a test can see every rank has the same
    // weights (under EP: the ranks holding the same experts; and every
    // rank the same replicated ones).
    Checkpoint held, replicated;
    held.weights = run.policy.model->named_weights();
    c.strings["weights_hash"] = weights_hash(held);
    if (run.grid) {
      for (const auto& w : held.weights)
        if (!model::is_sharded_expert(w.first)) replicated.weights.push_back(w);
      c.strings["replicated_weights_hash"] = weights_hash(replicated);
    }
    add_owned_weights(held.weights, "model", run.grid.get(), comm.rank(), n_experts, c);
  }
  c.optimizer = run.opt->state();
  if (run.reference && run.ref_reset_step != step)
    add_owned_weights(run.reference->named_weights(), "reference", run.grid.get(), comm.rank(),
                      n_experts, c);
  c.data_cursor = run.source->cursor().to_string();
  c.ints["ref_reset_step"] = run.ref_reset_step;
  c.ints["dynamic_short_steps"] = run.short_steps;
  if (run.curriculum) run.curriculum->save(c.ints);
  if (run.roles) c.ints["stale_groups_dropped"] = run.stale_dropped;
  // Wall-clock time is not part of the results: summary.json's total over
  // segments (not compared by resume tests).
  c.doubles["wall_seconds"] = run.wall_seconds();
  // So a training checkpoint is usable on its own (zerorl generate --model).
  c.strings["tokenizer_json"] = run.policy.tokenizer->to_json();
  std::string root = run.run_path + "/checkpoints";
  save_checkpoint(c, root);
  comm.barrier();  // every rank's file is complete before any prunes
  prune_checkpoints(root, comm.rank(), step, static_cast<int>(run.keep_last));
}

// ---- disaggregated rollout (trainer/disaggregated.h) --------------------------------

constexpr int kGroupsTag = 16;

// The start: learner 0 (under EP each learner of DP rank 0, to the rollout
// ranks of its EP rank) tells the rollout ranks the step the run starts at
// (0, or the resumed one) and the data cursor there (the same on every
// learner), and sends them its weights, version `start`.  Every learner
// notes that version's fingerprint.
void start_rollout_ranks(Run& run) {
  Roles& roles = *run.roles;
  const bool root = roles.weights_root();
  if (run.learner() && !root) {
    run.version_fingerprint[run.start_step] = run.weights_out->fingerprint();
    return;
  }
  Comm& wc = roles.weights_comm();
  at::Tensor head = at::zeros({5}, at::kLong);
  if (root) {
    head[0] = run.start_step;
    const auto c = run.source->cursor().to_ints();
    for (int i = 0; i < 4; ++i) head[i + 1] = static_cast<int64_t>(c[i]);
  }
  wc.broadcast(head, 0);
  run.weights_out->run(wc);
  if (!root) {
    run.start_step = head[0].item<int64_t>();
    std::array<uint64_t, 4> c{};
    for (int i = 0; i < 4; ++i) c[i] = static_cast<uint64_t>(head[i + 1].item<int64_t>());
    run.source->restore(data::DataCursor::from_ints(c));
  }
  run.version_fingerprint[run.start_step] = run.weights_out->fingerprint();
}

// The weight version that generates step b's batch: exactly max(start, b - k).
long generating_version(const Run& run, long b) {
  return std::max(run.start_step, b - run.async.max_staleness);
}

// One round's groups of a rollout rank (`batch`, its groups at batch places
// `at`, -1 where not kept) sent to the learners: learner l gets the groups
// at the round's places [l N/L, (l+1) N/L) (what it counts as drawn) and
// those at the same batch places (what it trains on), in stream order, in a
// message that may hold none.  Learner 0's carries the round's rollout
// statistics and seconds.
void send_round(Run& run, const StepBatch& batch, const std::vector<int64_t>& at,
                GroupsMessage head, std::deque<std::unique_ptr<CommWork>>& pending) {
  Roles& roles = *run.roles;
  const int64_t N = run.train.prompts_per_step;
  const long G = run.train.group_size;
  const rollout::RolloutStats stats = head.rollout.stats;
  for (int l = 0; l < roles.learners(); ++l) {
    const auto [a, z] = roles.learner_places(l, N);
    GroupsMessage m = head;
    m.rollout.stats = rollout::RolloutStats();
    m.carries_stats = l == 0;
    if (m.carries_stats) m.rollout.stats = stats;
    for (size_t g = 0; g < at.size(); ++g) {
      const int64_t place = batch.group_pos[g];
      if ((place < a || place >= z) && (at[g] < a || at[g] >= z)) continue;
      m.places.push_back(place);
      m.batch_places.push_back(at[g]);
      for (size_t j = g * G; j < (g + 1) * G; ++j) {
        m.rollout.samples.push_back(batch.rollout.samples[j]);
        m.scores.push_back(batch.scores[j]);
        m.rewards.push_back(batch.rewards[j]);
      }
    }
    // Not waited for here: with k > 0 the learner takes this batch only
    // after the next weight broadcast, which this rank must join first.
    pending.push_back(
        roles.world().send_bytes_async(m.to_bytes(), roles.learner_world_rank(l), kGroupsTag));
  }
}

// A rollout rank's whole run: for each step's batch, wait for the version
// that must generate it, then for each round (one without dynamic
// sampling) generate and score this rank's groups, choose the kept ones
// with the other rollout ranks (batch_places), and send each learner its
// share.  Ends after the last step, or when learner 0 says stop (its signal
// number comes back in stopped_by).
TrainResult rollout_loop(Run& run) {
  Roles& roles = *run.roles;
  TrainResult result;
  result.run_dir = run.run_path;
  const int64_t N = run.train.prompts_per_step;
  const auto [lo, hi] = roles.rollout_places(roles.rollout_index(), N);
  long have = run.start_step;
  double fingerprint = run.version_fingerprint.at(have);
  double idle = 0;                                // waiting for the weights of the next batch
  std::deque<std::unique_ptr<CommWork>> pending;  // batches sent, not yet taken
  for (long b = run.start_step; b < run.train.steps; ++b) {
    set_collective_context("rollout of step " + std::to_string(b + 1));
    const long need = generating_version(run, b);
    if (need > have) {
      const auto t = Clock::now();
      at::Tensor word = at::zeros({1}, at::kLong);
      roles.weights_comm().broadcast(word, 0);
      const int64_t v = word.item<int64_t>();
      if (v < 0) {  // the learners stopped: -v is the signal
        result.stopped_by = static_cast<int>(-v);
        break;
      }
      ZR_CHECK(v == need, "rollout rank ", roles.world().rank(), ": learner 0 sent weight version ",
               v, " where step ", b + 1, "'s batch needs version ", need);
      run.weights_out->run(roles.weights_comm());
      have = v;
      fingerprint = run.weights_out->fingerprint();
      idle += seconds_since(t);
    }
    long kept = 0;  // the step's groups kept so far, over all rollout ranks
    for (long round = 0; round < max_sampling_rounds(run) && kept < N; ++round) {
      StepLog log;
      StepBatch batch;
      const auto t_gen = Clock::now();
      rollout_phase(run, lo, b, round, run.source->next_batch(), batch, log);
      const double gen = seconds_since(t_gen);
      // No partial rollouts (trainer/disaggregated.h): every token of the
      // batch comes from version `have`.  The weights are fingerprinted again
      // after generation, so an update that landed while the batch was being
      // generated (a mix of versions in one completion) is an error, not a
      // group silently labelled with the version it started under.
      const double after = run.weights_out->fingerprint();
      ZR_CHECK(after == fingerprint, "rollout rank ", roles.world().rank(),
               ": the weights changed "
               "while step ",
               b + 1, "'s batch was generated from version ", have, " (fingerprint ",
               std::to_string(fingerprint), " before, ", std::to_string(after), " after): its ",
               "completions would mix weight versions; a rollout rank takes a new version only ",
               "between batches (partial rollouts: trainer/disaggregated.h)");
      const auto t_rew = Clock::now();
      reward_phase(run, batch, log);
      const double rew = seconds_since(t_rew);
      const std::vector<int64_t> at = batch_places(
          run, roles.role_comm(), batch,
          groups_with_signal(batch.rewards, batch.group_size(), run.adv.zero_spread_tol), kept);
      GroupsMessage head;
      head.step = b;
      head.round = round;
      head.last_round = kept >= N || round + 1 >= max_sampling_rounds(run);
      head.kept = kept;
      head.version = have;
      head.fingerprint = after;
      head.rollout.group_size = run.train.group_size;
      head.rollout.stats = batch.rollout.stats;
      head.generate_seconds = gen;
      head.reward_seconds = rew;
      head.wait_seconds = idle;
      idle = 0;
      send_round(run, batch, at, head, pending);
      while (!pending.empty() && pending.front()->test()) {
        pending.front()->wait();
        pending.pop_front();
      }
    }
    result.steps_done = b + 1;
  }
  for (auto& w : pending) w->wait();  // the learners take the last batches
  result.wall_seconds = run.wall_seconds();
  return result;
}

// This learner's messages of round `round` of step `step`, one per rollout
// rank, in rank (= stream) order; they agree on whether the round is the
// step's last and on the groups kept.
std::vector<GroupsMessage> receive_round(Run& run, long step, long round) {
  Roles& roles = *run.roles;
  const int64_t N = run.train.prompts_per_step;
  const int l = roles.role_comm().rank();
  const auto [a, z] = roles.learner_places(l, N);
  std::vector<GroupsMessage> out;
  for (int r = 0; r < roles.rollout_ranks(); ++r) {
    const auto [lo, hi] = roles.rollout_places(r, N);
    out.push_back(GroupsMessage::from_bytes(
        roles.world().recv_bytes(roles.rollout_world_rank(r), kGroupsTag)));
    const GroupsMessage& m = out.back();
    ZR_CHECK(m.step == step && m.round == round && m.last_round == out.front().last_round &&
                 m.kept == out.front().kept,
             "learner ", l, ": rollout rank ", roles.rollout_world_rank(r), " sent step ",
             m.step + 1, " round ", m.round, " (last: ", m.last_round, ", kept ", m.kept,
             ") where step ", step + 1, " round ", round, " was due (rollout rank ",
             roles.rollout_world_rank(0), ": last ", out.front().last_round, ", kept ",
             out.front().kept, ")");
    for (size_t g = 0; g < m.places.size(); ++g) {
      const int64_t p = m.places[g], q = m.batch_places[g];
      ZR_CHECK(p >= lo && p < hi && (g == 0 || p > m.places[g - 1]) &&
                   ((p >= a && p < z) || (q >= a && q < z)),
               "learner ", l, ": rollout rank ", roles.rollout_world_rank(r), " sent step ",
               step + 1, " round ", round, "'s group at place ", p, " (batch place ", q,
               "), which is neither among this learner's places [", a, ", ", z,
               ") nor trained here, or out of order");
    }
  }
  return out;
}

// Receives and discards every round of step `step` (a stop: the batches the
// rollout ranks generated but the learners will not train on).
void discard_step(Run& run, long step) {
  for (long round = 0;; ++round)
    if (receive_round(run, step, round).front().last_round) return;
}

// A message's groups as a batch (group_pos: their places in the round),
// each checked against the round's prompts (`prompts`, this learner's draw
// of the stream).
StepBatch groups_of(Run& run, long step, GroupsMessage& msg,
                    const std::vector<data::Example>& prompts) {
  const long G = run.train.group_size;
  const int64_t N = run.train.prompts_per_step;
  StepBatch part;
  part.rollout.group_size = G;
  part.rollout.samples = std::move(msg.rollout.samples);
  if (msg.carries_stats) part.rollout.stats = msg.rollout.stats;
  part.scores = std::move(msg.scores);
  part.rewards = std::move(msg.rewards);
  for (size_t g = 0; g < msg.places.size(); ++g) {
    const int64_t place = msg.places[g], id = msg.round * N + place;
    const data::Example& ex = prompts.at(place);
    std::string text = run.tmpl.render(ex.prompt);
    // The rollout rank drew the same stream: the same prompt, as tokens.
    const auto in = rollout::make_prompt_input(id, text, *run.policy.tokenizer, run.prepend_bos);
    const rollout::RolloutSample& s0 = part.rollout.samples[g * G];
    ZR_CHECK(s0.prompt_id == id && s0.prompt_tokens == in.tokens, "step ", step + 1, " round ",
             msg.round, ": the group at place ", place, " was generated from another prompt (id ",
             s0.prompt_id, "): rollout and learner disagree on the prompt stream");
    part.examples.push_back(ex);
    part.prompts_rendered.push_back(std::move(text));
    part.group_pos.push_back(place);
  }
  return part;
}

// The groups `which` of a batch, copied (without its rollout statistics).
StepBatch select_groups(const StepBatch& b, const std::vector<size_t>& which) {
  const long G = b.group_size();
  StepBatch out;
  out.rollout.group_size = G;
  for (size_t g : which) {
    out.prompts_rendered.push_back(b.prompts_rendered[g]);
    out.examples.push_back(b.examples[g]);
    out.group_pos.push_back(b.group_pos[g]);
    for (size_t j = g * G; j < (g + 1) * G; ++j) {
      out.rollout.samples.push_back(b.rollout.samples[j]);
      out.scores.push_back(b.scores[j]);
      out.rewards.push_back(b.rewards[j]);
    }
  }
  return out;
}

// sample, disaggregated: the learner's groups of this step from the rollout
// ranks, round by round (one without dynamic sampling), each round's in
// stream order.  The version each was generated by is checked against the
// fingerprint of the weights this learner sent as that version, and groups
// older than rollout.max_staleness versions are dropped (counted).  Metrics
// of what was drawn are those sample_phase records: this learner counts the
// round's places [l N/L, (l+1) N/L), kept or not; it trains on the batch
// places [l N/L, (l+1) N/L), which must arrive in order.
StepBatch receive_phase(Run& run, Comm& comm, long step, StepLog& log) {
  Roles& roles = *run.roles;
  MetricReducer& m = log.metrics;
  const long G = run.train.group_size;
  const long k = run.async.max_staleness;
  const bool dynamic = run.adv.dynamic_sampling;
  const auto [a, z] = roles.learner_places(comm.rank(), run.train.prompts_per_step);
  StepBatch kept;
  kept.rollout.group_size = G;
  const size_t R = static_cast<size_t>(roles.rollout_ranks());
  // Per rollout rank, summed over the rounds (the slowest rank is logged).
  std::vector<double> gen(R), rew(R), rollout_idle(R);
  double lag_sum = 0, trained = 0, dropped = 0, lag_max = 0, drawn = 0, with_signal = 0;
  int64_t next = a;  // the next batch place this learner trains
  int64_t kept_all = 0;
  long round = 0;
  for (bool last = false; !last; ++round) {
    const auto t_wait = Clock::now();
    std::vector<GroupsMessage> msgs = receive_round(run, step, round);
    log.add_seconds("learner_idle", seconds_since(t_wait));
    last = msgs.front().last_round;
    kept_all = msgs.front().kept;
    const std::vector<data::Example> prompts = run.source->next_batch();  // the round's N
    int64_t counted = 0;
    for (size_t r = 0; r < R; ++r) {
      GroupsMessage& msg = msgs[r];
      const auto fp = run.version_fingerprint.find(msg.version);
      ZR_CHECK(fp != run.version_fingerprint.end() && fp->second == msg.fingerprint, "step ",
               step + 1, ": groups from rollout rank ", roles.rollout_world_rank(r),
               " claim weight version ", msg.version,
               " but were generated by other weights (fingerprint ",
               std::to_string(msg.fingerprint),
               fp == run.version_fingerprint.end() ? std::string(", a version not sent")
                                                   : ", sent " + std::to_string(fp->second),
               "): the version accounting is broken");
      const long lag = step - msg.version;
      ZR_CHECK(lag >= 0, "step ", step + 1, ": groups of weight version ", msg.version,
               " come from the future");
      StepBatch part = groups_of(run, step, msg, prompts);
      const std::vector<bool> signal = groups_with_signal(part.rewards, G, run.adv.zero_spread_tol);
      std::vector<size_t> mine;  // this learner's places of the round: counted as drawn
      for (size_t g = 0; g < part.num_groups(); ++g)
        if (part.group_pos[g] >= a && part.group_pos[g] < z) mine.push_back(g);
      if (!mine.empty() || msg.carries_stats) {
        StepBatch seen = select_groups(part, mine);
        seen.rollout.stats = part.rollout.stats;
        std::vector<bool> seen_signal;
        for (size_t g : mine) seen_signal.push_back(signal[g]);
        add_batch_metrics(run, seen, seen_signal, m);
        for (bool s : seen_signal) with_signal += s;
      }
      counted += static_cast<int64_t>(mine.size());
      gen[r] += msg.generate_seconds;
      rew[r] += msg.reward_seconds;
      rollout_idle[r] += msg.wait_seconds;
      for (size_t g = 0; g < part.num_groups(); ++g) {
        const int64_t q = msg.batch_places[g];
        if (q < a || q >= z) continue;
        ZR_CHECK(q == next && (!dynamic || signal[g]), "step ", step + 1, " round ", round,
                 ": learner ", comm.rank(), " got the group at place ", part.group_pos[g],
                 " to train at batch place ", q, " where ", next, " was due",
                 dynamic && !signal[g] ? ", and its rewards do not differ" : "",
                 " (dynamic sampling's choice is broken)");
        ++next;
        if (lag > k) {
          ++dropped;
          continue;
        }
        lag_sum += static_cast<double>(lag);
        lag_max = std::max(lag_max, static_cast<double>(lag));
        ++trained;
        append_group(kept, part, g, q);
      }
    }
    ZR_CHECK(counted == z - a, "step ", step + 1, " round ", round, ": learner ", comm.rank(),
             " got ", counted, " of its ", z - a, " places [", a, ", ", z,
             ") from the rollout ranks");
    drawn += static_cast<double>(counted);
  }
  ZR_CHECK(next == std::max(a, std::min(z, kept_all)), "step ", step + 1, ": learner ", comm.rank(),
           " trained batch places [", a, ", ", next, ") of ", kept_all, " kept; its share is [", a,
           ", ", std::min(z, kept_all), ")");
  run.stale_dropped += static_cast<long>(dropped);
  log.add_seconds("rollout", *std::max_element(gen.begin(), gen.end()));
  log.add_seconds("reward", *std::max_element(rew.begin(), rew.end()));
  log.add_seconds("rollout_idle", *std::max_element(rollout_idle.begin(), rollout_idle.end()));
  m.add_mean("async/version_lag", lag_sum, trained);
  m.add_max("async/version_lag_max", lag_max);
  m.add_sum("async/stale_groups_dropped", dropped);
  m.add_sum("async/stale_groups_dropped_total", static_cast<double>(run.stale_dropped));
  kept.global_groups = std::lround(comm.allreduce_scalar(static_cast<double>(kept.num_groups())));
  if (dropped > 0)
    ZR_LOG_WARN("step ", step + 1, ": ", dropped, " group(s) more than rollout.max_staleness = ", k,
                " versions old dropped (async/stale_groups_dropped)");
  if (dynamic) add_dynamic_metrics(run, comm, step, round, drawn, with_signal, kept, m);
  return kept;
}

// The newest weight version any batch of the run is generated by.
long last_version_needed(const Run& run) { return generating_version(run, run.train.steps - 1); }

// After update `step`: version step + 1 goes to the rollout ranks if a
// later batch is generated by it.  Every learner notes its fingerprint (its
// weights equal learner 0's).
void push_weights(Run& run, long step, StepLog& log) {
  const long v = step + 1;
  if (v > last_version_needed(run)) return;
  // Kept for the whole run (a double per version), so that a group older
  // than the window is recognised as stale, not as unknown.
  run.version_fingerprint[v] = run.weights_out->fingerprint();
  if (!run.roles->weights_root()) return;
  Comm& wc = run.roles->weights_comm();
  at::Tensor word = at::full({1}, static_cast<int64_t>(v), at::kLong);
  const auto t = Clock::now();
  wc.broadcast(word, 0);
  run.weights_out->run(wc);
  log.add_seconds("weight_sync", seconds_since(t));
}

// The learners stop after `step` (a signal): the batches the rollout ranks
// still generate with the versions they hold are received and discarded,
// then, if they would wait for another version, learner 0 tells them to
// stop (the signal's number, negated).  A resume regenerates those batches.
void stop_rollout_ranks(Run& run, long step, int signal) {
  const long last_step = run.train.steps - 1;
  // The newest version sent (push_weights), and the batches it generates.
  const long sent = std::max(run.start_step, std::min(step + 1, last_version_needed(run)));
  long last_batch = step;
  while (last_batch < last_step && generating_version(run, last_batch + 1) <= sent) ++last_batch;
  for (long b = step + 1; b <= last_batch; ++b) discard_step(run, b);
  if (last_batch < last_step && run.roles->weights_root()) {
    at::Tensor word = at::full({1}, -static_cast<int64_t>(signal), at::kLong);
    run.roles->weights_comm().broadcast(word, 0);
  }
}

}  // namespace

// ---- the loop --------------------------------------------------------------------------

TrainResult run_train(Recipe& recipe, Comm& world, const std::string& resume, bool overwrite) {
  Run run;
  setup(run, recipe, world, resume, overwrite);
  if (run.roles) {
    start_rollout_ranks(run);
    if (!run.learner()) return rollout_loop(run);
  }
  // The learners' communicator: gradient sync, metrics, checkpoints.
  Comm& comm = run.role_comm(world);
  TrainResult result;
  result.run_dir = run.run_path;
  const bool eval_on = run.eval.every > 0 && !run.test_set.empty();
  if (eval_on && run.start_step == 0) result.first_eval = evaluate_phase(run, comm, 0);
  std::map<std::string, double> latest_eval;
  if (run.start_step > 0 && run.dir) {
    // A resumed run's step-0 (and latest) evaluation is in eval.jsonl.
    for (const auto& row : read_metrics_jsonl(run.dir->file("eval.jsonl"))) {
      if (row.step == 0) result.first_eval = row.values;
      if (row.step <= run.start_step) latest_eval = row.values;
    }
  }
  if (run.start_step >= run.train.steps) {
    // Nothing left to do: the outputs stay as they are.
    result.last_eval = latest_eval;
    ZR_LOG_INFO("nothing to do: resumed at step ", run.start_step, " of train.steps ",
                run.train.steps);
    result.steps_done = run.start_step;
    result.wall_seconds = run.wall_before;
    return result;
  }

  Progress progress("train", run.train.steps);
  for (long step = run.start_step; step < run.train.steps; ++step) {
    set_collective_context("step " + std::to_string(step + 1));
    StepLog log;
    const auto t_step = Clock::now();
    const double exchange0 = model::ep_exchange_seconds();
    // rollout + reward (+ dynamic rounds), or the rollout ranks' groups
    StepBatch b =
        run.roles ? receive_phase(run, comm, step, log) : sample_phase(run, comm, step, log);
    if (!run.roles && comm.size() > 1) {
      // Colocated: what the long tail costs across ranks, the mean rank's
      // wait for the slowest one's rollout + reward (they meet at the
      // first collective of the learner).  Timing only, not a result.
      const double mine = log.seconds("rollout") + log.seconds("reward");
      const double slowest = comm.allreduce_scalar(mine, ReduceOp::kMax);
      const double mean = comm.allreduce_scalar(mine) / comm.size();
      log.add_seconds("rollout_straggler_idle", slowest - mean);
    }
    reference_phase(run, step, b, log);
    shape_rewards(run, b, log.metrics);
    b.adv = compute_advantages(b.rewards, b.group_size(), run.adv);
    update_phase(run, comm, b, log);
    if (run.grid) log.add_seconds("ep_exchange", model::ep_exchange_seconds() - exchange0);
    if (run.roles) push_weights(run, step, log);  // the rollout ranks go on at once
    log.add_seconds("step", seconds_since(t_step));
    auto metrics = log.write(run, comm, step, b);
    curriculum_phase(run, comm, step, b);
    result.last_metrics = metrics;
    check_reward_failures(run, metrics, step);
    warn_if_format_never_met(run, metrics, step);
    progress.update(step + 1 - run.start_step,
                    {{"reward", metrics["reward/mean"]}, {"len", metrics["response/length_mean"]}});
    if (eval_on && (step + 1) % run.eval.every == 0)
      result.last_eval = evaluate_phase(run, comm, step + 1);
    // stop: every rank learns whether any rank was signalled (one all-reduce)
    const int stop =
        static_cast<int>(comm.allreduce_scalar(static_cast<double>(stop_signal()), ReduceOp::kMax));
    if (run.roles && stop != 0 && step + 1 < run.train.steps) stop_rollout_ranks(run, step, stop);
    if ((run.ckpt_every > 0 && (step + 1) % run.ckpt_every == 0) || step + 1 == run.train.steps ||
        stop != 0)
      checkpoint_phase(run, comm, step + 1);
    result.steps_done = step + 1;
    if (stop != 0 && step + 1 < run.train.steps) {
      result.stopped_by = stop;
      break;
    }
  }
  progress.finish();
  if (result.stopped_by != 0) {
    result.wall_seconds = run.wall_seconds();
    return result;
  }
  if (eval_on && result.last_eval.empty() && run.train.steps > run.start_step)
    result.last_eval = evaluate_phase(run, comm, run.train.steps);
  result.wall_seconds = run.wall_seconds();
  if (run.dir) {
    plot_run(run.dir->path());
    nlohmann::json summary;
    auto pick = [](const std::map<std::string, double>& e) {
      nlohmann::json j = nlohmann::json::object();
      for (auto& [k, v] : e) j[k] = v;
      return j;
    };
    summary["base"] = pick(result.first_eval);
    summary["final"] = pick(result.last_eval);
    summary["steps"] = result.steps_done;
    summary["wall_seconds"] = result.wall_seconds;
    run.dir->write_summary(summary);
  }
  return result;
}

}  // namespace zerorl
