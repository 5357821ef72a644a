// StaticDecoder: decode steps at a few fixed batch sizes ("buckets"), run
// eagerly or replayed from CUDA graphs captured once per weight version.
//
//   StaticDecoder dec(StaticDecoder::Mode::kGraphs);
//   KvCache& cache = dec.cache(policy, slots, max_len, block_size, blocks);
//   at::Tensor logits_SV = dec.decode(policy, cache, slots, tokens_S, fo);
//
// A step of S rows runs at the smallest bucket R >= S (decode_bucket: 1, 2,
// 4, then multiples of 8 up to 256, then of 16 up to 512, vLLM's capture
// sizes); the rows past S are padding.  Its inputs live in fixed buffers per
// bucket (model.h StaticDecodeInputs: tokens, positions, K/V write rows and
// block tables padded to M = ceil(cache.max_len() / bs) blocks per row), so
// the step's shapes depend on R and M only and it makes no host sync:
//   * padding rows read and write only the cache's scratch block (KvCache's
//     scratch_block: one block outside the pool's count), position 0, token
//     0; a real row's table is padded with the scratch block too, and every
//     position after its own is masked, so neither changes a real row's
//     result (on the CPU not by a bit: the token-wise layers are
//     row-invariant, kernels/batch_invariant.h);
//   * the host's part stays outside the step: the cache's bookkeeping
//     (check_append / reserve_append with its copy-on-write copies before,
//     advance after) and the fill of the buffers (one host-to-device copy of
//     positions, write rows and tables; the tokens copied device to device).
// Against CausalLM::decode: the same tokens and log-probs within 1e-5 in
// fp32 (attention gathers the M blocks and masks, where the CPU's dynamic
// step reads the pool in place, model/paged_attention.h, so summation
// orders differ; tests/rollout/engine_static_test.cpp).
//
// Mode::kGraphs (CUDA only; decode_graphs_apply says whether a policy
// qualifies): the first step at a bucket runs the step once on a side
// stream (warm-up) and captures it with at::cuda::CUDAGraph into a memory
// pool shared by all buckets; later steps fill the buffers and replay.  The
// step writes the same K/V in warm-up, capture and replay, so capturing
// during a real step is harmless.  Steps of more rows than the largest
// bucket, and policies that do not qualify, decode eagerly
// (CausalLM::decode).  A capture that throws all the same is logged as a
// warning and the decoder runs its steps eagerly from then on.  A graph holds the addresses of the
// weights and of the cache's pool, so:
//   * the cache lives in the StaticDecoder until release(): cache() hands
//     the same pool back (cleared) while the geometry asked for is the same,
//     and a new one (dropping every graph) otherwise.  (The rollout engine
//     releases it after each call unless EngineOptions::keep_decode_cache:
//     a colocated learner needs that memory, and its weights change every
//     step anyway);
//   * the graphs are dropped when a weight of the policy was reallocated
//     (another storage address: set_data on a load, a cast, another policy).
//     Weights written in place -- the optimizer's copy from its masters, the
//     disaggregated weight broadcast (trainer/disaggregated.cpp copies into
//     each tensor's storage) -- keep them valid: a replay reads the new
//     values.
// Built and compiled; the CUDA capture (model/decode_graph_cuda.cpp) has
// never run on a GPU (no device lent yet).  Mode::kEager is the same step
// without graphs, on any device: the CPU tests run it.
//
// Threads: one StaticDecoder per generating thread.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/kv_cache.h"
#include "model/model.h"

namespace zerorl::model {

// The largest bucket; more rows decode eagerly.
constexpr int64_t kMaxDecodeBucket = 512;
// Smallest bucket >= rows (rows >= 1), or 0 when rows > kMaxDecodeBucket.
int64_t decode_bucket(int64_t rows);

// Whether a decode step of `policy` can be captured: a CUDA device, no
// expert parallelism (its exchange is a collective), and every MoE layer's
// experts free of host syncs (kernels::moe_experts_sync_free: bf16 on
// sm90+).  Otherwise false, with the reason in *why (when given).
bool decode_graphs_apply(CausalLM& policy, std::string* why = nullptr);

// A captured step (model/decode_graph_cuda.cpp); internal.
class DecodeGraph {
 public:
  virtual ~DecodeGraph() = default;
  virtual void replay() = 0;
};

class StaticDecoder {
 public:
  enum class Mode { kEager, kGraphs };
  explicit StaticDecoder(Mode mode) : mode_(mode) {}
  ~StaticDecoder();
  StaticDecoder(const StaticDecoder&) = delete;
  StaticDecoder& operator=(const StaticDecoder&) = delete;

  Mode mode() const { return mode_; }

  // A cache of this geometry (CausalLM::make_cache with a scratch block) on
  // the policy's device and dtype: the one held, cleared, when it matches
  // (same policy, device, dtype and arguments), else a new one (the graphs
  // are dropped).  Valid until the next call.  Also drops the graphs when a
  // weight of the policy was reallocated since they were captured.
  KvCache& cache(CausalLM& policy, int64_t num_slots, int64_t max_len, int64_t block_size,
                 int64_t num_blocks);
  // Bytes of the cache held on `device` (0: none there): memory a new cache
  // of the same size may take over.
  int64_t held_bytes(const at::Device& device) const;
  // Drop the cache and the graphs (their memory goes back to the allocator).
  void release();

  // Same contract as CausalLM::decode (tokens_S on the policy's device,
  // int64), for a cache from cache().  Undefined when S exceeds the largest
  // bucket: the caller decodes eagerly then.
  at::Tensor decode(CausalLM& policy, KvCache& cache, const std::vector<int64_t>& slots,
                    const at::Tensor& tokens_S, const ForwardOptions& fo = {});
  // Routing rows of the last decode() with record_routing ([R, K] per MoE
  // layer; row i for slots[i], rows past S are padding).
  const std::vector<at::Tensor>& last_routing() const { return last_routing_; }

  struct Stats {
    int64_t steps = 0;     // decode() calls that ran a bucket
    int64_t replays = 0;   // ... of them replayed from a graph
    int64_t captures = 0;  // graphs captured
    int64_t resets = 0;    // cache() dropped the graphs: another geometry, or a weight reallocated
    int64_t padded_rows = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Bucket {
    int64_t rows = 0;
    StaticDecodeInputs in;
    at::Tensor host_idx;  // int64 [R*(2+M)] (pinned on CUDA): positions, write rows, tables
    at::Tensor dev_idx;   // the same on the device; in's pos/write/blocks are views of it
    at::Tensor logits_RV;
    std::vector<at::Tensor> routing;
    std::unique_ptr<DecodeGraph> graph;
  };
  Bucket& bucket(CausalLM& policy, KvCache& cache, int64_t rows);
  void drop_graphs();
  std::vector<std::pair<const void*, int64_t>> weight_addresses(CausalLM& policy) const;

  Mode mode_;
  Stats stats_;
  std::unique_ptr<KvCache> cache_;
  struct Geometry {
    const CausalLM* policy = nullptr;
    std::string device;
    int64_t dtype = -1, num_slots = 0, max_len = 0, block_size = 0, num_blocks = 0;
    bool operator==(const Geometry& o) const {
      return policy == o.policy && device == o.device && dtype == o.dtype &&
             num_slots == o.num_slots && max_len == o.max_len && block_size == o.block_size &&
             num_blocks == o.num_blocks;
    }
  } geometry_;
  std::vector<std::pair<const void*, int64_t>> weights_;  // (data_ptr, numel) at capture
  std::map<int64_t, Bucket> buckets_;
  bool routing_ = false;         // record_routing of the buckets' graphs
  bool capture_failed_ = false;  // a capture threw: eager from then on (logged)
  at::Tensor cos_PH_, sin_PH_;
  std::pair<uint64_t, uint64_t> pool_{0, 0};  // the graphs' shared memory pool
  std::vector<at::Tensor> last_routing_;
};

// Captures step() (model/decode_graph_cuda.cpp; throws without CUDA): runs it
// once on a side stream, then captures it there into the memory pool *pool
// ({0, 0}: a new pool, written back).
std::unique_ptr<DecodeGraph> capture_decode_graph(const std::function<void()>& step,
                                                  std::pair<uint64_t, uint64_t>* pool);

}  // namespace zerorl::model
