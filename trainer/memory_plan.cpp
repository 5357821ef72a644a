#include "trainer/memory_plan.h"

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "core/config.h"
#include "core/recipe_path.h"
#include "core/error.h"
#include "core/h5.h"
#include "core/process_grid.h"
#include "model/weights.h"
#include "rollout/sampling.h"
#include "trainer/grpo_loss.h"
#include "trainer/grpo_trainer.h"
#include "trainer/policy_file.h"

#ifdef ZERORL_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace zerorl {

namespace {

constexpr int64_t kF32 = 4;
constexpr int64_t kSyncBucketBytes = 25 << 20;  // trainer/grad_sync.h's default bucket

int64_t linear_params(int64_t in, int64_t out, bool bias) { return in * out + (bias ? out : 0); }

// Parameters of one decoder layer's attention block.
int64_t attention_params(const model::ModelConfig& c) {
  const auto& a = c.attn;
  const int64_t D = c.hidden_size;
  if (a.kind == model::AttentionConfig::Kind::kGqa)
    return linear_params(D, a.num_heads * a.head_dim, a.qkv_bias) +
           2 * linear_params(D, a.num_kv_heads * a.head_dim, a.qkv_bias) +
           linear_params(a.num_heads * a.head_dim, D, false);
  const int64_t Dq = a.qk_nope_head_dim + a.qk_rope_head_dim, H = a.num_heads;
  int64_t n = 0;
  if (a.q_lora_rank > 0)
    n += linear_params(D, a.q_lora_rank, a.attention_bias) + a.q_lora_rank +
         linear_params(a.q_lora_rank, H * Dq, false);
  else
    n += linear_params(D, H * Dq, false);
  n += linear_params(D, a.kv_lora_rank + a.qk_rope_head_dim, a.attention_bias) + a.kv_lora_rank;
  n += linear_params(a.kv_lora_rank, H * (a.qk_nope_head_dim + a.v_head_dim), false);
  n += linear_params(H * a.v_head_dim, D, a.attention_bias);
  return n;
}

// Bytes autograd keeps per token for one layer's attention (model/attention.cpp,
// forward_full with SDPA): the projections' inputs and outputs that later ops
// save, SDPA's inputs, output and fp32 log-sum-exp.
int64_t attention_activation(const model::ModelConfig& c, int64_t b) {
  const auto& a = c.attn;
  const int64_t H = a.num_heads;
  if (a.kind == model::AttentionConfig::Kind::kGqa) {
    const int64_t Hkv = a.num_kv_heads, Dh = a.head_dim;
    // q, k, v projections; rotated q, k; SDPA output; its [T, H*Dh] copy for o_proj.
    return b * Dh * (H + 2 * Hkv + H + Hkv + H + H) + kF32 * H;
  }
  const int64_t Dn = a.qk_nope_head_dim, Dr = a.qk_rope_head_dim, Dv = a.v_head_dim,
                R = a.kv_lora_rank, Dq = Dn + Dr, Dw = std::max(Dq, Dv);
  int64_t n = 0;
  if (a.q_lora_rank > 0) n += 2 * a.q_lora_rank;  // q_a output, its norm output
  n += H * Dq;                                    // query (kept by the rotary slice)
  n += H * Dr;                                    // rotated query part
  n += (R + Dr) + R + Dr;                         // ckv, normed latent, rotated key
  n += 3 * H * Dw;                                // SDPA q, k, v (v zero-padded to Dq)
  n += H * Dw + H * Dv;                           // SDPA output, [T, H*Dv] copy for o_proj
  return b * n + kF32 * H;
}

// Dense MLP: gate and up outputs, silu(gate), their product.
int64_t mlp_activation(int64_t F, int64_t b) { return 4 * F * b; }

int64_t moe_activation(const model::ModelConfig& c, int64_t b) {
  const auto& m = c.moe;
  const int64_t D = c.hidden_size, E = m.num_experts, K = m.top_k, F = m.expert_intermediate;
  // Router: fp32 input copy (when b < 4), logits and scores.
  int64_t n = (b < kF32 ? kF32 * D : 0) + 3 * kF32 * E;
  // Routed experts (kernels/moe): K gathered copies of x, per copy gate/up
  // outputs, silu(gate), the product, the down output; index bookkeeping.
  n += K * (2 * D + 4 * F) * b + K * 3 * 8;
  if (m.shared_intermediate > 0) n += mlp_activation(m.shared_intermediate, b);
  return n;
}

// One decoder layer: its two norms (input kept, output kept by the next op,
// fp32 rstd), attention, MLP or MoE.
int64_t layer_activation(const model::ModelConfig& c, int64_t i, int64_t b) {
  const int64_t D = c.hidden_size;
  int64_t n = 2 * (2 * D * b + kF32) + attention_activation(c, b);
  n += c.layer_is_moe(i) ? moe_activation(c, b) : mlp_activation(c.moe.dense_intermediate, b);
  return n;
}

std::string gib(int64_t bytes) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(bytes < (int64_t{1} << 30) ? 3 : 1)
     << static_cast<double>(bytes) / static_cast<double>(int64_t{1} << 30);
  return os.str();
}

}  // namespace

ParamCount count_parameters(const model::ModelConfig& c) {
  ParamCount p;
  const int64_t D = c.hidden_size, V = c.vocab_size;
  p.total = V * D + (c.tie_embeddings ? 0 : V * D) + D;  // embeddings, final norm
  for (int64_t i = 0; i < c.num_layers; ++i) {
    p.total += 2 * D + attention_params(c);
    if (!c.layer_is_moe(i)) {
      p.total += 3 * D * c.moe.dense_intermediate;
      continue;
    }
    const auto& m = c.moe;
    const int64_t experts = 3 * m.num_experts * m.expert_intermediate * D;
    p.experts += experts;
    p.total += experts + m.num_experts * D;  // routed experts, router
    if (m.shared_intermediate > 0) p.total += 3 * D * m.shared_intermediate;
    if (m.shared_intermediate > 0 && m.shared_expert_gate) p.total += D;
  }
  return p;
}

int64_t layer_activation_bytes_per_token(const model::ModelConfig& c, int64_t b) {
  int64_t best = 0;
  for (int64_t i = 0; i < c.num_layers; ++i) best = std::max(best, layer_activation(c, i, b));
  return best;
}

int64_t activation_bytes_per_token(const model::ModelConfig& c, int64_t b) {
  int64_t n = 2 * c.hidden_size * b;  // final norm input and output (the log-prob kernel's h)
  for (int64_t i = 0; i < c.num_layers; ++i) n += layer_activation(c, i, b);
  return n;
}

MemoryPlan plan_memory(const MemoryPlanInput& in) {
  ZR_CHECK(in.world_size >= 1, "memory plan: world size must be >= 1");
  ZR_CHECK(in.zero >= 0 && in.zero <= 2, "memory plan: train.zero must be 0, 1 or 2");
  ZR_CHECK(in.expert_parallel >= 1 && in.world_size % in.expert_parallel == 0,
           "memory plan: expert parallelism ", in.expert_parallel, " must divide the world size ",
           in.world_size);
  const model::ModelConfig& c = in.model;
  const int64_t b = in.param_bytes, N = in.world_size, X = in.expert_parallel;
  const ParamCount pc = count_parameters(c);
  // Parameters this rank holds: dense ones whole, routed experts 1/X.  ZeRO
  // shards a dense parameter's state over all N ranks, an expert's over the
  // N/X ranks that hold a replica of it.
  const int64_t P_dense = pc.total - pc.experts, P_exp = pc.experts / X;
  const int64_t P = P_dense + P_exp;
  const int64_t shard_dense = in.zero >= 1 ? N : 1, shard_exp = in.zero >= 1 ? N / X : 1;
  const int64_t P_sharded = P_dense / shard_dense + P_exp / shard_exp;
  const std::string shard =
      shard_dense == shard_exp
          ? "1/" + std::to_string(shard_dense)
          : "dense 1/" + std::to_string(shard_dense) + ", experts 1/" + std::to_string(shard_exp);
  MemoryPlan p;
  p.gpu_memory_bytes = in.gpu_memory_bytes;
  auto add = [&](const std::string& name, int64_t bytes, const std::string& note) {
    p.rows.push_back({name, bytes, note});
  };
  std::ostringstream pn;
  pn << P << " x " << b << " B" << (X > 1 ? " (experts 1/" + std::to_string(X) + ")" : "");
  add("parameters", P * b, pn.str());
  add("master weights", b < kF32 ? kF32 * P_sharded : 0,
      b < kF32 ? "fp32, " + shard : "none: fp32 parameters are the masters");
  add("optimizer moments", 2 * kF32 * P_sharded, "AdamW m, v fp32, " + shard);
  const int64_t grads = in.zero >= 2 ? P_sharded * b : P * b;
  const int64_t sync = in.zero >= 2 ? std::min<int64_t>(kSyncBucketBytes, P * b) : P * b;
  add("gradients", grads + sync,
      in.zero >= 2 ? shard + " + one reduce-scatter bucket" : "full + all-reduce buffers");
  add("reference", in.reference ? P * b : 0, in.reference ? "compute dtype" : "loss.beta = 0");
  const int64_t tokens = in.micro_batch * in.seq_len;
  p.activations_plain = tokens * activation_bytes_per_token(c, b);
  // Checkpointing keeps each layer's [T, D] input and the final norm's, and
  // rebuilds one layer at a time in backward.
  p.activations_checkpointed = tokens * (c.num_layers * c.hidden_size * b + 2 * c.hidden_size * b +
                                         layer_activation_bytes_per_token(c, b));
  const int64_t act =
      in.activation_checkpointing ? p.activations_checkpointed : p.activations_plain;
  std::ostringstream an;
  an << in.micro_batch << " rows x " << in.seq_len << " positions"
     << (in.activation_checkpointing ? ", checkpointed" : "") << " (plain "
     << gib(p.activations_plain) << ", checkpointed " << gib(p.activations_checkpointed) << " GiB)";
  add("activations", act, an.str());
  // chosen_logprob: per chunk fp32 logits, softmax and its gradient.
  const int64_t chunk = std::min(in.logits_chunk_tokens, std::max<int64_t>(tokens, 1));
  add("logits chunk", 3 * chunk * c.vocab_size * kF32,
      std::to_string(chunk) + " tokens x V " + std::to_string(c.vocab_size) + " fp32 x 3");
  const auto& a = c.attn;
  const int64_t kv_per_pos = a.kind == model::AttentionConfig::Kind::kMla
                                 ? a.kv_lora_rank + a.qk_rope_head_dim
                                 : 2 * a.num_kv_heads * a.head_dim;
  const int64_t kv_worst = in.kv_slots * in.kv_len * c.num_layers * kv_per_pos * b;
  if (in.kv_cache_bytes > 0 && in.kv_cache_bytes < kv_worst)
    add("KV cache", in.kv_cache_bytes, "rollout.kv_cache_gb (block pool)");
  else
    add("KV cache", kv_worst,
        std::to_string(in.kv_slots) + " slots x " + std::to_string(in.kv_len) + " positions");
  for (const auto& r : p.rows) {
    if (r.name == "activations" || r.name == "logits chunk")
      p.learner_bytes += r.bytes;
    else if (r.name == "KV cache")
      p.rollout_bytes += r.bytes;
    else
      p.static_bytes += r.bytes;
  }
  p.total_bytes = p.static_bytes + std::max(p.learner_bytes, p.rollout_bytes);
  p.fits = in.gpu_memory_bytes <= 0 || static_cast<double>(p.total_bytes) <= in.gpu_memory_bytes;
  return p;
}

namespace {
int64_t row_bytes(const std::vector<MemoryPlanRow>& rows, const std::string& name) {
  for (const auto& r : rows)
    if (r.name == name) return r.bytes;
  return 0;
}
}  // namespace

int64_t MemoryPlan::row(const std::string& name) const { return row_bytes(rows, name); }
int64_t TrafficPlan::row(const std::string& name) const { return row_bytes(rows, name); }

TrafficPlan plan_traffic(const MemoryPlanInput& in) {
  ZR_CHECK(in.world_size >= 1 && in.expert_parallel >= 1 && in.world_size % in.expert_parallel == 0,
           "traffic plan: expert parallelism ", in.expert_parallel, " must divide the world size ",
           in.world_size);
  const model::ModelConfig& c = in.model;
  const int64_t b = in.param_bytes, N = in.world_size, X = in.expert_parallel, n_dp = N / X;
  const int64_t L = c.num_moe_layers(), K = c.moe.top_k, D = c.hidden_size;
  const ParamCount pc = count_parameters(c);
  const int64_t P_dense = pc.total - pc.experts, P_exp = pc.experts / X;
  TrafficPlan t;
  auto add = [&](const std::string& name, int64_t bytes, const std::string& note) {
    t.rows.push_back({name, bytes, note});
    t.total_bytes += bytes;
  };
  // The share of the exchanged rows that leaves the rank: (X-1)/X, exact in
  // integers as (rows x) / X.
  auto off_rank = [&](int64_t rows) { return rows * (X - 1) / X; };
  if (X > 1 && L > 0) {
    const int64_t tokens = in.rows_per_step * in.seq_len;
    const int64_t fwd = in.epochs * (in.activation_checkpointing ? 2 : 1) + (in.reference ? 1 : 0) +
                        (in.old_logprobs_recomputed ? 1 : 0);
    const int64_t bwd = in.epochs;
    const int64_t pairs = off_rank(L * tokens * K);  // (token, slot) pairs leaving, per pass
    std::ostringstream n;
    n << "L " << L << " x " << tokens << " tokens x K " << K << " x " << (X - 1) << "/" << X
      << " x ((2 x " << fwd << " fwd + 2 x " << bwd << " bwd) x D " << D << " x " << b << " B + "
      << fwd << " fwd x 8 B ids)";
    add("EP all-to-all, learner", pairs * ((2 * fwd + 2 * bwd) * D * b + fwd * 8), n.str());
    const int64_t rtokens = in.rows_per_step * in.kv_len;
    const int64_t rpairs = off_rank(L * rtokens * K);
    std::ostringstream r;
    r << "at most L " << L << " x " << rtokens << " tokens x K " << K << " x " << (X - 1) << "/"
      << X << " x (2 x D " << D << " x " << b << " B + 8 B ids)";
    add("EP all-to-all, rollout", rpairs * (2 * D * b + 8), r.str());
  }
  const int64_t steps = in.epochs * in.minibatches;  // optimizer steps per training step
  // Bytes a rank sends in one ring collective over n ranks of a buffer of `bytes`.
  auto ring = [](int64_t bytes, int64_t n, int64_t passes) { return passes * bytes * (n - 1) / n; };
  const bool rs = in.zero >= 2;
  const std::string op = rs ? "reduce-scatter" : "all-reduce";
  const int64_t passes = rs ? 1 : 2;
  auto grad_note = [&](int64_t P, int64_t n) {
    std::ostringstream o;
    o << steps << (steps == 1 ? " optimizer step x " : " optimizer steps x ") << op << " of " << P
      << " x " << b << " B over " << n << " ranks";
    return o.str();
  };
  add("dense gradients", steps * ring(P_dense * b, N, passes), grad_note(P_dense, N));
  add("expert gradients", steps * ring(P_exp * b, n_dp, passes),
      grad_note(P_exp, n_dp) + (X > 1 ? " (the replicas of this shard)" : ""));
  if (in.zero >= 1) {
    std::ostringstream o;
    o << steps << (steps == 1 ? " optimizer step x" : " optimizer steps x")
      << " all-gather of dense " << P_dense << " over " << N << ", experts " << P_exp << " over "
      << n_dp << " ranks, x " << b << " B";
    add("parameter all-gather", steps * (ring(P_dense * b, N, 1) + ring(P_exp * b, n_dp, 1)),
        o.str());
  }
  return t;
}

std::string TrafficPlan::table() const {
  std::ostringstream os;
  os << std::left << std::setw(24) << "sent per rank and step" << std::right << std::setw(10)
     << "GiB"
     << "  estimate: ring collectives, uniform routing, rows at full length\n";
  for (const auto& r : rows)
    os << std::left << std::setw(24) << r.name << std::right << std::setw(10) << gib(r.bytes)
       << "  " << r.note << "\n";
  os << std::left << std::setw(24) << "total" << std::right << std::setw(10) << gib(total_bytes)
     << "\n";
  return os.str();
}

std::string MemoryPlan::table() const {
  std::ostringstream os;
  os << std::left << std::setw(20) << "per rank" << std::right << std::setw(10) << "GiB"
     << "  note\n";
  for (const auto& r : rows)
    os << std::left << std::setw(20) << r.name << std::right << std::setw(10) << gib(r.bytes)
       << "  " << r.note << "\n";
  os << std::left << std::setw(20) << "peak" << std::right << std::setw(10) << gib(total_bytes)
     << "  static " << gib(static_bytes) << " + max(learner " << gib(learner_bytes) << ", rollout "
     << gib(rollout_bytes) << ")\n";
  if (gpu_memory_bytes > 0)
    os << (fits ? "fits" : "DOES NOT FIT") << " in " << gib(static_cast<int64_t>(gpu_memory_bytes))
       << " GiB per rank\n";
  return os.str();
}

MemoryPlanInput plan_input_from_recipe(const Recipe& recipe, int64_t world_size,
                                       double gpu_memory_gib, int64_t prompt_tokens) {
  Recipe r = Recipe::from_string(recipe.dump(), recipe.source_name());
  MemoryPlanInput in;
  // Through the run's own readers, so the plan sees the run's defaults.
  const PolicyConfig policy = PolicyConfig::from(r.section("policy"));
  const std::string& init = policy.init;
  namespace fs = std::filesystem;
  if (fs::is_directory(init)) {
    ZR_CHECK(fs::exists(init + "/config.json"), r.section("policy").where("init"), ": '", init,
             "' is a folder without config.json");
    in.model = model::ModelConfig::from_hf_json_file(init + "/config.json");
  } else if (init.size() > 5 && init.compare(init.size() - 5, 5, ".json") == 0) {
    in.model = model::ModelConfig::from_hf_json_file(init);  // shapes only (zerorl plan)
  } else {
    ZR_CHECK(fs::exists(init), r.section("policy").where("init"), ": policy file '", init,
             "' does not exist");
    H5File f(init, H5File::Mode::kRead);
    in.model = model::read_config(f, "model");
  }
  in.param_bytes = policy.dtype == at::kBFloat16 ? 2 : 4;
  // parallel.expert: the checks (and words) of trainer/expert_parallel.cpp,
  // so that a plan made before the trainer builds the grid names the same key.
  const ParallelConfig parallel = ParallelConfig::from(r.section("parallel"));
  const int E = parallel.expert;
  if (E > 1) {
    const std::string& at = parallel.where_expert;
    ZR_CHECK(in.model.num_moe_layers() > 0, at, ": parallel.expert = ", E,
             " needs an MoE policy; policy.init ", init, " has no MoE layer");
    ZR_CHECK(in.model.moe.num_experts % E == 0, at, ": parallel.expert = ", E,
             " must divide the policy's n_routed_experts (", in.model.moe.num_experts, ")");
    ZR_CHECK(world_size % E == 0, at, ": parallel.expert = ", E, " must divide the world size ",
             world_size);
  }
  in.expert_parallel = E;
  const TrainConfig train = TrainConfig::from(r.section("train"));
  in.zero = train.zero;
  in.activation_checkpointing = train.activation_checkpointing;
  in.epochs = train.epochs;
  in.minibatches = train.minibatches;
  in.old_logprobs_recomputed = !train.old_logprobs_from_rollout();
  in.rows_per_step = std::max<long>(
      1, train.prompts_per_step * train.group_size / std::max<int64_t>(world_size, 1));
  const long rows = std::max<long>(1, in.rows_per_step / train.minibatches);
  in.micro_batch = train.micro_batch > 0 ? std::min<long>(train.micro_batch, rows) : rows;
  const rollout::RolloutConfig rollout = rollout::RolloutConfig::from(r.section("rollout"));
  in.kv_slots = rollout.num_slots;
  in.kv_len = prompt_tokens + rollout.sampling.max_new_tokens;
  in.kv_cache_bytes =
      static_cast<int64_t>(rollout.kv_cache_gb * static_cast<double>(int64_t{1} << 30));
  in.seq_len = in.kv_len;
  in.reference = LossConfig::from(r.section("loss")).needs_reference();
  in.world_size = world_size;
  in.gpu_memory_bytes = gpu_memory_gib * static_cast<double>(int64_t{1} << 30);
  return in;
}

double device_memory_bytes(const c10::Device& device) {
  if (!device.is_cuda()) return 0;
#ifdef ZERORL_WITH_CUDA
  size_t free_bytes = 0, total_bytes = 0;
  ZR_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess,
           "cudaMemGetInfo failed: cannot plan memory");
  return static_cast<double>(total_bytes);
#else
  return 0;
#endif
}

int64_t largest_fitting_micro_batch(MemoryPlanInput in, int64_t rows) {
  int64_t best = 0;
  for (int64_t mb = 1; mb <= rows; mb *= 2) {
    in.micro_batch = mb;
    if (!plan_memory(in).fits) break;
    best = mb;
  }
  return best;
}

}  // namespace zerorl
