// `logging.tensorboard: true` against the tensorboard package's own readers
// (tensorboard_oracle.py, the version in scripts/requirements.txt): a tiny
// GRPO run of three steps, then a resume as after a crash between
// checkpoints (the step-3 checkpoint torn, so step 3 runs again and step 4
// after it), and every metrics.jsonl / eval.jsonl value must be in the event
// files exactly once at its step, equal to the double rounded to float32 (the
// scalars' precision in TensorBoard), with a sample table at every step
// samples.jsonl logged.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/comm.h"
#include "core/config.h"
#include "core/error.h"
#include "core/tensorboard.h"
#include "loop_scratch.h"
#include "tiny_run.h"
#include "trainer/checkpoint.h"
#include "trainer/grpo_trainer.h"

using namespace zerorl;
namespace fs = std::filesystem;

namespace {

ZR_LOOP_SCRATCH("tensorboard")

TrainResult train(const std::string& text, const std::vector<std::string>& overrides,
                  const std::string& resume = "") {
  Recipe r = Recipe::from_string(text, "test.yaml");
  r.apply_overrides(overrides);
  auto comm = make_comm("single");
  return run_train(r, *comm, resume);
}

std::vector<std::string> events_files(const std::string& run_dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(run_dir + "/tb"))
    if (is_events_file_name(e.path().filename().string())) out.push_back(e.path().string());
  return out;
}

}  // namespace

TEST(TensorBoardOracle, EventFilesHoldEveryMetricEvalAndSampleTableOnce) {
  // eval every 3 steps, samples every 2, a checkpoint every step (tiny_run.h).
  const std::string recipe = recipe_text("tb", "logging: {tensorboard: true}\n");
  auto first = train(recipe, {"train.steps=3"});
  ASSERT_EQ(events_files(first.run_dir).size(), 1u);
  const std::string newest =
      checkpoint_rank_file(checkpoint_step_dir(first.run_dir + "/checkpoints", 3), 0);
  fs::resize_file(newest, fs::file_size(newest) / 2);
  auto second = train(recipe, {"train.steps=4"}, "auto");
  ASSERT_EQ(second.steps_done, 4);
  // The resumed process opened a second file; the first lost its step 3.
  auto files = events_files(second.run_dir);
  ASSERT_EQ(files.size(), 2u);
  for (const auto& f : files) {
    EventRecords r = read_event_records(f);
    EXPECT_EQ(r.error, "") << f;
  }
  const std::string cmd = str_cat(ZR_PYTHON, " ", ZR_SOURCE_DIR,
                                  "/tests/trainer/tensorboard_oracle.py ", second.run_dir);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST(TensorBoardOracle, OffByDefault) {
  auto run = train(recipe_text("tb_off"), {"train.steps=1", "eval.every=0"});
  EXPECT_FALSE(fs::exists(run.run_dir + "/tb"));
}
