#include "core/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace zerorl::log {

namespace {
std::atomic<int> g_rank{0};
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<bool> g_all_ranks{false};
std::mutex g_mu;
const char* name(Level l) {
  switch (l) {
    case Level::kDebug:
      return "DEBUG";
    case Level::kInfo:
      return "INFO";
    case Level::kWarn:
      return "WARN";
    case Level::kError:
      return "ERROR";
  }
  return "?";
}
}  // namespace

void set_rank(int rank) { g_rank = rank; }
int rank() { return g_rank; }
void set_level(Level level) { g_level = static_cast<int>(level); }
void set_all_ranks(bool on) { g_all_ranks = on; }

Level level_from_string(const std::string& s) {
  if (s == "debug") return Level::kDebug;
  if (s == "info") return Level::kInfo;
  if (s == "warn" || s == "warning") return Level::kWarn;
  if (s == "error") return Level::kError;
  ZR_THROW("unknown log level '", s, "' (expected debug, info, warn or error)");
}

bool enabled(Level level) {
  if (static_cast<int>(level) < g_level.load()) return false;
  if (g_rank.load() != 0 && !g_all_ranks.load() && level < Level::kWarn) return false;
  return true;
}

void write(Level level, const std::string& message) {
  auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&now, &tm);
  char ts[16];
  std::strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
  std::lock_guard<std::mutex> lock(g_mu);
  std::fprintf(stderr, "[zerorl r%d %s %s] %s\n", g_rank.load(), ts, name(level), message.c_str());
  std::fflush(stderr);
}

}  // namespace zerorl::log
