// A reward computed by an external command speaking JSON lines, so a reward
// can be written in any language.
//
// Protocol: for each sample zerorl writes one line to the command's stdin
//   {"id": 7, "prompt": "...", "completion": "...", "gold": "...",
//    "task": "...", "metadata": {...}}
// and reads one line from its stdout, carrying the request's id:
//   {"id": 7, "reward": 0.75}   or   {"id": 7, "reward": 0, "error": "why"}
// Replies are matched by id, so a stray output line costs at most the
// sample it arrived for: a late reply to an earlier request is dropped
// with a warning, never given to a later sample.  The command must flush
// stdout after each line; it stays alive between samples.  stderr is
// passed through (tracebacks stay visible).
//
// Recipe:
//   rewards:
//     judge: {type: command, command: "python3 my_reward.py", timeout_ms: 5000,
//             cpu_seconds: 600, memory_mb: 2048, processes: 2}
//
// Failure handling (each costs that sample its reward: 0 with the reason,
// logged and counted in stats(); the run goes on):
//   * no reply within timeout_ms       -> the process is killed, restarted on
//                                         the next call ("timeout"); the first
//                                         call to a freshly started process may
//                                         take startup_timeout_ms longer (an
//                                         interpreter's start-up is not a hang)
//   * the process exits / crashes       -> restarted on the next call ("crash")
//   * the reply is not JSON, has no "id", or no numeric "reward" -> "bad
//     reply" (the process is kept: ids keep later replies in step)
//   * after max_restarts restarts the command is disabled: every sample
//     scores 0 with that reason, and one error is logged.
// Processes: each worker leads its own process group, killed whole
// (kill(-pid, SIGKILL)) on a timeout, after a crash and by the destructor,
// so nothing the command started outlives it; PR_SET_PDEATHSIG kills the
// worker if zerorl itself is killed.  A command whose first word is neither
// a shell builtin nor an executable (by path or on PATH) is refused by
// CommandRewardConfig::from, naming the recipe key, before the run starts.
// Limits are set in the child between fork() and exec(): RLIMIT_CPU
// (cpu_seconds, over the process's whole life: a runaway worker dies and is
// replaced) and RLIMIT_AS (memory_mb).  The command runs through
// `/bin/sh -c "exec COMMAND"`.  Thread-safe: `processes` workers serve calls
// in parallel; more concurrent calls wait for a free worker.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "rewards/reward.h"

namespace zerorl::rewards {

struct CommandRewardConfig {
  std::string command;
  double timeout_ms = 5000;
  double startup_timeout_ms = 10000;
  int cpu_seconds = 600;
  int memory_mb = 2048;
  int processes = 1;
  int max_restarts = 100;
  static CommandRewardConfig from(const ConfigNode& n);
};

struct CommandRewardStats {
  long long calls = 0, timeouts = 0, crashes = 0, bad_replies = 0, restarts = 0;
};

class CommandReward : public Reward {
 public:
  explicit CommandReward(CommandRewardConfig cfg);
  ~CommandReward() override;
  RewardResult score(const Sample& sample) const override;
  CommandRewardStats stats() const;

  struct Worker;

 private:
  CommandRewardConfig cfg_;
  std::vector<std::unique_ptr<Worker>> workers_;
  mutable std::atomic<size_t> next_{0};
  mutable std::atomic<long long> calls_{0}, timeouts_{0}, crashes_{0}, bad_{0}, restarts_{0};
};

}  // namespace zerorl::rewards
