// External-command rewards (JSON lines): the good path and every failure.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "rewards/command_reward.h"

namespace zr = zerorl::rewards;
namespace fs = std::filesystem;

namespace {

// A reward server in Python whose behaviour depends on the completion.
const char* kScript = R"PY(
import json, sys, time, os
for line in sys.stdin:
    req = json.loads(line)
    c = req["completion"]
    if c == "hang":
        time.sleep(60)
    elif c == "crash":
        os._exit(3)
    elif c == "garbage":
        print("this is not json", flush=True); continue
    elif c == "wrong_field":
        print(json.dumps({"score": 1}), flush=True); continue
    elif c == "memory":
        x = bytearray(1 << 30)
    elif c == "spin":
        while True: pass
    n = req["metadata"].get("n", 0) if isinstance(req["metadata"], dict) else 0
    print(json.dumps({"reward": len(c) + n}), flush=True)
)PY";

std::string script_path() {
  fs::path p =
      fs::temp_directory_path() / ("zr_reward_server_" + std::to_string(::getpid()) + ".py");
  std::ofstream(p) << kScript;
  return p.string();
}

zr::Sample sample(const std::string& completion) {
  zr::Sample s;
  s.completion = completion;
  s.metadata_json = R"({"n": 1})";
  return s;
}

zr::CommandRewardConfig config() {
  zr::CommandRewardConfig c;
  c.command = std::string("python3 -u ") + script_path();
  c.timeout_ms = 3000;
  c.memory_mb = 512;
  c.cpu_seconds = 2;
  return c;
}

}  // namespace

TEST(CommandReward, ScoresThroughJsonLines) {
  zr::CommandReward r(config());
  EXPECT_DOUBLE_EQ(r.score(sample("abc")).value, 4.0);
  EXPECT_DOUBLE_EQ(r.score(sample("ab")).value, 3.0);
  EXPECT_EQ(r.stats().restarts, 0);
}

TEST(CommandReward, EachFailureCostsOneSampleAndTheRunGoesOn) {
  auto cfg = config();
  cfg.timeout_ms = 1500;
  zr::CommandReward r(cfg);
  EXPECT_DOUBLE_EQ(r.score(sample("ok")).value, 3.0);  // started: the start-up allowance is used up
  auto t0 = std::chrono::steady_clock::now();
  auto hang = r.score(sample("hang"));
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(hang.value, 0.0);
  EXPECT_NE(hang.error.find("timeout"), std::string::npos) << hang.error;
  EXPECT_LT(ms, 3000.0);
  EXPECT_DOUBLE_EQ(r.score(sample("ok")).value, 3.0);  // restarted

  auto crash = r.score(sample("crash"));
  EXPECT_EQ(crash.value, 0.0);
  EXPECT_NE(crash.error.find("status 3"), std::string::npos) << crash.error;
  EXPECT_DOUBLE_EQ(r.score(sample("ok")).value, 3.0);

  auto garbage = r.score(sample("garbage"));
  EXPECT_NE(garbage.error.find("not JSON"), std::string::npos) << garbage.error;
  auto wrong = r.score(sample("wrong_field"));
  EXPECT_NE(wrong.error.find("\"reward\""), std::string::npos) << wrong.error;
  EXPECT_DOUBLE_EQ(r.score(sample("ok")).value, 3.0);

  auto s = r.stats();
  EXPECT_EQ(s.timeouts, 1);
  EXPECT_EQ(s.crashes, 1);
  EXPECT_EQ(s.bad_replies, 2);
  EXPECT_EQ(s.restarts, 2);
}

TEST(CommandReward, MemoryAndCpuLimitsKillTheWorkerNotTheRun) {
  auto cfg = config();
  cfg.cpu_seconds = 1;
  cfg.timeout_ms = 20000;  // the CPU limit, not the timeout, must end the spin
  zr::CommandReward r(cfg);
  auto mem = r.score(sample("memory"));  // 1 GiB under a 512 MiB RLIMIT_AS: MemoryError
  EXPECT_EQ(mem.value, 0.0);
  EXPECT_FALSE(mem.error.empty());
  EXPECT_DOUBLE_EQ(r.score(sample("ok")).value, 3.0);
  auto spin = r.score(sample("spin"));  // killed by RLIMIT_CPU (SIGXCPU) long before the timeout
  EXPECT_EQ(spin.value, 0.0);
  EXPECT_NE(spin.error.find("signal"), std::string::npos) << spin.error;
  EXPECT_DOUBLE_EQ(r.score(sample("ok")).value, 3.0);
}

TEST(CommandReward, GivesUpAfterMaxRestarts) {
  auto cfg = config();
  cfg.max_restarts = 1;
  zr::CommandReward r(cfg);
  r.score(sample("crash"));
  r.score(sample("crash"));  // the one restart
  auto v = r.score(sample("ok"));
  EXPECT_EQ(v.value, 0.0);
  EXPECT_NE(v.error.find("disabled"), std::string::npos) << v.error;
}
