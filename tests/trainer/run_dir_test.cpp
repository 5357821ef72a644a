#include "trainer/run_dir.h"

#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/tensorboard.h"
#include "trainer/checkpoint.h"

namespace fs = std::filesystem;

namespace zerorl {
namespace {

class TempRoot {
 public:
  TempRoot() {
    static int counter = 0;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ =
        (fs::temp_directory_path() / (std::string("zr_rundir_") + info->name() + "_" +
                                      std::to_string(::getpid()) + "_" + std::to_string(counter++)))
            .string();
    remove_tree(path_);
  }
  ~TempRoot() { remove_tree(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& p) {
  std::vector<std::string> out;
  std::istringstream in(slurp(p));
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

const char* kRecipe = "run:\n  name: demo\ntrainer:\n  lr: 0.0001\n";

// Deterministic fake metrics for step s (values that need all 17 digits).
std::map<std::string, double> metrics_at(int64_t s) {
  return {{"reward/mean", 1.0 / (3.0 + s)},
          {"loss/kl", std::exp(-static_cast<double>(s)) * 1e-3},
          {"response/length_mean", 40.0 + s * 1.5},
          {"loss/clip_frac_low", s == 2 ? std::nan("") : 0.0}};
}

void log_step(RunDir& run, int64_t s, double wall) {
  run.append_metrics(s, metrics_at(s), {{"step_seconds", wall}, {"rollout", wall / 2}});
  if (s % 2 == 0) {
    SampleRecord r;
    r.index = 0;
    r.prompt = "What is " + std::to_string(s) + "+1?";
    r.completion =
        "<think>" + std::to_string(s) + "+1</think><answer>" + std::to_string(s + 1) + "</answer>";
    r.reward = 1.1;
    r.components = {{"accuracy", 1.0}, {"format", 0.1}};
    run.append_samples(s, {r});
  }
  if (s % 3 == 0) run.append_eval(s, {{"pass_at_1", 0.1 * s}});
}

// Everything of a metrics line but its "time" object.
std::string without_time(const std::string& line) {
  nlohmann::json j = nlohmann::json::parse(line);
  j.erase("time");
  return j.dump();
}

TEST(RunDir, MetricsLinesAreSortedExactAndSeparateTimings) {
  std::map<std::string, double> m = {{"zeta", 0.1},
                                     {"alpha", 1.0 / 3.0},
                                     {"tiny", 4.9406564584124654e-324},
                                     {"big", 1.7976931348623157e308},
                                     {"nan", std::nan("")}};
  std::string line = format_metrics_line(7, m, {{"rollout", 1.25}});
  EXPECT_EQ(line.find('\n'), std::string::npos);
  // Sorted keys: alpha < big < nan < step < time < tiny < zeta.
  std::vector<size_t> pos;
  for (const char* k :
       {"\"alpha\"", "\"big\"", "\"nan\"", "\"step\"", "\"time\"", "\"tiny\"", "\"zeta\""}) {
    pos.push_back(line.find(k));
    ASSERT_NE(pos.back(), std::string::npos) << k << " missing from " << line;
  }
  EXPECT_TRUE(std::is_sorted(pos.begin(), pos.end())) << line;
  nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["step"].get<int64_t>(), 7);
  for (const char* k : {"zeta", "alpha", "tiny", "big"}) {
    double back = j[k].get<double>();
    EXPECT_EQ(std::memcmp(&back, &m.at(k), sizeof back), 0) << k << " did not round-trip: " << line;
  }
  EXPECT_TRUE(j["nan"].is_null());
  EXPECT_EQ(j["time"]["rollout"].get<double>(), 1.25);
  // The same numbers give the same bytes.
  EXPECT_EQ(line, format_metrics_line(7, m, {{"rollout", 1.25}}));
  EXPECT_THROW(format_metrics_line(1, {{"step", 1.0}}, {}), Error);
  EXPECT_THROW(format_metrics_line(1, {{"time", 1.0}}, {}), Error);
}

TEST(RunDir, ResumeTruncatesAndAppendsWithoutDuplicates) {
  TempRoot a, b;
  // Run A: six steps straight (eval at step 0 too).
  {
    RunDir run(a.path(), "demo", kRecipe, RunDir::Mode::kFresh);
    run.append_eval(0, {{"pass_at_1", 0.0}});
    for (int64_t s = 1; s <= 6; ++s) log_step(run, s, 0.5 * s);
  }
  // Run B: five steps, "crash" mid-line, resume from the step-3 checkpoint.
  {
    RunDir run(b.path(), "demo", kRecipe, RunDir::Mode::kFresh);
    run.append_eval(0, {{"pass_at_1", 0.0}});
    for (int64_t s = 1; s <= 5; ++s) log_step(run, s, 0.7 * s);
    std::ofstream(run.file("metrics.jsonl"), std::ios::app) << "{\"step\": 6, \"rew";
  }
  {
    ::testing::internal::CaptureStderr();
    RunDir run(b.path(), "demo", kRecipe, RunDir::Mode::kResume);
    int64_t dropped = run.truncate_after(3);
    std::string err = ::testing::internal::GetCapturedStderr();
    // metrics 4, 5, torn line; samples 4; eval none (next at 6).
    EXPECT_EQ(dropped, 4);
    EXPECT_NE(err.find("metrics.jsonl:6"), std::string::npos) << err;
    std::vector<std::string> m = lines_of(run.file("metrics.jsonl"));
    ASSERT_EQ(m.size(), 3u);
    EXPECT_EQ(nlohmann::json::parse(m.back())["step"].get<int64_t>(), 3);
    for (int64_t s = 4; s <= 6; ++s) log_step(run, s, 0.9 * s);
  }
  std::vector<std::string> ma = lines_of(a.path() + "/demo/metrics.jsonl");
  std::vector<std::string> mb = lines_of(b.path() + "/demo/metrics.jsonl");
  ASSERT_EQ(ma.size(), 6u);
  ASSERT_EQ(mb.size(), 6u);
  for (size_t i = 0; i < ma.size(); ++i) {
    EXPECT_NE(ma[i], mb[i]) << "timings differ, so whole lines must differ";
    EXPECT_EQ(without_time(ma[i]), without_time(mb[i])) << "line " << i + 1;
  }
  for (const char* f : {"samples.jsonl", "eval.jsonl"})
    EXPECT_EQ(slurp(a.path() + "/demo/" + f), slurp(b.path() + "/demo/" + f)) << f;

  std::vector<MetricsRow> rows = read_metrics_jsonl(b.path() + "/demo/metrics.jsonl");
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[1].step, 2);
  EXPECT_TRUE(std::isnan(rows[1].values.at("loss/clip_frac_low")));
  EXPECT_DOUBLE_EQ(rows[5].values.at("time/step_seconds"), 0.9 * 6);
}

std::vector<std::string> events_files(const std::string& tb_dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(tb_dir)) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<int64_t> event_steps(const std::string& path) {
  EventRecords r = read_event_records(path);
  EXPECT_EQ(r.error, "") << path;
  std::vector<int64_t> out;
  for (const auto& rec : r.records) out.push_back(event_step(rec));
  return out;
}

TEST(RunDir, TensorBoardResumeDropsLaterEventsAndATornRecord) {
  TempRoot t;
  LoggingConfig tb;
  tb.tensorboard = true;
  {
    RunDir run(t.path(), "demo", kRecipe, RunDir::Mode::kFresh, tb);
    run.append_eval(0, {{"pass_at_1", 0.0}});
    for (int64_t s = 1; s <= 5; ++s) log_step(run, s, 0.7 * s);
  }
  const std::string dir = t.path() + "/demo/tb";
  auto files = events_files(dir);
  ASSERT_EQ(files.size(), 1u);
  // file_version, SessionLog START, eval 0, then per step: metrics,
  // samples (even steps), eval (step 3).
  EXPECT_EQ(event_steps(files[0]), (std::vector<int64_t>{0, 0, 0, 1, 2, 2, 3, 3, 4, 4, 5}));
  std::ofstream(files[0], std::ios::binary | std::ios::app) << "torn";
  {
    ::testing::internal::CaptureStderr();
    RunDir run(t.path(), "demo", kRecipe, RunDir::Mode::kResume, tb);
    const int64_t dropped = run.truncate_after(3);
    std::string err = ::testing::internal::GetCapturedStderr();
    // JSONL: metrics 4, 5, samples 4; events: metrics 4, 5, samples 4, the torn tail.
    EXPECT_EQ(dropped, 7);
    EXPECT_NE(err.find("cut short"), std::string::npos) << err;
    EXPECT_EQ(event_steps(files[0]), (std::vector<int64_t>{0, 0, 0, 1, 2, 2, 3, 3}));
    EXPECT_EQ(events_files(dir).size(), 1u) << "no file before the first append";
    log_step(run, 4, 1.0);
  }
  files = events_files(dir);
  ASSERT_EQ(files.size(), 2u);
  // The new file: file_version, SessionLog START at 4, metrics 4, samples 4.
  EXPECT_EQ(event_steps(files[1]), (std::vector<int64_t>{0, 4, 4, 4}));
  // A fresh start with the same recipe leaves no events of the old run.
  ::testing::internal::CaptureStderr();
  { RunDir run(t.path(), "demo", kRecipe, RunDir::Mode::kFresh, tb); }
  ::testing::internal::GetCapturedStderr();
  EXPECT_FALSE(fs::exists(dir));
}

TEST(RunDir, RefusesToClobberADifferentRun) {
  TempRoot t;
  { RunDir run(t.path(), "demo", kRecipe, RunDir::Mode::kFresh); }
  std::string other = "run:\n  name: demo\ntrainer:\n  lr: 0.001\n";
  try {
    RunDir run(t.path(), "demo", other, RunDir::Mode::kFresh);
    ADD_FAILURE() << "a different recipe clobbered the run";
  } catch (const Error& e) {
    std::string w = e.what();
    EXPECT_NE(w.find("line 4"), std::string::npos) << w;
    EXPECT_NE(w.find("lr: 0.001"), std::string::npos) << w;
  }
  EXPECT_EQ(slurp(t.path() + "/demo/recipe.resolved.yaml"), kRecipe);
  // Resuming with a changed recipe is allowed; the old one is kept.
  ::testing::internal::CaptureStderr();
  { RunDir run(t.path(), "demo", other, RunDir::Mode::kResume); }
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(slurp(t.path() + "/demo/recipe.resolved.yaml"), other);
  EXPECT_EQ(slurp(t.path() + "/demo/recipe.resolved.1.yaml"), kRecipe);

  EXPECT_THROW(RunDir(t.path(), "../escape", kRecipe, RunDir::Mode::kFresh), Error);
  EXPECT_THROW(RunDir(t.path(), "", kRecipe, RunDir::Mode::kFresh), Error);
}

// A run of three logged steps with a checkpoint at step 3 (none when
// with_checkpoint is false).
void write_old_run(const std::string& root, bool with_checkpoint) {
  RunDir run(root, "demo", kRecipe, RunDir::Mode::kFresh);
  for (int64_t s = 1; s <= 3; ++s) log_step(run, s, 1.0);
  run.write_summary(nlohmann::json{{"steps", 3}});
  if (!with_checkpoint) return;
  Checkpoint c;
  c.step = 3;
  c.weights = {{"w", at::zeros({2})}};
  save_checkpoint(c, run.checkpoints_dir());
}

// A rerun never deletes work: the same command again on a folder with
// checkpoints refuses and names both ways on; only kOverwrite removes.
TEST(RunDir, FreshStartRefusesARunWithCheckpoints) {
  TempRoot t;
  write_old_run(t.path(), true);
  const std::string dir = t.path() + "/demo";
  const std::string metrics = slurp(dir + "/metrics.jsonl");
  try {
    RunDir run(t.path(), "demo", kRecipe, RunDir::Mode::kFresh);
    ADD_FAILURE() << "a fresh start removed a run with checkpoints";
  } catch (const Error& e) {
    std::string w = e.what();
    EXPECT_NE(w.find("--resume auto"), std::string::npos) << w;
    EXPECT_NE(w.find("--overwrite"), std::string::npos) << w;
    EXPECT_NE(w.find("step 3"), std::string::npos) << w;
  }
  EXPECT_EQ(list_checkpoint_steps(dir + "/checkpoints"), std::vector<int64_t>{3});
  EXPECT_EQ(slurp(dir + "/metrics.jsonl"), metrics);
  EXPECT_TRUE(fs::exists(dir + "/summary.json"));

  ::testing::internal::CaptureStderr();
  RunDir run(t.path(), "demo", kRecipe, RunDir::Mode::kOverwrite);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("afresh"), std::string::npos) << err;
  EXPECT_TRUE(lines_of(run.file("metrics.jsonl")).empty());
  EXPECT_FALSE(fs::exists(run.file("summary.json")));
  EXPECT_TRUE(list_checkpoint_steps(run.checkpoints_dir()).empty());
}

// Without a checkpoint (a run that died before its first one) there is no
// work to keep: the same recipe starts afresh and clears the old outputs.
TEST(RunDir, SameRecipeFreshStartWithoutCheckpointsClearsTheOldRun) {
  TempRoot t;
  write_old_run(t.path(), false);
  ::testing::internal::CaptureStderr();
  RunDir run(t.path(), "demo", kRecipe, RunDir::Mode::kFresh);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("afresh"), std::string::npos) << err;
  EXPECT_TRUE(lines_of(run.file("metrics.jsonl")).empty());
  EXPECT_TRUE(lines_of(run.file("samples.jsonl")).empty());
  EXPECT_FALSE(fs::exists(run.file("summary.json")));
}

// --overwrite replaces a run even when its recipe differs.
TEST(RunDir, OverwriteReplacesADifferentRun) {
  TempRoot t;
  write_old_run(t.path(), true);
  std::string other = "run:\n  name: demo\ntrainer:\n  lr: 0.001\n";
  ::testing::internal::CaptureStderr();
  RunDir run(t.path(), "demo", other, RunDir::Mode::kOverwrite);
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(slurp(run.file("recipe.resolved.yaml")), other);
  EXPECT_TRUE(list_checkpoint_steps(run.checkpoints_dir()).empty());
  EXPECT_TRUE(lines_of(run.file("metrics.jsonl")).empty());
}

TEST(RunDir, SamplesAndSummaryAreValidJson) {
  TempRoot t;
  RunDir run(t.path(), "demo", kRecipe, RunDir::Mode::kFresh);
  SampleRecord r;
  r.index = 3;
  r.prompt = "Solve: 12+30";
  r.completion = std::string("<think>12+30=42</think> \xff\xfe bytes") + "\n\"quoted\"";
  r.gold = "42";
  r.reward = 1.0;
  r.components = {{"accuracy", 1.0}, {"format", 0.0}};
  r.reason = "answer matched";
  r.numbers = {{"advantage", 0.75}, {"completion_tokens", 17}};
  r.texts = {{"finish_reason", "stop"}};
  run.append_samples(4, {r, r});
  std::vector<std::string> lines = lines_of(run.file("samples.jsonl"));
  ASSERT_EQ(lines.size(), 2u);
  nlohmann::json j = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(j["step"], 4);
  EXPECT_EQ(j["index"], 3);
  EXPECT_EQ(j["prompt"], r.prompt);
  EXPECT_EQ(j["gold"], "42");
  EXPECT_EQ(j["components"]["accuracy"], 1.0);
  EXPECT_EQ(j["advantage"], 0.75);
  EXPECT_EQ(j["finish_reason"], "stop");
  EXPECT_NE(j["completion"].get<std::string>().find("\"quoted\""), std::string::npos);

  nlohmann::json summary = {{"base", {{"pass_at_1", 0.125}}},
                            {"final", {{"pass_at_1", 0.625}}},
                            {"steps", 60},
                            {"wall_seconds", 812.5}};
  run.write_summary(summary);
  EXPECT_EQ(nlohmann::json::parse(slurp(run.file("summary.json"))), summary);
  EXPECT_FALSE(fs::exists(run.file("summary.json.tmp")));
}

}  // namespace
}  // namespace zerorl
