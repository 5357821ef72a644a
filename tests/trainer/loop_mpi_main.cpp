// The real GRPO loop under mpirun (tests/trainer/CMakeLists.txt), in three
// scenarios, each a ctest:
//
//   --scenario=dense --runs=DIR    -np 1: the reference run DIR/runs/dense_np1;
//                                  -np 2 or 4: the same recipe on N ranks
//                                  (dense_npN), checked against np1
//   --scenario=resume --runs=DIR   -np N after dense: copies dense_npN, drops
//                                  its last checkpoint, `--resume auto` from
//                                  the middle one (step 4) in a new process,
//                                  and requires the same bits as dense_npN
//   --scenario=dapo --runs=DIR     -np 1 then -np 2: DAPO dynamic sampling
//   --scenario=zero --runs=DIR --name=N [--zero=Z] [--dtype=fp32|bf16]
//                   [--steps=S] [--resume=PATH] [--compare=RUN --tol=T]
//                   [--set=KEY=VALUE ...] [--ep=E] [--slots=N]
//                                  ZeRO stages and resharding resume (and,
//                                  with --set, overlap on vs off: --tol=0
//                                  then also requires the same weights hash;
//                                  with --ep, expert parallelism)
//   --scenario=async --runs=DIR --name=N [--rollout-ranks=R] [--k=K]
//                    [--compare=RUN --tol=T] [--differ=RUN] [--resume-from=S]
//                    [--set=KEY=VALUE ...]
//                                  disaggregated rollout (trainer/disaggregated.h):
//                                  R = 0 is the colocated reference
//
// dense: every rank holds completions in every minibatch, so the gradient
// all-reduce carries real gradients from each rank at every optimizer step.
// 8 prompts per step, G = 4, 2 minibatches, 8 steps, checkpoints at 4 and 8,
// gradient buckets of 4 KiB (the tiny policy spans many of them), rewards
// with a length spread (the soft overlong penalty) so that most groups have
// non-zero advantages.  A group's minibatch is its place in the global batch
// mod 2 and rank r holds places [r*P, (r+1)*P) with P = 8/N >= 2, so each
// rank holds groups of both minibatches (checked below from the same rule).
// What the N-rank run must show, step by step against np1: the same rewards
// (the data and sampling streams do not depend on the world size), the same
// pre-clip gradient norm (a sync that averages instead of sums halves it;
// Adam alone would hide that, being nearly scale-invariant), the same loss;
// then the same final weights within a stated tolerance and every rank the
// same weights bit for bit (a skipped bucket leaves the ranks apart).
//
// dapo: 2 prompts per step (one per rank per round), G = 4, two minibatches
// of one group each, a cap of 2 rounds, 4 steps.  As seeded it takes every
// path: refills, a step where one rank keeps both groups and the other none,
// a short step whose second minibatch is empty on every rank, and a step
// that keeps nothing (the checks below say if a change of the rollout stops
// it doing so).  The two-rank run must finish (ranks that keep different
// numbers of groups, or none, still take the same rounds: a hang fails the
// ctest's timeout), keep the same groups as np1 and end with np1's weights.
//
// zero: trains run N with train.zero = Z on however many ranks mpirun gave
// it, optionally resuming from checkpoint PATH (any world size), and then
// checks: every rank holds the same weights bit for bit (each rank file
// records the hash of the weights that rank holds); with --compare, the
// final weights are within T (max abs) of run RUN's checkpoint at the same
// step, and clipping was active in some step (so the sharded global norm
// mattered).  8 prompts per step, G = 4, two minibatches (the dense rule
// above: at W = 1, 2 and 4 every rank has completions in every minibatch,
// so its all-reduce / reduce-scatter sums real gradients from every rank),
// lr 1e-4, max_grad_norm 0.05 (clipping on), a checkpoint every step.
//
// zero with --ep=E (parallel.expert = E, issue 14): the same run with the
// tiny policy's 4 routed experts spread over EP groups of E ranks (the
// world DP x EP).  Whole GRPO steps -- rollout in lockstep, rewards, the
// update with expert gradients summed over the DP group only, the balancing
// bias from the global load -- must reach the one-rank run's weights (put
// together from the checkpoint's row shards) within --tol.  It also checks
// that the plan ran: each rank held only its experts' parameters (the
// rank_param_numel of its files against np1's), and the rollout's lockstep
// joined peers with zero tokens at some step (rollout/idle_forwards > 0),
// so a rank with no work left kept the exchanges going; and that the
// checkpoint was written by the owners: rank 0 the replicated weights, each
// expert shard's first replica (ranks 0 .. E-1) its own experts as row
// shards, nothing gathered.  With --resume from a checkpoint written at
// another EP size, DP size or stage (or without EP), the run reshards it
// (tests/trainer/CMakeLists.txt, trainer.mpi.ep_resume_*); --slots keeps
// the source run's rollout.num_slots, which a resume may not change.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/collective_timeout.h"
#include "core/comm.h"
#include "core/config.h"
#include "core/error.h"
#include "tests/mpi_check.h"
#include "tiny_run.h"
#include "trainer/checkpoint.h"
#include "trainer/grpo_trainer.h"
#include "trainer/run_dir.h"

namespace zerorl {
namespace {

namespace fs = std::filesystem;
using test::g_failures;
using test::g_rank;

constexpr long kDapoSteps = 4;
constexpr long kDenseSteps = 8, kDenseResumeFrom = 4, kDensePrompts = 8, kDenseMinibatches = 2;

// Writes the tiny policy once (rank 0) and returns the recipe for run `name`.
Recipe make_recipe(Comm& comm, const std::string& dir, const std::string& name,
                   const std::vector<std::string>& overrides) {
  const std::string runs = dir + "/runs", policy = dir + "/policy.h5";
  if (comm.rank() == 0 && !fs::exists(policy)) {
    fs::create_directories(dir);
    test::write_tiny_policy(policy + ".w");
    fs::rename(policy + ".w", policy);  // parallel ctests never see half a file
  }
  comm.barrier();
  Recipe r = Recipe::from_string(test::tiny_recipe(name, runs, policy), "loop_mpi.yaml");
  r.apply_overrides(overrides);
  return r;
}

TrainResult train_fresh(Comm& comm, const std::string& dir, const std::string& name,
                        const std::vector<std::string>& overrides) {
  if (comm.rank() == 0) remove_tree(dir + "/runs/" + name);
  comm.barrier();
  Recipe r = make_recipe(comm, dir, name, overrides);
  return run_train(r, comm);
}

std::vector<std::string> dapo_recipe() {
  std::vector<std::string> o = test::dapo_overrides(2);
  for (std::string x :
       {"train.steps=4", "train.prompts_per_step=2", "train.minibatches=2", "checkpoint.every=0"})
    o.push_back(x);
  return o;
}

// The dense recipe (see the top of the file): the DAPO length-spread rewards
// without dynamic sampling.
std::vector<std::string> dense_recipe() {
  return {"loss.overlong=soft",
          "loss.max_completion_length=12",
          "loss.overlong_buffer=8",
          "eval.every=0",
          "train.steps=" + std::to_string(kDenseSteps),
          "train.prompts_per_step=" + std::to_string(kDensePrompts),
          "train.minibatches=" + std::to_string(kDenseMinibatches),
          "train.sample_every=0",
          "checkpoint.every=" + std::to_string(kDenseResumeFrom),
          "checkpoint.keep_last=10",
          "optimizer.bucket_mb=0.00390625"};
}

std::string step_dir(const std::string& run, long step) {
  return checkpoint_step_dir(run + "/checkpoints", step);
}

std::string ckpt(const std::string& run, long step, int rank) {
  return checkpoint_rank_file(step_dir(run, step), rank);
}

// The whole weights of a checkpoint step (expert row shards put together).
std::map<std::string, at::Tensor> weights_of(const std::string& run, long step) {
  NamedTensors w = load_checkpoint_group(step_dir(run, step), "model");
  return {w.begin(), w.end()};
}

// Largest |w_a - w_b| over all weights of two runs' checkpoints at `step`.
double max_weight_diff(const std::string& run_a, const std::string& run_b, long step) {
  auto w1 = weights_of(run_a, step), w2 = weights_of(run_b, step);
  CHECK_OR_FAIL(w1.size() == w2.size(), "weight counts differ: ", w1.size(), " vs ", w2.size());
  double max_diff = 0;
  for (auto& [n, t] : w1)
    max_diff = std::max(max_diff,
                        (t.to(at::kDouble) - w2.at(n).to(at::kDouble)).abs().max().item<double>());
  return max_diff;
}

// Every rank held the same weights bit for bit; under expert parallelism
// (parallel.expert = E recorded) every rank the same replicated ones and the
// ranks r, r + E, ... (the replicas of one expert shard) the same experts.
void check_ranks_agree(const std::string& run, long step, int world) {
  const CheckpointInfo i0 = inspect_checkpoint(ckpt(run, step, 0));
  const int ep =
      i0.ints.count("parallel_expert") ? static_cast<int>(i0.ints.at("parallel_expert")) : 1;
  for (int r = 1; r < world; ++r) {
    CHECK_OR_FAIL(checkpoint_weights_hash(ckpt(run, step, r % ep)) ==
                      checkpoint_weights_hash(ckpt(run, step, r)),
                  run, " step ", step, ": rank ", r, " holds different weights from rank ", r % ep);
    if (ep > 1)
      CHECK_OR_FAIL(inspect_checkpoint(ckpt(run, step, r)).strings.at("replicated_weights_hash") ==
                        i0.strings.at("replicated_weights_hash"),
                    run, " step ", step, ": rank ", r,
                    " holds different replicated weights from rank 0");
  }
}

// ---- dapo ---------------------------------------------------------------------------

void compare_dapo_with_np1(const std::string& dir, const TrainResult& np2) {
  const std::string np1 = dir + "/runs/dapo_np1";
  auto a = test::read_jsonl(np1 + "/metrics.jsonl");
  auto b = test::read_jsonl(np2.run_dir + "/metrics.jsonl");
  CHECK_OR_FAIL(a.size() == static_cast<size_t>(kDapoSteps) && b.size() == a.size(),
                "metrics lines: np1 ", a.size(), ", np2 ", b.size(),
                " (run trainer.mpi.dapo_np1 first)");
  bool uneven = false, extra_rounds = false, short_step = false;
  for (size_t s = 0; s < std::min(a.size(), b.size()); ++s) {
    for (auto k : {"dynamic/rounds", "dynamic/groups_drawn", "dynamic/groups_with_signal",
                   "dynamic/groups_kept", "dynamic/short_steps_total"})
      CHECK_OR_FAIL(a[s][k] == b[s][k], "step ", s + 1, " ", k, ": np1 ", a[s][k].dump(), ", np2 ",
                    b[s][k].dump());
    // A mean over ranks sums in another order: 1e-12 is far above that
    // rounding (~1e-16) and far below the smallest real change (one
    // completion one token longer: 1/8 over at most 32 completions).
    const double dr =
        std::abs(a[s]["reward/mean"].get<double>() - b[s]["reward/mean"].get<double>());
    CHECK_OR_FAIL(dr <= 1e-12, "step ", s + 1, " reward/mean differs by ", dr);
    uneven |= b[s]["dynamic/rank_groups_min"] != b[s]["dynamic/rank_groups_max"];
    extra_rounds |= b[s]["dynamic/rounds"].get<double>() > 1;
    short_step |= b[s]["dynamic/groups_kept"].get<double>() == 1;
    std::cout << "step " << s + 1 << ": rounds " << b[s]["dynamic/rounds"] << ", kept "
              << b[s]["dynamic/groups_kept"] << " (per rank " << b[s]["dynamic/rank_groups_min"]
              << ".." << b[s]["dynamic/rank_groups_max"] << ")\n";
  }
  CHECK_OR_FAIL(uneven, "the ranks always kept equal shares: the uneven path was not exercised");
  CHECK_OR_FAIL(extra_rounds, "no step drew a second round: refilling was not exercised");
  CHECK_OR_FAIL(short_step,
                "no step hit the cap with one group: an empty minibatch was not exercised");

  check_ranks_agree(np2.run_dir, kDapoSteps, 2);
  // fp32 gradients summed in another order (one rank's sum vs two partial
  // sums) differ by ~1 ulp; Adam's per-element normalisation turns that into
  // weight differences of up to ~lr * 1e-3 per update.  1e-5 over 8 updates
  // at lr 1e-3 leaves room for that and still catches a batch that differs
  // by one group (which moves weights by ~lr = 1e-3).
  const double d = max_weight_diff(np1, np2.run_dir, kDapoSteps);
  std::cout << "max |w(np=2) - w(np=1)| = " << d << "\n";
  CHECK_OR_FAIL(d <= 1e-5, "weights differ from the one-rank run by ", d);
}

// ---- dense --------------------------------------------------------------------------

void compare_dense_with_np1(const std::string& dir, const TrainResult& res, int world) {
  // Every rank holds groups of every minibatch: the trainer's split rule
  // (minibatch = global place mod M, rank r holding places r*P .. r*P+P-1).
  const long P = kDensePrompts / world;
  for (int r = 0; r < world; ++r)
    for (long mb = 0; mb < kDenseMinibatches; ++mb) {
      long held = 0;
      for (long i = 0; i < P; ++i) held += (r * P + i) % kDenseMinibatches == mb;
      CHECK_OR_FAIL(held > 0, "rank ", r, " holds no group of minibatch ", mb,
                    ": the recipe no longer gives every rank real gradients");
    }

  const std::string np1 = dir + "/runs/dense_np1";
  auto a = test::read_jsonl(np1 + "/metrics.jsonl");
  auto b = test::read_jsonl(res.run_dir + "/metrics.jsonl");
  CHECK_OR_FAIL(a.size() == static_cast<size_t>(kDenseSteps) && b.size() == a.size(),
                "metrics lines: np1 ", a.size(), ", np", world, " ", b.size(),
                " (run trainer.mpi.dense_np1 first)");
  long steps_with_signal = 0;
  for (size_t s = 0; s < std::min(a.size(), b.size()); ++s) {
    const auto rel = [&](const char* k) {
      const double x = a[s][k].get<double>(), y = b[s][k].get<double>();
      return std::abs(x - y) / std::max(1e-30, std::abs(x));
    };
    // Rewards: the same completions, a mean summed in another order (~1e-16).
    CHECK_OR_FAIL(rel("reward/mean") <= 1e-12, "step ", s + 1, " reward/mean: np1 ",
                  a[s]["reward/mean"], ", np", world, " ", b[s]["reward/mean"]);
    // The gradient norm before clipping, averaged over the two optimizer
    // steps: fp32 sums in another order move it by ~1e-7 relative (measured
    // 2e-7 at np 2 and 4, with the weights' drift by the later steps); a sync
    // that averages over the ranks instead of summing halves it (np 2), one
    // that skips the last bucket loses its share (-13% at step 1).
    CHECK_OR_FAIL(rel("optim/grad_norm") <= 1e-5, "step ", s + 1, " optim/grad_norm: np1 ",
                  a[s]["optim/grad_norm"], ", np", world, " ", b[s]["optim/grad_norm"]);
    CHECK_OR_FAIL(
        std::abs(a[s]["loss/loss"].get<double>() - b[s]["loss/loss"].get<double>()) <= 1e-5,
        "step ", s + 1, " loss/loss: np1 ", a[s]["loss/loss"], ", np", world, " ",
        b[s]["loss/loss"]);
    // The colocated ranks' wait for the slowest rollout is logged (the idle
    // time docs/PERFORMANCE.md reads), and the length quantiles over the
    // whole batch do not depend on how it is spread over the ranks.
    CHECK_OR_FAIL(b[s]["time"].contains("rollout_straggler_idle"), "step ", s + 1, ": np", world,
                  " without time/rollout_straggler_idle");
    for (const char* k : {"response/length_p50", "response/length_p90"})
      CHECK_OR_FAIL(a[s][k] == b[s][k], "step ", s + 1, " ", k, ": np1 ", a[s][k], ", np", world,
                    " ", b[s][k]);
    steps_with_signal += a[s]["optim/grad_norm"].get<double>() > 1e-3;
    std::cout << "step " << s + 1 << ": reward " << b[s]["reward/mean"] << ", grad_norm np1 "
              << a[s]["optim/grad_norm"] << " np" << world << " " << b[s]["optim/grad_norm"]
              << "\n";
  }
  CHECK_OR_FAIL(steps_with_signal == kDenseSteps, "only ", steps_with_signal, " of ", kDenseSteps,
                " steps had a gradient: the rewards lost their spread");

  check_ranks_agree(res.run_dir, kDenseSteps, world);
  // As for dapo: up to ~lr * 1e-3 per update from the summation order (16
  // updates; measured 1.6e-7 at np 2 and 4).
  const double d = max_weight_diff(np1, res.run_dir, kDenseSteps);
  std::cout << "max |w(np=" << world << ") - w(np=1)| = " << d << "\n";
  CHECK_OR_FAIL(d <= 1e-5, "weights differ from the one-rank run by ", d);
}

// A copy of dense_npN with its last checkpoint removed, resumed with
// `--resume auto` (the newest checkpoint: step 4) in this new process; it
// must end with dense_npN's bits and write the same metrics for steps 5..8.
void resume_dense(Comm& comm, const std::string& dir) {
  const int world = comm.size();
  const std::string name = "dense_np" + std::to_string(world);
  const std::string full = dir + "/runs/" + name, copy = full + "_resumed";
  if (comm.rank() == 0) {
    ZR_CHECK(fs::exists(ckpt(full, kDenseSteps, 0)), "no ", full,
             " checkpoint: run trainer.mpi.dense_np", world, " first");
    remove_tree(copy);
    fs::copy(full, copy, fs::copy_options::recursive);
    remove_tree(checkpoint_step_dir(copy + "/checkpoints", kDenseSteps));
  }
  comm.barrier();
  Recipe r = make_recipe(comm, dir, name + "_resumed", dense_recipe());
  TrainResult res = run_train(r, comm, "auto");
  CHECK_OR_FAIL(res.steps_done == kDenseSteps, "steps done after resume: ", res.steps_done);
  if (comm.rank() != 0) return;
  for (int rank = 0; rank < world; ++rank)
    CHECK_OR_FAIL(checkpoint_weights_hash(ckpt(full, kDenseSteps, rank)) ==
                      checkpoint_weights_hash(ckpt(copy, kDenseSteps, rank)),
                  "rank ", rank, ": resumed from step ", kDenseResumeFrom,
                  ", the step-8 weights differ from the uninterrupted run's");
  const auto la = test::lines_without_time(full + "/metrics.jsonl");
  const auto lb = test::lines_without_time(copy + "/metrics.jsonl");
  CHECK_OR_FAIL(la == lb, "metrics.jsonl of the resumed run differs (", lb.size(), " lines vs ",
                la.size(), ")");
  std::cout << "resumed at step " << kDenseResumeFrom << " on " << world
            << " ranks: same bits and metrics at step " << kDenseSteps << "\n";
}

// ---- async --------------------------------------------------------------------------

// Disaggregated rollout: the dense recipe for kAsyncSteps steps on however
// many ranks mpirun gave, R of them rollout ranks (R = 0: colocated), with
// rollout.max_staleness K.  Checks, from learner 0's metrics.jsonl:
//   * every step's version lag is exactly min(step - 1, K) (the fixed
//     schedule: mean and max), and no group was dropped for staleness;
//   * with --compare, the final weights are within T of RUN's (k = 0
//     against the colocated run: the same groups, trained alike);
//   * with loss.behaviour_is = truncate and a cap of 1.001 (set by the
//     ctest), the behaviour ratio shows the lag: at step 1 (lag 0, only the
//     numerics between rollout and learner, ~1e-5) no token is truncated; at
//     every lagged step some are, and the ratio's max exceeds the cap
//     (k = 0: no step is lagged, none is truncated);
//   * with train.routing_replay = true (the MoE tiny policy's routing records
//     streamed with the groups): at k = 0 the --compare above against the
//     colocated run with replay; at k > 0 every lagged step's learner router
//     disagrees with the streamed records (rollout/expert_mismatch > 0, so
//     replay has something to change), and with --differ the final weights
//     move by more than 1e-5 from RUN, the same run without replay: the
//     learner's forwards took the streamed experts, not its own;
//   * with advantage.dynamic_sampling = true, the filter's counts
//     (check_dynamic_rows), at k = 0 equal to the colocated run's.
constexpr long kAsyncSteps = 5;

struct AsyncArgs {
  std::string name, compare, differ;
  int rollout_ranks = 0;
  long k = 0;
  long resume_from = 0;  // > 0: then resume a copy from this step (resume_async)
  double tol = 1e-6;
  std::vector<std::string> sets;
};

// Every step's version lag is exactly min(step - start, K) (the fixed
// schedule: mean and max; start = the step the run began or resumed at), and
// no group was dropped for staleness.
void check_async_rows(const std::vector<nlohmann::json>& rows, const AsyncArgs& a, long start) {
  if (a.rollout_ranks == 0) return;
  for (size_t s = start; s < rows.size(); ++s) {
    const auto& r = rows[s];
    const double want = static_cast<double>(std::min<long>(static_cast<long>(s) - start, a.k));
    const auto num = [&](const char* k) { return r[k].is_number() ? r[k].get<double>() : -1.0; };
    CHECK_OR_FAIL(num("async/version_lag_max") == want && num("async/version_lag") == want, "step ",
                  s + 1, ": version lag mean ", r["async/version_lag"], ", max ",
                  r["async/version_lag_max"], "; the schedule gives ", want);
    CHECK_OR_FAIL(num("async/stale_groups_dropped") == 0, "step ", s + 1, ": ",
                  r["async/stale_groups_dropped"], " groups dropped for staleness");
  }
}

// The timings each role's idle time is read from (docs/PERFORMANCE.md) are
// in every step's row: a disaggregated learner's wait for its groups
// (time/learner_idle), the rollout ranks' wait for weights
// (time/rollout_idle), and the weight broadcast (time/weight_sync) exactly on
// the steps after which a version is sent (version s + 1 when a later batch
// needs it: s + 1 <= steps - 1 - k); colocated on several ranks, the mean
// rank's wait for the slowest rollout (time/rollout_straggler_idle).  And the
// batch's length quantiles: p50 <= p90 <= max.
void check_async_timings(const std::vector<nlohmann::json>& rows, const AsyncArgs& a, int world) {
  for (size_t s = 0; s < rows.size(); ++s) {
    const auto& t = rows[s]["time"];
    const auto has = [&](const char* k) { return t.contains(k) && t[k].is_number(); };
    const auto num = [&](const char* k) { return has(k) ? t[k].get<double>() : -1.0; };
    if (a.rollout_ranks > 0) {
      CHECK_OR_FAIL(num("learner_idle") >= 0 && num("rollout_idle") >= 0, "step ", s + 1,
                    ": time/learner_idle ", num("learner_idle"), ", time/rollout_idle ",
                    num("rollout_idle"), " (not logged)");
      const bool sent = static_cast<long>(s) + 1 <= kAsyncSteps - 1 - a.k;
      CHECK_OR_FAIL(has("weight_sync") == sent && (!sent || num("weight_sync") > 0), "step ", s + 1,
                    ": time/weight_sync ", has("weight_sync") ? "logged" : "absent",
                    " where version ", s + 2, (sent ? " is" : " is not"), " sent (k = ", a.k, ")");
    } else if (world > 1) {
      CHECK_OR_FAIL(num("rollout_straggler_idle") >= 0, "step ", s + 1, ": colocated on ", world,
                    " ranks without time/rollout_straggler_idle");
    }
    const auto& r = rows[s];
    const double p50 = r["response/length_p50"].get<double>();
    const double p90 = r["response/length_p90"].get<double>();
    CHECK_OR_FAIL(p50 <= p90 && p90 <= r["response/length_max"].get<double>(), "step ", s + 1,
                  ": length p50 ", p50, ", p90 ", p90, ", max ", r["response/length_max"]);
  }
}

// The length quantiles are nearest-rank over the whole batch: against the
// completions of a run that logged all of them (samples.jsonl, one rank),
// and, with --compare at k = 0 (the same completions, spread over other
// ranks), equal to the reference's.
void check_length_quantiles(const std::string& run_dir, const std::vector<nlohmann::json>& rows,
                            const AsyncArgs& a, const std::string& dir) {
  const auto samples = test::read_jsonl(run_dir + "/samples.jsonl");
  if (!samples.empty()) {
    std::map<long, std::vector<double>> by_step;
    for (const auto& x : samples) by_step[x["step"].get<long>()].push_back(x["tokens"]);
    CHECK_OR_FAIL(by_step.size() == rows.size(), by_step.size(), " steps in samples.jsonl");
    for (auto& [step, v] : by_step) {
      std::sort(v.begin(), v.end());
      const auto at = [&](double q) {
        return v[static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1];
      };
      const auto& r = rows.at(step - 1);
      std::cout << "step " << step << ": " << v.size() << " completions, length p50 " << at(0.5)
                << ", p90 " << at(0.9) << ", max " << v.back() << "\n";
      CHECK_OR_FAIL(r["response/length_p50"] == at(0.5) && r["response/length_p90"] == at(0.9),
                    "step ", step, ": logged length p50 ", r["response/length_p50"], ", p90 ",
                    r["response/length_p90"], "; the completions give ", at(0.5), ", ", at(0.9));
    }
  }
  if (a.compare.empty() || a.k != 0) return;
  const auto ref = test::read_jsonl(dir + "/runs/" + a.compare + "/metrics.jsonl");
  for (size_t s = 0; s < rows.size() && s < ref.size(); ++s)
    for (const char* k : {"response/length_p50", "response/length_p90"})
      CHECK_OR_FAIL(rows[s][k] == ref[s][k], "step ", s + 1, " ", k, ": ", rows[s][k], " vs ",
                    a.compare, "'s ", ref[s][k], " (the same completions)");
}

bool has_set(const AsyncArgs& a, const std::string& kv) {
  return std::find(a.sets.begin(), a.sets.end(), kv) != a.sets.end();
}

// With dynamic sampling (--set=advantage.dynamic_sampling=true): every step
// logs the filter's counts and they hold together -- each round's N prompts
// counted as drawn exactly once over the learners (groups_drawn = rounds N),
// the trained batch the first N groups with a reward spread (groups_kept =
// min(N, groups_with_signal)), short steps counted -- and over the run some
// step drew a second round and some group was filtered out (the recipe
// exercises the filter).  With --compare at k = 0 every count equals the
// colocated run's, step by step, and so does reward/mean (within 1e-12: the
// same completions, summed in another order).
void check_dynamic_rows(const std::vector<nlohmann::json>& rows, const AsyncArgs& a,
                        const std::string& dir) {
  if (!has_set(a, "advantage.dynamic_sampling=true")) return;
  const char* counts[] = {"dynamic/rounds", "dynamic/groups_drawn", "dynamic/groups_with_signal",
                          "dynamic/groups_kept", "dynamic/short_steps_total"};
  std::vector<nlohmann::json> ref;
  if (!a.compare.empty() && a.k == 0)
    ref = test::read_jsonl(dir + "/runs/" + a.compare + "/metrics.jsonl");
  bool refilled = false, filtered = false;
  double shorts = 0;
  for (size_t s = 0; s < rows.size(); ++s) {
    const auto& r = rows[s];
    for (const char* k : counts)
      CHECK_OR_FAIL(r.contains(k) && r[k].is_number(), "step ", s + 1, ": no ", k, " logged");
    if (g_failures > 0) return;
    const double rounds = r["dynamic/rounds"], drawn = r["dynamic/groups_drawn"];
    const double signal = r["dynamic/groups_with_signal"], kept = r["dynamic/groups_kept"];
    const double N = kDensePrompts;
    shorts += kept < N;
    std::cout << "step " << s + 1 << ": rounds " << rounds << ", drawn " << drawn
              << ", with a reward spread " << signal << ", kept " << kept << " (per learner "
              << r["dynamic/rank_groups_min"] << ".." << r["dynamic/rank_groups_max"] << ")\n";
    CHECK_OR_FAIL(drawn == rounds * N && kept == std::min(N, signal) &&
                      r["dynamic/short_steps_total"].get<double>() == shorts,
                  "step ", s + 1, ": rounds ", rounds, ", drawn ", drawn, ", with signal ", signal,
                  ", kept ", kept, ", short steps ", r["dynamic/short_steps_total"],
                  " do not hold together (N = ", N, ")");
    refilled |= rounds > 1;
    filtered |= signal < drawn;
    if (s < ref.size()) {
      for (const char* k : counts)
        CHECK_OR_FAIL(r[k] == ref[s][k], "step ", s + 1, " ", k, ": ", r[k], " vs ", a.compare,
                      "'s ", ref[s][k]);
      const double dr =
          std::abs(r["reward/mean"].get<double>() - ref[s]["reward/mean"].get<double>());
      CHECK_OR_FAIL(dr <= 1e-12, "step ", s + 1, " reward/mean differs from ", a.compare, "'s by ",
                    dr);
    }
  }
  CHECK_OR_FAIL(refilled && filtered, "no step ",
                refilled ? "filtered a group" : "drew a second round",
                ": the recipe no longer exercises dynamic sampling");
}

std::vector<std::string> async_overrides(const AsyncArgs& a) {
  std::vector<std::string> o = dense_recipe();
  o.push_back("train.steps=" + std::to_string(kAsyncSteps));
  o.push_back("checkpoint.every=" + std::to_string(a.resume_from > 0 ? 1 : kAsyncSteps));
  if (a.rollout_ranks > 0)
    for (const std::string& x : {std::string("rollout.mode=disaggregated"),
                                 "parallel.rollout_ranks=" + std::to_string(a.rollout_ranks),
                                 "rollout.max_staleness=" + std::to_string(a.k)})
      o.push_back(x);
  o.insert(o.end(), a.sets.begin(), a.sets.end());
  return o;
}

// The documented resume (trainer/disaggregated.h): a copy of the finished run
// cut back to step S and resumed in this process.  Steps 1..S keep their
// metrics; from S the pipeline refills from the checkpoint's weights, so
// the lag restarts at 0 (checked by check_async_rows with start S).  k = 0:
// the same bits as the uninterrupted run.  k > 0: the batches S+1..S+k
// were generated by older weights before the stop, so the resumed run must
// differ from the uninterrupted one (that it does shows the refill happened),
// and the refill is deterministic: a second resume from the same checkpoint
// ends on the first resume's bits.
std::string resume_copy(Comm& comm, const std::string& dir, const AsyncArgs& a,
                        const std::string& full, const std::string& suffix) {
  const std::string copy = full + suffix;
  const long S = a.resume_from;
  if (comm.rank() == 0) {
    remove_tree(copy);
    fs::copy(full, copy, fs::copy_options::recursive);
    for (long s = S + 1; s <= kAsyncSteps; ++s)
      remove_tree(checkpoint_step_dir(copy + "/checkpoints", s));
  }
  comm.barrier();
  Recipe r = make_recipe(comm, dir, a.name + suffix, async_overrides(a));
  const TrainResult res = run_train(r, comm, "auto");
  CHECK_OR_FAIL(res.steps_done == kAsyncSteps, "rank ", comm.rank(), " after resume: steps ",
                res.steps_done);
  return copy;
}

void resume_async(Comm& comm, const std::string& dir, const AsyncArgs& a, const std::string& full) {
  const long S = a.resume_from;
  const std::string copy = resume_copy(comm, dir, a, full, "_resumed");
  const std::string again = a.k > 0 ? resume_copy(comm, dir, a, full, "_resumed2") : "";
  if (comm.rank() != 0) return;
  const auto rows = test::read_jsonl(copy + "/metrics.jsonl");
  CHECK_OR_FAIL(rows.size() == static_cast<size_t>(kAsyncSteps), rows.size(), " metrics rows");
  check_async_rows(rows, a, S);
  check_dynamic_rows(rows, a, dir);
  const auto la = test::lines_without_time(full + "/metrics.jsonl");
  const auto lb = test::lines_without_time(copy + "/metrics.jsonl");
  for (long s = 0; s < S && s < static_cast<long>(std::min(la.size(), lb.size())); ++s)
    CHECK_OR_FAIL(la[s] == lb[s], "step ", s + 1, "'s metrics changed by the resume");
  const bool same = checkpoint_weights_hash(ckpt(full, kAsyncSteps, 0)) ==
                    checkpoint_weights_hash(ckpt(copy, kAsyncSteps, 0));
  std::cout << "resumed at step " << S << " with k = " << a.k << ": final weights "
            << (same ? "the same bits" : "differ") << " (max |diff| "
            << max_weight_diff(full, copy, kAsyncSteps) << ")\n";
  if (a.k == 0) {
    CHECK_OR_FAIL(same, "k = 0: resumed at step ", S, ", the final weights differ");
    return;
  }
  CHECK_OR_FAIL(!same, "k = ", a.k,
                ": the resumed run equals the uninterrupted one, so its "
                "first batches were not regenerated from the checkpoint's weights");
  const bool repeat = checkpoint_weights_hash(ckpt(copy, kAsyncSteps, 0)) ==
                      checkpoint_weights_hash(ckpt(again, kAsyncSteps, 0));
  std::cout << "a second resume from step " << S << ": final weights "
            << (repeat ? "the first resume's bits" : "differ from the first resume's") << "\n";
  CHECK_OR_FAIL(repeat && test::lines_without_time(again + "/metrics.jsonl") == lb, "k = ", a.k,
                ": two resumes from the step ", S,
                " checkpoint differ: the refill is not deterministic");
}

void run_async(Comm& comm, const std::string& dir, const AsyncArgs& a) {
  // A planted defect that desynchronises the ranks ends in seconds, not
  // after the default 600 s.
  set_collective_timeout(30);
  const TrainResult res = train_fresh(comm, dir, a.name, async_overrides(a));
  const int learners = comm.size() - a.rollout_ranks;
  CHECK_OR_FAIL(res.steps_done == kAsyncSteps, "rank ", comm.rank(),
                ": steps done (batches "
                "generated on a rollout rank) ",
                res.steps_done);
  if (a.resume_from > 0) {
    resume_async(comm, dir, a, res.run_dir.empty() ? dir + "/runs/" + a.name : res.run_dir);
    return;
  }
  if (comm.rank() != 0) return;
  check_ranks_agree(res.run_dir, kAsyncSteps, learners);
  const auto rows = test::read_jsonl(res.run_dir + "/metrics.jsonl");
  CHECK_OR_FAIL(rows.size() == static_cast<size_t>(kAsyncSteps), rows.size(), " metrics rows");
  check_async_rows(rows, a, 0);
  check_async_timings(rows, a, comm.size());
  check_length_quantiles(res.run_dir, rows, a, dir);
  check_dynamic_rows(rows, a, dir);
  const bool bis =
      std::find(a.sets.begin(), a.sets.end(), "loss.behaviour_is=truncate") != a.sets.end();
  for (size_t s = 0; bis && s < rows.size(); ++s) {
    const auto& r = rows[s];
    const double trunc = r["loss/behaviour_truncated_frac"].get<double>();
    const double rmax = r["loss/behaviour_ratio_max"].get<double>();
    std::cout << "step " << s + 1 << ": behaviour ratio max " << rmax << ", mean "
              << r["loss/behaviour_ratio_mean"] << ", truncated " << trunc << "\n";
    if (s == 0 || a.k == 0)
      CHECK_OR_FAIL(trunc == 0 && rmax < 1.0001, "step ", s + 1, " (lag 0): ratio max ", rmax,
                    ", truncated ", trunc, " (only numerics should separate the policies)");
    else
      CHECK_OR_FAIL(trunc > 0 && rmax > 1.001, "step ", s + 1, " (lag ", a.k, "): ratio max ", rmax,
                    ", truncated ", trunc, ": the stale behaviour policy does not show");
  }
  const bool replay =
      std::find(a.sets.begin(), a.sets.end(), "train.routing_replay=true") != a.sets.end();
  for (size_t s = 0; replay && s < rows.size(); ++s) {
    const auto& r = rows[s];
    CHECK_OR_FAIL(r["rollout/expert_mismatch"].is_number(), "step ", s + 1,
                  ": no rollout/expert_mismatch (no routing records reached the learner)");
    const double em = r["rollout/expert_mismatch"].get<double>();
    std::cout << "step " << s + 1 << ": expert mismatch " << em << "\n";
    if (s > 0 && a.k > 0)
      CHECK_OR_FAIL(em > 0, "step ", s + 1, " (lag ", a.k,
                    "): the learner's router agrees with every streamed record, so replay "
                    "changes nothing to test");
  }
  if (!a.differ.empty()) {
    const std::string other = dir + "/runs/" + a.differ;
    CHECK_OR_FAIL(fs::exists(ckpt(other, kAsyncSteps, 0)), "no ", other,
                  " checkpoint (run the reference ctest first)");
    const double d = max_weight_diff(other, res.run_dir, kAsyncSteps);
    std::cout << "max |w(" << a.name << ") - w(" << a.differ << ")| = " << d << "\n";
    CHECK_OR_FAIL(d > 1e-5, "weights within ", d, " of ", a.differ,
                  ": the replayed forwards did not use the streamed routing records");
  }
  if (a.compare.empty()) return;
  const std::string other = dir + "/runs/" + a.compare;
  CHECK_OR_FAIL(fs::exists(ckpt(other, kAsyncSteps, 0)), "no ", other,
                " checkpoint (run the reference ctest first)");
  const double d = max_weight_diff(other, res.run_dir, kAsyncSteps);
  std::cout << "max |w(" << a.name << ") - w(" << a.compare << ")| = " << d << "\n";
  CHECK_OR_FAIL(d <= a.tol, "weights differ from ", a.compare, " by ", d, " > ", a.tol);
}

// ---- zero ---------------------------------------------------------------------------

constexpr double kZeroMaxGradNorm = 0.05;

struct ZeroArgs {
  std::string name, dtype = "fp32", resume, compare;
  long zero = 0, steps = 6, ep = 1;
  // rollout.num_slots: -1 = 3 under expert parallelism (see run_zero), else
  // the recipe's; 0 = the recipe's; N = N (a resume must keep its source's).
  long slots = -1;
  double tol = 1e-6;
  std::vector<std::string> sets;  // extra key=value overrides (--set=K=V)
};

// The plan ran (see the top of the file): sharded parameters, lockstep rollout.
void check_expert_parallel(const std::string& dir, const std::string& run, const ZeroArgs& a,
                           int world) {
  const std::string np1 = ckpt(dir + "/runs/np1", a.steps, 0);
  CHECK_OR_FAIL(fs::exists(np1), "no ", np1, " (run trainer.mpi.zero_np1 first)");
  const Checkpoint ref = load_checkpoint(np1);
  int64_t expert_numel = 0, n_stacks = 0;   // every routed-expert stack, whole
  std::map<std::string, int64_t> ref_rows;  // experts per stack
  for (const auto& [n, t] : ref.weights)
    if (n.find(".mlp.experts.") != std::string::npos) {
      expert_numel += t.numel();
      ref_rows[n] = t.size(0);
      ++n_stacks;
    }
  const int64_t want = ref.ints.at("rank_param_numel") - expert_numel + expert_numel / a.ep;
  CHECK_OR_FAIL(expert_numel > 0, "the reference policy has no routed experts");
  for (int r = 0; r < world; ++r) {
    const Checkpoint c = load_checkpoint(ckpt(run, a.steps, r));
    CHECK_OR_FAIL(c.ints.count("parallel_expert") && c.ints.at("parallel_expert") == a.ep, "rank ",
                  r, ": the checkpoint does not record parallel.expert = ", a.ep);
    CHECK_OR_FAIL(c.ints.at("rank_param_numel") == want, "rank ", r, " held ",
                  c.ints.at("rank_param_numel"), " parameters, expected ", want,
                  " (the dense ones and 1/", a.ep, " of the experts)");
    // What the file holds: rank 0 the replicated weights; ranks 0 .. E-1
    // (DP rank 0 of each expert shard) their own experts of every stack as
    // row shards [r * n/E, (r+1) * n/E) of n, nothing gathered; the other
    // replicas no weights.
    int64_t expert_rows = 0, replicated = 0;
    for (const auto& [n, t] : c.weights) {
      if (n.find(".mlp.experts.") == std::string::npos) {
        ++replicated;
        continue;
      }
      const int64_t all = ref_rows.at(n), per = all / a.ep;
      auto sh = c.shards.find("model/" + n);
      CHECK_OR_FAIL(sh != c.shards.end() && sh->second.first == r * per && sh->second.rows == per &&
                        sh->second.total == all && t.size(0) == per,
                    "rank ", r, ": ", n, " is not written as experts [", r * per, ", ",
                    (r + 1) * per, ") of ", all);
      expert_rows += t.size(0);
    }
    CHECK_OR_FAIL(replicated == (r == 0 ? static_cast<int64_t>(ref.weights.size()) - n_stacks : 0),
                  "rank ", r, " wrote ", replicated, " replicated weights");
    CHECK_OR_FAIL(expert_rows == (r < a.ep ? n_stacks * ref_rows.begin()->second / a.ep : 0),
                  "rank ", r, " wrote ", expert_rows, " expert rows");
  }
  double idle = 0;
  for (const auto& m : test::read_jsonl(run + "/metrics.jsonl"))
    idle += m.value("rollout/idle_forwards", 0.0);
  std::cout << "rollout forwards joined with zero tokens: " << idle << "\n";
  CHECK_OR_FAIL(idle > 0,
                "no rank ever joined an exchange with zero tokens: the lockstep path "
                "of the rollout was not exercised");
}

void run_zero(Comm& comm, const std::string& dir, const ZeroArgs& a) {
  if (comm.rank() == 0) remove_tree(dir + "/runs/" + a.name);
  comm.barrier();
  std::vector<std::string> overrides = {
      "train.steps=" + std::to_string(a.steps),
      "train.prompts_per_step=8",
      "train.minibatches=2",
      "train.zero=" + std::to_string(a.zero),
      "policy.dtype=" + a.dtype,
      "optimizer.lr=1.0e-4",
      "optimizer.max_grad_norm=" + std::to_string(kZeroMaxGradNorm),
      "eval.every=0",
      "checkpoint.every=1",
      "checkpoint.keep_last=10"};
  if (a.ep > 1) overrides.push_back("parallel.expert=" + std::to_string(a.ep));
  // Under EP, three cache slots for 16 samples per rank: admissions and
  // prefills fall at different forwards on different ranks, so the lockstep
  // must join peers with zero tokens.  A completion does not depend on the
  // slot count (rollout/engine.h), so np1's run stays the reference.
  const long slots = a.slots < 0 ? (a.ep > 1 ? 3 : 0) : a.slots;
  if (slots > 0) overrides.push_back("rollout.num_slots=" + std::to_string(slots));
  Recipe r = make_recipe(comm, dir, a.name, overrides);
  r.apply_overrides(a.sets);
  const TrainResult res = run_train(r, comm, a.resume);
  CHECK_OR_FAIL(res.steps_done == a.steps, "steps done: ", res.steps_done);
  comm.barrier();
  if (comm.rank() != 0) return;
  // Every rank's weights, as each rank held them (all-gather correctness).
  const auto files = list_rank_files(checkpoint_step_dir(res.run_dir + "/checkpoints", a.steps));
  CHECK_OR_FAIL(static_cast<int>(files.size()) == comm.size(), files.size(), " rank files");
  check_ranks_agree(res.run_dir, a.steps, comm.size());
  if (a.ep > 1) check_expert_parallel(dir, res.run_dir, a, comm.size());
  if (a.compare.empty()) return;
  const std::string other = dir + "/runs/" + a.compare;
  CHECK_OR_FAIL(fs::exists(ckpt(other, a.steps, 0)), "no ", other,
                " checkpoint (run the reference ctest first)");
  const double max_diff = max_weight_diff(other, res.run_dir, a.steps);
  std::cout << "max |w(" << a.name << ") - w(" << a.compare << ")| = " << max_diff << "\n";
  CHECK_OR_FAIL(max_diff <= a.tol, "weights differ from ", a.compare, " by ", max_diff, " > ",
                a.tol);
  if (a.tol == 0)  // the same bits, not only the same values
    CHECK_OR_FAIL(checkpoint_weights_hash(step_dir(other, a.steps)) ==
                      checkpoint_weights_hash(step_dir(res.run_dir, a.steps)),
                  "weights hash differs from ", a.compare);
  // Clipping was active somewhere, so the global norm entered the update.
  bool clipped = false;
  for (const auto& m : test::read_jsonl(res.run_dir + "/metrics.jsonl"))
    clipped |= m["optim/grad_norm"].get<double>() > kZeroMaxGradNorm;
  CHECK_OR_FAIL(clipped, "no step clipped: the sharded global norm was not exercised");
}

}  // namespace
}  // namespace zerorl

int main(int argc, char** argv) {
  using namespace zerorl;
  std::string dir, scenario;
  ZeroArgs z;
  AsyncArgs as;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto val = [&](const char* k) -> const char* {
      const std::string key = std::string(k) + "=";
      return s.rfind(key, 0) == 0 ? argv[i] + key.size() : nullptr;
    };
    if (auto v = val("--runs")) dir = v;
    if (auto v = val("--scenario")) scenario = v;
    if (auto v = val("--name")) z.name = v;
    if (auto v = val("--zero")) z.zero = std::stol(v);
    if (auto v = val("--dtype")) z.dtype = v;
    if (auto v = val("--steps")) z.steps = std::stol(v);
    if (auto v = val("--resume")) z.resume = v;
    if (auto v = val("--compare")) z.compare = v;
    if (auto v = val("--tol")) z.tol = std::stod(v);
    if (auto v = val("--set")) z.sets.push_back(v);
    if (auto v = val("--ep")) z.ep = std::stol(v);
    if (auto v = val("--rollout-ranks")) as.rollout_ranks = std::stoi(v);
    if (auto v = val("--k")) as.k = std::stol(v);
    if (auto v = val("--differ")) as.differ = v;
    if (auto v = val("--resume-from")) as.resume_from = std::stol(v);
    if (auto v = val("--slots")) z.slots = std::stol(v);
  }
  try {
    ZR_CHECK(!dir.empty() && (scenario == "dense" || scenario == "resume" || scenario == "dapo" ||
                              ((scenario == "zero" || scenario == "async") && !z.name.empty())),
             "usage: loop_mpi --scenario=dense|resume|dapo --runs=DIR\n"
             "       loop_mpi --scenario=zero --runs=DIR --name=N [--zero=Z] ...");
    mpi_init_if_launched(&argc, &argv);
    auto comm = make_comm(mpi_active() ? "mpi" : "single");
    g_rank = comm->rank();
    const int world = comm->size();
    if (scenario == "dapo") {
      ZR_CHECK(world <= 2, "dapo runs with one or two ranks, got ", world);
      TrainResult res =
          train_fresh(*comm, dir, world == 1 ? "dapo_np1" : "dapo_np2", dapo_recipe());
      CHECK_OR_FAIL(res.steps_done == kDapoSteps, "steps done: ", res.steps_done);
      if (world == 2 && comm->rank() == 0) compare_dapo_with_np1(dir, res);
    } else if (scenario == "dense") {
      ZR_CHECK(kDensePrompts % world == 0 && kDensePrompts / world >= kDenseMinibatches,
               "dense runs with 1, 2 or 4 ranks, got ", world);
      TrainResult res = train_fresh(*comm, dir, "dense_np" + std::to_string(world), dense_recipe());
      CHECK_OR_FAIL(res.steps_done == kDenseSteps, "steps done: ", res.steps_done);
      if (world > 1 && comm->rank() == 0) compare_dense_with_np1(dir, res, world);
    } else if (scenario == "zero") {
      run_zero(*comm, dir, z);
    } else if (scenario == "async") {
      as.name = z.name;
      as.compare = z.compare;
      as.tol = z.tol;
      as.sets = z.sets;
      run_async(*comm, dir, as);
    } else {
      resume_dense(*comm, dir);
    }
    return test::mpi_verdict(*comm);
  } catch (const std::exception& e) {
    return test::mpi_error(e);
  }
}
