#include "rewards/command_reward.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>

#include "core/log.h"

namespace zerorl::rewards {

namespace {
constexpr size_t kMaxReply = 1 << 20;
using Clock = std::chrono::steady_clock;
}  // namespace

struct CommandReward::Worker {
  std::mutex mu;
  pid_t pid = -1;
  int fd = -1;          // our end of the socketpair (child's stdin+stdout)
  std::string pending;  // bytes read past the last newline
  bool fresh = false;   // started, not yet answered a request

  void kill_child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      int st;
      ::waitpid(pid, &st, 0);
    }
    if (fd >= 0) ::close(fd);
    pid = -1;
    fd = -1;
    pending.clear();
  }

  // fork + exec with limits; throws on failure to start.
  void start(const CommandRewardConfig& c) {
    int sv[2];
    ZR_CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
             "command reward: socketpair failed: ", std::strerror(errno));
    std::string sh = "exec " + c.command;
    pid_t p = ::fork();
    if (p < 0) {
      ::close(sv[0]);
      ::close(sv[1]);
      ZR_THROW("command reward: fork failed: ", std::strerror(errno));
    }
    if (p == 0) {
      // Child: only async-signal-safe calls until exec.
      ::dup2(sv[1], 0);
      ::dup2(sv[1], 1);
      struct rlimit cpu = {(rlim_t)c.cpu_seconds, (rlim_t)c.cpu_seconds + 1};
      ::setrlimit(RLIMIT_CPU, &cpu);
      rlim_t mem = (rlim_t)c.memory_mb * 1024 * 1024;
      struct rlimit as = {mem, mem};
      ::setrlimit(RLIMIT_AS, &as);
      ::execl("/bin/sh", "sh", "-c", sh.c_str(), (char*)nullptr);
      ::_exit(127);
    }
    ::close(sv[1]);
    pid = p;
    fd = sv[0];
    pending.clear();
    fresh = true;
  }

  bool alive() {
    if (pid <= 0) return false;
    int st;
    pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      pid = -1;
      if (fd >= 0) ::close(fd);
      fd = -1;
      return false;
    }
    return true;
  }
};

CommandRewardConfig CommandRewardConfig::from(const ConfigNode& n) {
  CommandRewardConfig c;
  c.command = n.get<std::string>("command");
  ZR_CHECK(!c.command.empty(), n.where("command"), ": ", n.path("command"), " is empty");
  c.timeout_ms = n.get<double>("timeout_ms", 5000.0);
  c.startup_timeout_ms = n.get<double>("startup_timeout_ms", 10000.0);
  c.cpu_seconds = n.get<int>("cpu_seconds", 600);
  c.memory_mb = n.get<int>("memory_mb", 2048);
  c.processes = n.get<int>("processes", 1);
  c.max_restarts = n.get<int>("max_restarts", 100);
  ZR_CHECK(c.timeout_ms > 0, n.where("timeout_ms"), ": ", n.path("timeout_ms"), " must be > 0");
  ZR_CHECK(c.cpu_seconds > 0, n.where("cpu_seconds"), ": ", n.path("cpu_seconds"), " must be > 0");
  ZR_CHECK(c.memory_mb > 0, n.where("memory_mb"), ": ", n.path("memory_mb"), " must be > 0");
  ZR_CHECK(c.processes >= 1 && c.processes <= 256, n.where("processes"), ": ", n.path("processes"),
           " must be in [1, 256]");
  return c;
}

CommandReward::CommandReward(CommandRewardConfig cfg) : cfg_(std::move(cfg)) {
  for (int i = 0; i < cfg_.processes; ++i) {
    workers_.push_back(std::make_unique<Worker>());
    workers_.back()->start(cfg_);
  }
}

CommandReward::~CommandReward() {
  for (auto& w : workers_) w->kill_child();
}

CommandRewardStats CommandReward::stats() const {
  return {calls_.load(), timeouts_.load(), crashes_.load(), bad_.load(), restarts_.load()};
}

RewardResult CommandReward::score(const Sample& s) const {
  calls_.fetch_add(1);
  RewardResult r;
  // Pick a free worker; otherwise wait for one in turn.
  Worker* w = nullptr;
  std::unique_lock<std::mutex> lock;
  for (auto& cand : workers_) {
    std::unique_lock<std::mutex> l(cand->mu, std::try_to_lock);
    if (l.owns_lock()) {
      w = cand.get();
      lock = std::move(l);
      break;
    }
  }
  if (!w) {
    w = workers_[next_.fetch_add(1) % workers_.size()].get();
    lock = std::unique_lock<std::mutex>(w->mu);
  }
  auto fail = [&](std::atomic<long long>& counter, const std::string& why) {
    counter.fetch_add(1);
    r.value = 0.0;
    r.error = "command reward: " + why;
    r.failed = true;
    ZR_LOG_WARN("reward command '", cfg_.command, "': ", why);
    return r;
  };

  if (!w->alive()) {
    if (restarts_.load() >= cfg_.max_restarts)
      return fail(crashes_, "disabled after " + std::to_string(cfg_.max_restarts) + " restarts");
    try {
      w->start(cfg_);
    } catch (const std::exception& e) {
      return fail(crashes_, e.what());
    }
    restarts_.fetch_add(1);
  }

  nlohmann::json req = {
      {"prompt", s.prompt}, {"completion", s.completion}, {"gold", s.gold}, {"task", s.task}};
  try {
    req["metadata"] = nlohmann::json::parse(s.metadata_json.empty() ? "{}" : s.metadata_json);
  } catch (const std::exception&) {
    req["metadata"] = s.metadata_json;
  }
  std::string line;
  try {
    line = req.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  } catch (const std::exception& e) {
    return fail(bad_, std::string("cannot encode sample: ") + e.what());
  }

  const double budget_ms = cfg_.timeout_ms + (w->fresh ? cfg_.startup_timeout_ms : 0.0);
  const auto deadline = Clock::now() + std::chrono::microseconds((long long)(budget_ms * 1000));
  auto remaining_ms = [&] {
    auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return (int)std::max<long long>(0, d);
  };
  // Write the request (MSG_NOSIGNAL: a dead child is an error, not SIGPIPE).
  size_t off = 0;
  while (off < line.size()) {
    pollfd pfd{w->fd, POLLOUT, 0};
    int pr = ::poll(&pfd, 1, remaining_ms());
    if (pr == 0) {
      w->kill_child();
      return fail(timeouts_, "timeout writing the request after " +
                                 std::to_string((int)cfg_.timeout_ms) + " ms");
    }
    if (pr < 0 && errno == EINTR) continue;
    ssize_t n = ::send(w->fd, line.data() + off, line.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) {
      w->kill_child();
      return fail(crashes_, "the command exited (write failed)");
    }
    off += (size_t)n;
  }
  // Read one reply line.
  for (;;) {
    size_t nl = w->pending.find('\n');
    if (nl != std::string::npos) {
      std::string reply = w->pending.substr(0, nl);
      w->pending.erase(0, nl + 1);
      w->fresh = false;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(reply);
      } catch (const std::exception&) {
        return fail(bad_, "reply is not JSON: '" + reply.substr(0, 80) + "'");
      }
      if (!j.is_object() || !j.contains("reward") || !j["reward"].is_number())
        return fail(bad_, "reply has no numeric \"reward\": '" + reply.substr(0, 80) + "'");
      double v = j["reward"].get<double>();
      if (!std::isfinite(v)) return fail(bad_, "reply reward is not finite");
      r.value = v;
      if (j.contains("error") && j["error"].is_string()) r.error = j["error"].get<std::string>();
      return r;
    }
    if (w->pending.size() > kMaxReply) {
      w->kill_child();
      return fail(bad_, "reply longer than 1 MiB");
    }
    int wait = remaining_ms();
    pollfd pfd{w->fd, POLLIN, 0};
    int pr = wait > 0 ? ::poll(&pfd, 1, wait) : 0;
    if (pr == 0) {
      w->kill_child();
      return fail(timeouts_, "timeout: no reply within " + std::to_string((int)budget_ms) + " ms");
    }
    if (pr < 0) {
      if (errno == EINTR) continue;
      w->kill_child();
      return fail(crashes_, std::string("poll failed: ") + std::strerror(errno));
    }
    char buf[65536];
    ssize_t n = ::recv(w->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) {
      int st = 0;
      std::string how = "the command exited";
      if (w->pid > 0 && ::waitpid(w->pid, &st, 0) == w->pid) {
        if (WIFSIGNALED(st))
          how = "the command was killed by signal " + std::to_string(WTERMSIG(st));
        else if (WIFEXITED(st))
          how = "the command exited with status " + std::to_string(WEXITSTATUS(st));
        w->pid = -1;
      }
      w->kill_child();
      return fail(crashes_, how + " before replying");
    }
    w->pending.append(buf, (size_t)n);
  }
}

}  // namespace zerorl::rewards
