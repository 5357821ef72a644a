#include "trainer/grad_sync.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros_like.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace zerorl {

// ---- GradSync -------------------------------------------------------------------

GradSync::GradSync(std::vector<at::Tensor> params, Comm& comm, int64_t bucket_bytes, ReduceOp op)
    : params_(std::move(params)), comm_(comm), op_(op) {
  ZR_CHECK(bucket_bytes > 0, "GradSync: bucket_bytes must be > 0, got ", bucket_bytes);
  ZR_CHECK(op == ReduceOp::kSum || op == ReduceOp::kMean,
           "GradSync: gradients reduce with kSum or kMean only");
  int64_t cur_bytes = 0;
  Bucket cur;
  at::ScalarType cur_dtype = at::ScalarType::Undefined;
  at::Device cur_device = at::kCPU;
  int64_t cur_numel = 0;
  auto close = [&] {
    if (cur.param_idx.empty()) return;
    cur.flat = at::empty({cur_numel}, at::TensorOptions().dtype(cur_dtype).device(cur_device));
    buckets_.push_back(std::move(cur));
    cur = Bucket{};
    cur_bytes = 0;
    cur_numel = 0;
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& p = params_[i];
    ZR_CHECK(p.defined() && at::isFloatingType(p.scalar_type()), "GradSync: parameter ", i,
             " is undefined or not floating");
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    const bool same_kind =
        !cur.param_idx.empty() && p.scalar_type() == cur_dtype && p.device() == cur_device;
    if (!cur.param_idx.empty() && (!same_kind || cur_bytes + bytes > bucket_bytes)) close();
    if (cur.param_idx.empty()) {
      cur_dtype = p.scalar_type();
      cur_device = p.device();
    }
    cur.param_idx.push_back(static_cast<int64_t>(i));
    cur_bytes += bytes;
    cur_numel += p.numel();
  }
  close();
}

void GradSync::allreduce_grads() {
  for (Bucket& b : buckets_) {
    int64_t off = 0;
    for (int64_t i : b.param_idx) {
      const at::Tensor& p = params_[i];
      at::Tensor dst = b.flat.narrow(0, off, p.numel());
      const at::Tensor& g = p.grad();
      if (g.defined()) {
        dst.copy_(g.reshape({-1}));
      } else {
        dst.zero_();
      }
      off += p.numel();
    }
    comm_.allreduce(b.flat, op_);
    off = 0;
    for (int64_t i : b.param_idx) {
      at::Tensor& p = params_[i];
      const at::Tensor src = b.flat.narrow(0, off, p.numel()).view(p.sizes());
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      p.mutable_grad().copy_(src);
      off += p.numel();
    }
  }
}

bool any_rank(Comm& comm, bool local_flag) {
  return comm.allreduce_scalar(local_flag ? 1.0 : 0.0, ReduceOp::kMax) > 0.5;
}

// ---- MetricReducer ------------------------------------------------------------------

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

}  // namespace zerorl
