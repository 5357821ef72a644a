// MetricReducer: a step's metrics as means (sum and count), sums, maxima
// and minima, reduced across ranks with two all-reduces in total (plus one
// scalar for the padded length).  Every rank must add the same names
// (checked: a mismatch throws zerorl::Error on every rank).  Collective
// like core/comm.h; not thread-safe.
#pragma once

#include <map>
#include <string>
#include <utility>

namespace zerorl {

class Comm;

class MetricReducer {
 public:
  // Accumulates: repeated adds of one name combine (sum, count, max, min).
  void add_mean(const std::string& name, double sum, double count);
  void add_sum(const std::string& name, double v);
  void add_max(const std::string& name, double v);
  void add_min(const std::string& name, double v);

  // Collective.  Means are sum/count over all ranks (NaN when the count is 0).
  std::map<std::string, double> reduce(Comm& comm) const;
  // The same without communication (one rank's view).
  std::map<std::string, double> local() const;

 private:
  std::map<std::string, std::pair<double, double>> means_;
  std::map<std::string, double> sums_, maxs_, mins_;
};

}  // namespace zerorl
