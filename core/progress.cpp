#include "core/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/log.h"

namespace zerorl {

Progress::Progress(std::string label, long total, double plain_interval_s)
    : label_(std::move(label)),
      total_(total),
      plain_interval_s_(plain_interval_s),
      tty_(isatty(STDERR_FILENO) != 0),
      enabled_(log::rank() == 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

Progress::~Progress() {
  if (!finished_) finish();
}

std::string Progress::format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  long t = std::lround(s);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof(buf), "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof(buf), "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof(buf), "%lds", t);
  return buf;
}

std::string Progress::render(long done, const std::vector<std::pair<std::string, double>>& live,
                             int width) const {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double frac = total_ > 0 ? std::min(1.0, static_cast<double>(done) / total_) : 0.0;
  double eta = done > 0 ? elapsed / done * (total_ - done) : NAN;
  std::ostringstream os;
  os << label_ << " ";
  if (width > 0) {
    int filled = static_cast<int>(std::lround(frac * width));
    os << "[" << std::string(filled, '#') << std::string(width - filled, '.') << "] ";
  }
  os << done << "/" << total_ << " " << format_duration(elapsed) << " ETA " << format_duration(eta);
  for (auto& [k, v] : live) {
    char buf[48];
    std::snprintf(buf, sizeof(buf), " %s %.4g", k.c_str(), v);
    os << buf;
  }
  return os.str();
}

void Progress::update(long done, const std::vector<std::pair<std::string, double>>& live) {
  last_done_ = done;
  last_live_ = live;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s", render(done, live, 30).c_str());
    std::fflush(stderr);
  } else if (std::chrono::duration<double>(now - last_print_).count() >= plain_interval_s_ ||
             done >= total_) {
    std::fprintf(stderr, "%s\n", render(done, live, 0).c_str());
    std::fflush(stderr);
    last_print_ = now;
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (!enabled_) return;
  if (tty_) std::fprintf(stderr, "\r\033[K%s\n", render(last_done_, last_live_, 30).c_str());
  std::fflush(stderr);
}

}  // namespace zerorl
