// The demo guarded (label slow): the first 12 steps of recipes/r1zero-tiny.yaml
// from the shipped base (recipes/base-tiny.h5) on one rank, with the demo's
// optimizer schedule unchanged (its cosine still spans 120 steps) and 32
// held-out problems evaluated before and after.  What the demo promises
// (docs/REPRODUCTION.md: pass@1 0.175 -> 0.919 and worked rate 0.18 -> 0.96
// by step 10 on 100 problems) must show: the base is weak and rarely works
// in steps; 12 steps of GRPO lift pass@1 and the worked rate well past it
// (measured: pass@1 0.184 -> 0.945, worked rate 0.199 -> 0.996, 46 s).
// An untrained or broken learner (no update, a sign flip, zero advantages)
// leaves both where they started.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/comm.h"
#include "core/config.h"
#include "trainer/grpo_trainer.h"
#include "trainer/run_dir.h"

namespace zerorl {
namespace {

TEST(Demo, TwelveStepsOfR1ZeroTinyLiftPassAt1AndWorkedRate) {
  const std::string src = ZR_SOURCE_DIR;
  const std::string runs =
      (std::filesystem::temp_directory_path() / ("zerorl_demo_" + std::to_string(::getpid())))
          .string();
  Recipe r = Recipe::from_file(src + "/recipes/r1zero-tiny.yaml");
  r.apply_overrides({"policy.init=" + src + "/recipes/base-tiny.h5", "run.dir=" + runs,
                     "train.steps=12", "eval.every=12", "eval.num_problems=32", "eval.greedy=false",
                     "checkpoint.every=0", "train.sample_every=0"});
  auto comm = make_comm("single");
  const TrainResult res = run_train(r, *comm);
  ASSERT_EQ(res.steps_done, 12);
  ASSERT_FALSE(res.first_eval.empty());
  ASSERT_FALSE(res.last_eval.empty());
  const double p0 = res.first_eval.at("pass_at_1"), p1 = res.last_eval.at("pass_at_1");
  const double w0 = res.first_eval.at("worked_rate"), w1 = res.last_eval.at("worked_rate");
  std::printf("pass@1 %.3f -> %.3f, worked rate %.3f -> %.3f, %.0f s\n", p0, p1, w0, w1,
              res.wall_seconds);
  // The base, as shipped: weak, and mostly answering directly.
  EXPECT_LT(p0, 0.35);
  EXPECT_LT(w0, 0.35);
  // After 12 steps: the demo's switch to worked steps has happened.
  EXPECT_GT(p1, p0 + 0.5);
  EXPECT_GT(w1, w0 + 0.5);
  if (!HasFailure()) remove_tree(runs);
}

}  // namespace
}  // namespace zerorl
