#include "trainer/metric_reducer.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/comm.h"
#include "core/error.h"

namespace zerorl {

void MetricReducer::add_mean(const std::string& name, double sum, double count) {
  auto& e = means_[name];
  e.first += sum;
  e.second += count;
}

void MetricReducer::add_sum(const std::string& name, double v) { sums_[name] += v; }

void MetricReducer::add_max(const std::string& name, double v) {
  auto it = maxs_.find(name);
  if (it == maxs_.end())
    maxs_[name] = v;
  else
    it->second = std::max(it->second, v);
}

void MetricReducer::add_min(const std::string& name, double v) {
  auto it = mins_.find(name);
  if (it == mins_.end())
    mins_[name] = v;
  else
    it->second = std::min(it->second, v);
}

namespace {

// FNV-1a over the kind-tagged names, cut to 52 bits so a double holds it exactly.
double names_hash(const std::map<std::string, std::pair<double, double>>& means,
                  const std::map<std::string, double>& sums,
                  const std::map<std::string, double>& maxs,
                  const std::map<std::string, double>& mins) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](char kind, const std::string& s) {
    for (char c : std::string(1, kind) + s + '\0') {
      h ^= static_cast<unsigned char>(c);
      h *= 1099511628211ull;
    }
  };
  for (const auto& [k, v] : means) mix('m', k);
  for (const auto& [k, v] : sums) mix('s', k);
  for (const auto& [k, v] : maxs) mix('x', k);
  for (const auto& [k, v] : mins) mix('n', k);
  return static_cast<double>(h & ((1ull << 52) - 1));
}

}  // namespace

std::map<std::string, double> MetricReducer::local() const {
  std::map<std::string, double> out;
  for (const auto& [k, v] : means_)
    out[k] = v.second > 0 ? v.first / v.second : std::numeric_limits<double>::quiet_NaN();
  for (const auto& [k, v] : sums_) out[k] = v;
  for (const auto& [k, v] : maxs_) out[k] = v;
  for (const auto& [k, v] : mins_) out[k] = v;
  return out;
}

std::map<std::string, double> MetricReducer::reduce(Comm& comm) const {
  if (comm.size() == 1) return local();
  // Max-reduced: [maxima..., -minima..., hash, -hash, count, -count].
  const double h = names_hash(means_, sums_, maxs_, mins_);
  const double n = static_cast<double>(means_.size() + sums_.size() + maxs_.size() + mins_.size());
  std::vector<double> mx;
  for (const auto& [k, v] : maxs_) mx.push_back(v);
  for (const auto& [k, v] : mins_) mx.push_back(-v);
  mx.insert(mx.end(), {h, -h, n, -n});
  // Pad so that ranks with different key sets still call with equal sizes
  // long enough to compare hashes; the check below then throws everywhere.
  const double mx_len = comm.allreduce_scalar(static_cast<double>(mx.size()), ReduceOp::kMax);
  at::Tensor tmx = at::full({static_cast<int64_t>(mx_len)},
                            -std::numeric_limits<double>::infinity(), at::kDouble);
  std::copy(mx.begin(), mx.end() - 4, tmx.data_ptr<double>());
  std::copy(mx.end() - 4, mx.end(), tmx.data_ptr<double>() + tmx.numel() - 4);
  if (comm.backend() == "nccl") tmx = tmx.cuda();
  comm.allreduce(tmx, ReduceOp::kMax);
  tmx = tmx.cpu();
  const double* px = tmx.data_ptr<double>();
  const int64_t L = tmx.numel();
  ZR_CHECK(px[L - 4] == -px[L - 3] && px[L - 2] == -px[L - 1] && px[L - 4] == h &&
               static_cast<double>(mx.size()) == mx_len,
           "MetricReducer: ranks reported different metric names (rank ", comm.rank(), " has ",
           static_cast<int64_t>(n), " metrics); every rank must add the same names");

  std::vector<double> sm;
  for (const auto& [k, v] : means_) sm.insert(sm.end(), {v.first, v.second});
  for (const auto& [k, v] : sums_) sm.push_back(v);
  std::map<std::string, double> out;
  if (!sm.empty()) {
    at::Tensor ts = at::empty({static_cast<int64_t>(sm.size())}, at::kDouble);
    std::copy(sm.begin(), sm.end(), ts.data_ptr<double>());
    if (comm.backend() == "nccl") ts = ts.cuda();
    comm.allreduce(ts, ReduceOp::kSum);
    ts = ts.cpu();
    const double* ps = ts.data_ptr<double>();
    size_t i = 0;
    for (const auto& [k, v] : means_) {
      out[k] = ps[i + 1] > 0 ? ps[i] / ps[i + 1] : std::numeric_limits<double>::quiet_NaN();
      i += 2;
    }
    for (const auto& [k, v] : sums_) out[k] = ps[i++];
  }
  size_t j = 0;
  for (const auto& [k, v] : maxs_) out[k] = px[j++];
  for (const auto& [k, v] : mins_) out[k] = -px[j++];
  return out;
}

namespace {

constexpr int64_t kLengthBins = 1024;
const char kLengthHist[] = "response/length_hist/";

int64_t length_bin_width(int64_t max_len) {
  return std::max<int64_t>(1, (max_len + kLengthBins) / kLengthBins);
}

std::string length_bin_key(int64_t bin) {
  std::string n = std::to_string(bin);
  return kLengthHist + std::string(4 - std::min<size_t>(4, n.size()), '0') + n;
}

}  // namespace

void add_length_histogram(MetricReducer& m, const std::vector<int64_t>& lengths, int64_t max_len) {
  const int64_t w = length_bin_width(max_len);
  for (int64_t bin = 0; bin * w <= max_len; ++bin) m.add_sum(length_bin_key(bin), 0.0);
  for (int64_t len : lengths)  // clamped: the names stay those of [0, max_len]
    m.add_sum(length_bin_key(std::clamp<int64_t>(len, 0, max_len) / w), 1.0);
}

void length_quantiles(std::map<std::string, double>& reduced, int64_t max_len) {
  std::vector<std::pair<int64_t, double>> bins;  // (bin, count) in bin order (the map's)
  double n = 0;
  for (auto it = reduced.lower_bound(kLengthHist);
       it != reduced.end() && it->first.rfind(kLengthHist, 0) == 0;) {
    bins.emplace_back(std::stoll(it->first.substr(sizeof(kLengthHist) - 1)), it->second);
    n += it->second;
    it = reduced.erase(it);
  }
  if (n <= 0) return;
  const int64_t w = length_bin_width(max_len);
  for (const auto& [name, q] :
       {std::pair<const char*, double>{"response/length_p50", 0.5}, {"response/length_p90", 0.9}}) {
    const double rank = std::ceil(q * n);  // the rank-th shortest completion
    double seen = 0;
    for (const auto& [bin, count] : bins)
      if ((seen += count) >= rank) {
        reduced[name] = static_cast<double>(bin * w);
        break;
      }
  }
}

}  // namespace zerorl
