// DAPO dynamic sampling in the real GRPO loop (one rank; the two-rank run is
// tests/trainer/loop_mpi_main.cpp): the update batch holds only groups whose
// rewards differ and is full, the round cap holds, a step that keeps nothing
// leaves the weights alone, resume is exact, and bad keys are named.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "core/comm.h"
#include "core/config.h"
#include "core/error.h"
#include "data/prompt_source.h"
#include "loop_scratch.h"
#include "tiny_run.h"
#include "trainer/checkpoint.h"
#include "trainer/grpo_trainer.h"
#include "trainer/run_dir.h"
#include "trainer/policy_file.h"

using namespace zerorl;
namespace fs = std::filesystem;

namespace {

ZR_LOOP_SCRATCH("dynsamp")

TrainResult train(const std::string& text, std::vector<std::string> overrides,
                  const std::string& resume = "") {
  Recipe r = Recipe::from_string(text, "test.yaml");
  r.apply_overrides(overrides);
  auto comm = make_comm("single");
  return run_train(r, *comm, resume);
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

constexpr long kPrompts = 4, kG = 4;

// samples.jsonl records of one step, in batch order.
std::vector<nlohmann::json> samples_of_step(const std::string& run_dir, long step) {
  std::vector<nlohmann::json> out;
  for (auto& s : test::read_jsonl(run_dir + "/samples.jsonl"))
    if (s["step"] == step) out.push_back(s);
  return out;
}

// Every logged group (kG consecutive records) has rewards that differ and a
// non-zero advantage; returns the completion tokens of the records.
double check_groups_have_signal(const std::vector<nlohmann::json>& recs, long step) {
  double tokens = 0;
  for (size_t g = 0; g < recs.size() / kG; ++g) {
    double lo = 1e300, hi = -1e300, max_abs_adv = 0;
    for (size_t i = g * kG; i < (g + 1) * kG; ++i) {
      EXPECT_EQ(recs[i]["index"], static_cast<long>(i));
      lo = std::min(lo, recs[i]["reward"].get<double>());
      hi = std::max(hi, recs[i]["reward"].get<double>());
      max_abs_adv = std::max(max_abs_adv, std::abs(recs[i]["advantage"].get<double>()));
      tokens += recs[i]["tokens"].get<double>();
    }
    EXPECT_GT(hi - lo, 0.0) << "step " << step << " trained on group " << g
                            << " whose rewards are all " << lo;
    EXPECT_GT(max_abs_adv, 0.0) << "step " << step << " group " << g;
  }
  return tokens;
}

}  // namespace

// The headline behaviour: every step trains on exactly prompts_per_step
// groups, all with a learning signal, drawing extra rounds to get them.
TEST(DynamicSampling, UpdateBatchHoldsOnlyGroupsWithSignalAndIsFull) {
  const long steps = 4, cap = 8;
  auto res = train(recipe_text("ds_full"),
                   with(test::dapo_overrides(cap),
                        {"train.steps=" + std::to_string(steps), "train.sample_every=1",
                         "train.samples_per_log=" + std::to_string(kPrompts * kG)}));
  auto metrics = test::read_jsonl(res.run_dir + "/metrics.jsonl");
  ASSERT_EQ(metrics.size(), static_cast<size_t>(steps));
  long extra_rounds = 0;
  double dropped = 0;
  for (auto& m : metrics) {
    const long step = m["step"];
    const double rounds = m["dynamic/rounds"];
    EXPECT_EQ(m["dynamic/groups_kept"].get<double>(), kPrompts) << "step " << step;
    EXPECT_LE(rounds, cap);
    EXPECT_EQ(m["dynamic/groups_drawn"].get<double>(), kPrompts * rounds);
    EXPECT_GE(m["dynamic/groups_with_signal"].get<double>(), kPrompts);
    EXPECT_EQ(m["dynamic/short_steps_total"].get<double>(), 0);
    extra_rounds += static_cast<long>(rounds) - 1;
    dropped += m["advantage/zero_spread_frac"].get<double>();
    // The update trained on exactly the logged completions: its token count
    // is theirs, and every one of their groups has a signal.
    auto recs = samples_of_step(res.run_dir, step);
    ASSERT_EQ(recs.size(), static_cast<size_t>(kPrompts * kG)) << "step " << step;
    EXPECT_EQ(check_groups_have_signal(recs, step), m["loss/num_tokens"].get<double>())
        << "step " << step;
  }
  // Not vacuous: groups without a signal were drawn and dropped, and refills happened.
  EXPECT_GT(dropped, 0.0);
  EXPECT_GT(extra_rounds, 0);
}

// With one round allowed the step trains on the groups it has (fewer than
// prompts_per_step) and counts the short step.
TEST(DynamicSampling, RoundCapIsRespectedAndShortStepsAreCounted) {
  const long steps = 4;
  auto res = train(
      recipe_text("ds_cap"),
      with(test::dapo_overrides(1), {"train.steps=" + std::to_string(steps), "train.sample_every=1",
                                     "train.samples_per_log=" + std::to_string(kPrompts * kG)}));
  long short_steps = 0;
  for (auto& m : test::read_jsonl(res.run_dir + "/metrics.jsonl")) {
    const long step = m["step"];
    EXPECT_EQ(m["dynamic/rounds"].get<double>(), 1);
    EXPECT_EQ(m["dynamic/groups_drawn"].get<double>(), kPrompts);
    const double kept = m["dynamic/groups_kept"];
    EXPECT_EQ(kept, m["dynamic/groups_with_signal"].get<double>());
    EXPECT_NEAR(kept, kPrompts * (1 - m["advantage/zero_spread_frac"].get<double>()), 1e-12);
    short_steps += kept < kPrompts;
    EXPECT_EQ(m["dynamic/short_steps_total"].get<double>(), short_steps) << "step " << step;
    auto recs = samples_of_step(res.run_dir, step);
    EXPECT_EQ(recs.size(), static_cast<size_t>(kept * kG)) << "step " << step;
    const double tokens = check_groups_have_signal(recs, step);
    if (kept > 0) {
      EXPECT_EQ(tokens, m["loss/num_tokens"].get<double>()) << "step " << step;
    }
  }
  EXPECT_GT(short_steps, 0) << "the cap never bit: the test would be vacuous";
}

// No group can have a signal (tolerance above any reward spread): every step
// draws the cap of rounds, keeps nothing, skips its update and leaves the
// weights as they were; the data cursor still advances by every round drawn.
TEST(DynamicSampling, StepThatKeepsNothingSkipsItsUpdate) {
  const long steps = 2, cap = 3;
  auto res = train(recipe_text("ds_none"),
                   with(test::dapo_overrides(cap),
                        {"train.steps=" + std::to_string(steps), "advantage.zero_spread_tol=100"}));
  for (auto& m : test::read_jsonl(res.run_dir + "/metrics.jsonl")) {
    EXPECT_EQ(m["dynamic/rounds"].get<double>(), cap);
    EXPECT_EQ(m["dynamic/groups_kept"].get<double>(), 0);
    EXPECT_EQ(m["advantage/zero_spread_frac"].get<double>(), 1.0);
    EXPECT_FALSE(m.contains("optim/grad_norm")) << m.dump();
  }
  Checkpoint c = load_checkpoint(test::rank_checkpoint(res.run_dir, steps));
  EXPECT_EQ(c.ints.at("dynamic_short_steps"), steps);
  EXPECT_EQ(data::DataCursor::from_string(c.data_cursor).offset,
            static_cast<uint64_t>(steps * cap * kPrompts));
  Policy init = load_policy(tiny_policy());
  std::map<std::string, at::Tensor> saved(c.weights.begin(), c.weights.end());
  for (auto& [name, w] : init.model->named_weights())
    EXPECT_TRUE(at::equal(saved.at(name), w)) << name << " changed without an update";
}

// Same recipe -> same bits, and a resumed run continues exactly (the data
// cursor holds every round's prompts, the short-step count is restored).
TEST(DynamicSampling, ResumeContinuesBitIdentically) {
  const auto ds = test::dapo_overrides(2);
  auto straight = train(recipe_text("ds_straight"), with(ds, {"train.steps=4"}));
  train(recipe_text("ds_resumed"), with(ds, {"train.steps=2"}));
  auto second = train(recipe_text("ds_resumed"), with(ds, {"train.steps=4"}), "auto");
  EXPECT_EQ(second.steps_done, 4);
  EXPECT_EQ(test::final_hash(straight.run_dir, 4), test::final_hash(second.run_dir, 4));
  auto a = test::lines_without_time(straight.run_dir + "/metrics.jsonl");
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(a, test::lines_without_time(second.run_dir + "/metrics.jsonl"));
  // Not vacuous: the cap of 2 rounds bit somewhere, so restoring the count matters.
  EXPECT_GT(nlohmann::json::parse(a.back())["dynamic/short_steps_total"].get<double>(), 0);
}

TEST(DynamicSampling, BadKeysAreNamedWithTheirLine) {
  for (auto [bad, what] : std::vector<std::pair<std::string, std::string>>{
           {"advantage:\n  dynamic_sampling: true\n  max_sampling_rounds: 0\n", ">= 1"},
           {"advantage:\n  dynamic_sampling: maybe\n", "dynamic_sampling"}}) {
    const std::string text = recipe_text("ds_bad", bad);
    // The offending key is on the recipe's last line.
    const long line = std::count(text.begin(), text.end(), '\n');
    try {
      train(text, {});
      ADD_FAILURE() << "accepted:\n" << bad;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("test.yaml:" + std::to_string(line)), std::string::npos) << msg;
      EXPECT_NE(msg.find("advantage."), std::string::npos) << msg;
      EXPECT_NE(msg.find(what), std::string::npos) << msg;
    }
  }
}
