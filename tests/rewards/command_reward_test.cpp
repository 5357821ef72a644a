// External-command rewards (JSON lines): the good path and every failure.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include <signal.h>
#include <unistd.h>

#include <thread>

#include "core/config.h"
#include "core/error.h"
#include "rewards/command_reward.h"
#include "rewards/pipeline.h"

namespace zr = zerorl::rewards;
namespace fs = std::filesystem;

namespace {

// A reward server in Python whose behaviour depends on the completion.
const char* kScript = R"PY(
import json, sys, time, os, subprocess
for line in sys.stdin:
    req = json.loads(line)
    c = req["completion"]
    if c.startswith("spawn"):
        # A process of its own, reported by pid, which must not outlive us.
        child = subprocess.Popen(["sleep", "300"])
        with open(c.split(":", 1)[1], "w") as f: f.write(str(child.pid))
        if c.startswith("spawn_hang"): time.sleep(60)
    if c == "chatty":
        print("debug: scoring", c, flush=True)  # a stray line before the reply
    if c == "hang":
        time.sleep(60)
    elif c == "crash":
        os._exit(3)
    elif c == "garbage":
        print("this is not json", flush=True); continue
    elif c == "wrong_field":
        print(json.dumps({"id": req["id"], "score": 1}), flush=True); continue
    elif c == "no_id":
        print(json.dumps({"reward": 1}), flush=True); continue
    elif c == "huge":
        print(json.dumps({"id": req["id"], "reward": 1e300}), flush=True); continue
    elif c == "memory":
        x = bytearray(1 << 30)
    elif c == "spin":
        while True: pass
    n = req["metadata"].get("n", 0) if isinstance(req["metadata"], dict) else 0
    print(json.dumps({"id": req["id"], "reward": len(c) + n}), flush=True)
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

// ---- issue 21 item 5: a protocol that cannot shift, processes that cannot outlive ----

TEST(CommandReward, AStrayLineShiftsNoLaterReward) {
  // Before replies carried ids, one extra output line moved every later
  // reply onto the next sample.
  zr::CommandReward r(config());
  EXPECT_DOUBLE_EQ(r.score(sample("abc")).value, 4.0);
  auto chatty = r.score(sample("chatty"));  // its own reply arrives late, is dropped
  EXPECT_NE(chatty.error.find("not JSON"), std::string::npos) << chatty.error;
  for (const char* c : {"a", "abcd", "ab", "abcdefg", "abc", "a"})
    EXPECT_DOUBLE_EQ(r.score(sample(c)).value, std::string(c).size() + 1.0) << c;
  auto no_id = r.score(sample("no_id"));
  EXPECT_NE(no_id.error.find("\"id\""), std::string::npos) << no_id.error;
  EXPECT_DOUBLE_EQ(r.score(sample("ab")).value, 3.0);
}

namespace {
bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  // A zombie waiting for a parent that does not reap is dead too.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string a, b, state;
  stat >> a >> b >> state;
  return state == "Z";
}
pid_t read_pid(const std::string& path) {
  std::ifstream in(path);
  pid_t p = -1;
  in >> p;
  return p;
}
}  // namespace

TEST(CommandReward, NothingTheCommandStartedOutlivesIt) {
  const std::string at_exit = (fs::temp_directory_path() / "zr_spawn_exit.pid").string();
  const std::string at_timeout = (fs::temp_directory_path() / "zr_spawn_timeout.pid").string();
  pid_t exit_child = -1, timeout_child = -1;
  {
    auto cfg = config();
    cfg.timeout_ms = 1500;
    zr::CommandReward r(cfg);
    EXPECT_DOUBLE_EQ(r.score(sample("spawn:" + at_exit)).value, 1.0 + 6 + at_exit.size());
    exit_child = read_pid(at_exit);
    ASSERT_GT(exit_child, 0);
    EXPECT_FALSE(process_gone(exit_child));
    auto hang = r.score(sample("spawn_hang:" + at_timeout));
    EXPECT_NE(hang.error.find("timeout"), std::string::npos) << hang.error;
    timeout_child = read_pid(at_timeout);
    ASSERT_GT(timeout_child, 0);
    for (int i = 0; i < 100 && !process_gone(timeout_child); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_TRUE(process_gone(timeout_child)) << "a timed-out worker's child survived";
  }
  for (int i = 0; i < 100 && !process_gone(exit_child); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(process_gone(exit_child)) << "a worker's child outlived the reward";
  if (!process_gone(exit_child)) ::kill(exit_child, SIGKILL);
  if (!process_gone(timeout_child)) ::kill(timeout_child, SIGKILL);
  fs::remove(at_exit);
  fs::remove(at_timeout);
}

TEST(CommandReward, ACommandThatCannotStartFailsAtStartUp) {
  auto recipe = zerorl::Recipe::from_string(
      "rewards:\n  judge: {type: command, command: \"no-such-reward-binary --x\"}\n", "r.yaml");
  try {
    zr::build_reward_pipeline(recipe.section("rewards"), 1);
    ADD_FAILURE() << "a command that cannot start was accepted";
  } catch (const zerorl::Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("r.yaml:2"), std::string::npos) << m;
    EXPECT_NE(m.find("rewards.judge.command"), std::string::npos) << m;
    EXPECT_NE(m.find("'no-such-reward-binary' is not found on PATH"), std::string::npos) << m;
  }
  auto by_path = zerorl::Recipe::from_string(
      "rewards:\n  judge: {type: command, command: \"/nonexistent/judge\"}\n", "r.yaml");
  EXPECT_THROW(zr::build_reward_pipeline(by_path.section("rewards"), 1), zerorl::Error);
  // Builtins and what the shell must interpret are left to the shell.
  auto builtin = zerorl::Recipe::from_string(
      "rewards:\n  judge: {type: command, command: \"exit 3\"}\n", "r.yaml");
  EXPECT_NO_THROW(zr::build_reward_pipeline(builtin.section("rewards"), 1));
}

TEST(CommandReward, ARewardOutsideTheClipIsThatSamplesError) {
  auto recipe = zerorl::Recipe::from_string(
      "rewards:\n  judge: {type: command, command: \"python3 -u " + script_path() + "\"}\n");
  auto p = zr::build_reward_pipeline(recipe.section("rewards"), 1);
  auto huge = p.score({sample("huge"), sample("ab")});
  EXPECT_EQ(huge[0].total, 0.0);
  EXPECT_TRUE(huge[0].failed[0]);
  EXPECT_NE(huge[0].errors[0].find("outside rewards.clip"), std::string::npos) << huge[0].errors[0];
  EXPECT_DOUBLE_EQ(huge[1].total, 3.0);
  auto tight = zerorl::Recipe::from_string(
      "rewards:\n  clip: 2.5\n  judge: {type: command, command: \"python3 -u " + script_path() +
      "\"}\n");
  auto q = zr::build_reward_pipeline(tight.section("rewards"), 1);
  EXPECT_TRUE(q.score({sample("ab")})[0].failed[0]);  // 3 > 2.5
  EXPECT_FALSE(q.score({sample("a")})[0].failed[0]);  // 2 <= 2.5
}
