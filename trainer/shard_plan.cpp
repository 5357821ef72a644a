#include "trainer/shard_plan.h"

#include <algorithm>

#include "core/error.h"

namespace zerorl {

ShardPlan ShardPlan::make(const std::vector<at::Tensor>& params, int stage, int rank, int world,
                          int64_t bucket_bytes) {
  return make(params, stage, {Group{rank, world}}, std::vector<int>(params.size(), 0),
              bucket_bytes);
}

ShardPlan ShardPlan::make(const std::vector<at::Tensor>& params, int stage,
                          const std::vector<Group>& groups, const std::vector<int>& group_of,
                          int64_t bucket_bytes) {
  ZR_CHECK(stage >= 0 && stage <= 2, "train.zero must be 0, 1 or 2, got ", stage);
  ZR_CHECK(!groups.empty() && group_of.size() == params.size(),
           "ShardPlan: one sync group per parameter needed");
  for (const Group& g : groups)
    ZR_CHECK(g.size >= 1 && g.rank >= 0 && g.rank < g.size, "ShardPlan: rank ", g.rank,
             " outside world size ", g.size);
  ZR_CHECK(bucket_bytes > 0, "ShardPlan: bucket_bytes must be > 0, got ", bucket_bytes);
  ShardPlan plan;
  plan.stage = stage;
  plan.rank = groups[0].rank;
  plan.world = groups[0].size;
  plan.groups = groups;
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

  // Buckets: the rule GradSync always used (runs of one dtype and device),
  // and of one sync group.
  Bucket cur;
  int64_t cur_bytes = 0;
  auto close = [&] {
    if (cur.param_idx.empty()) return;
    const int n = groups[static_cast<size_t>(cur.group)].size;
    cur.shard = (cur.numel + n - 1) / n;
    plan.buckets.push_back(std::move(cur));
    cur = Bucket{};
    cur_bytes = 0;
  };
  for (size_t i = 0; i < params.size(); ++i) {
    const at::Tensor& p = params[i];
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    const int g = group_of[i];
    ZR_CHECK(g >= 0 && g < static_cast<int>(groups.size()), "ShardPlan: parameter ", i,
             " names sync group ", g, " of ", groups.size());
    const bool same_kind = !cur.param_idx.empty() && p.scalar_type() == cur.dtype &&
                           p.device() == cur.device && g == cur.group;
    if (!cur.param_idx.empty() && (!same_kind || cur_bytes + bytes > bucket_bytes)) close();
    if (cur.param_idx.empty()) {
      cur.dtype = p.scalar_type();
      cur.device = p.device();
      cur.group = g;
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
    const auto [s_lo, s_hi] = plan.own_slice(static_cast<int64_t>(k));
    const int64_t lo = stage == 0 ? 0 : s_lo;
    const int64_t hi = stage == 0 ? b.numel : s_hi;
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

std::pair<int64_t, int64_t> ShardPlan::own_slice(int64_t k) const {
  const Bucket& b = buckets.at(static_cast<size_t>(k));
  const int64_t r = groups.at(static_cast<size_t>(b.group)).rank;
  return {std::min(b.numel, r * b.shard), std::min(b.numel, (r + 1) * b.shard)};
}

std::vector<std::pair<int64_t, int64_t>> ShardPlan::slice_ranges(int r) const {
  ZR_CHECK(r >= 0 && r < world, "slice_ranges: rank ", r, " outside world size ", world);
  ZR_CHECK(groups.size() <= 1 || r == rank,
           "slice_ranges: a plan with sync groups knows its own rank's slices only");
  std::vector<std::pair<int64_t, int64_t>> out;
  for (const Bucket& b : buckets) {
    const int64_t gr = b.group == 0 ? r : groups[static_cast<size_t>(b.group)].rank;
    const int64_t lo = std::min(b.numel, gr * b.shard), hi = std::min(b.numel, (gr + 1) * b.shard);
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
