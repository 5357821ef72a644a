#include "trainer/shard_plan.h"

#include <algorithm>

#include "core/error.h"

namespace zerorl {

ShardPlan ShardPlan::make(const std::vector<at::Tensor>& params, int stage, int rank, int world,
                          int64_t bucket_bytes) {
  ZR_CHECK(stage >= 0 && stage <= 2, "train.zero must be 0, 1 or 2, got ", stage);
  ZR_CHECK(world >= 1 && rank >= 0 && rank < world, "ShardPlan: rank ", rank,
           " outside world size ", world);
  ZR_CHECK(bucket_bytes > 0, "ShardPlan: bucket_bytes must be > 0, got ", bucket_bytes);
  ShardPlan plan;
  plan.stage = stage;
  plan.rank = rank;
  plan.world = world;
  int64_t off = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const at::Tensor& p = params[i];
    ZR_CHECK(p.defined() && at::isFloatingType(p.scalar_type()), "ShardPlan: parameter ", i,
             " is undefined or not floating");
    plan.param_offset.push_back(off);
    plan.param_numel.push_back(p.numel());
    off += p.numel();
  }
  plan.total_numel = off;

  // Buckets: the rule GradSync always used (runs of one dtype and device).
  Bucket cur;
  int64_t cur_bytes = 0;
  auto close = [&] {
    if (cur.param_idx.empty()) return;
    cur.shard = (cur.numel + world - 1) / world;
    plan.buckets.push_back(std::move(cur));
    cur = Bucket{};
    cur_bytes = 0;
  };
  for (size_t i = 0; i < params.size(); ++i) {
    const at::Tensor& p = params[i];
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    const bool same_kind =
        !cur.param_idx.empty() && p.scalar_type() == cur.dtype && p.device() == cur.device;
    if (!cur.param_idx.empty() && (!same_kind || cur_bytes + bytes > bucket_bytes)) close();
    if (cur.param_idx.empty()) {
      cur.dtype = p.scalar_type();
      cur.device = p.device();
      cur.begin = plan.param_offset[i];
    }
    cur.param_idx.push_back(static_cast<int64_t>(i));
    cur.numel += p.numel();
    cur_bytes += bytes;
  }
  close();

  // Owned segments: each bucket's slice (stages 1, 2) or all of it (stage 0)
  // intersected with its parameters.
  for (size_t k = 0; k < plan.buckets.size(); ++k) {
    const Bucket& b = plan.buckets[k];
    const int64_t lo = stage == 0 ? 0 : std::min(b.numel, rank * b.shard);
    const int64_t hi = stage == 0 ? b.numel : std::min(b.numel, (rank + 1) * b.shard);
    for (int64_t pi : b.param_idx) {
      const int64_t p_lo = plan.param_offset[pi] - b.begin;
      const int64_t p_hi = p_lo + plan.param_numel[pi];
      const int64_t s = std::max(lo, p_lo), e = std::min(hi, p_hi);
      if (s >= e) continue;
      Segment seg;
      seg.param = pi;
      seg.offset = s - p_lo;
      seg.numel = e - s;
      seg.bucket = static_cast<int64_t>(k);
      seg.bucket_offset = s;
      seg.global = b.begin + s;
      plan.owned.push_back(seg);
    }
  }
  return plan;
}

std::vector<std::pair<int64_t, int64_t>> ShardPlan::slice_ranges(int r) const {
  ZR_CHECK(r >= 0 && r < world, "slice_ranges: rank ", r, " outside world size ", world);
  std::vector<std::pair<int64_t, int64_t>> out;
  for (const Bucket& b : buckets) {
    const int64_t lo = std::min(b.numel, r * b.shard), hi = std::min(b.numel, (r + 1) * b.shard);
    if (lo < hi) out.emplace_back(b.begin + lo, b.begin + hi);
  }
  return out;
}

int64_t ShardPlan::owned_numel() const {
  int64_t n = 0;
  for (const Segment& s : owned) n += s.numel;
  return n;
}

int64_t ShardPlan::sync_bytes() const {
  int64_t n = 0;
  for (const Bucket& b : buckets)
    n += (stage == 2 ? b.shard : b.numel) * static_cast<int64_t>(c10::elementSize(b.dtype));
  return n;
}

int64_t copy_overlaps(const std::vector<FlatSpan>& src, const std::vector<FlatSpan>& dst) {
  int64_t copied = 0;
  for (const FlatSpan& d : dst) {
    const int64_t d_end = d.global + d.data.numel();
    for (const FlatSpan& s : src) {
      const int64_t s_end = s.global + s.data.numel();
      const int64_t lo = std::max(d.global, s.global), hi = std::min(d_end, s_end);
      if (lo >= hi) continue;
      d.data.narrow(0, lo - d.global, hi - lo).copy_(s.data.narrow(0, lo - s.global, hi - lo));
      copied += hi - lo;
    }
  }
  return copied;
}

}  // namespace zerorl
