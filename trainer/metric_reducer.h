// MetricReducer: a step's metrics as means (sum and count), sums, maxima
// and minima, reduced across ranks with two all-reduces in total (plus one
// scalar for the padded length).  Every rank must add the same names
// (checked: a mismatch throws zerorl::Error on every rank).  Collective
// like core/comm.h; not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <vector>
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

// Completion lengths as a histogram of sums, so that a step's length
// quantiles are exact over the whole batch however it is spread over ranks:
// bins response/length_hist/NNNN of one token up to 1023 tokens, wider
// (ceil((max_len + 1) / 1024) tokens) beyond.  Every call adds every bin of
// [0, max_len], so all ranks report the same names.  length_quantiles turns
// the reduced bins into response/length_p50 and response/length_p90
// (nearest rank: the ceil(q n)-th shortest; a bin's lower edge) and removes
// them.
void add_length_histogram(MetricReducer& m, const std::vector<int64_t>& lengths, int64_t max_len);
void length_quantiles(std::map<std::string, double>& reduced, int64_t max_len);

}  // namespace zerorl
