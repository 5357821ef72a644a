#include "rewards/command_reward.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>

#include "core/log.h"

namespace zerorl::rewards {

namespace {
constexpr size_t kMaxReply = 1 << 20;
using Clock = std::chrono::steady_clock;

// What a failed call costs (CommandRewardStats): a dead or unstartable
// command, a timeout, or a reply that is not what the protocol asks.
enum class Cost { kCrash, kTimeout, kBad };

// The request line for a sample (command_reward.h: one JSON object and a
// newline); false with *why when the sample cannot be encoded.
bool encode_request(const Sample& s, uint64_t id, std::string* line, std::string* why) {
  nlohmann::json req = {{"id", id},
                        {"prompt", s.prompt},
                        {"completion", s.completion},
                        {"gold", s.gold},
                        {"task", s.task}};
  try {
    req["metadata"] = nlohmann::json::parse(s.metadata_json.empty() ? "{}" : s.metadata_json);
  } catch (const std::exception&) {
    req["metadata"] = s.metadata_json;
  }
  try {
    *line = req.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  } catch (const std::exception& e) {
    *why = std::string("cannot encode sample: ") + e.what();
    return false;
  }
  return true;
}

// The "id" a reply line carries, or -1 when it carries none (not JSON, not
// an object, no unsigned id).
int64_t reply_id(const std::string& reply) {
  try {
    nlohmann::json j = nlohmann::json::parse(reply);
    if (j.is_object() && j.contains("id") && j["id"].is_number_unsigned())
      return static_cast<int64_t>(j["id"].get<uint64_t>());
  } catch (const std::exception&) {
  }
  return -1;
}
// A reply line to request `id` into *r (value, error); false with *why when
// it is not a JSON object carrying that id and a finite numeric "reward".
bool parse_reply(const std::string& reply, uint64_t id, RewardResult* r, std::string* why) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(reply);
  } catch (const std::exception&) {
    *why = "reply is not JSON: '" + reply.substr(0, 80) + "'";
    return false;
  }
  if (!j.is_object() || !j.contains("id") || !j["id"].is_number_unsigned()) {
    *why = "reply has no \"id\" (each reply must carry its request's id): '" + reply.substr(0, 80) +
           "'";
    return false;
  }
  if (j["id"].get<uint64_t>() != id) {
    *why = "reply carries id " + std::to_string(j["id"].get<uint64_t>()) + ", expected " +
           std::to_string(id);
    return false;
  }
  if (!j.contains("reward") || !j["reward"].is_number()) {
    *why = "reply has no numeric \"reward\": '" + reply.substr(0, 80) + "'";
    return false;
  }
  double v = j["reward"].get<double>();
  if (!std::isfinite(v)) {
    *why = "reply reward is not finite";
    return false;
  }
  r->value = v;
  if (j.contains("error") && j["error"].is_string()) r->error = j["error"].get<std::string>();
  return true;
}
}  // namespace

struct CommandReward::Worker {
  std::mutex mu;
  pid_t pid = -1;
  int fd = -1;           // our end of the socketpair (child's stdin+stdout)
  std::string pending;   // bytes read past the last newline
  bool fresh = false;    // started, not yet answered a request
  uint64_t next_id = 1;  // the id of this worker's next request

  // The whole process group: what the command started dies with it.
  void kill_child() {
    if (pid > 0) {
      ::kill(-pid, SIGKILL);
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
    const pid_t parent = ::getpid();
    pid_t p = ::fork();
    if (p < 0) {
      ::close(sv[0]);
      ::close(sv[1]);
      ZR_THROW("command reward: fork failed: ", std::strerror(errno));
    }
    if (p == 0) {
      // Child: only async-signal-safe calls until exec.  Its own process
      // group, so that a timeout or the end of the run can kill everything
      // the command starts (kill(-pid)).
      ::setpgid(0, 0);
      // And killed if zerorl dies without running its destructors (SIGKILL).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
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
    ::setpgid(p, p);  // also here: no race with a kill before the child ran
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
      ::kill(-pid, SIGKILL);  // what it left running
      pid = -1;
      if (fd >= 0) ::close(fd);
      fd = -1;
      return false;
    }
    return true;
  }

  // Writes `line` and reads one reply line, within `budget_ms`.  On failure
  // returns false with *cost and *why set (the child is killed where it can
  // no longer be trusted); on success *reply holds the line.
  // Lines for which `stale` is true are dropped and reading goes on.
  bool exchange(const std::string& line, double budget_ms, double timeout_ms,
                const std::function<bool(const std::string&)>& stale, Cost* cost, std::string* why,
                std::string* reply) {
    const auto deadline = Clock::now() + std::chrono::microseconds((long long)(budget_ms * 1000));
    auto remaining_ms = [&] {
      auto d =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      return (int)std::max<long long>(0, d);
    };
    auto failed = [&](Cost c, std::string w) {
      *cost = c;
      *why = std::move(w);
      return false;
    };
    // Write the request (MSG_NOSIGNAL: a dead child is an error, not SIGPIPE).
    size_t off = 0;
    while (off < line.size()) {
      pollfd pfd{fd, POLLOUT, 0};
      int pr = ::poll(&pfd, 1, remaining_ms());
      if (pr == 0) {
        kill_child();
        return failed(Cost::kTimeout, "timeout writing the request after " +
                                          std::to_string((int)timeout_ms) + " ms");
      }
      if (pr < 0 && errno == EINTR) continue;
      ssize_t n = ::send(fd, line.data() + off, line.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) {
        kill_child();
        return failed(Cost::kCrash, "the command exited (write failed)");
      }
      off += (size_t)n;
    }
    // Read one reply line.
    for (;;) {
      size_t nl = pending.find('\n');
      if (nl != std::string::npos) {
        *reply = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        fresh = false;
        if (stale(*reply)) continue;
        return true;
      }
      if (pending.size() > kMaxReply) {
        kill_child();
        return failed(Cost::kBad, "reply longer than 1 MiB");
      }
      int wait = remaining_ms();
      pollfd pfd{fd, POLLIN, 0};
      int pr = wait > 0 ? ::poll(&pfd, 1, wait) : 0;
      if (pr == 0) {
        kill_child();
        return failed(Cost::kTimeout,
                      "timeout: no reply within " + std::to_string((int)budget_ms) + " ms");
      }
      if (pr < 0) {
        if (errno == EINTR) continue;
        kill_child();
        return failed(Cost::kCrash, std::string("poll failed: ") + std::strerror(errno));
      }
      char buf[65536];
      ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) {
        int st = 0;
        std::string how = "the command exited";
        if (pid > 0 && ::waitpid(pid, &st, 0) == pid) {
          if (WIFSIGNALED(st))
            how = "the command was killed by signal " + std::to_string(WTERMSIG(st));
          else if (WIFEXITED(st))
            how = "the command exited with status " + std::to_string(WEXITSTATUS(st));
          pid = -1;
        }
        kill_child();
        return failed(Cost::kCrash, how + " before replying");
      }
      pending.append(buf, (size_t)n);
    }
  }
};

namespace {

// Why `command` cannot start, or "" when it may: its first word must be a
// shell builtin or an executable file (by path, or found on PATH).  A
// command the shell would have to interpret further (quotes, variables,
// redirections, ...) is left to the shell.
std::string why_cannot_start(const std::string& command) {
  const std::string word = command.substr(0, command.find_first_of(" \t\n"));
  if (word.empty() || word.find_first_of("$`'\"\\;|&<>(){}*?~=[") != std::string::npos) return "";
  static const char* const kBuiltins[] = {
      "exit", "exec", "cd",   "true", "false", ":",      "echo",   "printf", "test",  "set",
      "eval", "trap", "wait", "read", "shift", "export", "ulimit", "umask",  "sleep", "."};
  for (const char* b : kBuiltins)
    if (word == b) return "";
  auto runnable = [](const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
  };
  if (word.find('/') != std::string::npos)
    return runnable(word) ? "" : "'" + word + "' is not an executable file";
  const char* path_env = std::getenv("PATH");
  std::string path = path_env ? path_env : "/usr/bin:/bin";
  for (size_t from = 0; from <= path.size();) {
    size_t to = path.find(':', from);
    if (to == std::string::npos) to = path.size();
    std::string dir = path.substr(from, to - from);
    if (runnable((dir.empty() ? "." : dir) + "/" + word)) return "";
    from = to + 1;
  }
  return "'" + word + "' is not found on PATH";
}

}  // namespace

CommandRewardConfig CommandRewardConfig::from(const ConfigNode& n) {
  CommandRewardConfig c;
  c.command = n.get<std::string>("command");
  ZR_CHECK(!c.command.empty(), n.where("command"), ": ", n.path("command"), " is empty");
  const std::string why = why_cannot_start(c.command);
  ZR_CHECK(why.empty(), n.where("command"), ": ", n.path("command"), " cannot start: ", why);
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

// checkout (a free worker, started if it is not running) -> exchange (one
// request line, one reply line, within the timeout) -> parse.
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
  auto fail = [&](Cost cost, const std::string& why) {
    (cost == Cost::kTimeout ? timeouts_ : cost == Cost::kBad ? bad_ : crashes_).fetch_add(1);
    r.value = 0.0;
    r.error = "command reward: " + why;
    r.failed = true;
    ZR_LOG_WARN("reward command '", cfg_.command, "': ", why);
    return r;
  };

  if (!w->alive()) {
    if (restarts_.load() >= cfg_.max_restarts)
      return fail(Cost::kCrash,
                  "disabled after " + std::to_string(cfg_.max_restarts) + " restarts");
    try {
      w->start(cfg_);
    } catch (const std::exception& e) {
      return fail(Cost::kCrash, e.what());
    }
    restarts_.fetch_add(1);
  }

  std::string line, reply, why;
  const uint64_t id = w->next_id++;
  if (!encode_request(s, id, &line, &why)) return fail(Cost::kBad, why);
  const double budget_ms = cfg_.timeout_ms + (w->fresh ? cfg_.startup_timeout_ms : 0.0);
  Cost cost = Cost::kCrash;
  // A late reply to an earlier request that already failed (after a line
  // that was not a reply, or a timeout) belongs to no one now: dropped.
  auto stale = [&](const std::string& line_read) {
    const int64_t got = reply_id(line_read);
    if (got < 0 || static_cast<uint64_t>(got) >= id) return false;
    ZR_LOG_WARN("reward command '", cfg_.command, "': dropped a late reply to request ", got,
                " while waiting for request ", id);
    return true;
  };
  if (!w->exchange(line, budget_ms, cfg_.timeout_ms, stale, &cost, &why, &reply))
    return fail(cost, why);
  if (!parse_reply(reply, id, &r, &why)) return fail(Cost::kBad, why);
  return r;
}

}  // namespace zerorl::rewards
