#include "model/static_decode.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "core/error.h"
#include "core/log.h"
#include "kernels/moe/moe.h"
#include "model/moe_block.h"

namespace zerorl::model {

int64_t decode_bucket(int64_t rows) {
  ZR_CHECK(rows >= 1, "decode_bucket: rows must be >= 1, got ", rows);
  if (rows <= 4) {
    int64_t b = 1;
    while (b < rows) b *= 2;
    return b;
  }
  if (rows <= 256) return (rows + 7) / 8 * 8;
  if (rows <= kMaxDecodeBucket) return (rows + 15) / 16 * 16;
  return 0;
}

bool decode_graphs_apply(CausalLM& policy, std::string* why) {
  auto no = [&](const std::string& reason) {
    if (why) *why = reason;
    return false;
  };
  const at::Tensor w = policy.output_weight();
  if (!w.is_cuda()) return no("the policy is not on a CUDA device");
#ifndef ZERORL_WITH_CUDA
  return no("zerorl was built without CUDA");
#endif
  if (policy.expert_grid()) return no("expert parallelism (each forward is an exchange)");
  const int64_t D = policy.config().hidden_size;
  for (size_t m = 0; m < policy.moe_layers().size(); ++m) {
    const at::Tensor x = at::empty({1, D}, w.options());
    if (!kernels::moe_experts_sync_free(x, policy.moe_layer(m).experts->gate_proj))
      return no(
          "the MoE experts run a loop that reads their token counts on the host (graphs "
          "need the grouped GEMM: bf16 weights on sm90+)");
  }
  return true;
}

StaticDecoder::~StaticDecoder() { drop_graphs(); }

std::vector<std::pair<const void*, int64_t>> StaticDecoder::weight_addresses(
    CausalLM& policy) const {
  std::vector<std::pair<const void*, int64_t>> out;
  for (const auto& [name, t] : policy.named_weights()) out.emplace_back(t.data_ptr(), t.numel());
  return out;
}

void StaticDecoder::drop_graphs() {
  buckets_.clear();
  last_routing_.clear();
  pool_ = {0, 0};
}

void StaticDecoder::release() {
  drop_graphs();
  cache_.reset();
  geometry_ = Geometry();
  weights_.clear();
  cos_PH_ = sin_PH_ = at::Tensor();
}

KvCache& StaticDecoder::cache(CausalLM& policy, int64_t num_slots, int64_t max_len,
                              int64_t block_size, int64_t num_blocks) {
  const at::Tensor w = policy.output_weight();
  Geometry g;
  g.policy = &policy;
  g.device = w.device().str();
  g.dtype = static_cast<int64_t>(w.scalar_type());
  g.num_slots = num_slots;
  g.max_len = max_len;
  g.block_size = block_size;
  g.num_blocks = num_blocks;
  auto addresses = weight_addresses(policy);
  if (cache_ && g == geometry_) {
    if (addresses != weights_) {  // a weight was reallocated: its graphs read the old storage
      drop_graphs();
      ++stats_.resets;
      weights_ = std::move(addresses);
    }
    cache_->clear();
    return *cache_;
  }
  drop_graphs();  // they hold the old pool's addresses
  if (cache_) ++stats_.resets;
  cache_.reset();  // free the old pool before taking the new one
  cache_ = std::make_unique<KvCache>(
      policy.make_cache(num_slots, max_len, block_size, num_blocks, /*scratch_block=*/true));
  geometry_ = g;
  weights_ = std::move(addresses);
  const int64_t M = (max_len + block_size - 1) / block_size;
  std::tie(cos_PH_, sin_PH_) = policy.rope_tables(M * block_size);
  return *cache_;
}

int64_t StaticDecoder::held_bytes(const at::Device& device) const {
  return cache_ && geometry_.device == device.str() ? cache_->bytes() : 0;
}

StaticDecoder::Bucket& StaticDecoder::bucket(CausalLM& policy, KvCache& cache, int64_t rows) {
  auto it = buckets_.find(rows);
  if (it != buckets_.end()) return it->second;
  const int64_t M = (cache.max_len() + cache.block_size() - 1) / cache.block_size();
  const auto lopt = at::TensorOptions().dtype(at::kLong).device(policy.output_weight().device());
  Bucket b;
  b.rows = rows;
  b.dev_idx = at::zeros({rows * (2 + M)}, lopt);
  b.in.pos_R = b.dev_idx.narrow(0, 0, rows);
  b.in.write_R = b.dev_idx.narrow(0, rows, rows);
  b.in.blocks_RM = b.dev_idx.narrow(0, 2 * rows, rows * M);
  b.in.tokens_R = at::zeros({rows}, lopt);
  b.in.max_blocks = M;
  b.in.cos_PH = cos_PH_;
  b.in.sin_PH = sin_PH_;
  return buckets_.emplace(rows, std::move(b)).first->second;
}

at::Tensor StaticDecoder::decode(CausalLM& policy, KvCache& cache,
                                 const std::vector<int64_t>& slots, const at::Tensor& tokens_S,
                                 const ForwardOptions& fo) {
  ZR_CHECK(&cache == cache_.get(), "StaticDecoder::decode: the cache is not the one cache() gave");
  ZR_CHECK(geometry_.policy == &policy,
           "StaticDecoder::decode: the cache was made for another policy");
  const int64_t S = static_cast<int64_t>(slots.size());
  ZR_CHECK(S >= 1 && tokens_S.dim() == 1 && tokens_S.size(0) == S,
           "StaticDecoder::decode: tokens_S must be [", S, "], got ", tokens_S.sizes());
  const int64_t R = decode_bucket(S);
  if (R == 0) return {};
  if (fo.record_routing != routing_) {  // the graphs record routing or not
    drop_graphs();
    routing_ = fo.record_routing;
  }
  const std::vector<int64_t> ones(slots.size(), 1);
  cache.check_append(slots, ones);
  cache.reserve_append(slots, ones);
  Bucket& b = bucket(policy, cache, R);
  const int64_t M = b.in.max_blocks, bs = cache.block_size(), scratch = cache.scratch_block();
  // Positions, write rows and tables in one host buffer: pinned on CUDA so
  // the copy is asynchronous (the caching host allocator keeps a buffer
  // until its copy is done, so a fresh one per step never races).
  at::Tensor host = at::empty(
      {R * (2 + M)}, at::TensorOptions().dtype(at::kLong).pinned_memory(b.dev_idx.is_cuda()));
  int64_t* pos = host.data_ptr<int64_t>();
  int64_t* write = pos + R;
  int64_t* blocks = pos + 2 * R;
  for (int64_t i = 0; i < R; ++i) {
    int64_t* row = blocks + i * M;
    if (i >= S) {  // padding: position 0 of the scratch block, nothing else
      pos[i] = 0;
      write[i] = scratch * bs;
      std::fill(row, row + M, scratch);
      continue;
    }
    const int64_t slot = slots[static_cast<size_t>(i)];
    const int64_t len = cache.length(slot);
    const std::vector<int64_t>& table = cache.block_table(slot);
    pos[i] = len;
    write[i] = table[static_cast<size_t>(len / bs)] * bs + len % bs;
    const int64_t used = std::min<int64_t>(M, static_cast<int64_t>(table.size()));
    std::copy(table.begin(), table.begin() + used, row);
    std::fill(row + used, row + M, scratch);
  }
  b.dev_idx.copy_(host, /*non_blocking=*/true);
  b.in.tokens_R.narrow(0, 0, S).copy_(tokens_S, /*non_blocking=*/true);
  if (R > S) b.in.tokens_R.narrow(0, S, R - S).zero_();

  const bool routing = routing_;
  auto step = [&policy, &cache, &b, &fo, routing] {
    b.logits_RV = policy.decode_static(cache, b.in, fo);
    if (routing) b.routing = policy.last_routing();
  };
  if (mode_ == Mode::kGraphs && !capture_failed_) {
    if (!b.graph) {
      try {
        b.graph = capture_decode_graph(step, &pool_);
        ++stats_.captures;
      } catch (const std::exception& e) {
        // Not expected (decode_graphs_apply vets the policy); the step is
        // still correct eagerly, so go on without graphs.
        capture_failed_ = true;
        ZR_LOG_WARN("rollout: ", e.what(), "; decoding without CUDA graphs from now on");
      }
    }
  }
  if (b.graph) {
    b.graph->replay();
    ++stats_.replays;
  } else {
    step();
  }
  cache.advance(slots, ones);
  ++stats_.steps;
  stats_.padded_rows += R - S;
  if (routing) last_routing_ = b.routing;
  return b.logits_RV.narrow(0, 0, S);
}

#ifndef ZERORL_WITH_CUDA
std::unique_ptr<DecodeGraph> capture_decode_graph(const std::function<void()>&,
                                                  std::pair<uint64_t, uint64_t>*) {
  ZR_THROW("decode graphs: zerorl was built without CUDA (ZERORL_CUDA=OFF)");
}
#endif

}  // namespace zerorl::model
