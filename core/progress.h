// Progress display for long loops (training steps, pretraining, evaluation).
//
// On a TTY (stderr) it redraws one line: a bar, done/total, rate, ETA and
// live numbers ("reward 0.41 len 52").  Otherwise it prints a plain line at
// most every `plain_interval_s` seconds and at the end, so logs stay readable.
// Only rank 0 draws; other ranks' Progress objects are silent.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace zerorl {

class Progress {
 public:
  Progress(std::string label, long total, double plain_interval_s = 10.0);
  ~Progress();
  // Set the count of finished items and the live numbers shown beside the bar.
  void update(long done, const std::vector<std::pair<std::string, double>>& live = {});
  void finish();
  // Formatting, exposed for tests.
  static std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"
  std::string render(long done, const std::vector<std::pair<std::string, double>>& live,
                     int width) const;

 private:
  std::string label_;
  long total_;
  double plain_interval_s_;
  bool tty_;
  bool enabled_;
  bool finished_ = false;
  long last_done_ = 0;
  std::vector<std::pair<std::string, double>> last_live_;
  std::chrono::steady_clock::time_point start_, last_print_;
};

}  // namespace zerorl
