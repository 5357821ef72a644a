// Group-relative advantages for the GRPO family, and DAPO's dynamic-sampling
// filter.  Torch-free: rewards are a few hundred doubles per step.
//
// Layout: rewards are grouped contiguously, G completions per prompt:
//   rewards[g * G + i] is completion i of prompt group g; B = num_groups * G.
//
// Estimators (AdvantageConfig::estimator), for a group r_1..r_G with mean m:
//   "grpo"    A_i = (r_i - m) / (s + eps)       DeepSeekMath / R1, TRL
//             s = sample std (divide by G-1, TRL's torch.std default) or
//                 population std (divide by G), per AdvantageConfig::std_kind
//   "dr_grpo" A_i = r_i - m                      Dr. GRPO (no std division)
//   "rloo"    A_i = r_i - mean_{j != i} r_j      leave-one-out baseline
//                 = G / (G - 1) * (r_i - m)
//
// Zero-spread groups: a group whose rewards all lie within
// zero_spread_tol of each other (max - min <= tol) carries no learning
// signal; every estimator gives it exactly zero advantage.  This is decided on
// the rewards' spread, not on the computed advantages, because (r - m) / (s +
// eps) of a group that differs by rounding alone is not exactly zero.
//
// Dynamic sampling (DAPO): groups_with_signal() says which groups to keep
// (the same spread test, on the rewards after reward shaping and before any
// KL-in-reward penalty).  With dynamic_sampling on, the step loop
// (grpo_trainer.cpp, sample_phase) drops the other groups and draws further
// rounds of prompts_per_step prompts until prompts_per_step groups with a
// signal are kept, counted over all ranks; max_sampling_rounds caps the
// rounds of one step, the first included (verl's max_num_gen_batches).  When
// the cap is hit the step trains on the groups it has (and counts the step
// in dynamic/short_steps_total); a step that kept none skips its update.
//
// Errors: a non-finite reward, a size that is not a multiple of G, or G < 2
// throws zerorl::Error naming the offending index.  Thread-safe (pure).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace zerorl {

class ConfigNode;

struct AdvantageConfig {
  enum class Estimator { kGrpo, kDrGrpo, kRloo };
  enum class StdKind { kSample, kPopulation };

  Estimator estimator = Estimator::kGrpo;
  StdKind std_kind = StdKind::kSample;  // TRL and verl use torch.std (sample)
  double eps = 1e-4;                    // TRL's epsilon in (r - m) / (s + eps)
  double zero_spread_tol = 1e-9;        // max - min <= tol -> zero advantage
  bool dynamic_sampling = false;        // DAPO: drop zero-spread groups, refill
  int max_sampling_rounds = 4;          // rollout rounds per step at most, the first included

  // Keys (all optional): estimator: grpo|dr_grpo|rloo, std: sample|population,
  // eps, zero_spread_tol, dynamic_sampling: true|false,
  // max_sampling_rounds (>= 1; used only with dynamic_sampling on).
  static AdvantageConfig from(const ConfigNode& n);
};

std::string to_string(AdvantageConfig::Estimator e);

struct GroupAdvantages {
  std::vector<double> advantages;   // [B], same order as the rewards
  std::vector<uint8_t> has_signal;  // [num_groups]: 1 unless zero-spread
  int64_t num_zero_spread_groups = 0;
};

// Advantages for B = rewards.size() completions in groups of group_size.
GroupAdvantages compute_advantages(const std::vector<double>& rewards, int64_t group_size,
                                   const AdvantageConfig& cfg);

// DAPO dynamic sampling: for each group, true when max - min > tol (the
// group has a learning signal and should be kept).
std::vector<bool> groups_with_signal(const std::vector<double>& rewards, int64_t group_size,
                                     double tol);

}  // namespace zerorl
