// Logging with rank prefix and levels, to stderr.
//
//   ZR_LOG_INFO("step ", step, " reward ", r);
//   -> "[zerorl r0 20:01:02 INFO] step 3 reward 0.5"
//
// Thread-safe (one line is written atomically).  The level comes from
// log::set_level (the recipe's `log.level`); ranks other than 0 log only
// warnings and errors unless log::set_all_ranks(true).
#pragma once

#include <string>

#include "core/error.h"

namespace zerorl::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void set_rank(int rank);
int rank();
void set_level(Level level);
Level level_from_string(const std::string& name);  // debug|info|warn|error, throws otherwise
void set_all_ranks(bool on);
bool enabled(Level level);
void write(Level level, const std::string& message);

}  // namespace zerorl::log

#define ZR_LOG_AT(lvl, ...)                                                                     \
  do {                                                                                          \
    if (::zerorl::log::enabled(lvl)) ::zerorl::log::write(lvl, ::zerorl::str_cat(__VA_ARGS__)); \
  } while (0)
#define ZR_LOG_DEBUG(...) ZR_LOG_AT(::zerorl::log::Level::kDebug, __VA_ARGS__)
#define ZR_LOG_INFO(...) ZR_LOG_AT(::zerorl::log::Level::kInfo, __VA_ARGS__)
#define ZR_LOG_WARN(...) ZR_LOG_AT(::zerorl::log::Level::kWarn, __VA_ARGS__)
#define ZR_LOG_ERROR(...) ZR_LOG_AT(::zerorl::log::Level::kError, __VA_ARGS__)
